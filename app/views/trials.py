"""Trials: the live gallery of one study.

A card per trial (state, epoch progress, validation/test accuracy, health, size, a small
curve, key params, where it ran), the best trial highlighted under the study's mode,
filter and sort, summary statistics, the optimisation history, and downloads.

While the study runs, the gallery is a fragment that re-reads the storage every
``LIVE_INTERVAL_S`` seconds; when nothing runs it does not refresh at all.
"""

from __future__ import annotations

import math

import streamlit as st

from app import PAGE_HEALTH
from app import figures as FIG
from app import format as FMT
from app import widgets as W
from app import state
from core.study import TrialRecord, best_record, pareto_front

FILTER_STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL")
SORTS = {
    "Newest first": lambda r, cfg: -r.number,
    "Oldest first": lambda r, cfg: r.number,
    "Best objective": lambda r, cfg: -(r.objective(cfg) if cfg and r.objective(cfg) is not None else -math.inf),
    "Validation accuracy": lambda r, cfg: -(r.val_accuracy if r.val_accuracy is not None else -math.inf),
    "Health score": lambda r, cfg: -(r.health_score if r.health_score is not None else -math.inf),
    "Fewest parameters": lambda r, cfg: r.param_count or math.inf,
}


def render_gallery(name: str, was_running: bool) -> None:
    """Everything that changes while the study runs (the fragment's body)."""
    summary = state.study_summary(name)
    records = W.read_records_or_note(name)
    if records is None:
        return
    running = state.is_running(name, summary)
    if was_running and not running:
        st.rerun()  # the study ended: a full rerun switches the live refresh off
    interrupted = not running and summary is not None and summary.interrupted
    config = summary.config if summary else state.study_config(name)
    best = best_record(records, config)
    front = {r.number for r in pareto_front(records)} if config and config.mode == "pareto" else set()

    W.render_summary(records, config, best, summary.created if summary else None, running, interrupted)
    render_data_problem(records)
    if state.runner_error(name):
        st.error(f"The study stopped with an error: {FMT.plain(state.runner_error(name), 500)}")
    if summary and summary.note:
        st.info(FMT.plain(summary.note))
    W.render_runners(summary, records)
    W.render_study_downloads(name, records, config, best, key="gallery")

    st.subheader("Gallery")
    f1, f2 = st.columns([3, 2])
    # Fixed options: a filter whose options change with the study would reset under the user's finger.
    present = list(FILTER_STATES)
    with f1:
        shown_states = st.pills("Show", present, selection_mode="multi", default=present, key=f"filter-{name}",
                                format_func=lambda s: FMT.STATE_LABEL.get(s, s))
    with f2:
        sort = st.selectbox("Sort by", list(SORTS), key=f"sort-{name}")
    chosen = [r for r in records if r.state in (shown_states or present) or r.state not in FILTER_STATES]
    chosen.sort(key=lambda r: SORTS[sort](r, config))
    pages = max(1, math.ceil(len(chosen) / FMT.CARDS_PER_PAGE))
    page = st.pagination(pages, key=f"page-{name}") if pages > 1 else 1
    visible = chosen[(page - 1) * FMT.CARDS_PER_PAGE : page * FMT.CARDS_PER_PAGE]
    st.caption(f"Showing {len(visible)} of {len(chosen)} trials ({len(records)} in the study)")
    render_compare_bar(name, records)
    render_cards(visible, name, config, best, front, orphaned=not running)

    with st.expander("Optimisation history", expanded=True):
        if any(r.state == "COMPLETE" for r in records):
            st.plotly_chart(FIG.make_history_figure(records, config), key=f"history-{name}")
        else:
            st.caption("The history appears when the first trial completes.")


def render_compare_bar(name: str, records: list[TrialRecord]) -> None:
    """The trials ticked for comparison, and the button that opens them side by side on the Health screen."""
    present = {r.number for r in records if r.result is not None}
    picked = [n for n in state.compared_trials(name) or [] if n in present]
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.caption("Picked to compare: " + (", ".join(f"#{n}" for n in picked) if picked else
                                           "none yet (press **Add to compare** on two or more cards)"))
    if right.button(f"Compare {len(picked)}" if picked else "Compare", key=f"compare-{name}", disabled=len(picked) < 2,
                    icon=":material/compare_arrows:", width="stretch", help="Open the picked trials side by side."):
        st.session_state["health-tab"] = "Compare"
        state.select_study(name)
        W.go_to(PAGE_HEALTH)


DATA_UNAVAILABLE = "data set is not available"  # how core.datasets.DatasetUnavailable messages begin


def render_data_problem(records: list[TrialRecord]) -> None:
    """Trials that failed because the data set could not be loaded (a download that failed): say it
    once, whole, with what to do, rather than in every card cut to a line."""
    why = next((r.error for r in records if r.state == "FAIL" and r.error and DATA_UNAVAILABLE in r.error), None)
    if why:
        n = sum(1 for r in records if r.state == "FAIL" and r.error and DATA_UNAVAILABLE in r.error)
        st.error(f"**{n} trial{'s' if n != 1 else ''} failed because the data set could not be loaded.**  \n"
                 + "  \n".join(FMT.plain(line) for line in why.removeprefix("invalid configuration: ").splitlines()
                                if line.strip()), icon=":material/cloud_off:")


def render_cards(visible: list[TrialRecord], name: str, config, best: TrialRecord | None, front: set[int],
                 orphaned: bool = False) -> None:
    """Cards in rows of three (Streamlit stacks the columns on a phone).

    ``orphaned``: nobody runs the study, so its RUNNING trials are shown as interrupted.
    """
    if not visible:
        st.caption("No trials to show yet: the first card appears when a worker picks up a trial.")
        return
    for start in range(0, len(visible), 3):
        cols = st.columns(3)
        for col, rec in zip(cols, visible[start : start + 3]):
            with col:
                W.render_trial_card(rec, name, config, is_best=best is not None and rec.number == best.number,
                                    on_front=rec.number in front, orphaned=orphaned)


def main() -> None:
    W.render_css()
    st.title("Trials")
    summary = W.pick_study("trials-study")
    if summary is None:
        return
    name = summary.name
    running = state.is_running(name, summary)
    cfg = summary.config
    if cfg is not None:
        st.caption(f"{FMT.plain(cfg.dataset)} · {FMT.plain(cfg.mode)} · optimising {FMT.objective_name(cfg)} · "
                   f"{FMT.plain(cfg.sampler)} sampler · {FMT.plain(cfg.pruner)} pruner · {FMT.plain(cfg.epochs)} epochs per trial")
    shown, note = W.study_labels().get(name, (name, ""))
    if note:
        st.caption(f":material/sticky_note_2: {FMT.plain(note)}")
    W.render_runner_controls(name, running, key="gallery")
    if not running:
        W.render_resume(summary, key="gallery")
    if running:
        st.caption(f":blue-badge[live] refreshing every {FMT.LIVE_INTERVAL_S:.0f} s while the study runs")
    # run_every only while something runs: an idle gallery costs nothing.
    st.fragment(render_gallery, run_every=FMT.LIVE_INTERVAL_S if running else None)(name, running)


main()
