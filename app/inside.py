"""Inside the network: what one trial's model did with one example (issue 14).

Everything here is drawn from the trial's ``insight.npz`` (``core.insight``), written at
training time, so the UI never imports TensorFlow.  Pure builders (pictures as numpy/PIL
images, Plotly figures) come first and are tested on their own; the ``render_*`` functions
put them on a screen (the 3D viewer's layer details and its "inside the network" panel).

Dead and saturated units are the ones ``core.health`` counted for neuron utilisation (same
definition, same held-out probe batch): the marks here and the health figures always agree.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import streamlit as st

from app import PAGE_VIEWER
from app import format as FMT
from app import widgets as W
from core import artifacts
from core import insight as INS

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from core.architecture import LayerVisualization
    from core.study import TrialRecord

# viridis at 6 stops: dark = low, yellow = high; readable in print and for most colour-blind users
_VIRIDIS = np.array([[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]], float)
DEAD_RGB = (224, 49, 49)  # the app's red (app.format.PLOT_COLOR["FAIL"])
SATURATED_RGB = (245, 159, 0)  # the app's orange
LIVE_RGB = (28, 126, 214)  # the app's blue
TRUE_RGB, WRONG_RGB = "#2f9e44", "#e03131"
TILE = 56  # px of one feature map or filter in a grid
MAX_DENSE_BARS = 512  # a dense layer wider than this is drawn as its first 512 units


# --------------------------------------------------------------------------- loading


REQUEST = "inside"  # session key: {"study", "trial", "example"} the 3D viewer opens on (look_inside)


def insight_path(rec: "TrialRecord") -> Path | None:
    """The trial's insight file (``core.artifacts.insight_path``), or None when it has none."""
    return artifacts.insight_path(rec.result)


@st.cache_data(show_spinner=False, max_entries=32)
def _load(path: str, stamp: float) -> INS.Insight | None:  # noqa: ARG001 - stamp: a rewritten file is read again
    return INS.load(Path(path))


def insight_of(rec: "TrialRecord") -> INS.Insight | None:
    """The trial's insight, or None (older trials, failed or pruned ones, a deleted folder)."""
    path = insight_path(rec)
    if path is None:
        return None
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    return _load(str(path), stamp)


def look_inside(study: str, trial: int, example: int) -> None:
    """Open the 3D viewer on this trial with this test example chosen (the viewer reads ``REQUEST``)."""
    st.session_state[REQUEST] = {"study": study, "trial": trial, "example": example}
    W.go_to(PAGE_VIEWER)


# --------------------------------------------------------------------------- labels


def class_name(ins: INS.Insight, k: int) -> str:
    return ins.class_names[k] if 0 <= k < len(ins.class_names) else str(k)


def example_label(ins: INS.Insight, ex: INS.Example) -> str:
    """One line for a picker: which example, its true class and what the model said."""
    said = f"{class_name(ins, ex.predicted)} ({ex.confidence:.0%})"
    if ex.correct:
        return f"probe #{ex.index}: {class_name(ins, ex.true)}, predicted {said}"
    kind = "probe" if ex.role == "probe" else "misclassified"
    return f"{kind} #{ex.index}: {class_name(ins, ex.true)}, predicted {said}"


def example_by_index(ins: INS.Insight, index: int | None) -> INS.Example | None:
    return next((e for e in ins.examples if e.index == index), None) if index is not None else None


# --------------------------------------------------------------------------- pictures (pure)


def colormap(values: np.ndarray) -> np.ndarray:
    """uint8 RGB of values in [0, 1] (viridis)."""
    v = np.clip(np.nan_to_num(np.asarray(values, float)), 0.0, 1.0) * (len(_VIRIDIS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_VIRIDIS) - 2)
    t = (v - lo)[..., None]
    return (_VIRIDIS[lo] * (1 - t) + _VIRIDIS[lo + 1] * t).round().astype(np.uint8)


def enlarged(image: np.ndarray, px: int = 168) -> np.ndarray:
    """A small image scaled up by a whole factor with square pixels (an 8×8 digit stays readable), RGB uint8."""
    img = np.asarray(image).astype(np.uint8)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    factor = max(1, px // max(1, max(img.shape[:2])))
    img = np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)
    return np.stack([img] * 3, axis=-1) if img.ndim == 2 else img


def input_picture(ex: INS.Example, size: int = 168) -> np.ndarray | None:
    """The example's image as :func:`enlarged` draws it; None for a text."""
    return None if ex.image is None else enlarged(ex.image, size)


def _frame(tile: np.ndarray, rgb: tuple[int, int, int], width: int = 3) -> np.ndarray:
    out = tile.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = rgb, rgb, rgb, rgb
    return out


def tile_grid(maps: np.ndarray, dead: Sequence[bool] = (), saturated: Sequence[bool] = (), *,
              tile: int = TILE, cols: int = 8, shared_scale: bool = True) -> np.ndarray:
    """A grid of 2-D maps (H, W, n) as one RGB picture; dead maps framed red, saturated orange.

    With ``shared_scale`` every map uses the layer's range, so a weak map looks dark next to a
    strong one (as it is); otherwise each map is stretched to its own range (filters).
    """
    from PIL import Image

    maps = np.asarray(maps, float)
    n = maps.shape[-1]
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    gap = 4
    out = np.full((rows * (tile + gap) - gap, cols * (tile + gap) - gap, 3), 255, np.uint8)
    lo_all, hi_all = float(np.nanmin(maps)), float(np.nanmax(maps))
    for i in range(n):
        m = maps[..., i]
        lo, hi = (lo_all, hi_all) if shared_scale else (float(np.nanmin(m)), float(np.nanmax(m)))
        scaled = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        pic = Image.fromarray(colormap(scaled)).resize((tile, tile), Image.NEAREST)
        t = np.asarray(pic)
        if i < len(dead) and dead[i]:
            t = _frame(t, DEAD_RGB)
        elif i < len(saturated) and saturated[i]:
            t = _frame(t, SATURATED_RGB)
        r, c = divmod(i, cols)
        out[r * (tile + gap): r * (tile + gap) + tile, c * (tile + gap): c * (tile + gap) + tile] = t
    return out


def filter_grid(filters: np.ndarray, tile: int = 40) -> np.ndarray:
    """The first conv layer's kernels (kh, kw, in, out): RGB kernels as colour, else their mean over inputs."""
    from PIL import Image

    f = np.asarray(filters, float)
    n = f.shape[-1]
    cols = min(8, n)
    rows = math.ceil(n / cols)
    gap = 3
    out = np.full((rows * (tile + gap) - gap, cols * (tile + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        k = f[..., i]
        if k.shape[-1] == 3:  # an RGB input: show what colour pattern the filter responds to
            lo, hi = float(k.min()), float(k.max())
            rgb = ((k - lo) / (hi - lo) if hi > lo else np.zeros_like(k)) * 255
            t = np.asarray(Image.fromarray(rgb.astype(np.uint8)).resize((tile, tile), Image.NEAREST))
        else:
            m = k.mean(axis=-1)
            lo, hi = float(m.min()), float(m.max())
            t = np.asarray(Image.fromarray(colormap((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)))
                           .resize((tile, tile), Image.NEAREST))
        r, c = divmod(i, cols)
        out[r * (tile + gap): r * (tile + gap) + tile, c * (tile + gap): c * (tile + gap) + tile] = t
    return out


def png(picture: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- figures (pure)


def unit_colors(n: int, dead: Sequence[bool], saturated: Sequence[bool]) -> list[str]:
    def hexc(rgb):
        return "#%02x%02x%02x" % rgb

    return [hexc(DEAD_RGB) if i < len(dead) and dead[i] else hexc(SATURATED_RGB) if i < len(saturated) and saturated[i]
            else hexc(LIVE_RGB) for i in range(n)]


def probs_figure(ins: INS.Insight, ex: INS.Example, top: int = 10) -> "go.Figure":
    """The model's output probabilities for the example: the true class green, a wrong prediction red."""
    import plotly.graph_objects as go

    order = np.argsort(-ex.probs)[:top]
    order = order if ex.true in order else np.append(order[: top - 1], ex.true)
    names = [class_name(ins, int(k)) for k in order]
    colors = [TRUE_RGB if k == ex.true else WRONG_RGB if k == ex.predicted else "#adb5bd" for k in order]
    fig = go.Figure(go.Bar(x=[float(ex.probs[k]) for k in order], y=names, orientation="h", marker_color=colors,
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(height=max(160, 22 * len(order) + 50), margin=dict(l=8, r=8, t=28, b=8),
                      title=dict(text="Output probabilities", font=dict(size=14)),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed", type="category"))
    return fig


def dense_figure(values: np.ndarray, dead: Sequence[bool], saturated: Sequence[bool], name: str) -> "go.Figure":
    """One bar per unit (its output for the example); dead units red, saturated orange."""
    import plotly.graph_objects as go

    v = np.asarray(values, float)[:MAX_DENSE_BARS]
    fig = go.Figure(go.Bar(x=list(range(len(v))), y=v, marker_color=unit_colors(len(v), dead, saturated),
                           marker_line_width=0, hovertemplate="unit %{x}: %{y:.3g}<extra></extra>"))
    fig.update_layout(height=220, margin=dict(l=8, r=8, t=28, b=8), bargap=0.05,
                      title=dict(text=f"{name}: each unit's output", font=dict(size=14)),
                      xaxis=dict(title="unit"), yaxis=dict(title="output"))
    return fig


def sequence_figure(states: np.ndarray, words: Sequence[str], dead: Sequence[bool], name: str) -> "go.Figure":
    """An LSTM's hidden state over the tokens (one row per word), with the units that never change marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = np.asarray(states, float)
    n_tok, n_units = s.shape
    labels = [f"{i + 1}. {w}" for i, w in enumerate(list(words)[-n_tok:])] if words else [str(i + 1) for i in range(n_tok)]
    if len(labels) < n_tok:
        labels = [str(i + 1) for i in range(n_tok - len(labels))] + labels
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.92, 0.08], vertical_spacing=0.02)
    fig.add_trace(go.Heatmap(z=s, y=labels, x=list(range(n_units)), colorscale="RdBu", zmid=0, zmin=-1, zmax=1,
                             colorbar=dict(title="state", len=0.8, y=0.55),
                             hovertemplate="%{y}<br>unit %{x}: %{z:.3f}<extra></extra>"), row=1, col=1)
    mask = np.array([[1.0 if i < len(dead) and dead[i] else 0.0 for i in range(n_units)]])
    fig.add_trace(go.Heatmap(z=mask, y=["never changes"], x=list(range(n_units)), showscale=False,
                             colorscale=[[0, "#e9ecef"], [1, WRONG_RGB]], zmin=0, zmax=1,
                             hovertemplate="unit %{x}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_xaxes(title_text="unit", row=2, col=1)
    fig.update_layout(height=min(720, max(260, 16 * n_tok + 90)), margin=dict(l=8, r=8, t=28, b=8),
                      title=dict(text=f"{name}: hidden state over the words", font=dict(size=14)))
    return fig


# --------------------------------------------------------------------------- words


def layer_caption(lay: INS.LayerInsight) -> str:
    """How many units are dead or saturated, with what "dead" means for this activation (core.health's words)."""
    n_dead, n_sat = int(np.count_nonzero(lay.dead)), int(np.count_nonzero(lay.saturated & ~lay.dead))
    what = "channels" if lay.layer_type == "conv2d" else "units"
    parts = [f"**{n_dead} of {lay.units} {what} dead** (red): they {lay.dead_label}"]
    if n_sat:
        parts.append(f"{n_sat} more saturated (orange) on most held-out inputs")
    return "; ".join(parts) + ". Measured on held-out data, as the health score's neuron utilisation is."


# --------------------------------------------------------------------------- rendering


def render_example_input(ins: INS.Insight, ex: INS.Example) -> None:
    """The example as the model saw it (an image, or its words), its true class and the prediction."""
    verdict = (f":green[correct]: {FMT.plain(class_name(ins, ex.true))}" if ex.correct else
               f":red[wrong]: true **{FMT.plain(class_name(ins, ex.true))}**, predicted "
               f"**{FMT.plain(class_name(ins, ex.predicted))}**")
    st.markdown(f"Test example #{ex.index} · {verdict} ({ex.confidence:.0%} sure)")
    pic = input_picture(ex)
    if pic is not None:
        st.image(pic, width=min(168, pic.shape[1]), output_format="PNG")
    elif ex.words is not None:
        st.markdown("> " + FMT.plain(" ".join(ex.words), limit=600))


def render_layer_outputs(ins: INS.Insight, ex: INS.Example, name: str, *, key: str) -> bool:
    """One unit layer's output for the example (feature maps, unit bars or hidden states); False when none was kept."""
    lay = ins.layer(name)
    out = ex.activations.get(name)
    if lay is None or out is None:
        return False
    if lay.layer_type == "conv2d":
        n = out.shape[-1]
        st.image(tile_grid(out, lay.dead[:n], lay.saturated[:n]), output_format="PNG",
                 caption=f"{name}: feature maps for this example ({n} of {lay.units} channels; brighter = stronger)")
    elif lay.layer_type == "dense":
        st.plotly_chart(dense_figure(out, lay.dead, lay.saturated, name), key=f"{key}-dense", width="stretch",
                        config={"displayModeBar": False})
    else:
        st.plotly_chart(sequence_figure(out, ex.words or [], lay.dead, name), key=f"{key}-seq", width="stretch",
                        config={"displayModeBar": False})
    st.caption(layer_caption(lay))
    return True


def render_layer_details(lay: "LayerVisualization", ins: INS.Insight | None, ex: INS.Example | None, *, key: str) -> None:
    """Under the scene: the selected layer's shape, parameters, health figures and its output for the example."""
    shape = "×".join("?" if s is None else str(s) for s in (lay.output_shape or ())) or "–"
    facts = [f"**{FMT.plain(lay.name or lay.layer_id)}** · {FMT.plain(lay.layer_type)}", f"output {shape}",
             f"{lay.parameters:,} parameters"]
    kept = ins.layer(lay.name) if ins is not None else None
    # a conv or dense layer's own activation is linear when a separate activation layer follows it
    # (batch norm sits between): the one that fires is the one health measured
    activation = kept.activation if kept is not None else lay.activation
    if activation:
        facts.append(f"activation {FMT.plain(activation)}")
    if lay.dead_fraction is not None:
        facts.append(f"{lay.dead_fraction:.0%} dead")
    if lay.gradient_score is not None:
        facts.append(f"gradient health {lay.gradient_score:.2f}")
    if lay.update_ratio is not None:
        facts.append(f"update/step {lay.update_ratio:.1e}")
    st.markdown(" · ".join(facts))
    if ins is None or ex is None:
        return
    if not render_layer_outputs(ins, ex, lay.name, key=key):
        st.caption("Outputs are kept for the layers with units (conv, dense, LSTM); pick one of those to see what "
                   "it made of this example.")


def render_inside(ins: INS.Insight, ex: INS.Example, *, key: str) -> None:
    """Every kept layer's output for the example, input to output, then the first conv layer's filters."""
    st.plotly_chart(probs_figure(ins, ex), key=f"{key}-probs", width="stretch", config={"displayModeBar": False})
    for lay in ins.layers:
        render_layer_outputs(ins, ex, lay.name, key=f"{key}-{lay.name}")
    if ins.filters is not None:
        n = ins.filters.shape[-1]
        st.image(filter_grid(ins.filters), output_format="PNG",
                 caption=f"{ins.filters_layer}: the {n} learned filters of the first conv layer "
                         f"({ins.filters.shape[0]}×{ins.filters.shape[1]} pixels each"
                         + (", in colour" if ins.filters.shape[2] == 3 else ", averaged over input channels"
                            if ins.filters.shape[2] > 1 else "") + "): the patterns it looks for.")
