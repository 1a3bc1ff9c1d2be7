"""core.scene: the PyVista scene and its PNG / GIF / MP4 / HTML exports.

Architectures are written out by hand (every layer type), so this file needs no TensorFlow.
Raster exports run in core.scene's child render process (the default), as the app does.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from core.architecture import ArchitectureVisualization, LayerVisualization, log_size, score_color

pv = pytest.importorskip("pyvista")
imageio = pytest.importorskip("imageio")
from core import paths, scene  # noqa: E402  (after the importorskip guards)

ROOT = Path(__file__).resolve().parent.parent
SMALL = (240, 160)


def make_arch() -> ArchitectureVisualization:
    """One layer of every kind the scene draws; per-layer health on two of them."""
    spec = [
        # name, type, (w, h, d), extra
        ("input", "input", (log_size(28), log_size(28), 0.45), {"output_shape": (28, 28, 1)}),
        ("conv_a", "conv", (log_size(26), log_size(26), log_size(16)),
         {"filters": 16, "kernel_size": (3, 3), "output_shape": (26, 26, 16), "dead_fraction": 0.6,
          "grad_norm": 0.01, "gradient_score": 1.0, "update_ratio": 5e-3}),
        ("bn", "normalization", (log_size(26), log_size(26), 0.18), {"opacity": 0.45}),
        ("pool", "pooling", (log_size(13), log_size(13), log_size(16)), {"kernel_size": (2, 2)}),
        ("drop", "dropout", (log_size(13), log_size(13), 0.18), {"opacity": 0.3}),
        ("flat", "flatten", (0.27, log_size(2704), 0.27), {"opacity": 0.6}),
        ("emb", "embedding", (log_size(40), log_size(24), 0.54), {"output_shape": (40, 24)}),
        ("lstm", "lstm", (log_size(40), log_size(16), 0.8), {"units": 16, "output_shape": (40, 16)}),
        ("bi", "lstm", (log_size(40), log_size(8), 1.6), {"units": 8, "output_shape": (16,)}),
        ("gap", "global_pooling", (0.27, log_size(16), 0.8), {}),
        ("add", "merge", (0.9, 0.9, 0.9), {}),
        ("act", "activation", (0.54, log_size(16), 0.18), {}),
        ("reshape", "reshape", (1.0, 1.0, 0.36), {}),
        ("dense", "dense", (0.6, log_size(64), 0.6), {"units": 64, "dead_fraction": 0.1, "grad_norm": 50.0,
                                                             "gradient_score": 0.1, "update_ratio": 0.8}),
        ("out", "dense", (0.6, log_size(10), 0.6), {"units": 10}),
    ]
    layers, z, prev_d = [], 0.0, None
    for i, (name, kind, (w, h, d), extra) in enumerate(spec):
        if prev_d is not None:
            z += prev_d / 2 + 1.0 + d / 2
        health = None
        if "dead_fraction" in extra:
            health = 1.0 - extra["dead_fraction"]
        layers.append(LayerVisualization(
            layer_id=f"{i:02d}_{name}", layer_type=kind, position_z=z, width=w, height=h, depth=d,
            parameters=10 * i, color_intensity=health if health is not None else 0.85, name=name, **extra,
        ))
        prev_d = d
    return ArchitectureVisualization(
        architecture_type="Generic", layers=layers, total_parameters=sum(lay.parameters for lay in layers),
        model_depth=len(layers), max_layer_width=max(lay.width for lay in layers),
        max_layer_height=max(lay.height for lay in layers), performance_score=0.85, health_score=0.6,
    )


@pytest.fixture(scope="module")
def arch() -> ArchitectureVisualization:
    return make_arch()


# --------------------------------------------------------------------------- scene


def test_scene_has_a_named_mesh_per_layer_connections_and_labels(arch):
    pl = scene.build_scene(arch, color_by="health")
    try:
        names = set(pl.actors)
        for lay in arch.layers:
            assert lay.layer_id in names
            assert f"label:{lay.layer_id}" in names
            label = pl.actors[f"label:{lay.layer_id}"].mapper.dataset
            assert label.n_cells > 20  # extruded Text3D glyphs, not a 2D annotation
        assert "connections" in names
        assert any(n.startswith("legend:") for n in names)
        # layer meshes sit where the layout says
        for lay in arch.layers:
            mesh = pl.actors[lay.layer_id].mapper.dataset
            zmin, zmax = mesh.bounds[4], mesh.bounds[5]
            assert zmin <= lay.position_z <= zmax
        # the browser path needs no GL context (and so no Mesa in this process)
        assert pl.render_window.GetClassName() == "vtkGenericOpenGLRenderWindow"
    finally:
        pl.close()


def test_layer_kinds_get_distinct_shapes(arch):
    pl = scene.build_scene(arch, show_labels=False)
    try:
        def cells(name: str) -> int:
            return pl.actors[arch.layer(name).layer_id].mapper.dataset.n_cells

        assert cells("conv_a") > cells("dense")  # a stack of slabs vs one column
        pool = arch.layer("pool")
        pts = pl.actors[pool.layer_id].mapper.dataset.points
        front, back = pts[pts[:, 2] < pool.position_z], pts[pts[:, 2] > pool.position_z]
        assert front[:, 0].max() > back[:, 0].max()  # a funnel: the map shrinks
        assert cells("bi") > cells("lstm") > 6 * 2  # stacked cylinder cells, two stacks when bidirectional
        assert pl.actors[arch.layer("drop").layer_id].prop.style == "Wireframe"
        assert not any(n.startswith("label:") for n in pl.actors)
    finally:
        pl.close()


def test_highlight_outlines_one_layer(arch):
    pl = scene.build_scene(arch, highlight="dense")
    try:
        assert "highlight" in pl.actors
        outline = pl.actors["highlight"].mapper.dataset
        lay = arch.layer("dense")
        assert outline.bounds[4] < lay.position_z - lay.depth / 2
        assert pl.actors[lay.layer_id].prop.opacity > pl.actors[arch.layer("conv_a").layer_id].prop.opacity
    finally:
        pl.close()
    with pytest.raises(KeyError):
        scene.build_scene(arch, highlight="no_such_layer")
    with pytest.raises(ValueError):
        scene.build_scene(arch, color_by="rainbow")


def test_color_by_changes_layer_colours(arch):
    colours = {}
    for mode in scene.COLOR_BY:
        pl = scene.build_scene(arch, color_by=mode, show_labels=False)
        colours[mode] = [pl.actors[lay.layer_id].prop.color.float_rgb for lay in arch.layers]
        pl.close()
    assert len(set(colours["performance"])) == 1  # one accuracy for the whole model
    assert len(set(colours["health"])) > 1
    assert colours["dead_units"] != colours["gradient_norm"] != colours["performance"]
    grey = pv.Color(scene.UNKNOWN_COLOR).float_rgb
    conv = [lay.name for lay in arch.layers].index("conv_a")
    assert colours["dead_units"][conv] != pytest.approx(grey)
    assert colours["dead_units"][0] == pytest.approx(grey)  # the input was not measured


def test_browser_scene_keeps_mesa_out_of_the_process():
    """Building + serialising must not load Mesa/LLVM: a later `import tensorflow` would segfault."""
    code = (
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_scene import make_arch\n"
        "from core import scene\n"
        "pl = scene.build_scene(make_arch())\n"
        "data = scene.scene_vtksz(pl)\n"
        "pl.close()\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(len(data) > 1000, 'libLLVM' in maps, 'libgallium' in maps or 'swrast' in maps)\n"
    )
    if not Path("/proc/self/maps").exists():
        pytest.skip("needs /proc")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "False"]


_THREADS_CHILD = """
import io, json, sys, tempfile, threading, zipfile
sys.path.insert(0, 'tests')
from test_scene import make_arch
from core import scene

def arrays(data):  # the scene's data arrays (their names are content hashes); object ids differ per build
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sorted(json.loads(zf.read('index.json'))['hashes'])

arch = make_arch()
ref, ref_meta = scene.browser_scene(arch)
tmp = tempfile.mkdtemp()
for rnd in range({rounds}):
    out = {{}}
    def build(i):
        out[i] = scene.browser_scene(arch)
    def export():
        out['html'] = scene.export_html(arch, f'{{tmp}}/{{rnd}}.html').stat().st_size
    threads = [threading.Thread(target=build, args=(i,), daemon=True) for i in range(4)]
    threads.append(threading.Thread(target=export, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    same = all(arrays(out[i][0]) == arrays(ref) and out[i][1] == ref_meta for i in range(4))
    print(rnd, same, out['html'] > 100_000, flush=True)
"""


@pytest.mark.slow
def test_scenes_built_in_several_threads_at_once_neither_hang_nor_mix(tmp_path):
    """The app builds scenes in several threads (tabs, an HTML export, the server's head start).

    Four browser_scene calls and an HTML export at once, five times: each gives the scene built
    alone.  Without core.scene's scene lock this deadlocked within a few rounds (the process
    froze, its main thread too), so it runs in a child process the test can time out.
    """
    rounds = 5
    try:
        out = subprocess.run([sys.executable, "-c", _THREADS_CHILD.format(rounds=rounds)], cwd=ROOT,
                             capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scenes built at once hung: {(exc.stdout or b'')[-500:]!r}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:rounds] == [f"{r} True True" for r in range(rounds)], out.stdout


# --------------------------------------------------------------------------- exports


@pytest.fixture(scope="module")
def pngs(arch, tmp_path_factory):
    folder = tmp_path_factory.mktemp("png")
    perf = scene.export_png(arch, folder / "perf.png", size=SMALL, color_by="performance", caption="acc 0.85")
    dead = scene.export_png(arch, folder / "dead.png", size=SMALL, color_by="dead_units")
    return imageio.v3.imread(perf), imageio.v3.imread(dead)


def test_png_has_size_and_is_not_blank(pngs):
    img = pngs[0]
    assert img.shape[:2] == (SMALL[1], SMALL[0])
    assert img[..., :3].std() > 10
    distinct = np.unique(img[..., :3].reshape(-1, 3), axis=0)
    assert len(distinct) > 30


def test_color_by_changes_the_picture(pngs):
    perf, dead = (p[..., :3].astype(int) for p in pngs)
    assert np.abs(perf - dead).mean() > 1.0


def test_gif_has_requested_frames_and_reports_progress(arch, tmp_path):
    seen: list[float] = []
    path = scene.export_gif(arch, tmp_path / "orbit.gif", frames=4, size=(160, 100), progress=seen.append)
    frames = imageio.v3.imread(path, index=None)
    assert frames.shape[0] == 4
    assert frames.shape[1:3] == (100, 160)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_mp4_has_requested_frames(arch, tmp_path):
    path = scene.export_mp4(arch, tmp_path / "orbit.mp4", frames=5, size=(165, 100), fps=10)
    reader = imageio.v2.get_reader(path, "ffmpeg")
    try:
        assert reader.count_frames() == 5
        assert reader.get_meta_data()["size"] == (160, 96)  # rounded to the 8-pixel macro block
    finally:
        reader.close()


def test_export_failure_is_reported(arch, tmp_path):
    with pytest.raises(KeyError):
        scene.export_png(arch, tmp_path / "x.png", size=SMALL, highlight="missing")
    with pytest.raises(ValueError):
        scene.export_gif(arch, tmp_path / "x.gif", frames=0)


def test_html_is_standalone_and_contains_the_scene(arch, tmp_path):
    path = scene.export_html(arch, tmp_path / "net.html", color_by="health", caption="trial 3")
    html = path.read_text(encoding="utf-8")
    assert "OfflineLocalView" in html
    assert not re.search(r"<script[^>]+src=[\"']https?://", html)  # vtk.js is inlined: works offline
    payload = re.search(r'base64Str = "([^"]+)"', html).group(1)
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(payload))) as zf:
        index = json.loads(zf.read("index.json"))
    text = json.dumps(index["scene"])
    # one actor per layer, per label, plus connections, legend and caption
    assert text.count('"type": "vtkOpenGLActor"') >= 2 * len(arch.layers) + 2
    assert index["hashes"]


def test_browser_scene_carries_every_colouring_and_names_its_actors(arch):
    data, meta = scene.browser_scene(arch)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        index = json.loads(zf.read("index.json"))
    renderer = index["scene"]["dependencies"][0]
    actors = [d for d in renderer["dependencies"] if d["type"].endswith("Actor")]
    # a mesh and an outline per layer plus the connections; no 3D labels or legend (HTML in the viewer)
    assert meta["actors"] == len(actors) == 2 * len(arch.layers) + 1
    assert meta["format"] == scene.SCENE_FORMAT
    indices = [i for lay in meta["layers"] for i in (lay["mesh"], lay["outline"])]
    assert sorted(indices) == sorted(set(indices)) and max(indices) < meta["actors"]
    # the indices are the order vtk.js adds the props in: the layer's mesh has its initial colour
    for lay, spec in zip(arch.layers, meta["layers"]):
        assert spec["id"] == lay.layer_id
        colours = {c: spec["colors"][c] for c in scene.COLOR_BY}
        assert colours == {c: score_color(scene.layer_value(lay, arch, c)) for c in scene.COLOR_BY}
        mesh = actors[spec["mesh"]]
        prop = next(d for d in mesh["dependencies"] if d["type"].endswith("Property"))
        # drawn opaque: a see-through layer's colour is faded toward the background instead
        shown = scene.faded(colours["performance"], lay.opacity)
        expected = [int(shown[k:k + 2], 16) / 255 for k in (1, 3, 5)]
        assert np.allclose(prop["properties"]["diffuseColor"], expected, atol=0.01), (lay.layer_id, prop)
        assert spec["opacity"] == lay.opacity
    # nothing translucent: vtk.js needs no translucent pass (slow to compile in a software WebGL)
    props = [d for a in actors for d in a["dependencies"] if d["type"].endswith("Property")]
    assert [p["properties"].get("opacity", 1.0) for p in props] == [1.0] * len(props)
    assert any(lay.opacity < 1 for lay in arch.layers)  # the case that used to be translucent is here
    assert meta["background"] == scene.BACKGROUND
    assert meta["unknown"]["performance"] is False and meta["unknown"]["dead_units"] is True
    # far smaller than the page with 3D text labels and legend
    pl = scene.build_scene(arch, color_by="health")
    try:
        assert len(data) < len(scene.scene_vtksz(pl)) / 2
    finally:
        pl.close()


def test_faded_is_the_colour_drawn_over_the_background():
    assert scene.faded("#ff0000", 1.0) == "#ff0000"
    assert scene.faded("#ff0000", 0.0) == scene.BACKGROUND
    assert scene.faded("#000000", 0.5, "#ffffff") == "#808080"
    assert scene.faded("#204060", 0.3, "#f7f9fc") == "#b6c1cd"  # red: 0.3 * 0x20 + 0.7 * 0xf7 = 182.5 -> 182 = b6


def test_exported_html_is_titled(arch, tmp_path):
    path = scene.export_html(arch, tmp_path / "net.html", title="HPO Studio — my <study> trial 7")
    html = path.read_text(encoding="utf-8")
    assert "<title>HPO Studio — my &lt;study&gt; trial 7</title>" in html
    assert "OfflineLocalView</title>" not in html
    assert "<title>HPO Studio — 3D network</title>" in scene.export_html(arch, tmp_path / "b.html").read_text()


def test_export_filename():
    when = datetime(2025, 1, 2, 15, 30, 0)
    name = scene.export_filename("my study", 7, "val_accuracy", 0.912345, "png", when)
    assert name == "my-study_scene_trial-0007_val-acc-0.9123_20250102-153000.png"
    assert scene.export_filename("s", None, "acc", None, ".gif", when) == "s_scene_acc-na_20250102-153000.gif"
    assert scene.export_filename("s/../x", 12, None, None, "mp4", when) == "s-..-x_scene_trial-0012_20250102-153000.mp4"
    # one model, one name: the 3D viewer's download and the Trials screen's (core.paths) agree
    assert scene.export_filename("my study", 7, "val_accuracy", 0.912345, "keras", when) \
        == paths.model_download_name("my study", 7, 0.912345, when) \
        == "my-study_model_trial-0007_val-acc-0.9123_20250102-153000.keras"
