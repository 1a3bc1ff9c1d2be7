"""Health dashboard: why a model is (un)healthy, beyond its accuracy.

* This trial (the best by default): the six metrics with what each means, a plain-language
  diagnosis, dead units and weight-update rates per layer, training vs validation curves with the
  overfitting gap marked, and the trial's files.
* Whole study: hyperparameter importance, accuracy vs health (Pareto front in pareto mode),
  parallel coordinates, and every trial's reported values (pruned ones visible).
* Compare two: two trials side by side.

Tabs track which one is open, so only the visible tab's charts are computed.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import PAGE_VIEWER
from app import components as C
from app import state
from core.config import ConfigError, StudyConfig
from core.diagnosis import diagnose
from core.health import COMPOSITE_HELP, METRIC_INFO
from core.shift import DESCRIPTION as SHIFT_DESCRIPTION
from core.study import TrialRecord

MIN_IMPORTANCE_TRIALS = 5  # fANOVA on fewer complete trials says more about noise than about the params


def _num_classes(config: StudyConfig | None) -> int | None:
    if config is None:
        return None
    try:
        from core.datasets import get_info

        return get_info(config.dataset).num_classes
    except ConfigError:
        return None


def render_trial(rec: TrialRecord, records: list[TrialRecord], name: str, config: StudyConfig | None,
                 best: TrialRecord | None) -> None:
    """One trial's health, most actionable first."""
    res = rec.result
    assert res is not None  # only trials with a result are offered
    head = f"### Trial #{rec.number} {C.state_badge(rec.state)}"
    if best is not None and rec.number == best.number:
        head += " :orange-badge[:material/trophy: best]"
    st.markdown(head)
    st.caption(C.key_params(rec, C.tuned_names(config, [rec])))
    c = st.columns(5)
    c[0].metric("Validation accuracy", C.fmt_pct(res.val_accuracy), help="What the study optimised (validation split).")
    c[1].metric("Test accuracy", C.fmt_pct(res.test_accuracy),
                help="Measured once on data the study never optimised on: the honest estimate.")
    c[2].metric("Shifted accuracy", C.fmt_pct(res.shifted_accuracy), help=SHIFT_DESCRIPTION)
    c[3].metric("Health score", C.fmt_score(res.health_score), help=COMPOSITE_HELP)
    c[4].metric("Parameters", C.fmt_count(res.param_count))

    st.subheader("Diagnosis")
    C.render_findings(diagnose(res, _num_classes(config)))

    st.subheader("Six health metrics")
    C.render_health_metrics(res, C.metric_medians(records))

    st.subheader("Layers")
    dead_fig, grad_fig = C.make_layer_figures(res)
    left, right = st.columns(2)
    with left:
        if dead_fig is not None:
            st.plotly_chart(dead_fig, key="dead-units")
        else:
            st.caption("No per-layer firing data for this trial.")
    with right:
        if grad_fig is not None:
            st.plotly_chart(grad_fig, key="grad-norms")
        else:
            st.caption("No weight-update figures for this trial (trained before they were measured).")

    st.subheader("Training vs validation")
    if res.history:
        left, right = st.columns(2)
        left.plotly_chart(C.make_curves_figure(res, "accuracy"), key="curves-accuracy")
        right.plotly_chart(C.make_curves_figure(res, "loss"), key="curves-loss")
        st.caption("The shaded band between the lines is the train/validation gap: wide means overfitting.")
    else:
        st.caption("No per-epoch history for this trial.")

    st.subheader("Files")
    C.render_trial_downloads(rec, name, key=f"health-dl-{rec.number}", horizontal=True)
    if C.viewer_available():
        C.nav_link(PAGE_VIEWER, "See this model in 3D", ":material/view_in_ar:")


def render_study(records: list[TrialRecord], name: str, config: StudyConfig | None, best: TrialRecord | None) -> None:
    """Study-wide views: what mattered, and how accuracy and health trade off."""
    n_complete = sum(1 for r in records if r.state == "COMPLETE")
    st.subheader("Which hyperparameters mattered")
    if n_complete < MIN_IMPORTANCE_TRIALS:
        st.info(f"Importance needs at least {MIN_IMPORTANCE_TRIALS} complete trials; this study has {n_complete}.")
    else:
        try:
            method, imps = C.param_importances(state.storage_url(), name, n_complete,
                                               config.mode if config else "simple")
        except Exception as exc:  # noqa: BLE001 - e.g. every trial used the same value of each param
            st.info(f"Importance could not be measured yet: {C.plain(exc)}")
        else:
            if imps:
                st.plotly_chart(C.make_importance_figure(imps), key="importance")
                st.caption(f"{method}: how much of the objective's variation each hyperparameter explains "
                           f"(over {n_complete} complete trials).")
    st.plotly_chart(C.make_health_scatter(records, config, best), key="acc-health")
    if config is not None and config.mode == "pareto":
        st.caption("Dashed: the Pareto front, trials no other trial beats on both accuracy and health.")
    par = C.make_parallel_figure(records, config)
    if par is not None:
        st.plotly_chart(par, key="parallel")
        st.caption("Each line is a trial, coloured by its objective: follow the bright lines to see which values win.")
    inter = C.make_intermediate_figure(records)
    st.subheader("Reported values per epoch")
    if inter is not None:
        st.plotly_chart(inter, key="intermediate")
        st.caption("What the pruner saw: dotted orange lines are trials it stopped early.")
    else:
        st.caption("No per-epoch reports (pareto studies are not pruned, so they report none).")


def _compare_table(a: TrialRecord, b: TrialRecord) -> pd.DataFrame:
    rows = []

    def add(label: str, va, vb, fmt=C.fmt_score) -> None:
        diff = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool) else None
        rows.append({"": label, f"#{a.number}": fmt(va), f"#{b.number}": fmt(vb),
                     "difference": f"{diff:+.3g}" if diff is not None else ""})

    ra, rb = a.result, b.result
    add("validation accuracy", a.val_accuracy, b.val_accuracy, C.fmt_pct)
    add("test accuracy", a.test_accuracy, b.test_accuracy, C.fmt_pct)
    add("shifted accuracy", a.shifted_accuracy, b.shifted_accuracy, C.fmt_pct)
    add("health score", a.health_score, b.health_score)
    for k, info in METRIC_INFO.items():
        add(info["title"], (ra.health or {}).get(k) if ra else None, (rb.health or {}).get(k) if rb else None)
    add("parameters", a.param_count, b.param_count, lambda v: f"{v:,}" if v else "–")
    for p in sorted(set(a.params) | set(b.params)):
        add(p, a.params.get(p), b.params.get(p), lambda v: "–" if v is None else C.fmt_value(v))
    return pd.DataFrame(rows)


def render_compare(candidates: list[TrialRecord], name: str, best: TrialRecord | None) -> None:
    done = [r for r in candidates if r.state == "COMPLETE"]
    if len(done) < 2:
        st.info("Comparing needs two complete trials.")
        return
    numbers = [r.number for r in done]
    by_number = {r.number: r for r in done}
    pair = state.compared_trials(name)
    if not pair or pair[0] not in by_number or pair[1] not in by_number:
        first = best.number if best is not None and best.number in by_number else numbers[0]
        second = next(n for n in numbers if n != first)
        pair = (first, second)
    c1, c2 = st.columns(2)
    a = c1.selectbox("Trial A", numbers, index=numbers.index(pair[0]), key=f"cmp-a-{name}",
                     format_func=lambda n: C.trial_label(by_number[n], best))
    b = c2.selectbox("Trial B", numbers, index=numbers.index(pair[1]), key=f"cmp-b-{name}",
                     format_func=lambda n: C.trial_label(by_number[n], best))
    state.compare_trials(name, a, b)
    st.dataframe(_compare_table(by_number[a], by_number[b]), hide_index=True, width="stretch")
    for i, (col, rec) in enumerate(zip(st.columns(2), (by_number[a], by_number[b]))):
        with col:
            if rec.result and rec.result.history:
                st.plotly_chart(C.make_curves_figure(rec.result, "accuracy"), key=f"cmp-curves-{i}")
            findings = diagnose(rec.result)
            worst = [f for f in findings if f.severity in ("critical", "warning")]
            st.caption(f"#{rec.number}: " + ("; ".join(f.title for f in worst) if worst else "no health problems found"))


def main() -> None:
    st.title("Model health")
    summary = C.pick_study("health-study")
    if summary is None:
        return
    name = summary.name
    records = C.read_records_or_note(name)
    if records is None:
        return
    config = summary.config
    C.follow_study(name, records, summary, "the trial list and the study's charts")
    best = C.best_of(records, config)
    candidates = [r for r in records if r.result is not None and r.state in C.FINISHED]
    if not candidates:
        st.info("No trial has finished yet. Health is measured when a trial completes; watch the Trials screen.")
        return
    numbers = [r.number for r in candidates]
    by_number = {r.number: r for r in candidates}
    sel = state.selected_trial(name)
    default = sel if sel in by_number else best.number if best is not None else numbers[-1]
    chosen = st.selectbox("Trial", numbers, index=numbers.index(default), key=f"health-trial-{name}",
                          format_func=lambda n: C.trial_label(by_number[n], best),
                          help="The best trial (by the study's mode) is chosen unless you pick another.")
    state.select_trial(name, chosen)
    t_trial, t_study, t_cmp = st.tabs(["This trial", "Whole study", "Compare two"], key="health-tab", on_change="rerun")
    with t_trial:
        if t_trial.open:
            render_trial(by_number[chosen], records, name, config, best)
    with t_study:
        if t_study.open:
            render_study(records, name, config, best)
    with t_cmp:
        if t_cmp.open:
            render_compare(candidates, name, best)


main()
