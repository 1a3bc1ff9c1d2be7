"""The 3D picture of a network: a PyVista scene from an :class:`ArchitectureVisualization`.

:func:`build_scene` makes an off-screen ``pyvista.Plotter`` with one mesh per layer (named by the
layer's ``layer_id``), the connections between consecutive layers, 3D text labels and a 3D colour
legend.  Everything in it is a mesh, on purpose: 2D actors (point labels, scalar bars, corner text)
do not reach the browser through the vtk.js export that stpyvista and :func:`export_html` use.

Exports: :func:`export_png`, :func:`export_gif`, :func:`export_mp4` (an orbit around the network)
and :func:`export_html` (one self-contained HTML file with vtk.js inlined: it works offline, no CDN).
:func:`scene_vtksz` / :func:`scene_html` give the same vtk.js scene as bytes / text, and
:func:`browser_scene` the app viewer's scene (every colouring travels with it; labels and legend
are drawn by the viewer in HTML).

Processes and GL (measured here: TF 2.21, VTK 9.7, Debian 12 Mesa):

* TensorFlow and Mesa's llvmpipe cannot share a process: drawing with llvmpipe after
  ``import tensorflow`` segfaults, and so does ``import tensorflow`` once Mesa is loaded (merely
  creating an EGL/OSMesa render window loads it).
* So :func:`build_scene` defaults to a GL-free plotter (``vtkGenericOpenGLRenderWindow``): building
  and serialising the browser scene (:func:`scene_vtksz`, :func:`scene_html`,
  :func:`export_html`) never loads Mesa, in any process.
* Raster exports (PNG/GIF/MP4) need pixels; by default they run in a child Python process that
  never imports TensorFlow (``isolate=True``), started with ``sys.executable``.

PyVista is imported lazily (see :func:`_pv`), after ``VTK_DEFAULT_OPENGL_WINDOW`` is set to
``vtkEGLRenderWindow`` when the caller has not chosen one: Mesa's EGL renders off screen without
an X server.  :func:`export_filename` needs no VTK at all.

Coordinates are those of ``core.architecture``: the network runs along +z, y is up; the default
camera looks from the -x side so the input is on the left and the output on the right.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from core.architecture import (
    RECURRENT_TYPES,
    ArchitectureVisualization,
    LayerVisualization,
    score_color,
)

if TYPE_CHECKING:  # pragma: no cover
    import pyvista

__all__ = [
    "COLOR_BY",
    "build_scene",
    "layer_value",
    "export_png",
    "export_gif",
    "export_mp4",
    "export_html",
    "scene_vtksz",
    "scene_html",
    "browser_scene",
    "viewer_script",
    "export_filename",
]

COLOR_BY = ("performance", "health", "dead_units", "gradient_norm")
Progress = Callable[[float], None]

BACKGROUND = "#f7f9fc"
TEXT_COLOR = "#263238"
CONNECTION_COLOR = "#90a4ae"
CONNECTION_OPACITY = 0.8
HIGHLIGHT_COLOR = "#00b8d4"  # cyan: outside the red-amber-green scale, so it never reads as a score
UNKNOWN_COLOR = "#9e9e9e"


def faded(color: str, opacity: float, background: str | None = None) -> str:
    """``color`` as it looks drawn with ``opacity`` over ``background`` (default :data:`BACKGROUND`).

    The browser scene is drawn opaque with these colours (:func:`build_scene`'s ``opaque``);
    the viewer's JavaScript fades the same way when it restyles (``scene.js``, ``faded``).
    """
    bg = (background or BACKGROUND).lstrip("#")
    fg = color.lstrip("#")
    a = min(1.0, max(0.0, float(opacity)))
    mixed = [round(int(fg[i:i + 2], 16) * a + int(bg[i:i + 2], 16) * (1 - a)) for i in (0, 2, 4)]
    return "#" + "".join(f"{c:02x}" for c in mixed)


# What the legend says at each end of the 0..1 scale, per colouring.
_LEGEND = {
    "performance": ("accuracy", "0%", "100%"),
    "health": ("layer health", "0", "1"),
    "dead_units": ("dead units", "100%", "0%"),
    "gradient_norm": ("gradient health", "stalled/exploding", "healthy"),
}

# One scene at a time in this process, from build_scene to the plotter's close.  VTK and trame's
# serializers are not thread-safe: the app builds scenes in several threads (each tab's viewer, an
# HTML export, the server's head start), and four browser_scene calls at once deadlocked within a
# few tries; even the main thread's join(timeout) never returned, so a server would freeze
# (tests/test_scene.py).
# Re-entrant: browser_scene holds it and scene_vtksz takes it again.
SCENE_LOCK = threading.RLock()
_WINDOW_LOCK = threading.Lock()  # guards the brief swap of pyvista's render-window class

_WEB_APP: Any = None  # one vtkWebApplication per process, so object ids never repeat across exports
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _pv(raster: bool = False) -> Any:
    """Import pyvista with an off-screen EGL render window unless the caller chose another.

    Args:
        raster: The caller is about to draw pixels.  Mesa's llvmpipe JIT and TensorFlow's bundled
            LLVM crash each other (segfault, measured with TF 2.21 / Mesa 22): when TensorFlow is
            already loaded, switch Mesa to its non-JIT ``softpipe`` driver (slower, but safe)
            unless ``GALLIUM_DRIVER`` is set.  Loading TensorFlow *after* Mesa crashes too; that is
            why the raster exports run in a child process by default.
    """
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    if raster and "tensorflow" in sys.modules:
        os.environ.setdefault("GALLIUM_DRIVER", "softpipe")
    import pyvista as pv

    return pv


@contextlib.contextmanager
def _gl_free_windows() -> Iterator[None]:
    """While active, new plotters get a vtkGenericOpenGLRenderWindow: no GL context, no Mesa.

    Creating an EGL (or OSMesa) window loads Mesa and its LLVM into the process at once, before
    anything is drawn, and a later ``import tensorflow`` then segfaults.  A scene that is only
    serialised for vtk.js never needs GL, so it is built on a window that never touches it.
    """
    from pyvista import _vtk
    from vtkmodules.vtkRenderingOpenGL2 import vtkGenericOpenGLRenderWindow

    with _WINDOW_LOCK, warnings.catch_warnings():
        # pyvista warns "no xserver, will likely segfault when rendering": this window never renders
        warnings.filterwarnings("ignore", message=r"(?s).*xserver", category=UserWarning)
        original = _vtk.vtkRenderWindow
        _vtk.vtkRenderWindow = vtkGenericOpenGLRenderWindow
        try:
            yield
        finally:
            _vtk.vtkRenderWindow = original


# --------------------------------------------------------------------------- colours


def layer_value(layer: LayerVisualization, arch: ArchitectureVisualization, color_by: str) -> float | None:
    """The 0..1 value (1 = good) a layer is coloured by, or None when it was not measured.

    Args:
        layer: The layer.
        arch: Its architecture (for the model-wide scores).
        color_by: ``performance`` (the model's accuracy, every layer alike), ``health`` (the
            layer's ``color_intensity``: its own health when measured, else the model's
            performance), ``dead_units`` (``1 - dead_fraction``) or ``gradient_norm`` (the
            layer's gradient health, ``core.health.layer_gradient_scores``).
    """
    if color_by == "performance":
        return arch.performance_score
    if color_by == "health":
        return layer.color_intensity
    if color_by == "dead_units":
        return None if layer.dead_fraction is None else 1.0 - min(1.0, max(0.0, layer.dead_fraction))
    if color_by == "gradient_norm":
        return layer.gradient_score
    raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)} (got {color_by!r})")


# --------------------------------------------------------------------------- meshes


def _append(meshes: Sequence[Any]) -> Any:
    first, *rest = meshes
    return first.append_polydata(*rest) if rest else first


def _box(pv: Any, w: float, h: float, d: float, z: float, level: int = 0, y: float = 0.0) -> Any:
    return pv.Box(bounds=(-w / 2, w / 2, y - h / 2, y + h / 2, z - d / 2, z + d / 2), level=level)


def _frustum(pv: Any, front: tuple[float, float], back: tuple[float, float], z: float, d: float) -> Any:
    """A square funnel from a ``front`` (w, h) face to a ``back`` one: pooling shrinks the map."""
    import numpy as np

    (fw, fh), (bw, bh) = front, back
    z0, z1 = z - d / 2, z + d / 2
    points = np.array(
        [
            [-fw / 2, -fh / 2, z0], [fw / 2, -fh / 2, z0], [fw / 2, fh / 2, z0], [-fw / 2, fh / 2, z0],
            [-bw / 2, -bh / 2, z1], [bw / 2, -bh / 2, z1], [bw / 2, bh / 2, z1], [-bw / 2, bh / 2, z1],
        ]
    )
    faces = np.array(
        [4, 3, 2, 1, 0, 4, 4, 5, 6, 7, 4, 0, 1, 5, 4, 4, 1, 2, 6, 5, 4, 2, 3, 7, 6, 4, 3, 0, 4, 7]
    )
    return pv.PolyData(points, faces)


def _cells(pv: Any, lay: LayerVisualization) -> Any:
    """Recurrent layer: a stack of cylinder 'cells' per direction (two stacks if bidirectional)."""
    k = int(min(8, max(2, round(math.log2(max(2, lay.units or 4))))))
    cell_h = lay.height / (k * 1.35)
    dirs = lay.directions
    stack_d = lay.depth / dirs
    unit = pv.Cylinder(center=(0, 0, 0), direction=(0, 1, 0), radius=0.5, height=1.0, resolution=24)
    parts = []
    for j in range(dirs):
        zc = lay.position_z - lay.depth / 2 + stack_d * (j + 0.5)
        for i in range(k):
            y = -lay.height / 2 + cell_h / 2 + i * (lay.height - cell_h) / max(1, k - 1)
            parts.append(unit.scale([lay.width, cell_h, stack_d * 0.85], inplace=False).translate((0, y, zc)))
    return _append(parts)


def _layer_mesh(pv: Any, lay: LayerVisualization, prev: LayerVisualization | None) -> tuple[Any, dict[str, Any]]:
    """(mesh, add_mesh options) for one layer, its shape chosen by type so kinds read apart."""
    w, h, d, z = lay.width, lay.height, lay.depth, lay.position_z
    t = lay.layer_type
    if t == "conv":
        # a stack of feature-map slabs along z; more filters, more (and a deeper stack of) slabs
        n = int(min(8, max(2, round(math.log2(max(2, lay.filters or 8))) - 1)))
        slab = d / (n + (n - 1) * 0.6)
        parts = [_box(pv, w, h, slab, z - d / 2 + slab / 2 + i * slab * 1.6) for i in range(n)]
        return _append(parts), {}
    if t == "pooling":
        front = (max(w, prev.width), max(h, prev.height)) if prev else (w * 1.4, h * 1.4)
        return _frustum(pv, front, (w, h), z, d), {}
    if t == "global_pooling":
        radius = 0.5 * max(prev.width, prev.height) if prev else h / 2
        return pv.Cone(center=(0, 0, z), direction=(0, 0, 1), height=d, radius=radius, resolution=24), {}
    if t in RECURRENT_TYPES:
        return _cells(pv, lay), {}
    if t == "embedding":
        return _box(pv, w, h, d, z, level=3), {"show_edges": True, "edge_color": "#37474f"}
    if t == "dropout":
        return _box(pv, w, h, d, z, level=2), {"style": "wireframe", "line_width": 2}
    if t == "normalization":
        disc = pv.Cylinder(center=(0, 0, 0), direction=(0, 0, 1), radius=0.5, height=1.0, resolution=32)
        return disc.scale([w, h, d], inplace=False).translate((0, 0, z)), {}
    if t == "flatten":
        # the tensor unrolled: a column of small cubes
        import numpy as np

        n = int(min(24, max(3, h / 0.35)))
        size = min(w, 0.8 * h / n)
        ys = np.linspace(-h / 2 + size / 2, h / 2 - size / 2, n)
        pts = pv.PolyData(np.column_stack([np.zeros(n), ys, np.full(n, z)]))
        return pts.glyph(geom=pv.Cube(x_length=size, y_length=size, z_length=size), scale=False, orient=False), {}
    if t == "merge":
        return pv.Sphere(radius=w / 2, center=(0, 0, z), theta_resolution=20, phi_resolution=12), {}
    if t == "activation":
        return pv.Octahedron(radius=0.5).scale([w, h, d], inplace=False).translate((0, 0, z)), {}
    if t == "input":
        return _box(pv, w, h, d, z), {"show_edges": True, "edge_color": "#78909c"}
    return _box(pv, w, h, d, z), {}  # dense column, reshape, anything else


def _text(pv: Any, text: str, height: float, x: float, y: float, z: float) -> Any:
    """Text3D reading along +z and facing the default (-x side) camera, centred at (x, y, z)."""
    # depth=0: flat glyphs; extruding them quadruples the triangles (labels would be ~90% of the
    # scene) and the side walls are invisible at label size anyway
    mesh = pv.Text3D(text, depth=0.0, height=height)
    mesh.rotate_y(-90, inplace=True)  # +x reading direction -> +z; normal +z -> -x
    cx, cy, cz = mesh.center
    return mesh.translate((x - cx, y - cy, z - cz), inplace=True)


def _describe(lay: LayerVisualization) -> str:
    shape = "x".join("?" if s is None else str(s) for s in (lay.output_shape or ()))
    t = lay.layer_type
    if t == "conv" and lay.kernel_size:
        return f"conv {'x'.join(map(str, lay.kernel_size))}  {shape}"
    if t in RECURRENT_TYPES and lay.units:
        return f"{t} {lay.units}{' x2' if lay.directions == 2 else ''}"
    if t == "dense" and lay.units:
        return f"dense {lay.units}"
    return f"{t.replace('_', ' ')} {shape}".strip()


def _legend(pv: Any, pl: Any, arch: ArchitectureVisualization, color_by: str, y: float, any_unknown: bool) -> None:
    """A 3D colour bar under the network (a 2D scalar bar would not reach the browser)."""
    title, lo_text, hi_text = _LEGEND[color_by]
    z0 = arch.layers[0].position_z - arch.layers[0].depth / 2
    length = max(4.0, min(10.0, arch.length * 0.4))
    n = 10
    seg = length / n
    bar_h = 0.35
    for i in range(n):
        zc = z0 + seg * (i + 0.5)
        pl.add_mesh(
            _box(pv, 0.05, bar_h, seg, zc, y=y), color=score_color((i + 0.5) / n), name=f"legend:{i}",
            lighting=False, reset_camera=False,
        )
    label_h = 0.3
    parts = [
        _text(pv, title, label_h, 0, y + bar_h / 2 + 0.35, z0 + len(title) * label_h * 0.33),
        _text(pv, lo_text, label_h * 0.8, 0, y - bar_h / 2 - 0.35, z0 + len(lo_text) * label_h * 0.27),
        _text(pv, hi_text, label_h * 0.8, 0, y - bar_h / 2 - 0.35, z0 + length - len(hi_text) * label_h * 0.27),
    ]
    if any_unknown:
        pl.add_mesh(_box(pv, 0.05, bar_h, seg, z0 + length + seg * 1.5, y=y), color=UNKNOWN_COLOR, name="legend:unknown",
                    lighting=False, reset_camera=False)
        parts.append(_text(pv, "not measured", label_h * 0.8, 0, y, z0 + length + seg * 2.2 + 1.6))
    pl.add_mesh(_append(parts), color=TEXT_COLOR, name="legend:text", reset_camera=False)


def build_scene(
    arch: ArchitectureVisualization,
    *,
    color_by: str = "performance",
    highlight: str | None = None,
    show_labels: bool = True,
    window_size: tuple[int, int] = (1024, 640),
    caption: str | None = None,
    raster: bool = False,
    legend: bool = True,
    outlines: bool = False,
    opaque: bool = False,
) -> "pyvista.Plotter":
    """An off-screen plotter showing ``arch``.

    Actor names: each layer's mesh is named by its ``layer_id``; its label ``label:<layer_id>``;
    ``connections`` links consecutive layers; ``legend:*`` is the colour legend; ``highlight`` the
    outline around the highlighted layer; ``caption`` the 3D caption when one is given.

    Args:
        arch: The layout to draw.
        color_by: One of :data:`COLOR_BY`; see :func:`layer_value`.  Layers with no value are grey.
        highlight: ``layer_id`` or Keras name of a layer to emphasise (outlined in cyan, the
            others made more transparent); unknown names raise KeyError.
        show_labels: Draw a name and shape label by each layer.
        window_size: Pixels (width, height) of the off-screen window.
        caption: Text drawn in 3D above the network (e.g. the trial's metrics); None for none.
        raster: False (default): the plotter has no GL context (a vtkGenericOpenGLRenderWindow);
            it is enough for :func:`scene_vtksz` / :func:`scene_html`, i.e. for the browser, and
            safe in a process that has, or will later, import TensorFlow.  True: an EGL off-screen
            window that can take screenshots (see :func:`_pv` for the TensorFlow caveat).
        legend: Draw the 3D colour legend under the network (pictures need it; the app's
            browser view draws its legend in HTML instead).
        outlines: Add a cyan outline actor ``outline:<layer_id>`` around *every* layer, for a
            viewer that shows the highlighted one and hides the rest itself (see
            :func:`browser_scene`).
        opaque: Draw every actor opaque, a see-through layer's colour faded toward the background
            by its opacity instead (:func:`faded`).  A browser then needs no translucent pass: in a
            software-WebGL browser that pass (depth peeling or order-independent translucency, its
            shaders compiled on first use) took ~40 % of the first draw (see :func:`browser_scene`).

    Returns:
        The plotter, camera set to the default three-quarter view.  The caller closes it.  Where
        other threads may build scenes too, build, use and close it under :data:`SCENE_LOCK`
        (:func:`browser_scene` and the exports do).
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)} (got {color_by!r})")
    if not arch.layers:
        raise ValueError("the architecture has no layers to draw")
    pv = _pv(raster=raster)
    import numpy as np

    target = arch.layer(highlight) if highlight else None
    if raster:
        pl = pv.Plotter(off_screen=True, window_size=list(window_size))
    else:
        with _gl_free_windows():
            pl = pv.Plotter(off_screen=True, window_size=list(window_size))
    pl.set_background(BACKGROUND)

    any_unknown = False
    prev: LayerVisualization | None = None
    label_parts: list[tuple[str, Any]] = []
    max_h = arch.max_layer_height
    for i, lay in enumerate(arch.layers):
        mesh, opts = _layer_mesh(pv, lay, prev)
        value = layer_value(lay, arch, color_by)
        any_unknown |= value is None
        opacity = lay.opacity
        if target is not None and lay is not target:
            opacity *= 0.45
        color = score_color(value)
        if opaque:
            color, opacity = faded(color, opacity), 1.0
        pl.add_mesh(mesh, color=color, opacity=opacity, name=lay.layer_id, reset_camera=False, **opts)
        if show_labels:
            big = lay is target
            name_h, sub_h = (0.42, 0.3) if big else (0.32, 0.24)
            above = i % 2 == 0  # alternate above / below so neighbouring labels do not overlap
            x = -lay.width / 2 - 0.05
            if above:  # 0.4 clears the highlight outline (0.15 out) with room to spare
                y_sub = lay.height / 2 + 0.4 + sub_h / 2
                y_name = y_sub + sub_h / 2 + 0.15 + name_h / 2
            else:
                y_name = -lay.height / 2 - 0.4 - name_h / 2
                y_sub = y_name - name_h / 2 - 0.15 - sub_h / 2
            label = _append([_text(pv, lay.name, name_h, x, y_name, lay.position_z),
                             _text(pv, _describe(lay), sub_h, x, y_sub, lay.position_z)])
            label_parts.append((lay.layer_id, label))
        prev = lay

    for layer_id, label in label_parts:
        color = HIGHLIGHT_COLOR if target is not None and layer_id == target.layer_id else TEXT_COLOR
        pl.add_mesh(label, color=color, name=f"label:{layer_id}", reset_camera=False)

    # Connections: a tube between centres plus the four corner lines, which show the size change.
    pieces = []
    for a, b in zip(arch.layers, arch.layers[1:]):
        za, zb = a.position_z + a.depth / 2, b.position_z - b.depth / 2
        pieces.append(pv.Line((0, 0, za), (0, 0, zb)).tube(radius=0.035, n_sides=8))
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            pieces.append(pv.Line((sx * a.width * 0.45, sy * a.height * 0.45, za),
                                  (sx * b.width * 0.45, sy * b.height * 0.45, zb)))
    if pieces:
        pl.add_mesh(_append(pieces), color=faded(CONNECTION_COLOR, CONNECTION_OPACITY) if opaque else CONNECTION_COLOR,
                    line_width=1.5, opacity=1.0 if opaque else CONNECTION_OPACITY, name="connections",
                    reset_camera=False)

    if target is not None:
        pl.add_mesh(_outline(pv, target), color=HIGHLIGHT_COLOR, name="highlight", reset_camera=False)
    if outlines:
        for lay in arch.layers:
            pl.add_mesh(_outline(pv, lay), color=HIGHLIGHT_COLOR, name=f"outline:{lay.layer_id}", reset_camera=False)

    if legend:
        legend_y = -max_h / 2 - 3.0  # below the lower labels
        _legend(pv, pl, arch, color_by, legend_y, any_unknown)

    if caption:
        z_mid = (arch.layers[0].position_z + arch.layers[-1].position_z) / 2
        lines = caption.splitlines()[:3]
        parts = [_text(pv, line, 0.5, 0, max_h / 2 + 1.9 + 0.75 * (len(lines) - 1 - k), z_mid)
                 for k, line in enumerate(lines)]
        pl.add_mesh(_append(parts), color=TEXT_COLOR, name="caption", reset_camera=False)

    _default_camera(pl, np)
    return pl


def _outline(pv: Any, lay: LayerVisualization, pad: float = 0.15) -> Any:
    """Cyan tubes along the edges of a box a little larger than the layer."""
    box = pv.Box(bounds=(-lay.width / 2 - pad, lay.width / 2 + pad, -lay.height / 2 - pad, lay.height / 2 + pad,
                         lay.position_z - lay.depth / 2 - pad, lay.position_z + lay.depth / 2 + pad))
    return box.extract_feature_edges().tube(radius=0.05, n_sides=8)


def _default_camera(pl: Any, np: Any) -> None:
    """Three-quarter view from the -x side, a little above and towards the input, fitted to the scene.

    The distance is solved so every corner of the scene's bounds projects inside the window
    (perspective, the window's aspect ratio), instead of ``reset_camera``'s bounding sphere, which
    leaves a long network as a thin line in the middle.  Only position and focal point are set, not
    the view angle: the vtk.js export keeps the former and drops the latter (so ``zoom`` would be
    lost in the browser).
    """
    xmin, xmax, ymin, ymax, zmin, zmax = pl.bounds
    center = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2, (zmin + zmax) / 2])
    to_camera = np.array([-1.0, 0.5, -0.3])
    to_camera /= np.linalg.norm(to_camera)
    view = -to_camera
    right = np.cross(view, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, view)
    width, height = pl.window_size
    tan_v = math.tan(math.radians(pl.camera.view_angle) / 2)
    tan_h = tan_v * width / max(1, height)
    distance = 1.0
    for x in (xmin, xmax):
        for y in (ymin, ymax):
            for z in (zmin, zmax):
                p = np.array([x, y, z]) - center
                along = float(p @ view)  # > 0: farther than the focal point, so it looks smaller
                distance = max(distance, abs(float(p @ right)) / tan_h - along, abs(float(p @ up)) / tan_v - along)
    distance *= 1.04  # a small margin
    pl.camera.focal_point = center.tolist()
    pl.camera.position = (center + to_camera * distance).tolist()
    pl.camera.up = (0.0, 1.0, 0.0)
    pl.renderer.ResetCameraClippingRange()


# --------------------------------------------------------------------------- raster exports


def _report(progress: Progress | None, fraction: float) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)))


def _raster_plotter(arch: ArchitectureVisualization, size: tuple[int, int], color_by: str,
                    caption: str | None, highlight: str | None) -> Any:
    pl = build_scene(arch, color_by=color_by, highlight=highlight, window_size=size, raster=True)
    if caption:
        # 2D text is fine here: these exports are pictures, not the browser scene
        pl.add_text(caption, position="upper_left", font_size=max(8, int(size[1] / 48)), color=TEXT_COLOR,
                    name="caption2d")
    # MSAA: FXAA is not supported on EGL/OSMesa builds (VTK falls back to 4x-slower SSAA)
    pl.enable_anti_aliasing("msaa", multi_samples=4)
    return pl


def _render_png(arch: ArchitectureVisualization, path: Path, *, size: tuple[int, int], color_by: str,
                caption: str | None, highlight: str | None, progress: Progress | None) -> None:
    pl = _raster_plotter(arch, size, color_by, caption, highlight)
    try:
        _report(progress, 0.5)
        pl.screenshot(str(path))
    finally:
        pl.close()


def _render_orbit(arch: ArchitectureVisualization, path: Path, *, fmt: str, frames: int, size: tuple[int, int],
                  fps: float, color_by: str, caption: str | None, highlight: str | None,
                  progress: Progress | None) -> None:
    """Write ``frames`` frames of one full turn around the network's vertical axis."""
    import numpy as np

    pl = _raster_plotter(arch, size, color_by, caption, highlight)
    try:
        if fmt == "gif":
            pl.open_gif(str(path), fps=fps, loop=0)
        else:
            # yuv420p plays everywhere (browsers, QuickTime); sizes are already multiples of 8;
            # x264 "veryfast" encodes ~2x faster than the default preset at a similar size here
            pl.open_movie(str(path), framerate=fps, quality=7, macro_block_size=8, pixelformat="yuv420p",
                          ffmpeg_params=["-preset", "veryfast"])
        focal = np.array(pl.camera.focal_point)
        offset = np.array(pl.camera.position) - focal
        _report(progress, 0.1)
        for i in range(frames):
            # rotate about the world y axis through the focal point: no wobble from a tilted
            # view-up, and frame 0 is the default view
            a = 2 * math.pi * i / frames
            rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
            pl.camera.position = (focal + rot @ offset).tolist()
            pl.camera.up = (0.0, 1.0, 0.0)
            pl.write_frame()
            _report(progress, 0.1 + 0.9 * (i + 1) / frames)
    finally:
        pl.close()  # also closes the GIF / movie writer


_RENDERERS: dict[str, Callable[..., None]] = {
    "png": _render_png,
    "gif": lambda arch, path, **kw: _render_orbit(arch, path, fmt="gif", **kw),
    "mp4": lambda arch, path, **kw: _render_orbit(arch, path, fmt="mp4", **kw),
}


def _run_isolated(op: str, arch: ArchitectureVisualization, path: Path, options: dict[str, Any],
                  progress: Progress | None, timeout: float | None) -> None:
    """Render in a fresh Python process that never imports TensorFlow (see :func:`_pv`).

    The child reads one JSON job on stdin and prints ``PROGRESS <fraction>`` lines; its stderr goes
    to a temporary file (a pipe could fill up and block it) and is quoted if it fails.
    """
    job = json.dumps({"op": op, "arch": arch.to_dict(), "path": str(path), "options": options})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile(mode="w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", "from core.scene import _child_main; _child_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
            cwd=str(_PROJECT_ROOT),
        )
        timer = threading.Timer(timeout, child.kill) if timeout else None
        if timer:
            timer.start()
        try:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(job)
            child.stdin.close()
            for line in child.stdout:
                if line.startswith("PROGRESS "):
                    try:
                        _report(progress, float(line.split()[1]))
                    except ValueError:
                        pass
            code = child.wait()
        finally:
            if timer:
                timer.cancel()
            if child.poll() is None:
                child.kill()
                child.wait()
        if code != 0:
            err.seek(0)
            tail = err.read()[-2000:]
            raise RuntimeError(f"{op.upper()} export failed in the render process (exit code {code}):\n{tail}")


def _child_main() -> None:
    """Entry point of the render process started by :func:`_run_isolated`."""
    job = json.loads(sys.stdin.read())
    arch = ArchitectureVisualization.from_dict(job["arch"])
    options = dict(job["options"])
    for key in ("size",):
        options[key] = tuple(options[key])
    _RENDERERS[job["op"]](
        arch, Path(job["path"]), progress=lambda f: print(f"PROGRESS {f:.4f}", flush=True), **options
    )


def _export(op: str, arch: ArchitectureVisualization, path: str | Path, options: dict[str, Any],
            progress: Progress | None, isolate: bool, timeout: float | None = None) -> Path:
    if not arch.layers:
        raise ValueError("the architecture has no layers to draw")
    if options["color_by"] not in COLOR_BY:
        raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)} (got {options['color_by']!r})")
    if options.get("highlight"):
        arch.layer(options["highlight"])  # KeyError here, not in the child
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isolate:
        _run_isolated(op, arch, path, options, progress, timeout)
    else:
        with SCENE_LOCK:
            _RENDERERS[op](arch, path, progress=progress, **options)
    _report(progress, 1.0)
    return path


def export_png(
    arch: ArchitectureVisualization,
    path: str | Path,
    *,
    size: tuple[int, int] = (1920, 1080),
    color_by: str = "performance",
    caption: str | None = None,
    highlight: str | None = None,
    progress: Progress | None = None,
    isolate: bool = True,
) -> Path:
    """Save a still picture of the default view.

    Args:
        arch: The layout to draw.
        path: Where to write the PNG (parent folders are created).
        size: (width, height) in pixels.
        color_by: See :func:`build_scene`.
        caption: Text in the top-left corner (e.g. the trial's metrics).
        highlight: Layer to emphasise, or None.
        progress: Called with a fraction in [0, 1] as the work advances.
        isolate: Render in a child process (default), so Mesa never enters this process; see
            :func:`_pv`.  False renders here (faster by the child's ~1 s start-up).

    Returns:
        The path written.
    """
    options = {"size": tuple(size), "color_by": color_by, "caption": caption, "highlight": highlight}
    return _export("png", arch, path, options, progress, isolate)


def export_gif(
    arch: ArchitectureVisualization,
    path: str | Path,
    *,
    frames: int = 36,
    size: tuple[int, int] = (800, 500),
    fps: float = 12,
    color_by: str = "performance",
    caption: str | None = None,
    highlight: str | None = None,
    progress: Progress | None = None,
    isolate: bool = True,
) -> Path:
    """Save an animated GIF orbiting the network once (``frames`` frames, looping).

    Args:
        arch: The layout to draw.
        path: Where to write the GIF.
        frames: Frames in one full turn.
        size: (width, height) in pixels; GIFs get large, so the default is modest.
        fps: Playback frames per second.
        color_by: See :func:`build_scene`.
        caption: Text in the top-left corner of every frame.
        highlight: Layer to emphasise, or None.
        progress: Called with a fraction in [0, 1] as frames are written.
        isolate: Render in a child process (default); see :func:`export_png`.

    Returns:
        The path written.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1 (got {frames})")
    options = {"frames": int(frames), "size": tuple(size), "fps": fps, "color_by": color_by, "caption": caption,
               "highlight": highlight}
    return _export("gif", arch, path, options, progress, isolate)


def export_mp4(
    arch: ArchitectureVisualization,
    path: str | Path,
    *,
    frames: int = 72,
    size: tuple[int, int] = (1280, 720),
    fps: float = 24,
    color_by: str = "performance",
    caption: str | None = None,
    highlight: str | None = None,
    progress: Progress | None = None,
    isolate: bool = True,
) -> Path:
    """Save an H.264 MP4 orbiting the network once (imageio-ffmpeg's bundled ffmpeg).

    Width and height are rounded down to multiples of 8 (the encoder's macro block), so the
    video is not silently rescaled.

    Args:
        arch: The layout to draw.
        path: Where to write the MP4.
        frames: Frames in one full turn.
        size: (width, height) in pixels before rounding to multiples of 8.
        fps: Playback frames per second.
        color_by: See :func:`build_scene`.
        caption: Text in the top-left corner of every frame.
        highlight: Layer to emphasise, or None.
        progress: Called with a fraction in [0, 1] as frames are written.
        isolate: Render in a child process (default); see :func:`export_png`.

    Returns:
        The path written.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1 (got {frames})")
    size = (max(16, size[0] // 8 * 8), max(16, size[1] // 8 * 8))
    options = {"frames": int(frames), "size": size, "fps": fps, "color_by": color_by, "caption": caption,
               "highlight": highlight}
    return _export("mp4", arch, path, options, progress, isolate)


# --------------------------------------------------------------------------- browser scene


def scene_vtksz(pl: "pyvista.Plotter") -> bytes:
    """The plotter's scene as a vtk.js OfflineLocalView ``.vtksz`` (zip) archive.

    Serialises directly with trame-vtk's serializers instead of ``Plotter.export_html``: that one
    launches a trame server in this process and patches asyncio (nest_asyncio2) to do the same
    thing, which does not belong in a Streamlit process (stpyvista forks a process around it).
    """
    import io
    import zipfile

    from trame_vtk.modules.vtk.serializers import (
        SynchronizationContext,
        extract_array_hash,
        initialize_serializers,
        reference_id,
        serialize,
    )
    from vtkmodules.vtkWebCore import vtkWebApplication

    global _WEB_APP
    with SCENE_LOCK:
        if _WEB_APP is None:
            _WEB_APP = vtkWebApplication()
            initialize_serializers()
        render_window = pl.render_window  # no Render(): the meshes are data already, and GL may be absent
        context = SynchronizationContext()
        context.set_ignore_last_dependencies(True)
        id_map = _WEB_APP.GetObjectIdMap()
        view_id = id_map.GetGlobalId(render_window)
        try:
            scene = serialize(None, render_window, view_id, context, 1)
            camera = pl.renderer.GetActiveCamera()
            scene["extra"] = {
                "vtkRefId": reference_id(render_window),
                "centerOfRotation": list(camera.GetFocalPoint()),
                "camera": reference_id(camera),
            }
            hashes = {
                entry["hash"]: dict(**entry, content=context.get_cached_data_array(entry["hash"], False))
                for entry in extract_array_hash(scene)
            }
            payload = json.dumps({"hashes": hashes, "scene": scene})
        finally:
            id_map.FreeObject(render_window)  # the id map holds a reference: a leak per view otherwise
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("index.json", payload)
    return buffer.getvalue()


DEFAULT_TITLE = "HPO Studio — 3D network"
_VIEWER_TITLE = "<title>VTK.js | Example - OfflineLocalView</title>"  # trame-vtk's page says this


def scene_html(pl: "pyvista.Plotter", title: str = DEFAULT_TITLE) -> str:
    """A standalone HTML page (vtk.js inlined, ~1 MB + the scene) showing the plotter's scene.

    Works offline: trame-vtk's static viewer carries vtk.js in the page; nothing is fetched.
    ``title`` replaces the viewer's own "VTK.js | Example - OfflineLocalView".
    """
    import html
    import io

    from trame_vtk.tools.vtksz2html import write_html

    out = io.StringIO()
    write_html(scene_vtksz(pl), out)
    return out.getvalue().replace(_VIEWER_TITLE, f"<title>{html.escape(title)}</title>", 1)


VIEWER_SCRIPT = "vtk_viewer.js"  # the file name the app serves vtk.js's viewer under


@functools.lru_cache(maxsize=1)
def viewer_script() -> str:
    """vtk.js's offline viewer (a JavaScript module, ~1 MB, defines ``window.OfflineLocalView``).

    The app serves it once as a file, so the browser fetches and compiles it once for every
    scene and tab, instead of receiving it inside each scene page.
    """
    from trame_vtk.tools.vtksz2html import HTML_VIEWER_PATH

    page = Path(HTML_VIEWER_PATH).read_text(encoding="utf-8")
    opening = '<script type="module">'
    start = page.index(opening)
    return page[start + len(opening):page.index("</script>", start)]


# Bump when what browser_scene returns changes: a viewer that keeps scene files keys them by it.
SCENE_FORMAT = 3  # 3: drawn opaque, faded colours in place of translucency


def _actor_order(pl: "pyvista.Plotter") -> dict[str, int]:
    """Each named actor's index among the renderer's props, the order vtk.js receives them in."""
    names = {actor.GetAddressAsString("vtkObject"): name for name, actor in pl.renderer.actors.items()}
    props = pl.renderer.GetViewProps()
    order = {}
    for i in range(props.GetNumberOfItems()):
        name = names.get(props.GetItemAsObject(i).GetAddressAsString("vtkObject"))
        if name is not None:
            order[name] = i
    return order


def browser_scene(arch: ArchitectureVisualization, window_size: tuple[int, int] = (552, 460)) -> tuple[bytes, dict]:
    """The app viewer's scene: built and sent once; colourings and the highlight switch in the browser.

    The scene has the layer meshes, their connections and a hidden-by-the-viewer outline per
    layer, but no 3D labels or legend: the viewer draws those in HTML, readable at any width.
    Every actor is opaque: a see-through layer (dropout, normalisation...) gets its colour faded
    toward the background by its opacity (:func:`faded`), and the viewer fades the same way when
    it restyles or dims the layers around a selected one.  In this machine's software-WebGL
    Chromium, translucent actors made vtk.js compile and run its translucent pass on the first
    draw: 0.24 s from the scene's ready to its first paint, against 0.13 s opaque.

    Returns:
        ``(vtksz, meta)``: the scene as :func:`scene_vtksz` bytes, and what the browser needs to
        restyle it: per layer its actor indices (``mesh``, ``outline``), base opacity, colour
        under every colouring of :data:`COLOR_BY`, label text and label anchor (a world point
        above or below the layer); ``actors`` is the number of props the scene holds (a viewer
        checks it before trusting the indices), ``unknown`` says per colouring whether a layer
        was not measured (grey); ``background`` is the colour faded toward.
    """
    if not arch.layers:
        raise ValueError("the architecture has no layers to draw")
    with SCENE_LOCK:
        pl = build_scene(arch, color_by="performance", show_labels=False, legend=False, outlines=True, opaque=True,
                         window_size=window_size)
        try:
            data = scene_vtksz(pl)
            order = _actor_order(pl)
        finally:
            pl.close()
    layers = []
    band = arch.max_layer_height / 2 + 0.3  # labels sit in bands above and below the network, never on it
    for i, lay in enumerate(arch.layers):
        above = i % 2 == 0  # alternate, as the 3D labels do, so neighbours start apart
        y = band if above else -band
        layers.append({
            "id": lay.layer_id, "name": lay.name or lay.layer_id, "text": _describe(lay),
            "mesh": order[lay.layer_id], "outline": order[f"outline:{lay.layer_id}"], "opacity": lay.opacity,
            "colors": {c: score_color(layer_value(lay, arch, c)) for c in COLOR_BY},
            "anchor": [-lay.width / 2, y, lay.position_z], "above": above, "parameters": lay.parameters,
        })
    unknown = {c: any(layer_value(lay, arch, c) is None for lay in arch.layers) for c in COLOR_BY}
    return data, {"format": SCENE_FORMAT, "actors": len(order), "layers": layers, "unknown": unknown,
                  "background": BACKGROUND}


def export_html(
    arch: ArchitectureVisualization,
    path: str | Path,
    *,
    color_by: str = "performance",
    highlight: str | None = None,
    caption: str | None = None,
    progress: Progress | None = None,
    title: str = DEFAULT_TITLE,
) -> Path:
    """Save a standalone, interactive HTML page of the scene (rotate, zoom; works offline).

    Args:
        arch: The layout to draw.
        path: Where to write the HTML.
        color_by: See :func:`build_scene`.
        highlight: Layer to emphasise, or None.
        caption: Text drawn in 3D above the network (2D text would not survive the export).
        progress: Called with a fraction in [0, 1] as the work advances.
        title: The page's title (browser tab, bookmarks), e.g. "HPO Studio — my-study trial 7".

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with SCENE_LOCK:
        pl = build_scene(arch, color_by=color_by, highlight=highlight, caption=caption)
        try:
            _report(progress, 0.4)
            html = scene_html(pl, title=title)
        finally:
            pl.close()
    path.write_text(html, encoding="utf-8")
    _report(progress, 1.0)
    return path


# --------------------------------------------------------------------------- names


def export_filename(
    study: str,
    trial: int | str | None,
    metric_name: str | None,
    metric_value: float | None,
    ext: str,
    when: datetime | None = None,
) -> str:
    """A download file name carrying study, trial, metric and time.

    ``export_filename("my study", 7, "val_accuracy", 0.91234, "png")`` ->
    ``"my-study_scene_trial-0007_val-acc-0.9123_20250102-153000.png"`` (``core.paths.download_name``).

    Args:
        study: Study name (reduced to path-safe characters).
        trial: Trial number (``trial-NNNN``) or label; None leaves it out.
        metric_name: Metric shown in the name, e.g. ``val_accuracy``; None leaves the metric out.
        metric_value: Its value (4 decimals); None or NaN is written ``na``.
        ext: Extension, with or without the dot.
        when: Timestamp (local time); now if None.
    """
    from core.paths import WHAT_BY_EXT, download_name  # the one naming rule for every download

    return download_name(study, WHAT_BY_EXT.get(ext.lstrip("."), "scene"), ext, trial=trial, metric=metric_name,
                         value=metric_value, when=when)
