"""Health dashboard: why a model is (un)healthy, beyond its accuracy.

* This trial (the best by default): the six metrics with what each means, a plain-language
  diagnosis, dead units and weight-update rates per layer, training vs validation curves with the
  overfitting gap marked, and the trial's files.
* Whole study: hyperparameter importance, accuracy vs health (Pareto front in pareto mode),
  parallel coordinates, and every trial's reported values (pruned ones visible).
* Compare: any number of trials side by side (curves overlaid, differences highlighted).

Tabs track which one is open, so only the visible tab's charts are computed.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import PAGE_VIEWER
from app import figures as FIG
from app import format as FMT
from app import widgets as W
from app import state
from app.views.experiment import render_knob_experiment
from core.config import ConfigError, StudyConfig
from core.diagnosis import diagnose
from core.health import COMPOSITE_HELP
from core.shift import DESCRIPTION as SHIFT_DESCRIPTION
from core.study import FINISHED, TrialRecord, best_record

MIN_IMPORTANCE_TRIALS = 5  # fANOVA on fewer complete trials says more about noise than about the params



# Why a compared trial has no health figures (health is measured when a trial trains to its end).
_NOT_MEASURED = {
    "PRUNED": "pruned before its last epoch, so its health was not measured",
    "FAIL": "failed, so its health was not measured",
    "RUNNING": "still running: its health is measured when it finishes",
}

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
    head = f"### Trial #{rec.number} {FMT.state_badge(rec.state)}"
    if best is not None and rec.number == best.number:
        head += " :orange-badge[:material/trophy: best]"
    st.markdown(head)
    st.caption(FMT.key_params(rec, FMT.tuned_names(config, [rec])))
    if rec.state == "FAIL":
        st.subheader("Why it failed")
        W.render_failure(rec, key=f"health-fail-{rec.number}", full=True)
    c = st.columns(5)
    c[0].metric("Validation accuracy", FMT.fmt_pct(res.val_accuracy), help="What the study optimised (validation split).")
    c[1].metric("Test accuracy", FMT.fmt_pct(res.test_accuracy),
                help="Measured once on data the study never optimised on: the honest estimate.")
    c[2].metric("Shifted accuracy", FMT.fmt_pct(res.shifted_accuracy), help=SHIFT_DESCRIPTION)
    c[3].metric("Health score", FMT.fmt_score(res.health_score), help=COMPOSITE_HELP)
    c[4].metric("Parameters", FMT.fmt_count(res.param_count))
    noise = FMT.noise_text(res.val_accuracy, res.val_samples)
    if noise:
        st.caption(f"Validation accuracy {FMT.fmt_pct(res.val_accuracy)} {noise}: trials closer than this "
                   "are a tie, whatever their order.")

    st.subheader("Diagnosis")
    W.render_findings(diagnose(res, _num_classes(config)))

    st.subheader("Six health metrics")
    W.render_health_metrics(res, FMT.metric_medians(records))

    st.subheader("Layers")
    dead_fig, grad_fig = FIG.make_layer_figures(res)
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
        left.plotly_chart(FIG.make_curves_figure(res, "accuracy"), key="curves-accuracy")
        right.plotly_chart(FIG.make_curves_figure(res, "loss"), key="curves-loss")
        st.caption("The shaded band between the lines is the train/validation gap: wide means overfitting.")
    else:
        st.caption("No per-epoch history for this trial.")

    st.subheader("Files")
    W.render_trial_downloads(rec, name, key=f"health-dl-{rec.number}", horizontal=True)
    W.nav_link(PAGE_VIEWER, "See this model in 3D", ":material/view_in_ar:")
    render_knob_experiment(name, rec, config)


def render_study(records: list[TrialRecord], name: str, config: StudyConfig | None, best: TrialRecord | None) -> None:
    """Study-wide views: what mattered, and how accuracy and health trade off."""
    n_complete = sum(1 for r in records if r.state == "COMPLETE")
    st.subheader("Which hyperparameters mattered")
    if n_complete < MIN_IMPORTANCE_TRIALS:
        st.info(f"Importance needs at least {MIN_IMPORTANCE_TRIALS} complete trials; this study has {n_complete}.")
    else:
        try:
            method, imps = W.param_importances(state.storage_url(), name, n_complete,
                                               config.mode if config else "simple")
        except Exception as exc:  # noqa: BLE001 - e.g. every trial used the same value of each param
            st.info(f"Importance could not be measured yet: {FMT.plain(exc)}")
        else:
            if imps:
                st.plotly_chart(FIG.make_importance_figure(imps), key="importance")
                st.caption(f"{method}: how much of the objective's variation each hyperparameter explains "
                           f"(over {n_complete} complete trials).")
    st.plotly_chart(FIG.make_health_scatter(records, config, best), key="acc-health")
    if config is not None and config.mode == "pareto":
        st.caption("Large orange points on the dashed staircase: the Pareto front, the trials no other trial beats on "
                   "both accuracy and health. Every trial below and left of the staircase is beaten on both by a "
                   "front trial. The star is the trial ranked best by the blend.")
    par = FIG.make_parallel_figure(records, config)
    if par is not None:
        st.plotly_chart(par, key="parallel")
        st.caption("Each line is a trial, coloured by its objective: follow the bright lines to see which values win.")
    inter = FIG.make_intermediate_figure(records)
    st.subheader("Reported values per epoch")
    if inter is not None:
        st.plotly_chart(inter, key="intermediate")
        st.caption("What the pruner saw: dotted orange lines are trials it stopped early.")
    else:
        st.caption("No per-epoch reports (pareto studies are not pruned, so they report none).")


MAX_COMPARED = 10  # one colour each in the overlay; more lines than that no one can follow
DEFAULT_COMPARED = 3


def _style_compare(df: pd.DataFrame):
    """Rows where the trials differ are tinted; the leading trial's cell of such a row is bold."""

    def row_style(row: pd.Series) -> list[str]:
        base = "background-color: rgba(250, 176, 5, 0.18)" if row["differs"] else ""
        return [base + ("; font-weight: 700" if row["best"] and c == row["best"] else "") for c in row.index]

    return df.style.apply(row_style, axis=1)


def render_compare(candidates: list[TrialRecord], name: str, config: StudyConfig | None, best: TrialRecord | None,
                   records: list[TrialRecord]) -> None:
    """Any number of trials side by side: curves overlaid on shared axes, every field in a table
    with the fields where they differ highlighted."""
    usable = [r for r in candidates if r.result is not None]
    if len(usable) < 2:
        st.info("Comparing needs two finished trials with results.")
        return
    numbers = [r.number for r in usable]
    by_number = {r.number: r for r in usable}
    stored = state.compared_trials(name)
    if stored is None:  # nothing picked yet: the best few
        stored = [n for n in FMT.top_trials(records, config, DEFAULT_COMPARED) if n in by_number]
        stored = stored if len(stored) >= 2 else numbers[:2]
    picked = [n for n in stored if n in by_number][:MAX_COMPARED]
    key = f"cmp-pick-{name}"
    st.session_state[key] = picked  # the one pick: the gallery's picks and the top N land here too

    def _top() -> None:
        n = int(st.session_state[f"cmp-topn-{name}"])
        if 2 <= n <= MAX_COMPARED:
            state.compare_trials(name, [t for t in FMT.top_trials(records, config, n) if t in by_number])
        else:
            st.session_state[f"cmp-topn-bad-{name}"] = True

    left, mid, right = st.columns([6, 1, 2], vertical_alignment="bottom")
    mid.number_input("Top N", value=min(DEFAULT_COMPARED, len(numbers)), step=1, key=f"cmp-topn-{name}")
    right.button("Pick the top N", key=f"cmp-top-{name}", icon=":material/leaderboard:", width="stretch",
                 on_click=_top, help="The N best complete trials by the study's objective.")
    if st.session_state.pop(f"cmp-topn-bad-{name}", False):
        st.warning(f"Top N: choose from 2 to {MAX_COMPARED} trials.")
    chosen = left.multiselect("Trials to compare", numbers, key=key, max_selections=MAX_COMPARED,
                              format_func=lambda n: FMT.trial_label(by_number[n], best),
                              on_change=lambda: state.compare_trials(name, st.session_state[key]),
                              help="Add trials from the gallery, pick here, or take the top N.")
    if len(chosen) < 2:
        st.info("Pick at least two trials to compare.")
        return
    recs = [by_number[n] for n in chosen]
    rows = FMT.compare_rows(recs, config)
    df = pd.DataFrame(rows)
    n_diff = int(df["differs"].sum())
    st.caption(f"{len(recs)} trials; the {n_diff} highlighted row{'s' if n_diff != 1 else ''} differ, "
               "and the leading trial of a row where more (or fewer, for parameters and time) is better is in bold.")
    st.dataframe(_style_compare(df), hide_index=True, width="stretch",
                 column_config={"differs": None, "best": st.column_config.TextColumn("leads")})
    acc = FIG.make_compare_curves_figure(recs, "accuracy")
    st.plotly_chart(acc, key="cmp-curves-accuracy")
    st.plotly_chart(FIG.make_compare_curves_figure(recs, "loss"), key="cmp-curves-loss")
    for rec in recs:
        if rec.result is None or rec.health_score is None:  # nothing was measured: say so, never "healthy"
            st.caption(f"#{rec.number}: " + _NOT_MEASURED.get(rec.state, "health was not measured"))
            continue
        findings = diagnose(rec.result)
        worst = [f for f in findings if f.severity in ("critical", "warning")]
        st.caption(f"#{rec.number}: " + ("; ".join(FMT.plain(f.title) for f in worst) if worst else "no health problems found"))


def main() -> None:
    st.title("Model health")
    summary = W.pick_study("health-study")
    if summary is None:
        return
    name = summary.name
    records = W.read_records_or_note(name)
    if records is None:
        return
    config = summary.config
    W.follow_study(name, records, summary, "the trial list and the study's charts")
    best = best_record(records, config)
    candidates = [r for r in records if r.result is not None and r.state in FINISHED]
    if not candidates:
        st.info("No trial has finished yet. Health is measured when a trial completes; watch the Trials screen.")
        return
    numbers = [r.number for r in candidates]
    by_number = {r.number: r for r in candidates}
    sel = state.selected_trial(name)
    default = sel if sel in by_number else best.number if best is not None else numbers[-1]
    chosen = st.selectbox("Trial", numbers, index=numbers.index(default), key=f"health-trial-{name}",
                          format_func=lambda n: FMT.trial_label(by_number[n], best),
                          help="The best trial (by the study's mode) is chosen unless you pick another.")
    state.select_trial(name, chosen)
    t_trial, t_study, t_cmp = st.tabs(["This trial", "Whole study", "Compare"], key="health-tab", on_change="rerun")
    with t_trial:
        if t_trial.open:
            render_trial(by_number[chosen], records, name, config, best)
    with t_study:
        if t_study.open:
            render_study(records, name, config, best)
    with t_cmp:
        if t_cmp.open:
            render_compare(candidates, name, config, best, records)


main()
