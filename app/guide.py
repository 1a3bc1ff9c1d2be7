"""A guided first study (issue 14): five short steps for a first-time visitor, on the Configure screen.

Every number and rule it quotes comes from the code that applies it (the defaults of
``StudyConfig``, the pruner's and modes' help, the health metrics' names and weights), like the
Learn screen, so the guide cannot drift from what the app does.  A step is ticked when the app
sees it done (a study exists; a trial completed) or when the user followed its link.  It opens
by itself only while there is no study, and "Hide the guide" puts it away for the session.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app import PAGE_HEALTH, PAGE_LEARN, PAGE_TRIALS, PAGE_VIEWER, state
from app import widgets as W
from core.config import MODE_HELP, PRUNER_HELP, StudyConfig
from core.datasets import get_info
from core.health import METRIC_INFO, WEIGHTS

_HIDDEN = "hpo.guide.hidden"
_VISITED = "hpo.guide.visited"  # step keys whose link the user followed


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    text: str
    page: str | None = None  # the screen the step happens on
    link: str | None = None


def steps() -> list[Step]:
    """The five steps, in order, in words taken from the code's own definitions."""
    d = StudyConfig.defaults()
    info = get_info(d["dataset"])
    shape = "×".join(str(s) for s in info.input_shape[:2]) if info.kind == "image" else f"{info.seq_len}-token"
    weakest = min(WEIGHTS, key=WEIGHTS.get)
    heaviest = [METRIC_INFO[k]["title"].lower() for k, w in WEIGHTS.items() if w == max(WEIGHTS.values())]
    return [
        Step("start", "Start a study with the defaults",
             f"Leave the form as it is and press **Start**: {d['n_trials']} trials of {d['epochs']} epochs on the "
             f"{'built-in ' if info.embedded else ''}**{d['dataset']}** data set ({info.num_classes} classes, {shape} "
             f"{'images' if info.kind == 'image' else 'texts'}), in {d['mode']} mode: "
             f"{MODE_HELP[d['mode']][0].lower()}{MODE_HELP[d['mode']][1:]} Each trial is one model with its own "
             "hyperparameters; the sampler picks the next ones from what the earlier trials scored."),
        Step("watch", "Watch the trials arrive",
             "Each card is a trial, with its validation curve. Orange cards were **pruned**, stopped early "
             f"because they trailed the others. The pruner: {PRUNER_HELP[d['pruner']]} The progress bar says how many "
             "epochs pruning saved. Tick two or three cards and open **Compare** to see what differs.",
             PAGE_TRIALS, "Open Trials"),
        Step("health", "Ask whether the best model is healthy",
             "The Health screen scores the best model on six measures, not only accuracy: "
             + ", ".join(METRIC_INFO[k]["title"].lower() for k in WEIGHTS)
             + f". {_and(heaviest).capitalize()} weigh most, {METRIC_INFO[weakest]['title'].lower()} least. "
             "Read the diagnosis: a model can be accurate and still oversized, unstable or overfitting. Under "
             "**Where the model goes wrong**, see which classes it confuses and its most confident mistakes.",
             PAGE_HEALTH, "Open Health"),
        Step("inside", "Look inside the network",
             "In the 3D viewer, colour the layers by **Dead units**, then click a layer (or pick a row): beside "
             "the scene you see what it made of one test example, its feature maps or its units' outputs, with "
             "the dead ones marked. Pick a misclassified example to see where the signal went wrong.",
             PAGE_VIEWER, "Open the 3D viewer"),
        Step("knob", "Change one thing and watch the effect",
             f"Run the study again in health-aware mode ({MODE_HELP['health-aware'][0].lower()}"
             f"{MODE_HELP['health-aware'][1:].rstrip('.')}), or, from any trial on the Health screen, ask **What does this "
             "knob do?**: the studio retrains that trial with a handful of values of one hyperparameter, seed "
             "and everything else fixed. The Learn screen explains every knob and metric.",
             PAGE_LEARN, "Open Learn"),
    ]


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def done_steps() -> set[str]:
    """Steps the app sees done: a study exists; one has a complete trial; links the user followed."""
    done = set(st.session_state.get(_VISITED) or ())
    summaries = state.list_studies(with_counts=True)
    if summaries:
        done.add("start")
    if any((s.counts or {}).get("COMPLETE", 0) > 0 for s in summaries):
        done.add("watch")
    return done


def _follow(step: Step) -> None:
    st.session_state[_VISITED] = sorted({*(st.session_state.get(_VISITED) or ()), step.key})
    if step.page:
        W.go_to(step.page)


def render() -> None:
    """The guide, as an expander at the top of Configure (open while there is no study yet)."""
    if st.session_state.get(_HIDDEN):
        return
    all_steps = steps()
    done = done_steps()
    n_done = sum(s.key in done for s in all_steps)
    with st.expander(f"Guided first study · {n_done} of {len(all_steps)} steps done", icon=":material/school:",
                     expanded="start" not in done):
        for i, step in enumerate(all_steps, 1):
            mark = ":green[:material/check_circle:]" if step.key in done else ":gray[:material/radio_button_unchecked:]"
            st.markdown(f"{mark} **{i}. {step.title}**  \n{step.text}")
            if step.page and st.button(step.link or "Open", key=f"guide-{step.key}", icon=":material/arrow_forward:"):
                _follow(step)
        if st.button("Hide the guide", key="guide-hide", icon=":material/visibility_off:",
                     help="For this session; the Learn screen explains everything the guide does, at length."):
            st.session_state[_HIDDEN] = True
            st.rerun()
