"""Streamlit widgets the screens share: ``render_*`` helpers that draw, navigation, downloads.

Nothing here trains, samples or writes to a study; views call ``app.state`` for that.
Layouts use columns and ``width="stretch"`` only, never fixed pixel widths, so every screen
folds into one column on a phone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app import PAGE_CONFIGURE, PAGE_HEALTH
from app import state
from app.figures import make_sparkline_figure
from app.format import (LIVE_INTERVAL_S, SEVERITY_ICON, STATES, accuracy_margin, curve_of, noise_text,
                        finished_count, elapsed_seconds, eta_seconds, fmt_count, fmt_duration, fmt_pct, fmt_score,
                        key_params, machines, objective_name, plain, state_badge, tuned_names)
from core import artifacts
from core.config import ConfigError, StudyConfig, TrialResult
from core.health import METRIC_INFO
from core.study import (LIVE_STATUSES, RunnerInfo, StudySummary, TrialRecord, best_record, budget_count, epochs_spent,
                        state_counts)

if TYPE_CHECKING:
    from core.diagnosis import Finding

def nav_link(page: str, label: str, icon: str | None = None) -> None:
    """A link to another screen; silently absent when a view runs on its own (no router)."""
    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        pass  # the view runs outside st.navigation (e.g. `streamlit run app/views/x.py`)


def go_to(page: str) -> None:
    """Switch screen; outside the router (a view run alone) this is a no-op."""
    try:
        st.switch_page(page)
    except StreamlitAPIException:
        pass


def open_trial(study: str, number: int, page: str = PAGE_HEALTH) -> None:
    """Select a trial for this tab and go to a screen that shows it."""
    state.select_study(study)
    state.select_trial(study, number)
    go_to(page)


def render_css() -> None:
    """A little CSS: the best trial's card stands out. Class names come from container keys."""
    st.html(
        """<style>
        [class*="st-key-card-best"] {border: 2px solid #f08c00 !important; background: rgba(240,140,0,0.06);}
        [class*="st-key-card-front"] {border: 2px dashed #f08c00 !important;}
        </style>"""
    )


def render_study_picker(summaries: Sequence[StudySummary], key: str, label: str = "Study") -> str | None:
    """Choose a study; the choice is kept for this tab across screens. None when there is none."""
    names = [s.name for s in summaries]
    if not names:
        st.info("No studies yet. Configure one and press **Start**: trials appear here within a minute.")
        nav_link(PAGE_CONFIGURE, "Configure a study", ":material/tune:")
        return None
    current = state.selected_study(names)
    by_name = {s.name: s for s in summaries}

    shown = study_labels()

    def _fmt(name: str) -> str:
        s = by_name[name]
        ds = f" · {s.config.dataset} · {s.config.mode}" if s.config else ""
        label = shown.get(name, (name, ""))[0]
        return f"{label}{f' ({name})' if label != name else ''}{ds} · {s.display_status}"

    # The browser keeps showing the label it was given for the chosen option ("· running") even
    # after format_func changes it: a key that follows the labels draws the picker afresh when a
    # status changes; the choice itself lives in state (select_study), not in the widget.
    labels = hashlib.sha1("\n".join(_fmt(n) for n in names).encode()).hexdigest()[:8]
    chosen = st.selectbox(label, names, index=names.index(current), format_func=_fmt, key=f"{key}-{labels}")
    state.select_study(chosen)
    return chosen


def study_labels() -> dict[str, tuple[str, str]]:
    """{storage name: (name to show, note)}: core.manage.labels for this app's storage."""
    from core.manage import labels

    return labels(state.storage_url())


def pick_study(key: str) -> StudySummary | None:
    """render_study_picker over every study; the chosen study's summary, or None when there is none."""
    summaries = state.list_studies()
    name = render_study_picker(summaries, key=key)
    if name is None:
        return None
    return next(s for s in summaries if s.name == name)


def read_records_or_note(name: str) -> list[TrialRecord] | None:
    """Every trial of study ``name`` (state.read_records), or None after a note that it is still being created."""
    try:
        return state.read_records(name)
    except KeyError:
        st.info(f"Study {plain(name)} is being created…")
        return None


def render_runner_controls(name: str, running: bool, key: str) -> None:
    """Stop / cancel a running study: this process's runner directly, any other (the CLI, joined
    workers on other machines) through the storage."""
    if not running:
        return
    ours = state.runner_for(name) is not None
    cols = st.columns(2)
    if cols[0].button("Stop after running trials", key=f"{key}-stop", icon=":material/stop_circle:", width="stretch",
                      help="Running trials finish and are kept; no new trial starts, on any machine. "
                           "Resume later from Configure."):
        state.stop(name)
        st.toast(f"Stopping {plain(name)}: running trials will finish.")
    if cols[1].button("Cancel now", key=f"{key}-cancel", icon=":material/cancel:", width="stretch",
                      help="Running trials are abandoned (recorded as failed: cancelled), on every machine."):
        state.cancel(name)
        st.toast(f"Cancelling {plain(name)}.")
    if not ours:
        st.caption("This study is run by another process (e.g. the CLI or a worker on another machine): "
                   "Stop and Cancel reach it through the storage within a few seconds.")


def render_resume(summary: StudySummary, key: str) -> None:
    """For a study nobody runs: say plainly when it was interrupted, and offer Resume."""
    if summary.interrupted:
        why = ("its runner crashed" if summary.status == "crashed" else
               "its runner stopped without finishing (the app was restarted, or the process was killed)")
        st.warning(f"**Interrupted**: {why}. Trials it left unfinished are shown as interrupted; Resume runs "
                   "them again (they do not count against the trial budget) and continues the study with its "
                   "stored settings.", icon=":material/pause_circle:")
    if summary.config is None or summary.status == "finished":
        return
    if st.button("Resume study", key=f"{key}-resume", icon=":material/play_arrow:", type="primary",
                 help="Continue with the stored configuration, up to its trial and time budget."):
        try:
            state.resume(summary.name)
        except ConfigError as exc:
            render_config_error(exc)
        else:
            st.rerun()


def render_config_error(exc: Exception) -> None:
    """A ConfigError as the user should read it: each of its lines as plain text."""
    lines = [plain(line) for line in str(exc).splitlines() if line.strip()]
    st.error("  \n".join(lines), icon=":material/error:")


def render_runners(summary: StudySummary | None, records: Sequence[TrialRecord]) -> None:
    """The machines working on a study (owner and joined workers), with the trials each ran."""
    rows = machines(summary.runners if summary else [], records)
    if not rows:
        return
    alive = sum(1 for _, _, a in rows if a)
    now = dt.datetime.now().timestamp()

    def status(r: RunnerInfo, live: bool) -> str:  # a "running" runner whose process or heartbeat stopped is gone
        if live:
            return "running"
        if r.status in LIVE_STATUSES:  # judged here by its process, elsewhere by its heartbeat
            return "gone (process ended)" if r.host == socket.gethostname() else "gone (no heartbeat)"
        return r.status

    def seen(r) -> str:
        if not r.beat:
            return "-"
        return "now" if now - r.beat < 5 else fmt_duration(now - r.beat) + " ago"

    table = [{"machine": r.host, "process": r.pid, "role": "owner" if r.owner else "joined worker",
              "workers": r.workers, "status": status(r, live), "trials": n, "last seen": seen(r)}
             for r, n, live in rows]
    plural = "s" if len(rows) != 1 else ""
    # nobody works on it: say who ran it, not "0 working now" beside trials that look alive
    label = (f"Machines: {len(rows)} runner{plural}, {alive} working now" if alive
             else f"Machines that ran this study: {len(rows)} runner{plural}, none working now")
    with st.expander(label, expanded=len(rows) > 1 and alive > 0):
        st.dataframe(table, hide_index=True, width="stretch")
        st.caption("Join from another machine: `python -m core worker --study NAME --storage URL` (README, "
                   "Several machines). Stop and Cancel above reach every runner.")


def follow_study(name: str, records: Sequence[TrialRecord], summary: StudySummary | None, what: str) -> None:
    """On a screen that is not live itself: while the study runs, say so and rerun the page when
    a trial finishes (a small fragment polls every LIVE_INTERVAL_S; nothing runs when idle)."""
    if not state.is_running(name, summary):
        return
    st.caption(f":blue-badge[live] the study is running; {what} update as trials finish")
    st.fragment(_watch_finished, run_every=LIVE_INTERVAL_S)(name, finished_count(records))


def _watch_finished(name: str, seen: int) -> None:
    try:
        records = state.read_records(name)
    except KeyError:
        return
    if finished_count(records) != seen or not state.is_running(name):
        st.rerun()  # the whole page: new trials in every chart, and the watch ends with the study


def study_progress(records: Sequence[TrialRecord], config: StudyConfig | None,
                   elapsed: float | None) -> tuple[float, str] | None:
    """(fraction done, text) of the study's budget: trials against n_trials (else time against the
    time budget), with the epochs trained so far, running trials' epochs included."""
    if config is None:
        return None
    done = budget_count(records)
    trained = epochs_spent(records)[0]
    trained += sum(int((r.progress or {}).get("epoch") or 0) for r in records if r.state == "RUNNING")
    if config.n_trials:
        frac = min(1.0, done / config.n_trials)
        text = (f"{done}/{config.n_trials} trials · {trained} of at most {config.n_trials * config.epochs} epochs"
                f" trained")
    elif config.timeout_s and elapsed is not None:
        frac = min(1.0, elapsed / config.timeout_s)
        text = f"{fmt_duration(elapsed)} of {fmt_duration(config.timeout_s)} · {done} trials · {trained} epochs trained"
    else:
        return None
    return frac, text


def render_progress(records: Sequence[TrialRecord], config: StudyConfig | None, elapsed: float | None) -> None:
    prog = study_progress(records, config, elapsed)
    if prog is not None:
        st.progress(prog[0], text=prog[1])


def render_summary(records: Sequence[TrialRecord], config: StudyConfig | None, best: TrialRecord | None,
                   created: float | None, running: bool, interrupted: bool = False) -> None:
    """Best, counts by state, elapsed, ETA: the study at a glance.

    ``interrupted``: its runner is gone without finishing; RUNNING trials are orphans, not running.
    """
    counts = state_counts(records)
    elapsed = elapsed_seconds(records, created, running)
    c1, c2, c3, c4 = st.columns(4)
    if best is not None:
        value = best.objective(config) if config else best.val_accuracy
        if config is not None and config.mode != "simple":
            # the figure shown is the one "best" is ranked by, so a trial with more accuracy never looks beaten
            c1.metric(f"Best: trial #{best.number}", f"{value:.3f}",
                      help=("A Pareto study has no single best: the app ranks its trials by the blend "
                            if config.mode == "pareto" else f"Ranked by {objective_name(config)} ")
                           + "(validation data, never test): "
                           f"{1 - config.health_weight:.2f} × accuracy + {config.health_weight:.2f} × health. "
                           f"Validation accuracy {fmt_pct(best.val_accuracy)}; health {fmt_score(best.health_score)}.")
        else:
            c1.metric(f"Best: trial #{best.number}", fmt_pct(best.val_accuracy),
                      help=f"Ranked by {objective_name(config)} (validation data, never test). "
                           f"Objective {fmt_score(value)}; health {fmt_score(best.health_score)}.")
    else:
        c1.metric("Best", "–", help="No trial has completed yet.")
    total = config.n_trials if config and config.n_trials else None
    done = budget_count(records)
    c2.metric("Trials", f"{done}/{total}" if total else str(done),
              help="Finished trials (complete, pruned or failed) out of the budget; trials cut off by a cancel "
                   "or an interrupted runner are run again and do not count.")
    c3.metric("Elapsed", fmt_duration(elapsed))
    if running:
        eta = eta_seconds(records, config, elapsed)
        busy = counts.get("RUNNING", 0)
        eta_text = "finishing" if busy and (eta is None or eta < 1) else fmt_duration(eta)
    else:
        eta_text = "interrupted" if interrupted else "done" if records else "–"
    c4.metric("ETA", eta_text, help="Estimated from the mean duration of finished trials and the workers in use.")
    labels = {"RUNNING": ":orange-badge[interrupted]"} if not running and interrupted else {}
    st.markdown(" ".join(f"{labels.get(s) or state_badge(s)} **{counts[s]}**" for s in STATES if counts.get(s))
                or "No trials yet.")
    render_progress(records, config, elapsed)
    trained, full = epochs_spent(records)
    if full and trained < full and counts.get("PRUNED"):
        st.caption(f"Pruning stopped {counts['PRUNED']} trial{'s' if counts['PRUNED'] != 1 else ''} early: "
                   f"{trained} epochs trained of {full} had every trial run to the end "
                   f"({100 * (full - trained) / full:.0f} % saved).")


def render_trial_card(rec: TrialRecord, study: str, config: StudyConfig | None, *, is_best: bool = False,
                      on_front: bool = False, orphaned: bool = False) -> None:
    """One trial: state, progress, accuracy, health, size, a small curve, key params, where it ran.

    ``orphaned``: the study's runner is gone, so a RUNNING trial is not running (it is shown as
    interrupted; resuming the study runs it again).
    """
    key = f"card-best-{rec.number}" if is_best else f"card-front-{rec.number}" if on_front else f"card-{rec.number}"
    orphaned = orphaned and rec.state == "RUNNING"
    with st.container(border=True, key=key):
        badge = ":orange-badge[interrupted]" if orphaned or (rec.state == "FAIL" and rec.interrupted) else state_badge(rec.state)
        head = f"**Trial #{rec.number}** {badge}"
        if is_best:
            head += " :orange-badge[:material/trophy: best]"
        elif on_front:
            head += " :orange-badge[Pareto front]"
        st.markdown(head)
        res = rec.result
        curve = curve_of(rec)
        if orphaned:
            prog = rec.progress or {}
            st.caption(f"Stopped at epoch {int(prog.get('epoch') or 0)}/{int(prog.get('epochs') or 0) or '?'}: "
                       "the study's runner ended before this trial finished. Resume the study to run it again.")
        elif rec.state == "RUNNING":
            prog = rec.progress or {}
            epoch, epochs = int(prog.get("epoch") or 0), int(prog.get("epochs") or (rec.spec or {}).get("epochs") or 1)
            logs = prog.get("logs") or {}
            text = f"epoch {epoch}/{epochs}"
            if logs.get("val_accuracy") is not None:
                text += f" · val {fmt_pct(logs['val_accuracy'])}"
            st.progress(min(1.0, epoch / max(1, epochs)), text=text)
        if res is not None and rec.state == "COMPLETE":
            a, b = st.columns(2)
            margin = accuracy_margin(res.val_accuracy, res.val_samples)
            a.metric("Val accuracy", fmt_pct(res.val_accuracy),
                     help="Accuracy on the validation split: what the study optimises."
                          + (f" {noise_text(res.val_accuracy, res.val_samples)}: trials closer than this are a tie."
                             if margin is not None else ""))
            b.metric("Health", fmt_score(res.health_score), help="Composite of the six health metrics (0–1).")
            blend = objective_text(rec, config)
            if blend:
                st.markdown(blend)
            st.caption((f"val ± {margin:.1f} pts · " if margin is not None else "") +
                       f"test {fmt_pct(res.test_accuracy)} · shifted {fmt_pct(res.shifted_accuracy)} · "
                       f"{fmt_count(res.param_count)} params · "
                       f"{fmt_duration(rec.duration_s)}")
        elif rec.state == "RUNNING" and not orphaned and len(curve) > 1:
            st.metric("Val accuracy so far", fmt_pct(curve[-1]))
        elif rec.state == "PRUNED":
            last = curve[-1] if curve else None
            st.caption(f"pruned after {len(curve) or '?'} epoch(s) at val {fmt_pct(last)}: behind other trials")
        elif rec.state == "FAIL":
            render_failure(rec, key=f"fail-{rec.number}")
        if len(curve) > 1 and not orphaned:
            st.plotly_chart(make_sparkline_figure(curve), key=f"spark-{rec.number}",
                            config={"displayModeBar": False})
        st.caption(key_params(rec, tuned_names(config, [rec])))
        where = rec.executor or (res.executor if res else "")
        host = rec.host or (res.host if res else "")
        if where or host:
            st.caption(f":material/memory: {plain(where)}{' @ ' + plain(host) if host else ''}")
        if rec.state in ("COMPLETE", "FAIL", "PRUNED"):
            cols = st.columns(2)
            if cols[0].button("Health", key=f"open-{rec.number}", icon=":material/monitor_heart:", width="stretch"):
                open_trial(study, rec.number)
            with cols[1].popover("Files", icon=":material/download:", width="stretch"):
                render_trial_downloads(rec, study, key=f"dl-{rec.number}")
            if res is not None:
                picked = rec.number in (state.compared_trials(study) or [])
                st.button("In comparison" if picked else "Add to compare", key=f"pick-{rec.number}",
                          icon=":material/check_box:" if picked else ":material/check_box_outline_blank:",
                          on_click=state.toggle_compared, args=(study, rec.number, not picked), width="stretch",
                          help="Pick several trials, then press Compare above the gallery; press again to take it out.")


def objective_text(rec: TrialRecord, config: StudyConfig | None) -> str | None:
    """What a health-aware or Pareto study ranks a trial by, as Markdown, with the blend spelled out."""
    if config is None or config.mode == "simple" or rec.result is None:
        return None
    value = rec.objective(config)
    if value is None:
        return None
    w = config.health_weight
    formula = (f"{1 - w:.2f} × {fmt_pct(rec.val_accuracy)} + {w:.2f} × health {fmt_score(rec.health_score)}")
    what = "Objective" if config.mode == "health-aware" else "Blend (ranks the best)"
    return f"**{what} {value:.3f}**  \n:small[{formula}]"


@st.cache_data(max_entries=256, show_spinner=False)
def _trial_log(number: int, start, end, logs_dir: str, mtime: float) -> list[str]:
    """core.trial_logs.trial_log, read again only when the log file changes (``mtime`` in the key)."""
    from core.trial_logs import trial_log

    return trial_log(number, start, end, state.settings())


def trial_log_lines(rec: TrialRecord) -> list[str]:
    """The records of logs/hpo.log (this home's) that belong to trial ``rec``."""
    from core.logs import LOG_FILE

    settings = state.settings()
    path = settings.logs_dir / LOG_FILE
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _trial_log(rec.number, rec.start, rec.complete, str(settings.logs_dir), mtime)


def render_failure(rec: TrialRecord, key: str, full: bool = False) -> None:
    """A failed trial's error and the log records that belong to it (``full``: the whole error)."""
    res = rec.result
    err = rec.error or (res.error if res else None) or "failed (no error was recorded)"
    # escaped: a bracket would end the directive, $ start LaTeX
    st.markdown(f":red[{plain(err, None if full else 300)}]")
    lines = trial_log_lines(rec)
    with st.expander(f"Log of trial #{rec.number} ({len(lines)} record{'s' if len(lines) != 1 else ''})",
                     expanded=full and bool(lines), key=key):
        if lines:
            st.code("\n".join(lines), language=None, wrap_lines=True)
        else:
            st.caption("logs/hpo.log has no record of this trial (it ran on another machine, or the log rotated).")


def _read_bytes(path: Path) -> Callable[[], bytes]:
    # Deferred: the file is read when the user clicks, not on every rerun of a live screen.
    return lambda: path.read_bytes()


def render_model_download(rec: TrialRecord | None, study: str, key: str, label: str = "Model (.keras)",
                          primary: bool = False) -> None:
    """The trial's trained model, or a note why there is none (keep-best-k deletes the rest)."""
    path = artifacts.model_path(rec.result) if rec is not None else None
    if path is None:
        why = "no trial yet" if rec is None else "model not kept (only the best models are kept on disk)"
        st.button(label, key=key, disabled=True, help=why, icon=":material/download:", width="stretch")
        return
    name = artifacts.download_name(study, "model", "keras", trial=rec.number, metric="val-acc",  # type: ignore[union-attr]
                                   value=rec.val_accuracy)  # type: ignore[union-attr]
    st.download_button(label, data=_read_bytes(path), file_name=name, mime="application/zip", key=key,
                       icon=":material/download:", type="primary" if primary else "secondary", on_click="ignore",
                       width="stretch")


def render_trial_downloads(rec: TrialRecord, study: str, key: str, horizontal: bool = False) -> None:
    """A trial's files: its result JSON, the configuration that reproduces it, its model.

    ``horizontal`` lays the buttons out in a row that wraps on narrow screens.
    """
    if horizontal:
        with st.container(horizontal=True):
            render_trial_downloads(rec, study, key)
        return
    if rec.result is not None:
        st.download_button("Result (JSON)", data=rec.result.to_json(indent=2),
                           file_name=artifacts.download_name(study, "result", "json", trial=rec.number),
                           mime="application/json", key=f"{key}-result", on_click="ignore", width="stretch",
                           icon=":material/data_object:")
    try:
        repro = json.dumps(artifacts.reproduce_config(rec), indent=2)
    except Exception:  # noqa: BLE001 - a foreign trial without a usable spec has nothing to reproduce
        repro = None
    if repro:
        st.download_button("Reproduce config", data=repro,
                           file_name=artifacts.download_name(study, "config", "json", trial=rec.number),
                           mime="application/json", key=f"{key}-config", on_click="ignore", width="stretch",
                           icon=":material/replay:",
                           help="The TrialSpec that retrains this model: python -m core trial --spec FILE")
    if rec.state == "COMPLETE":
        render_model_download(rec, study, key=f"{key}-model")


def render_study_downloads(study: str, records: Sequence[TrialRecord], config: StudyConfig | None,
                           best: TrialRecord | None, key: str) -> None:
    """Best model, the whole study as CSV and JSON, and the best trial's reproduce config."""
    c1, c2, c3 = st.columns(3)
    with c1:
        render_model_download(best, study, key=f"{key}-best-model",
                              label=f"Best model #{best.number} (.keras)" if best else "Best model (.keras)", primary=True)
    recs = list(records)
    c2.download_button("Study (CSV)", data=lambda: artifacts.study_csv(recs, config),
                       file_name=artifacts.download_name(study, "trials", "csv"), mime="text/csv",
                       key=f"{key}-csv", on_click="ignore", width="stretch", icon=":material/table:")
    c3.download_button("Study (JSON)", data=lambda: artifacts.study_json(study, recs, config),
                       file_name=artifacts.download_name(study, "study", "json"), mime="application/json",
                       key=f"{key}-json", on_click="ignore", width="stretch", icon=":material/data_object:")


def render_findings(findings: Sequence["Finding"]) -> None:
    """Diagnosis findings as coloured callouts, most urgent first."""
    if not findings:
        st.caption("No findings: the trial has no result yet.")
        return
    box = {"critical": st.error, "warning": st.warning, "info": st.info, "good": st.success}
    for f in findings:
        box.get(f.severity, st.info)(f"**{f.title}**  \n{f.detail}  \n*Try:* {f.suggestion}",
                                     icon=SEVERITY_ICON.get(f.severity))


def render_health_metrics(result: TrialResult, medians: dict[str, float] | None = None) -> None:
    """The six health metrics with what each means; delta against the study's median trial."""
    keys = list(METRIC_INFO)
    for row in (keys[:3], keys[3:]):
        cols = st.columns(3)
        for col, k in zip(cols, row):
            info = METRIC_INFO[k]
            v = (result.health or {}).get(k)
            delta = None
            if medians and medians.get(k) is not None and v is not None:
                delta = f"{v - medians[k]:+.2f} vs median"
            col.metric(info["title"], fmt_score(v), delta=delta, border=True,
                       help=f"{info['meaning']}\n\n**Formula:** {info['formula']}\n\n**Low means:** {info['low_means']}")


@st.cache_data(show_spinner="Measuring hyperparameter importance…", max_entries=32)
def param_importances(url: str, study: str, n_complete: int, mode: str) -> tuple[str, dict[str, float]]:
    """core.importance.param_importances, cached per number of complete trials (recomputed when one completes).

    ``n_complete`` is part of the cache key on purpose: a live screen must not refit on every rerun.
    """
    from core.importance import param_importances as measure

    return measure(study, url, n_complete, mode)


# --------------------------------------------------------------------------- study ended: tell the user


_WATCHED = "hpo.watched_studies"  # the studies running at this tab's last look
_NOTICES = "hpo.study_notices"  # toasts waiting for the next full run


def study_end_message(name: str) -> tuple[str, str]:
    """(message, icon) for a study that just stopped running: how it ended, and its best trial."""
    summary = state.study_summary(name)
    status = summary.display_status if summary else "deleted"
    shown = plain(name)
    err = state.runner_error(name)
    if err or status in ("crashed", "interrupted"):
        why = f": {plain(err, 160)}" if err else " (its runner ended without finishing)"
        return f"Study {shown} failed{why}", ":material/error:"
    if status == "finished":
        try:
            records = state.read_records(name)
        except KeyError:
            records = []
        best = best_record(records, summary.config if summary else None)
        tail = f": best trial #{best.number} at {fmt_pct(best.val_accuracy)} validation accuracy" if best else ""
        return f"Study {shown} finished{tail}", ":material/check_circle:"
    return f"Study {shown} {plain(status)}", ":material/stop_circle:"


def queue_notice(message: str, icon: str) -> None:
    """A toast for the next full run (a toast sent just before st.rerun would be lost)."""
    st.session_state[_NOTICES] = [*st.session_state.get(_NOTICES, []), (message, icon)]


def render_study_notices() -> None:
    """On every screen: a toast when a study this tab saw running finishes or fails.

    Polls (every LIVE_INTERVAL_S, in a fragment) only while some study runs; the run that
    notices the end queues the toast and reruns the page once, which switches the polling off.
    """
    seen = st.session_state.get(_WATCHED) or []
    running = state.running_studies()
    for n in seen:
        if n not in running:
            queue_notice(*study_end_message(n))
    st.session_state[_WATCHED] = running
    for message, icon in st.session_state.pop(_NOTICES, []):
        st.toast(message, icon=icon, duration="long")
    if running:
        st.fragment(_watch_studies, run_every=LIVE_INTERVAL_S)()


def _watch_studies() -> None:
    seen = st.session_state.get(_WATCHED) or []
    if any(n not in state.running_studies() for n in seen):
        st.rerun(scope="app")  # the full run says which ended, and stops this polling when none runs
