"""3D viewer: one trial's network, drawn from the layout saved with its result, and its exports.

* Pick a study and a trial; the best trial under the study's mode is shown by default, and
  "Follow the best trial" switches the view when a running study finds a better one (a small
  fragment re-reads the storage every ``LIVE_INTERVAL_S`` seconds, only while the study runs).
* Colour the layers by the model's performance, each layer's health, its dead units or its
  gradient health; a legend says what the colours mean.  The scene is a component
  (``app.scene_component``): built and sent once per trial, every colouring travelling with it,
  so switching colours or outlining a layer restyles it in the browser.
* A layer table beside the scene, drawn by the scene's component itself (Streamlit's dataframe
  loaded ~1.2 MB of script into every new tab before the scene): clicking a row, or a layer (or
  its label) in the scene, outlines that layer at once in the browser, and the app shows its
  details under the scene: shape, parameters, its health figures and what it made of the chosen
  example (feature maps, unit outputs with the dead ones marked, an LSTM's hidden state over the words).
* Inside the network (``app.inside``, from the trial's ``insight.npz``): pick a test example
  (fixed probes, or a misclassified one, also reachable from the Health screen's "Look
  inside"), see its output probabilities, every kept layer's output and the first conv
  layer's learned filters.
* Exports: architecture JSON, the ``.keras`` model, a PNG, GIF and MP4 orbits (captioned
  with the trial's metrics) and a standalone interactive HTML page.  Pictures and videos are
  rendered in a background thread (``app.export_jobs``; the renderer itself runs in a child
  process, see ``core.scene``), with a progress bar; the page stays usable meanwhile.

The layout comes from ``result.architecture["visualization"]``, made at training time, so
this screen never imports TensorFlow (which must not share a process with Mesa).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from app import PAGE_TRIALS
from app import format as FMT
from app import inside as INSIDE
from app import widgets as W
from app import export_jobs as EJ
from app import scene_component as SC
from app import state
from core import artifacts
from core.architecture import ArchitectureVisualization, LayerVisualization, export_architecture_json
from core.study import TrialRecord, best_record
from core.health import DEAD_LABELS, GRADIENT_HELP, UPDATE_RATIO_HELP
from core.scene import COLOR_BY, export_filename

log = logging.getLogger("hpo.app.viewer")

SCENE_HEIGHT = 460  # px of the 3D stage; the layer table beside it is as tall, then it scrolls
METRIC = "val_accuracy"  # the metric named in export file names (what the study optimises on)
EXPORT_POLL_S = 0.5  # progress refresh while an export renders
_SHORT_TYPE = {"normalization": "norm", "global_pooling": "global pool"}
_SEL_COLOR = "hpo.viewer.color_by"  # the colouring chosen in the scene; survives page switches
_SEL_LAYER = "hpo.viewer.layer"  # {(study, trial): layer_id} selected in the scene or its table
_SEEN_PICKS = "hpo.viewer.picks"  # {scene key: clicks already applied}
INSIDE_OPEN = "viewer-inside-open"  # the "Inside the network" panel is open (its contents are drawn only then)
INSIDE_REQUEST = INSIDE.REQUEST  # {"study", "trial", "example"}: set by the Health screen's "Look inside"

COLOR_LABEL = {
    "performance": "Performance",
    "health": "Layer health",
    "dead_units": "Dead units",
    "gradient_norm": "Gradient health",
}
# What each colouring shows, and the words at the red and green ends of the legend.
COLOR_HELP = {
    "performance": ("Every layer takes the model's validation accuracy.", "0%", "100% accuracy"),
    "health": ("Each layer's own health: the worse of its live units and its gradient health; "
               "layers with nothing measured take the model's accuracy.", "unhealthy", "healthy"),
    "dead_units": ("Share of the layer's units that carry no signal on held-out data: for ReLU units, they "
                   f"{DEAD_LABELS['relu']}; for tanh and LSTM units, {DEAD_LABELS['tanh']}; for the others, "
                   f"{DEAD_LABELS['other']}.", "100% dead", "all alive"),
    "gradient_norm": (GRADIENT_HELP, "stalled / exploding", "healthy"),
}
# The scene's colour buttons: what each shows and the words at the legend's ends.
COLORINGS = [{"key": c, "label": COLOR_LABEL[c], "help": COLOR_HELP[c][0], "low": COLOR_HELP[c][1],
              "high": COLOR_HELP[c][2]} for c in COLOR_BY]

# Rendered exports: label, extension, mime type, what the button makes.
EXPORTS = {
    "png": ("PNG", "png", "image/png", "A 1920×1080 picture of this view, captioned with the trial's metrics."),
    "gif": ("GIF orbit", "gif", "image/gif", "An animated 800×500 orbit around the network (36 frames, looping)."),
    "mp4": ("MP4 orbit", "mp4", "video/mp4", "A 1280×720 H.264 video orbiting the network (72 frames)."),
    "html": ("Interactive HTML", "html", "text/html",
             "This 3D scene as one self-contained HTML file: rotate and zoom offline, no server."),
}


# --------------------------------------------------------------------------- data


def architecture_of(rec: TrialRecord) -> ArchitectureVisualization | None:
    """The trial's saved 3D layout, or None when it has none (recorded before layouts were saved)."""
    arch = (rec.result.architecture or {}).get("visualization") if rec.result else None
    if not arch:
        return None
    try:
        layout = ArchitectureVisualization.from_dict(arch)
    except (TypeError, ValueError, KeyError):
        return None
    return layout if layout.layers else None


def metrics_of(rec: TrialRecord) -> dict[str, Any]:
    res = rec.result
    if res is None:
        return {}
    return {"val_accuracy": res.val_accuracy, "val_loss": res.val_loss, "test_accuracy": res.test_accuracy,
            "test_loss": res.test_loss, "shifted_accuracy": res.shifted_accuracy, "health_score": res.health_score, "param_count": res.param_count,
            "epochs_run": res.epochs_run, "health": dict(res.health or {})}


def caption_of(study: str, rec: TrialRecord) -> str:
    """Two lines for pictures and the HTML scene; plain ASCII ("|" and "·" did not survive VTK's text here)."""
    res = rec.result
    line2 = (f"val acc {FMT.fmt_pct(rec.val_accuracy)}, test acc {FMT.fmt_pct(rec.test_accuracy)}, "
             f"health {FMT.fmt_score(rec.health_score)}, {FMT.fmt_count(res.param_count if res else None)} params")
    return f"{study} - trial #{rec.number}\n{line2.replace('–', 'n/a')}"


def architecture_json(study: str, rec: TrialRecord, arch: ArchitectureVisualization, color_by: str) -> str:
    """The JSON download: the layout plus what identifies it (study, trial, metrics, time)."""
    res = rec.result
    meta = {"study": study, "trial": rec.number, "metrics": metrics_of(rec), "timestamp": None,
            "dataset": res.dataset if res else None, "params": dict(rec.params), "color_by": color_by}
    return export_architecture_json(arch, meta)


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, fmt)


# The layer table's columns and what each header's tooltip says (None: no tooltip).
TABLE_COLUMNS = {
    "layer": None,
    "type": None,
    "output": "Output shape without the batch axis",
    "units": "Dense/recurrent units or conv filters",
    "params": None,
    "dead %": "Units that never fired on a probe batch",
    "update/step": UPDATE_RATIO_HELP,
    "grad health": GRADIENT_HELP,
}


def layer_row(lay: LayerVisualization) -> list[str]:
    """One layer's cells, in the order of :data:`TABLE_COLUMNS`; "–" where not measured."""
    size = lay.filters if lay.filters is not None else lay.units
    return [
        lay.name or lay.layer_id,
        _SHORT_TYPE.get(lay.layer_type, lay.layer_type),
        "×".join("?" if s is None else str(s) for s in (lay.output_shape or ())) or "–",
        "–" if size is None else str(size),
        f"{lay.parameters:,}",
        _num(None if lay.dead_fraction is None else 100 * lay.dead_fraction, ".1f"),
        _num(lay.update_ratio, ".1e"),
        _num(lay.gradient_score, ".2f"),
    ]


def table_of(arch: ArchitectureVisualization) -> dict[str, Any]:
    """The layer table as the scene component draws it: a title, the columns (with their help) and
    one row of strings per layer in drawing order, with the layer's id (what a click on the row selects)."""
    return {"title": f"{FMT.plain(arch.architecture_type)} · {len(arch.layers)} layers drawn · "
                     f"{arch.total_parameters:,} parameters",
            "columns": [{"name": name, "help": help} for name, help in TABLE_COLUMNS.items()],
            "rows": [{"id": lay.layer_id, "cells": layer_row(lay)} for lay in arch.layers]}


# --------------------------------------------------------------------------- exports (jobs: app.export_jobs)


def _read_bytes(path: Path) -> Callable[[], bytes]:
    return lambda: path.read_bytes()  # read on click, not on every rerun


def render_export_cell(fmt: str, key: tuple, make: Callable[[], EJ.ExportJob]) -> None:
    """One format: a button that starts it, then its progress, then its download (or its error)."""
    label, _, mime, what = EXPORTS[fmt]
    jobs = EJ.jobs()
    job = jobs.get(key)
    if job is None:
        if st.button(f"Make {label}", key=f"make-{fmt}", help=what, icon=":material/movie:" if fmt in ("gif", "mp4")
                     else ":material/image:" if fmt == "png" else ":material/code:", width="stretch"):
            make()
            st.rerun()  # redraw with the live refresh on
        return
    if job.running:
        text = f"{label}: {job.progress:.0%}" if job.started else f"{label}: waiting for another export…"
        st.progress(job.progress, text=text)
        return
    if job.error:
        st.error(f"{label} failed: {FMT.plain(job.error[-300:])}", icon=":material/error:")
        if st.button(f"Try {label} again", key=f"retry-{fmt}", width="stretch"):
            jobs.drop(key)
            make()
            st.rerun()
        return
    st.download_button(f"Download {label}", data=_read_bytes(job.path), file_name=job.file_name, mime=mime,
                       key=f"dl-{fmt}", on_click="ignore", type="primary", icon=":material/download:",
                       width="stretch", help=job.file_name)


def _export_keys(study: str, rec: TrialRecord, color_by: str, highlight: str | None) -> dict[str, tuple]:
    url = state.storage_url()
    return {fmt: (url, study, rec.number, fmt, color_by, highlight) for fmt in EXPORTS}


def _rendering(keys: dict[str, tuple]) -> bool:
    return EJ.jobs().running(list(keys.values()))


def render_exports(study: str, rec: TrialRecord, arch: ArchitectureVisualization, color_by: str,
                   highlight: str | None, declared_live: bool) -> None:
    """The rendered exports (a fragment that refreshes itself only while one renders)."""
    jobs = EJ.jobs()
    keys = _export_keys(study, rec, color_by, highlight)
    if _rendering(keys) != declared_live:
        st.rerun()  # a full rerun redeclares this fragment with (or without) its refresh
    caption = caption_of(study, rec)

    def maker(fmt: str) -> Callable[[], EJ.ExportJob]:
        def make() -> EJ.ExportJob:
            name = export_filename(study, rec.number, METRIC, rec.val_accuracy, EXPORTS[fmt][1])
            return jobs.start(keys[fmt], fmt, name, EXPORTS[fmt][2],
                              EJ.exporter(fmt, arch, color_by, highlight, caption,
                                          f"HPO Studio — {study} trial {rec.number}"))

        return make

    for col, fmt in zip(st.columns(len(EXPORTS)), EXPORTS):
        with col:
            render_export_cell(fmt, keys[fmt], maker(fmt))
    st.caption("Pictures and videos show the colouring and highlight chosen above and carry the trial's "
               "metrics as a caption. They render in the background: keep exploring meanwhile.")


def render_downloads(study: str, rec: TrialRecord, arch: ArchitectureVisualization, color_by: str,
                     highlight: str | None) -> None:
    st.subheader("Export")
    c1, c2 = st.columns(2)
    c1.download_button("Architecture (JSON)", data=architecture_json(study, rec, arch, color_by),
                       file_name=export_filename(study, rec.number, METRIC, rec.val_accuracy, "json"),
                       mime="application/json", key="dl-json", on_click="ignore", icon=":material/data_object:",
                       width="stretch", help="Every layer's position, size, parameters and health, with the "
                       "study, trial, metrics and time it was exported.")
    with c2:
        render_model_download(study, rec)
    live = _rendering(_export_keys(study, rec, color_by, highlight))
    st.fragment(render_exports, run_every=EXPORT_POLL_S if live else None)(
        study, rec, arch, color_by, highlight, live)


def render_model_download(study: str, rec: TrialRecord) -> None:
    """The trained ``.keras`` model, or why it is gone."""
    path = artifacts.model_path(rec.result)
    if path is None:
        st.button("Model (.keras)", key="dl-model", disabled=True, icon=":material/download:", width="stretch")
        if rec.result is not None and rec.result.model_path:
            st.caption(f"Trial #{rec.number}'s model file is no longer on disk: the study keeps only its best models "
                       "(keep-best-k) and pruned this one. Its architecture and metrics are still here.")
        else:
            st.caption(f"No model file was saved for trial #{rec.number}. Its architecture and metrics are still here.")
        return
    st.download_button("Model (.keras)", data=_read_bytes(path),
                       file_name=export_filename(study, rec.number, METRIC, rec.val_accuracy, "keras"),
                       mime="application/zip", key="dl-model", on_click="ignore", icon=":material/download:",
                       width="stretch", help="The trained Keras model: keras.models.load_model(path).")


# --------------------------------------------------------------------------- drawing


def render_view(study: str, rec: TrialRecord, best: TrialRecord | None) -> None:
    """The scene, the legend and the layer table for one trial, then its exports."""
    arch = architecture_of(rec)
    res = rec.result
    st.caption(f"val {FMT.fmt_pct(rec.val_accuracy)} · test {FMT.fmt_pct(rec.test_accuracy)} · "
               f"shifted {FMT.fmt_pct(rec.shifted_accuracy)} · "
               f"health {FMT.fmt_score(rec.health_score)} · {FMT.fmt_count(res.param_count if res else None)} params"
               + (" · :orange-badge[:material/trophy: best]" if best is not None and best.number == rec.number else ""))
    if arch is None:
        st.info(f"Trial #{rec.number} was recorded before HPO Studio saved a 3D layout with each trial, so there is "
                "nothing to draw for it. Trials trained from now on have one; to see this network, retrain it "
                "from its reproduce config (Trials → Files).", icon=":material/history:")
        render_model_download(study, rec)
        return
    insight = INSIDE.insight_of(rec)
    example = pick_example(study, rec, insight)
    # A fragment: a colour button, a table selection or a click in the scene reruns only the
    # scene, the table, the layer details and the exports, not the pickers above.
    st.fragment(render_scene_and_table)(study, rec, arch, example.index if example is not None else None)
    if insight is not None and example is not None:
        # Drawn only while open: its charts would otherwise load Plotly's ~4 MB into every new tab
        # before the scene (a trained trial: 4.07 s to a drawn scene instead of 2.57 s, bench/README.md "viewer").
        panel = st.expander(f"Inside the network: every layer for test example #{example.index}",
                            icon=":material/biotech:", key=INSIDE_OPEN, on_change="rerun")
        if panel.open:
            with panel:
                INSIDE.render_inside(insight, example, key=f"inside-{study}-{rec.number}-{example.index}")


def pick_example(study: str, rec: TrialRecord, insight) -> "INSIDE.INS.Example | None":
    """The example whose path through the network is shown: a fixed probe or a misclassified one."""
    if insight is None or not insight.examples:
        st.caption("This trial kept no examples to look inside (trained before HPO Studio recorded them, or its "
                   "folder was removed): the scene and the layers' health figures are all there is.")
        return None
    key = f"viewer-example-{study}-{rec.number}"
    indices = [e.index for e in insight.examples]
    request = st.session_state.get(INSIDE_REQUEST)
    if isinstance(request, dict) and request.get("study") == study and request.get("trial") == rec.number:
        if request.get("example") in indices:
            st.session_state[key] = request["example"]
        st.session_state.pop(INSIDE_REQUEST, None)
    if st.session_state.get(key) not in indices:
        st.session_state[key] = indices[0]
    by_index = {e.index: e for e in insight.examples}
    n_wrong = sum(e.role == "misclassified" for e in insight.examples)
    c1, c2 = st.columns([3, 2], vertical_alignment="top")
    chosen = c1.selectbox("Example to look inside", indices, key=key,
                          format_func=lambda i: INSIDE.example_label(insight, by_index[i]),
                          help=f"{sum(e.role == 'probe' for e in insight.examples)} fixed probe examples (the same test "
                               f"inputs for every trial of this data set) and {n_wrong} of the test examples this model "
                               "got wrong, most confident mistakes first. Select a layer in the table or click it in the "
                               "scene to see what it made of this example.")
    with c2:
        INSIDE.render_example_input(insight, by_index[chosen])
    return by_index[chosen]


def render_scene_and_table(study: str, rec: TrialRecord, arch: ArchitectureVisualization, example: int | None = None) -> None:
    """The scene beside the layer table, the selected layer's details, then the exports of what the scene shows."""
    # The colouring is chosen in the scene's own buttons and switched there; a click on a layer,
    # its label or its table row selects it there too.  Both come back in the component's value,
    # read here before the scene is sent so the arguments agree with what the browser already shows.
    stamp = rec.complete.isoformat() if rec.complete else ""
    key = SC.scene_key(state.storage_url(), study, rec.number, stamp, arch)
    comp_key = f"viewer-scene-{key}"
    colorings = {c["key"] for c in COLORINGS}
    pick = SC.scene_pick(st.session_state.get(comp_key), st.session_state.get(_SEL_COLOR, "health"), colorings)
    # A new pick (a click in the scene or its table) selects its layer; the selection is kept
    # per trial for this tab, also across screens.
    seen = dict(st.session_state.get(_SEEN_PICKS) or {})
    layers = dict(st.session_state.get(_SEL_LAYER) or {})
    here = (study, rec.number)
    if pick.picks > seen.get(key, 0):
        layers[here] = pick.layer if pick.layer is None or arch.layer(pick.layer) else None
        seen[key] = pick.picks
    st.session_state[_SEEN_PICKS], st.session_state[_SEL_LAYER] = seen, layers
    highlight = layers.get(here)
    if highlight is not None and arch.layer(highlight) is None:
        highlight = None
    with st.container(key="viewer-scene"):
        color_by = SC.render_scene(key=comp_key, scene=key, arch=arch, meta_scene=SC.scene_files(key, arch),
                                   color_by=pick.color_by, highlight=highlight, colorings=COLORINGS,
                                   height=SCENE_HEIGHT, table=table_of(arch)).color_by
    st.session_state[_SEL_COLOR] = color_by
    st.caption("Drag to rotate · scroll to zoom · shift+drag to pan · click a layer or its row to select it"
               + (f" · selected: **{FMT.plain(arch.layer(highlight).name)}**" if highlight else ""))
    if highlight is None:
        st.caption("Click a layer in the scene, or its row in the table, to outline it and see its details here.")
    else:
        with st.container(key="viewer-layer-details"):
            insight = INSIDE.insight_of(rec)
            ex = INSIDE.example_by_index(insight, example) if insight is not None else None
            INSIDE.render_layer_details(arch.layer(highlight), insight, ex,
                                        key=f"details-{study}-{rec.number}-{highlight}-{example}")
    render_downloads(study, rec, arch, color_by, highlight)


# --------------------------------------------------------------------------- page


def watch_study(name: str, shown: int | None, numbers: list[int], follow: bool) -> None:
    """While the study runs: rerun the page when the trial list or (when followed) the best one changes."""
    summary = state.study_summary(name)
    try:
        records = state.read_records(name)
    except KeyError:
        return
    done = [r.number for r in records if r.state == "COMPLETE" and r.result is not None]
    best = best_record(records, summary.config if summary else None)
    running = state.is_running(name, summary)
    if not running or done != numbers or (follow and best is not None and best.number != shown):
        st.rerun()
    st.caption(f":blue-badge[live] the study is running; checking for new trials every {FMT.LIVE_INTERVAL_S:.0f} s"
               + (" and switching to a better one as it appears" if follow else ""))


def _follow_best_changed(name: str, best_number: int | None) -> None:
    if st.session_state.get(f"viewer-follow-{name}") and best_number is not None:
        st.session_state[f"viewer-trial-{name}"] = best_number


def _trial_changed(name: str, best_number: int | None) -> None:
    # Picking another trial by hand means "show me this one": stop following the best.
    if st.session_state.get(f"viewer-trial-{name}") != best_number:
        st.session_state[f"viewer-follow-{name}"] = False


def pick_trial(name: str, done: list[TrialRecord], best: TrialRecord | None) -> TrialRecord:
    """Trial picker and "follow best" toggle; the choice is kept for this tab across screens."""
    by_number = {r.number: r for r in done}
    numbers = list(by_number)
    best_number = best.number if best is not None and best.number in by_number else None
    fkey, tkey = f"viewer-follow-{name}", f"viewer-trial-{name}"
    remembered = state.selected_trial(name)
    if fkey not in st.session_state:
        # Follow unless this tab chose another trial elsewhere (e.g. on the Health screen).
        st.session_state[fkey] = remembered not in by_number or remembered == best_number
    follow = bool(st.session_state[fkey]) and best_number is not None
    if follow:
        st.session_state[tkey] = best_number
    elif st.session_state.get(tkey) not in by_number:
        fallback = best_number if best_number is not None else numbers[-1]
        st.session_state[tkey] = remembered if remembered in by_number else fallback
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    chosen = c1.selectbox("Trial", numbers, key=tkey, format_func=lambda n: FMT.trial_label(by_number[n], best),
                          on_change=_trial_changed, args=(name, best_number),
                          help="Complete trials only: a trial's network is recorded when it completes.")
    c2.toggle("Follow the best trial", key=fkey, on_change=_follow_best_changed, args=(name, best_number),
              help="Show the best trial under the study's mode, and switch when the study finds a better one.")
    state.select_trial(name, chosen)
    return by_number[chosen]


def main() -> None:
    st.title("3D network viewer")
    request = st.session_state.get(INSIDE_REQUEST)
    if isinstance(request, dict) and isinstance(request.get("study"), str):
        # "Look inside" on the Health screen: this study, this trial (not the best), this example
        state.select_study(request["study"])
        state.select_trial(request["study"], request.get("trial"))
        st.session_state[f"viewer-follow-{request['study']}"] = False
        st.session_state.pop(f"viewer-trial-{request['study']}", None)
    summary = W.pick_study("viewer-study")
    if summary is None:
        return
    name = summary.name
    records = W.read_records_or_note(name)
    if records is None:
        return
    running = state.is_running(name, summary)
    best = best_record(records, summary.config)
    done = [r for r in records if r.state == "COMPLETE" and r.result is not None]
    if not done:
        st.info(f"Study **{FMT.plain(name)}** has no complete trial yet. A trial's network is drawn here once it completes"
                + (": this page updates by itself while the study runs." if running else "."),
                icon=":material/view_in_ar:")
        W.nav_link(PAGE_TRIALS, "Watch the trials", ":material/grid_view:")
        if running:
            st.fragment(watch_study, run_every=FMT.LIVE_INTERVAL_S)(name, None, [], False)
        return
    rec = pick_trial(name, done, best)
    if running:
        follow = bool(st.session_state.get(f"viewer-follow-{name}"))
        st.fragment(watch_study, run_every=FMT.LIVE_INTERVAL_S)(name, rec.number, [r.number for r in done], follow)
    render_view(name, rec, best)


main()
