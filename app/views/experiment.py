"""'What does this knob do?': start a one-knob experiment from a trial and plot what changed.

Not a page of its own: the Health screen's per-trial view calls :func:`render_knob_experiment`.
The experiment is an ordinary study (``core.experiment.experiment_config``) started through
``app.state.start`` like any other, so it runs in the background on the study's executor; this view
only reads it back (``core.experiment.experiment_table``) and plots it.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import PAGE_TRIALS
from app import figures as FIG
from app import format as FMT
from app import widgets as W
from app import state
from core.config import ConfigError, StudyConfig
from core.experiment import (experiment_config, experiment_table, experiments_of, fmt_knob_value, knobs_for,
                             parse_values, suggest_values, what_changed_most)
from core.study import StudySummary, TrialRecord


def open_in_trials(name: str) -> None:
    """Select the experiment's study and show it on the Trials screen."""
    state.select_study(name)
    W.go_to(PAGE_TRIALS)


def _start(config: StudyConfig, record: TrialRecord, knob: str, text: str, taken: list[str], current: Any) -> None:
    try:
        cfg = experiment_config(config, record, knob, parse_values(text, knob, current), taken=taken)
        state.start(cfg, select=False)  # stay on this trial: the plot is here
    except ConfigError as exc:
        W.render_config_error(exc)
        return
    st.success(f"Started **{FMT.plain(cfg.name)}**: {len(cfg.experiment['values'])} trials, one per value, "
               "in the background. The plot below fills in as they finish.", icon=":material/science:")


def render_experiment(summary: StudySummary, key: str) -> None:
    """One experiment: progress while it runs, the two plots, the sentence, and a way to open it."""
    cfg = summary.config
    exp = cfg.experiment
    knob = exp["knob"]
    try:
        records = state.read_records(summary.name)
    except KeyError:
        records = []
    st.markdown(f"**{FMT.plain(summary.name)}** · {FMT.plain(knob)} = "
                + ", ".join(FMT.plain(fmt_knob_value(v)) for v in exp["values"])
                + f" · seed {exp.get('seed')} · {FMT.plain(summary.display_status)}")
    if state.is_running(summary.name, summary):
        W.render_progress(records, cfg, None)
        W.follow_study(summary.name, records, summary, "the plot")
    rows = experiment_table(records, cfg)
    acc_fig, health_fig = FIG.make_experiment_figures(rows, knob)
    if acc_fig is None and health_fig is None:
        st.caption("The plot appears once two values have a complete trial.")
    else:
        left, right = st.columns(2)
        if acc_fig is not None:
            left.plotly_chart(acc_fig, key=f"{key}-acc")
        if health_fig is not None:
            right.plotly_chart(health_fig, key=f"{key}-health")
    st.markdown(FMT.plain(what_changed_most(rows, knob)))
    if st.button("Open in Trials", key=f"{key}-open", icon=":material/open_in_new:"):
        open_in_trials(summary.name)  # not a callback: a study picker's widget would take the choice back


def render_knob_experiment(study: str, record: TrialRecord, config: StudyConfig | None) -> None:
    """The 'What does this knob do?' section of a trial: a small form, then this trial's experiments."""
    st.subheader("What does this knob do?")
    if config is None:
        st.caption("This study has no HPO Studio configuration to copy, so no experiment can start from it.")
        return
    try:
        kind = config.kind
    except ConfigError:
        st.caption(f"Unknown data set {FMT.plain(config.dataset)}: no experiment can start from this trial.")
        return
    st.caption(f"Train trial #{record.number} again with a few values of one hyperparameter, everything else and the "
               "seed fixed, as a small study of its own; then see what each value did to accuracy and health.")
    knobs = [h.name for h in knobs_for(kind)]
    tuned = [k for k in FMT.tuned_names(config, [record]) if k in knobs]
    prefix = f"knob-exp-{study}-{record.number}"
    knob = st.selectbox("Knob", knobs, index=knobs.index(tuned[0]) if tuned else 0, key=f"{prefix}-knob")
    from core.experiment import base_params

    current = base_params(config, record).get(knob)
    # 3 significant digits: parse_values reads the base trial's value back exactly
    suggested = ", ".join(fmt_knob_value(v) for v in suggest_values(kind, knob, current))
    text = st.text_input(f"Values of {knob} (2 to 7, comma-separated; this trial has {fmt_knob_value(current)})",
                         value=suggested, key=f"{prefix}-values-{knob}")
    summaries = state.list_studies()
    if st.button("Start experiment", key=f"{prefix}-start", type="primary", icon=":material/science:"):
        _start(config, record, knob, text, [s.name for s in summaries], current)
        summaries = state.list_studies()
    mine = experiments_of(summaries, study=study, trial=record.number)
    if not mine:
        st.caption("No experiment from this trial yet.")
    for i, summary in enumerate(mine):
        with st.container(border=True):
            render_experiment(summary, key=f"{prefix}-{i}")


def experiment_links(summaries: list[StudySummary], knob: str, key: str) -> list[Any]:
    """Buttons that open each experiment on ``knob`` in Trials (Learn uses them); returns the experiments."""
    found = experiments_of(summaries, knob=knob)
    for i, summary in enumerate(found):
        values = ", ".join(fmt_knob_value(v) for v in summary.config.experiment["values"])
        if st.button(FMT.plain(f"{summary.name} ({values})"), key=f"{key}-{i}", icon=":material/science:"):
            open_in_trials(summary.name)
    return found
