"""How long the 3D view of a 20-layer network takes to prepare (target: < 3 s).

Measures what the viewer does on the server for one model: ``build_architecture`` (Keras model ->
layout), ``build_scene`` (layout -> PyVista meshes, GL-free) and the vtk.js serialisation the
browser receives (``scene_vtksz`` / ``scene_html``).  The first ``build_scene`` in a process pays
for importing ``pyvista.plotting`` (it pulls in matplotlib); it is reported separately as "cold".

With ``--trame`` it also times PyVista's own ``Plotter.export_html`` (what stpyvista's trame backend
calls: it starts a trame server in-process) in a child process, for comparison.  With ``--exports``
it times the raster exports at their default sizes (each in its own render process, as the app
runs them).

Usage::

    python bench/bench_scene.py [--repeat 5] [--trame] [--exports]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def twenty_layer_model():
    """A CNN with 20 Keras layers (21 drawn, with the input): three conv blocks and a dense head."""
    import keras

    L = keras.layers
    layers = [keras.Input((64, 64, 3))]
    for filters in (32, 64, 128):
        layers += [L.Conv2D(filters, 3, padding="same", activation="relu"), L.BatchNormalization(),
                   L.Conv2D(filters, 3, padding="same", activation="relu"), L.MaxPooling2D(), L.Dropout(0.25)]
    layers += [L.Flatten(), L.Dense(256, activation="relu"), L.BatchNormalization(), L.Dropout(0.5),
               L.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    assert len(model.layers) == 20
    return model


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median seconds over ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


_TRAME_CHILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from core.architecture import ArchitectureVisualization
from core import scene
arch = ArchitectureVisualization.from_json(sys.stdin.read())
pl = scene.build_scene(arch)  # warm pyvista.plotting first
pl.close()
t = time.perf_counter()
pl = scene.build_scene(arch, raster=True)
html = pl.export_html(None).getvalue()
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": len(html)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="calls per warm measurement (median)")
    parser.add_argument("--trame", action="store_true", help="also time Plotter.export_html (trame) in a child")
    parser.add_argument("--exports", action="store_true", help="also time PNG / GIF / MP4 exports")
    args = parser.parse_args()

    t = time.perf_counter()
    model = twenty_layer_model()
    t_keras = time.perf_counter() - t

    from core.architecture import build_architecture
    from core import scene

    health = [{"name": layer.name, "dead_fraction": 0.1 * (i % 4), "grad_norm": 10.0 ** -(i % 6)}
              for i, layer in enumerate(model.layers)]
    build_arch = lambda: build_architecture(model, performance_score=0.91, health_score=0.7,  # noqa: E731
                                            layer_health=health)

    rows: list[tuple[str, float, str]] = []
    t = time.perf_counter()
    arch = build_arch()
    t_arch_cold = time.perf_counter() - t
    t = time.perf_counter()
    pl = scene.build_scene(arch, color_by="health")
    t_scene_cold = time.perf_counter() - t
    t = time.perf_counter()
    data = scene.scene_vtksz(pl)
    t_vtksz_cold = time.perf_counter() - t
    pl.close()

    t_arch, arch = timed(build_arch, args.repeat)

    def build():
        p = scene.build_scene(arch, color_by="health")
        p.close()

    t_scene, _ = timed(build, args.repeat)
    pl = scene.build_scene(arch, color_by="health")
    t_vtksz, data = timed(lambda: scene.scene_vtksz(pl), args.repeat)
    t_html, html = timed(lambda: scene.scene_html(pl), args.repeat)
    pl.close()

    def end_to_end():
        p = scene.build_scene(build_arch(), color_by="health")
        h = scene.scene_html(p)
        p.close()
        return h

    t_total, _ = timed(end_to_end, args.repeat)

    rows += [
        ("keras: build the 20-layer model (not counted)", t_keras, ""),
        ("build_architecture (first call)", t_arch_cold, f"{arch.model_depth} layers drawn"),
        ("build_scene (first call: imports pyvista.plotting)", t_scene_cold, ""),
        ("scene_vtksz (first call)", t_vtksz_cold, ""),
        ("build_architecture", t_arch, ""),
        ("build_scene", t_scene, f"{len(arch.layers)} layer meshes + labels"),
        ("scene_vtksz (vtk.js scene for the viewer)", t_vtksz, f"{len(data) / 1e3:.0f} kB zip"),
        ("scene_html (standalone page)", t_html, f"{len(html) / 1e6:.2f} MB"),
        ("TOTAL warm: architecture + scene + html", t_total, "target < 3 s"),
        ("TOTAL first view in a fresh process", t_arch_cold + t_scene_cold + t_vtksz_cold + (t_html - t_vtksz), ""),
    ]

    if args.trame:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", _TRAME_CHILD], input=arch.to_json(), text=True,
                             capture_output=True, cwd=ROOT, env=env, timeout=300)
        if out.returncode == 0:
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(("Plotter.export_html via trame (child, for comparison)", res["seconds"],
                         f"{res['bytes'] / 1e6:.2f} MB"))
        else:
            rows.append(("Plotter.export_html via trame (child)", float("nan"), out.stderr.strip()[-120:]))

    if args.exports:
        with tempfile.TemporaryDirectory() as tmp:
            for label, fn in (
                ("export_png 1920x1080 (child process)", lambda: scene.export_png(arch, Path(tmp) / "a.png")),
                ("export_gif 36 frames 800x500 (child process)", lambda: scene.export_gif(arch, Path(tmp) / "a.gif")),
                ("export_mp4 72 frames 1280x720 (child process)", lambda: scene.export_mp4(arch, Path(tmp) / "a.mp4")),
                ("export_html (in process)", lambda: scene.export_html(arch, Path(tmp) / "a.html")),
            ):
                sec, path = timed(fn, 1)
                rows.append((label, sec, f"{Path(path).stat().st_size / 1e6:.2f} MB"))

    width = max(len(r[0]) for r in rows)
    print(f"{'step'.ljust(width)}  {'seconds':>8}  note")
    print(f"{'-' * width}  {'-' * 8}  ----")
    for name, sec, note in rows:
        print(f"{name.ljust(width)}  {sec:8.3f}  {note}")
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs, repeat={args.repeat} (median)")


if __name__ == "__main__":
    main()
