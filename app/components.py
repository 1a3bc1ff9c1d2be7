"""Pieces the screens share: ``render_*`` helpers that draw, ``make_*_figure`` builders that
return Plotly figures (pure, testable without a browser), and small formatters.

Nothing here trains, samples or writes to a study; views call ``app.state`` for that.
Layouts use columns and ``width="stretch"`` only, never fixed pixel widths, so every screen
folds into one column on a phone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import socket
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app import PAGE_CONFIGURE, PAGE_HEALTH, PAGE_VIEWER
from app import state
from core import artifacts
from core.config import ConfigError, StudyConfig, TrialResult
from core.health import METRIC_INFO
from core.study import (RunnerInfo, StudySummary, TrialRecord, best_record, budget_count, epochs_spent,
                        pareto_front, state_counts)
from core.search_space import HYPERPARAMETERS

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from core.diagnosis import Finding

# Live screens poll the storage this often while a study runs (and not at all when idle).
# Every character Markdown, GitHub's autolinks, KaTeX ($) or Streamlit's directives (:red[..],
# :material/..:, emoji :codes:) give a meaning to; all are ASCII punctuation, which CommonMark
# lets a backslash turn back into a literal character.
# '-' and '_' between two letters or digits mean nothing ("fake-study", "successive_halving") and stay.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*{}\[\]()<>#+.!|~$:&@]|(?<![A-Za-z0-9])[-_]|[-_](?![A-Za-z0-9]))")


def plain(text: Any, limit: int | None = None) -> str:
    """Text that came from outside, safe to embed in Markdown: shown exactly as typed.

    Study names, notes, hosts, executors, error messages and data samples can come from
    other users of a shared storage or from a remote worker.  ``[x](https://evil.example)``
    would render as a link and ``![t](https://evil.example/t.png)`` would load a remote image;
    here every Markdown character is backslash-escaped (Streamlit's documented way to show
    one literally) and line breaks become spaces.  Use it for st.markdown, st.caption,
    st.info/warning/error/success, st.toast and widget labels; option lists of a selectbox
    are plain text already.

    Args:
        text: anything; ``str(text)`` is shown.
        limit: cut the text to this many characters first (with an ellipsis).
    """
    s = " ".join(str(text).split())
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 1)] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", s)


LIVE_INTERVAL_S = 2.0
CARDS_PER_PAGE = 12  # a page of cards renders in well under a second even for 200-trial studies
STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
STATE_COLOR = {"RUNNING": "blue", "COMPLETE": "green", "PRUNED": "orange", "FAIL": "red", "WAITING": "gray"}
STATE_LABEL = {"RUNNING": "running", "COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "WAITING": "waiting"}
SEVERITY_ICON = {"critical": ":material/error:", "warning": ":material/warning:", "info": ":material/info:",
                 "good": ":material/check_circle:"}
# Plot colours per state, readable on light and dark themes.
PLOT_COLOR = {"COMPLETE": "#1c7ed6", "PRUNED": "#f59f00", "FAIL": "#e03131", "RUNNING": "#2f9e44", "WAITING": "#868e96"}
BEST_COLOR = "#f08c00"


# --------------------------------------------------------------------------- formatting


def fmt_pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def fmt_score(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.2f}"


def fmt_count(n: int | None) -> str:
    """12, 3.4k, 1.2M: parameter counts at a glance."""
    if not n:
        return "–"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def fmt_value(v: Any) -> str:
    """A hyperparameter value, short: 0.0012 -> 1.2e-03, 0.25 -> 0.25, True -> yes."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.1e}" if v != 0 and abs(v) < 0.01 else f"{v:.3g}"
    return str(v)


def trial_label(rec: TrialRecord, best: TrialRecord | None = None) -> str:
    """'#7 · complete · val 95.1% · health 0.82 ★' for pickers."""
    parts = [f"#{rec.number}", STATE_LABEL.get(rec.state, rec.state.lower())]
    if rec.val_accuracy is not None:
        parts.append(f"val {fmt_pct(rec.val_accuracy)}")
    if rec.health_score is not None:
        parts.append(f"health {fmt_score(rec.health_score)}")
    label = " · ".join(parts)
    return f"{label} ★ best" if best is not None and rec.number == best.number else label


def objective_name(config: StudyConfig | None) -> str:
    if config is None or config.mode == "simple":
        return "validation accuracy"
    if config.mode == "health-aware":
        return f"blend: {1 - config.health_weight:.0%} accuracy + {config.health_weight:.0%} health"
    return "accuracy and health (Pareto)"


def state_badge(state_name: str) -> str:
    """Markdown badge for a trial state (Streamlit's :color-badge[...] syntax)."""
    return f":{STATE_COLOR.get(state_name, 'gray')}-badge[{STATE_LABEL.get(state_name, state_name.lower())}]"


# --------------------------------------------------------------------------- navigation


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


def viewer_available() -> bool:
    """Whether the 3D viewer screen has landed (the router lists it only then)."""
    return (Path(__file__).resolve().parent.parent / PAGE_VIEWER).is_file()


def open_trial(study: str, number: int, page: str = PAGE_HEALTH) -> None:
    """Select a trial for this tab and go to a screen that shows it."""
    state.select_study(study)
    state.select_trial(study, number)
    go_to(page)


# --------------------------------------------------------------------------- page furniture


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

    def _fmt(name: str) -> str:
        s = by_name[name]
        ds = f" · {s.config.dataset} · {s.config.mode}" if s.config else ""
        return f"{name}{ds} · {s.display_status}"

    # The browser keeps showing the label it was given for the chosen option ("· running") even
    # after format_func changes it: a key that follows the labels draws the picker afresh when a
    # status changes; the choice itself lives in state (select_study), not in the widget.
    labels = hashlib.sha1("\n".join(_fmt(n) for n in names).encode()).hexdigest()[:8]
    chosen = st.selectbox(label, names, index=names.index(current), format_func=_fmt, key=f"{key}-{labels}")
    state.select_study(chosen)
    return chosen


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


def machines(runners: Sequence[RunnerInfo], records: Sequence[TrialRecord]) -> list[tuple[RunnerInfo, int, bool]]:
    """The rows of the Machines panel: (runner, trials it ran, alive), one per process.

    A process that ran the study several times (stopped, then resumed in the same app) left one
    record per run: they are one row, with the newest run's status and every run's trials.  A
    runner that is gone and never asked a trial is left out (it did nothing to show).
    """
    by_runner: dict[str, int] = {}
    for r in records:
        if r.runner_id:
            by_runner[r.runner_id] = by_runner.get(r.runner_id, 0) + 1
    groups: dict[tuple, list[RunnerInfo]] = {}
    for r in runners:
        ident = (r.host, r.pid) if r.pid is not None else (r.runner_id,)
        groups.setdefault(ident, []).append(r)
    rows = []
    for group in groups.values():
        newest = max(group, key=lambda r: (r.joined or 0, r.beat or 0))
        alive = any(r.alive for r in group)
        trials = sum(by_runner.get(r.runner_id, 0) for r in group)
        if not alive and trials == 0 and not any(r.asked for r in group):
            continue
        if any(r.owner for r in group) and not newest.owner:
            newest = max((r for r in group if r.owner), key=lambda r: (r.joined or 0, r.beat or 0))
        rows.append((newest, trials, alive))
    rows.sort(key=lambda row: (not row[0].owner, row[0].joined or 0))
    return rows


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
        if r.status in state.LIVE_STATUSES:  # judged here by its process, elsewhere by its heartbeat
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


def _finished_count(records: Sequence[TrialRecord]) -> int:
    return sum(1 for r in records if r.state in FINISHED)


def follow_study(name: str, records: Sequence[TrialRecord], summary: StudySummary | None, what: str) -> None:
    """On a screen that is not live itself: while the study runs, say so and rerun the page when
    a trial finishes (a small fragment polls every LIVE_INTERVAL_S; nothing runs when idle)."""
    if not state.is_running(name, summary):
        return
    st.caption(f":blue-badge[live] the study is running; {what} update as trials finish")
    st.fragment(_watch_finished, run_every=LIVE_INTERVAL_S)(name, _finished_count(records))


def _watch_finished(name: str, seen: int) -> None:
    try:
        records = state.read_records(name)
    except KeyError:
        return
    if _finished_count(records) != seen or not state.is_running(name):
        st.rerun()  # the whole page: new trials in every chart, and the watch ends with the study


# --------------------------------------------------------------------------- summary statistics


def elapsed_seconds(records: Sequence[TrialRecord], created: float | None, running: bool) -> float | None:
    """Wall time of the study so far: from its first trial (or creation) to now or its last trial."""
    starts = [r.start for r in records if r.start]
    if not starts and created is None:
        return None
    begin = min(starts) if starts else dt.datetime.fromtimestamp(created)  # type: ignore[arg-type]
    if running:
        end = dt.datetime.now()
    else:
        ends = [r.complete for r in records if r.complete]
        end = max(ends) if ends else dt.datetime.now()
    return max(0.0, (end - begin).total_seconds())


def eta_seconds(records: Sequence[TrialRecord], config: StudyConfig | None, elapsed: float | None) -> float | None:
    """Time left: mean finished-trial duration x trials left / workers, capped by the time budget.

    Trials left are counted against the budget as the runner counts them (interrupted and
    cancelled trials do not use it up), and never less than what the running trials still need.
    """
    if config is None:
        return None
    finished = [r for r in records if r.state in FINISHED]
    durations = [r.duration_s for r in finished if r.duration_s]
    eta = None
    if config.n_trials and durations:
        mean = statistics.mean(durations)
        left = max(0, config.n_trials - budget_count(records))
        running = [r for r in records if r.state == "RUNNING"]
        eta = mean * max(0.0, left - len(running) / 2) / max(1, config.workers)
        # a running trial is not done before it has run about as long as the others did
        eta = max([eta] + [mean - (r.duration_s or 0.0) for r in running])
    if config.timeout_s and elapsed is not None:
        budget_left = max(0.0, config.timeout_s - elapsed)
        eta = budget_left if eta is None else min(eta, budget_left)
    return eta


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
    trained, full = epochs_spent(records)
    if full and trained < full and counts.get("PRUNED"):
        st.caption(f"Pruning stopped {counts['PRUNED']} trial{'s' if counts['PRUNED'] != 1 else ''} early: "
                   f"{trained} epochs trained of {full} had every trial run to the end "
                   f"({100 * (full - trained) / full:.0f} % saved).")


# --------------------------------------------------------------------------- trial cards


def _curve(rec: TrialRecord) -> list[float]:
    """Validation accuracy per epoch: the finished history, or what a running trial reported so far."""
    if rec.result and rec.result.history.get("val_accuracy"):
        return [v for v in rec.result.history["val_accuracy"] if v is not None]
    return [v for _, v in sorted(rec.intermediate.items()) if v is not None]


def tuned_names(config: StudyConfig | None, records: Sequence[TrialRecord] = ()) -> list[str]:
    """The hyperparameters the study searches (for a foreign study: whatever its trials vary)."""
    if config is not None:
        try:
            return config.tuned
        except ConfigError:  # a data set this version no longer knows: fall back to the trials
            pass
    names: set[str] = set()
    for r in records:
        names.update(r.params)
    return sorted(names)


def key_params(rec: TrialRecord, tuned: Iterable[str] | None) -> str:
    """'lr 1.2e-03 · filters 32 · dropout 0.21': the tuned params, short, escaped for Markdown (st.caption)."""
    names = list(tuned) if tuned else sorted(rec.params)
    short = {"learning_rate": "lr", "batch_size": "batch", "dense_units": "dense", "conv_blocks": "blocks"}
    return " · ".join(f"{plain(short.get(n, n))} {plain(fmt_value(rec.params[n]))}" for n in names if n in rec.params)


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
        curve = _curve(rec)
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
            a.metric("Val accuracy", fmt_pct(res.val_accuracy), chart_data=curve if len(curve) > 1 else None,
                     help="Accuracy on the validation split, per epoch: what the study optimises.")
            b.metric("Health", fmt_score(res.health_score), help="Composite of the six health metrics (0–1).")
            st.caption(f"test {fmt_pct(res.test_accuracy)} · shifted {fmt_pct(res.shifted_accuracy)} · "
                       f"{fmt_count(res.param_count)} params · "
                       f"{fmt_duration(rec.duration_s)}")
        elif rec.state == "RUNNING" and not orphaned and len(curve) > 1:
            st.metric("Val accuracy so far", fmt_pct(curve[-1]), chart_data=curve)
        elif rec.state == "PRUNED":
            last = curve[-1] if curve else None
            st.caption(f"pruned after {len(curve) or '?'} epoch(s) at val {fmt_pct(last)}: behind other trials")
        elif rec.state == "FAIL":
            err = rec.error or (res.error if res else None) or "failed"
            st.caption(f":red[{plain(err, 160)}]")  # escaped: a bracket would end the directive, $ start LaTeX
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


# --------------------------------------------------------------------------- downloads


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
    name = artifacts.artifact_name(study, "model", "keras", trial=rec.number, metric="val-acc",  # type: ignore[union-attr]
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
                           file_name=artifacts.artifact_name(study, "result", "json", trial=rec.number),
                           mime="application/json", key=f"{key}-result", on_click="ignore", width="stretch",
                           icon=":material/data_object:")
    try:
        repro = json.dumps(artifacts.reproduce_config(rec), indent=2)
    except Exception:  # noqa: BLE001 - a foreign trial without a usable spec has nothing to reproduce
        repro = None
    if repro:
        st.download_button("Reproduce config", data=repro,
                           file_name=artifacts.artifact_name(study, "config", "json", trial=rec.number),
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
                       file_name=artifacts.artifact_name(study, "trials", "csv"), mime="text/csv",
                       key=f"{key}-csv", on_click="ignore", width="stretch", icon=":material/table:")
    c3.download_button("Study (JSON)", data=lambda: artifacts.study_json(study, recs, config),
                       file_name=artifacts.artifact_name(study, "study", "json"), mime="application/json",
                       key=f"{key}-json", on_click="ignore", width="stretch", icon=":material/data_object:")


# --------------------------------------------------------------------------- findings and metrics


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


def metric_medians(records: Sequence[TrialRecord]) -> dict[str, float]:
    out = {}
    for k in METRIC_INFO:
        vals = [r.result.health.get(k) for r in records if r.state == "COMPLETE" and r.result and r.result.health]
        vals = [v for v in vals if v is not None]
        if vals:
            out[k] = statistics.median(vals)
    return out


# --------------------------------------------------------------------------- figures


def _layout(fig: "go.Figure", title: str | None = None, height: int = 320, legend: str = "top") -> "go.Figure":
    """Shared look: title top left, legend between title and plot (or under it), no fixed width."""
    if legend == "bottom":
        leg = dict(orientation="h", yanchor="top", y=-0.22, x=0)
        margin = dict(l=10, r=10, t=60 if title else 20, b=10)
    else:
        leg = dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right")
        margin = dict(l=10, r=10, t=70 if title else 30, b=10)
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top") if title else None, height=height,
                      margin=margin, legend=leg)
    return fig


def make_history_figure(records: Sequence[TrialRecord], config: StudyConfig | None) -> "go.Figure":
    """Optimisation history: each trial's objective, the best so far, pruned trials at their last report."""
    import plotly.graph_objects as go

    fig = go.Figure()
    done = [r for r in records if r.state == "COMPLETE" and r.result is not None]
    if config is not None and config.mode == "pareto":
        fig.add_scatter(x=[r.number for r in done], y=[r.val_accuracy for r in done], mode="markers",
                        name="val accuracy", marker=dict(color=PLOT_COLOR["COMPLETE"]))
        fig.add_scatter(x=[r.number for r in done], y=[r.health_score for r in done], mode="markers",
                        name="health", marker=dict(color="#7048e8", symbol="diamond"))
    else:
        ys = [r.objective(config) if config else r.val_accuracy for r in done]
        fig.add_scatter(x=[r.number for r in done], y=ys, mode="markers", name="objective",
                        marker=dict(color=PLOT_COLOR["COMPLETE"]),
                        hovertemplate="trial #%{x}<br>objective %{y:.4f}<extra></extra>")
        best_x, best_y, cur = [], [], -math.inf
        for r, y in sorted(zip(done, ys), key=lambda p: p[0].number):
            if y is not None and y > cur:
                cur = y
            best_x.append(r.number)
            best_y.append(cur)
        fig.add_scatter(x=best_x, y=best_y, mode="lines", name="best so far", line=dict(color=BEST_COLOR, shape="hv"))
    pruned = [r for r in records if r.state == "PRUNED" and r.intermediate]
    if pruned:
        fig.add_scatter(x=[r.number for r in pruned], y=[r.intermediate[max(r.intermediate)] for r in pruned],
                        mode="markers", name="pruned (last report)", marker=dict(color=PLOT_COLOR["PRUNED"], symbol="x"))
    fig.update_xaxes(title="trial", dtick=1 if len(records) <= 12 else None)
    fig.update_yaxes(title=objective_name(config))
    return _layout(fig, "Optimisation history")


def make_curves_figure(result: TrialResult, metric: str = "accuracy") -> "go.Figure":
    """Training vs validation ``metric`` ("accuracy" or "loss") per epoch.

    The band between the two lines is shaded: it is the train/validation gap, and for accuracy
    the last epoch's gap is labelled (overfitting when it is wide). For loss, the epoch with
    the lowest validation loss is starred: epochs after it made the model worse on new data.
    One figure per metric, so the two stack on a phone instead of squeezing side by side.
    """
    import plotly.graph_objects as go

    h = result.history or {}
    train, val = h.get(metric) or [], h.get(f"val_{metric}") or []
    epochs = list(range(1, max(len(train), len(val)) + 1))
    fig = go.Figure()
    fig.add_scatter(x=epochs[: len(val)], y=val, name=f"validation {metric}", mode="lines+markers",
                    line=dict(color="#1c7ed6"))
    # filled to the validation line: the shaded band is the train/validation gap
    fig.add_scatter(x=epochs[: len(train)], y=train, name=f"training {metric}", mode="lines+markers",
                    line=dict(color="#e8590c", dash="dot"), fill="tonexty" if val else None,
                    fillcolor="rgba(232,89,12,0.12)")
    t = [v for v in train if v is not None]
    v = [x for x in val if x is not None]
    if metric == "accuracy" and len(t) >= 2 and len(v) >= 2:  # one epoch says nothing about overfitting
        gap = t[-1] - v[-1]
        fig.add_annotation(x=len(v), y=(t[-1] + v[-1]) / 2, text=f"gap {100 * gap:+.1f} pts", showarrow=True,
                           arrowhead=2, ax=-60, ay=0, font=dict(color="#c92a2a" if gap >= 0.10 else "#495057"))
    if metric == "loss" and len(v) >= 2:
        best = min(range(len(v)), key=v.__getitem__)
        fig.add_scatter(x=[best + 1], y=[v[best]], mode="markers", name=f"best validation loss (epoch {best + 1})",
                        marker=dict(symbol="star", size=14, color=BEST_COLOR))
    fig.update_xaxes(title="epoch", dtick=1 if len(epochs) <= 12 else None)
    fig.update_yaxes(title=metric)
    return _layout(fig, f"Training vs validation {metric}", height=340, legend="bottom")


def make_layer_figures(result: TrialResult) -> tuple["go.Figure | None", "go.Figure | None"]:
    """Per-layer dead units (%) and relative weight updates (log scale, healthy band shaded)."""
    import plotly.graph_objects as go

    from core.diagnosis import DEAD_CRITICAL, DEAD_WARN
    from core.health import UPDATE_HIGH, UPDATE_LOW

    unit_layers = [layer for layer in result.layers or [] if layer.dead_fraction is not None]
    dead_fig = None
    if unit_layers:
        vals = [100 * layer.dead_fraction for layer in unit_layers]  # type: ignore[operator]
        colors = ["#e03131" if v >= 100 * DEAD_CRITICAL else "#f59f00" if v >= 100 * DEAD_WARN else "#2f9e44" for v in vals]
        dead_fig = go.Figure(go.Bar(x=[layer.name for layer in unit_layers], y=vals, marker_color=colors,
                                    text=[f"{v:.0f}%" for v in vals], textposition="outside",
                                    customdata=[layer.dead_label or "carry no signal" for layer in unit_layers],
                                    hovertemplate="%{x}: %{y:.1f}% of units %{customdata}<extra></extra>"))
        dead_fig.update_yaxes(title="dead units (%)", range=[0, max(100.0, max(vals) * 1.15)])
        _layout(dead_fig, "Dead units per layer", height=300)
    grad_layers = [layer for layer in result.layers or [] if layer.update_ratio is not None and layer.update_ratio > 0]
    grad_fig = None
    if grad_layers:
        vals = [layer.update_ratio for layer in grad_layers]
        colors = ["#2f9e44" if UPDATE_LOW <= v <= UPDATE_HIGH else "#e03131" for v in vals]  # type: ignore[operator]
        grad_fig = go.Figure(go.Bar(x=[layer.name for layer in grad_layers], y=vals, marker_color=colors,
                                    customdata=[layer.gradient_score for layer in grad_layers],
                                    hovertemplate="%{x}: weights moved %{y:.2g} of their size; gradient health "
                                                  "%{customdata:.2f}<extra></extra>"))
        # shapes and ranges on a log axis are given in log10 units
        lo, hi = math.log10(UPDATE_LOW), math.log10(UPDATE_HIGH)
        grad_fig.add_hrect(y0=lo, y1=hi, fillcolor="rgba(47,158,68,0.08)", line_width=0,
                           annotation_text="healthy band", annotation_position="top left")
        span = [math.log10(v) for v in vals]  # type: ignore[arg-type]
        grad_fig.update_yaxes(type="log", title="update / weight size, per step",
                              range=[min(min(span), lo) - 0.5, max(max(span), hi) + 0.5])
        _layout(grad_fig, "How far each layer's weights moved", height=300)
    return dead_fig, grad_fig


def make_health_scatter(records: Sequence[TrialRecord], config: StudyConfig | None,
                        best: TrialRecord | None) -> "go.Figure":
    """Accuracy vs health for complete trials; the Pareto front drawn in pareto mode."""
    import plotly.graph_objects as go

    done = [r for r in records if r.state == "COMPLETE" and r.val_accuracy is not None and r.health_score is not None]
    fig = go.Figure()
    fig.add_scatter(x=[r.val_accuracy for r in done], y=[r.health_score for r in done], mode="markers", name="trials",
                    text=[f"#{r.number}" for r in done], marker=dict(color=PLOT_COLOR["COMPLETE"], size=9, opacity=0.75),
                    hovertemplate="%{text}<br>val %{x:.3f}<br>health %{y:.3f}<extra></extra>")
    if config is not None and config.mode == "pareto":
        front = pareto_front(records)
        fig.add_scatter(x=[r.val_accuracy for r in front], y=[r.health_score for r in front], mode="lines+markers",
                        name="Pareto front", text=[f"#{r.number}" for r in front],
                        line=dict(color=BEST_COLOR, dash="dash"), marker=dict(size=12, color=BEST_COLOR),
                        hovertemplate="%{text} (front)<br>val %{x:.3f}<br>health %{y:.3f}<extra></extra>")
    if best is not None and best.val_accuracy is not None and best.health_score is not None:
        fig.add_scatter(x=[best.val_accuracy], y=[best.health_score], mode="markers", name=f"best #{best.number}",
                        marker=dict(symbol="star", size=18, color=BEST_COLOR, line=dict(color="black", width=1)))
    fig.update_xaxes(title="validation accuracy")
    fig.update_yaxes(title="health score")
    return _layout(fig, "Accuracy vs health")


def _numeric_param(records: Sequence[TrialRecord], name: str) -> tuple[list[float], dict[str, Any]]:
    """Values of one param as numbers for an axis, with tick labels for categorical ones."""
    hp = HYPERPARAMETERS.get(name)
    values = [r.params.get(name) for r in records]
    if hp is not None and hp.kind in ("categorical", "bool") or any(isinstance(v, str) for v in values):
        cats = list(hp.range_dict()["choices"]) if hp is not None else sorted({str(v) for v in values})
        cats = [c for c in cats if c in values] or sorted({str(v) for v in values})
        idx = {str(c): i for i, c in enumerate(cats)}
        return [idx.get(str(v), 0) for v in values], dict(tickvals=list(range(len(cats))), ticktext=[str(c) for c in cats])
    nums = [float(v) if v is not None else math.nan for v in values]
    if hp is not None and hp.log:
        return [math.log10(v) if v and v > 0 else math.nan for v in nums], dict(label=f"log10 {name}")
    return nums, {}


def make_parallel_figure(records: Sequence[TrialRecord], config: StudyConfig | None) -> "go.Figure | None":
    """Parallel coordinates of the tuned params, coloured by the objective."""
    import plotly.graph_objects as go

    done = [r for r in records if r.state == "COMPLETE" and r.result is not None]
    if len(done) < 2:
        return None
    names = [n for n in tuned_names(config, done) if n in done[0].params]
    dims = []
    for n in names:
        vals, extra = _numeric_param(done, n)
        dims.append(dict(label=extra.pop("label", n), values=vals, **extra))
    obj = [r.objective(config) if config else r.val_accuracy for r in done]
    dims.append(dict(label="objective", values=obj))
    fig = go.Figure(go.Parcoords(line=dict(color=obj, colorscale="Viridis", showscale=True), dimensions=dims))
    _layout(fig, "Parallel coordinates (complete trials)", height=420)
    return fig.update_layout(margin=dict(t=110, l=40, r=40))  # axis labels sit above the plot


def make_intermediate_figure(records: Sequence[TrialRecord]) -> "go.Figure | None":
    """Reported validation accuracy per epoch for every trial; pruned ones stand out."""
    import plotly.graph_objects as go

    with_values = [r for r in records if r.intermediate]
    if not with_values:
        return None
    fig = go.Figure()
    shown: set[str] = set()
    for r in with_values:
        steps = sorted(r.intermediate)
        fig.add_scatter(x=steps, y=[r.intermediate[s] for s in steps], mode="lines+markers", name=STATE_LABEL.get(r.state, r.state),
                        legendgroup=r.state, showlegend=r.state not in shown, opacity=0.9 if r.state != "COMPLETE" else 0.45,
                        line=dict(color=PLOT_COLOR.get(r.state, "#868e96"), dash="dot" if r.state == "PRUNED" else "solid"),
                        hovertemplate=f"#{r.number}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>")
        shown.add(r.state)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="validation accuracy (reported)")
    return _layout(fig, "Intermediate values")


def make_importance_figure(importances: dict[str, float]) -> "go.Figure":
    import plotly.graph_objects as go

    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h", marker_color="#1c7ed6",
                           hovertemplate="%{y}: %{x:.2f}<extra></extra>"))
    fig.update_xaxes(title="importance (share of objective variance explained)")
    return _layout(fig, "Hyperparameter importance", height=max(220, 40 * len(items) + 80))


def make_param_effect_figure(records: Sequence[TrialRecord], name: str) -> "go.Figure | None":
    """One hyperparameter against validation accuracy across the study's complete trials."""
    import plotly.graph_objects as go

    done = [r for r in records if r.state == "COMPLETE" and r.val_accuracy is not None and name in r.params]
    if len(done) < 2:
        return None
    hp = HYPERPARAMETERS.get(name)
    fig = go.Figure()
    if hp is not None and hp.kind in ("categorical", "bool"):
        fig.add_box(x=[str(r.params[name]) for r in done], y=[r.val_accuracy for r in done], boxpoints="all",
                    marker_color="#1c7ed6", name=name)
    else:
        fig.add_scatter(x=[r.params[name] for r in done], y=[r.val_accuracy for r in done], mode="markers",
                        text=[f"#{r.number}" for r in done],
                        marker=dict(color=[r.health_score or 0 for r in done], colorscale="RdYlGn", cmin=0, cmax=1,
                                    size=10, showscale=True, colorbar=dict(title="health")),
                        hovertemplate="%{text}<br>" + name + " %{x}<br>val %{y:.3f}<extra></extra>")
        if hp is not None and hp.log:
            fig.update_xaxes(type="log")
    fig.update_xaxes(title=name)
    fig.update_yaxes(title="validation accuracy")
    return _layout(fig, f"{name} vs validation accuracy in this study", height=300)


def make_metric_effect_figure(records: Sequence[TrialRecord], metric: str, best: TrialRecord | None) -> "go.Figure | None":
    """One health metric against validation accuracy: do health and accuracy agree in this study?"""
    import plotly.graph_objects as go

    done = [r for r in records if r.state == "COMPLETE" and r.result and (r.result.health or {}).get(metric) is not None]
    if len(done) < 2:
        return None
    fig = go.Figure()
    fig.add_scatter(x=[r.result.health[metric] for r in done], y=[r.val_accuracy for r in done], mode="markers",  # type: ignore[union-attr]
                    text=[f"#{r.number}" for r in done], marker=dict(color="#1c7ed6", size=9), name="trials",
                    hovertemplate="%{text}<br>" + metric + " %{x:.3f}<br>val %{y:.3f}<extra></extra>")
    if best is not None and best.result and (best.result.health or {}).get(metric) is not None:
        fig.add_scatter(x=[best.result.health[metric]], y=[best.val_accuracy], mode="markers", name=f"best #{best.number}",
                        marker=dict(symbol="star", size=16, color=BEST_COLOR))
    fig.update_xaxes(title=METRIC_INFO[metric]["title"], range=[-0.02, 1.02])
    fig.update_yaxes(title="validation accuracy")
    return _layout(fig, f"{METRIC_INFO[metric]['title']} vs accuracy in this study", height=300)


# --------------------------------------------------------------------------- study-wide analysis


# fANOVA's forests cost seconds above this many trials (~2 s at 185 with 16 trees, 13 s with the
# default 64, measured here); PED-ANOVA gives the same ranking in ~40 ms on large studies.
FANOVA_MAX_TRIALS = 60


@st.cache_data(show_spinner="Measuring hyperparameter importance…", max_entries=32)
def param_importances(url: str, study: str, n_complete: int, mode: str) -> tuple[str, dict[str, float]]:
    """(method, importances), cached per number of complete trials (recomputed when one completes).

    ``n_complete`` is part of the cache key on purpose: a live screen must not refit on every rerun.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    s = optuna.load_study(study_name=study, storage=state.open_storage(url))
    # pareto: importance for accuracy, the first objective (one target at a time)
    target = (lambda t: t.values[0]) if mode == "pareto" else None
    if n_complete <= FANOVA_MAX_TRIALS:
        method, evaluator = "fANOVA", FanovaImportanceEvaluator(n_trees=16, seed=0)
    else:
        method, evaluator = "PED-ANOVA", PedAnovaImportanceEvaluator()
    imps = get_param_importances(s, target=target, evaluator=evaluator)
    return method, {k: float(v) for k, v in imps.items()}


def best_of(records: Sequence[TrialRecord], config: StudyConfig | None) -> TrialRecord | None:
    """The best trial under the study's mode (validation-based); for foreign studies, by accuracy."""
    if config is not None:
        return best_record(records, config)
    done = [r for r in records if r.state == "COMPLETE" and r.val_accuracy is not None]
    return max(done, key=lambda r: r.val_accuracy) if done else None  # type: ignore[arg-type,return-value]
