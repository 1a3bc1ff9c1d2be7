"""AppTests for the 3D viewer screen (app/views/viewer.py) on a real, small, finished study.

The study is trained once per module by the CLI in a subprocess (2 trials, 1 epoch, 200
samples: ~20-40 s on 2 cores), so this process never imports TensorFlow; the screen draws from
the layout each trial saved with its result.  Those tests are marked slow.  Empty, legacy and
live cases use tests/fakes.py (no training) with a hand-made layout, and stay fast.  Raster exports (PNG/GIF/MP4) are exercised in tests/e2e/test_viewer_browser.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import storage as S
from core.architecture import ArchitectureVisualization, LayerVisualization
from core.config import Settings
from core.study import best_record, config_of, load_records, load_study
from core import study as K  # the storage schema: attribute keys
from tests.fakes import make_fake_study

ROOT = Path(__file__).resolve().parent.parent
VIEWER = str(ROOT / "app" / "views" / "viewer.py")
TIMEOUT = 60  # the first run imports pandas, optuna and pyvista and builds a scene
STUDY = "v"


# --------------------------------------------------------------------------- fixtures


def make_real_study(home: Path, name: str = STUDY, dataset: str = "digits", trials: int = 2,
                    max_samples: int = 200) -> None:
    """Train a tiny study (1 epoch per trial) with the CLI, as a user would, into ``home``."""
    env = {**os.environ, "HPO_HOME": str(home), "HPO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("HPO_STORAGE", None)
    cmd = [sys.executable, "-m", "core", "optimize", "--dataset", dataset, "--trials", str(trials), "--epochs", "1",
           "--max-samples", str(max_samples), "--name", name, "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def real_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("viewer_home")
    make_real_study(home)
    return home


@pytest.fixture
def home(real_home, monkeypatch) -> Path:
    monkeypatch.setenv("HPO_HOME", str(real_home))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    return real_home


@pytest.fixture
def records(home):
    url = S.resolve_url(None, Settings(home=home))
    recs = load_records(STUDY, url)
    config = config_of(load_study(STUDY, url))
    done = {r.number: r for r in recs if r.state == "COMPLETE"}
    assert len(done) == 2, [r.state for r in recs]
    return done, best_record(recs, config)


@pytest.fixture
def media(monkeypatch):
    """Keep AppTest's in-memory media files readable after a run (download payloads live there)."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    kept: list[MemoryMediaFileStorage] = []

    class Keeping(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            kept.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Keeping)

    def read(url: str) -> bytes:
        file_id = url.rsplit("/", 1)[-1].split(".")[0]
        return kept[-1].get_file(file_id).content

    return read


def run_viewer() -> AppTest:
    at = AppTest.from_file(VIEWER, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def arch_of(rec) -> ArchitectureVisualization:
    return ArchitectureVisualization.from_dict(rec.result.architecture["visualization"])


def tiny_layout() -> ArchitectureVisualization:
    """A 4-layer CNN layout made by hand (no Keras), with per-layer health on the learned layers."""
    specs = [  # (name, type, output shape, params, filters, units, dead, grad)
        ("input", "input", (8, 8, 1), 0, None, None, None, None),
        ("conv_1", "conv", (8, 8, 16), 160, 16, None, 0.25, 0.3),
        ("flatten", "flatten", (1024,), 0, None, None, None, None),
        ("output", "dense", (10,), 10250, None, 10, None, 2.0),
    ]
    layers = [
        LayerVisualization(layer_id=f"{i:02d}_{name}", layer_type=kind, position_z=2.0 * i, width=1.0, height=1.0,
                           depth=0.5, parameters=params, filters=filters, units=units, name=name, output_shape=shape,
                           dead_fraction=dead, grad_norm=grad, color_intensity=0.8)
        for i, (name, kind, shape, params, filters, units, dead, grad) in enumerate(specs)
    ]
    return ArchitectureVisualization("CNN", layers=layers, total_parameters=10410, model_depth=4,
                                     max_layer_width=1.0, max_layer_height=1.0, performance_score=0.999,
                                     health_score=0.8)


def add_best_trial_with_layout(url: str, name: str, fake, layout: ArchitectureVisualization) -> int:
    """Add to a fake study a complete trial better than the others, carrying ``layout``; its number."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from core.config import TrialResult

    better = TrialResult.from_dict({**fake.results[fake.best_number].to_dict(), "val_accuracy": 0.999,
                                    "architecture": {"layers": [], "visualization": layout.to_dict()}})
    study = optuna.load_study(study_name=name, storage=S.open_storage(url))
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.999], params={}, distributions={},
                                 user_attrs={K.T_RESULT: better.to_dict()}))
    return max(t.number for t in study.get_trials(deepcopy=False))


def scene_args(at: AppTest) -> dict:
    """The arguments of the scene component (app.scene_component): what the browser receives."""
    frames = at.get("component_instance")
    assert len(frames) == 1
    return json.loads(frames[0].proto.json_args)


def pick(at: AppTest, layer_id: str | None) -> None:
    """What the scene component sends when the user clicks a layer (in the scene, its label or its
    table row): the layer and one more pick; then the app's rerun."""
    args = scene_args(at)
    key = f"viewer-scene-{args['scene_key']}"
    last = at.session_state[key] if key in at.session_state else None
    picks = (last or {}).get("pick", 0) if isinstance(last, dict) else 0
    at.session_state[key] = {"color_by": args["color_by"], "layer": layer_id, "pick": picks + 1}
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def scene_actors(data: bytes) -> int:
    """Actors in a vtk.js scene (.vtksz -> index.json)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        scene = json.loads(zf.read("index.json"))["scene"]
    renderer = scene["dependencies"][0]
    return sum(1 for d in renderer["dependencies"] if d["type"].endswith("Actor"))


def table_layers(at: AppTest) -> list[str]:
    """The layer names in the table the scene component draws beside the scene."""
    return [row["cells"][0] for row in scene_args(at)["table"]["rows"]]


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


# --------------------------------------------------------------------------- a real study


@pytest.mark.slow  # the module's real study trains for ~20-40 s, once
def test_best_trial_drawn_by_default(home, records):
    done, best = records
    at = run_viewer()
    assert [t.value for t in at.title] == ["3D network viewer"]
    assert at.selectbox(key=f"viewer-trial-{STUDY}").value == best.number
    assert at.toggle(key=f"viewer-follow-{STUDY}").value is True

    arch = arch_of(done[best.number])
    assert table_layers(at) == [lay.name for lay in arch.layers]  # one row per drawn layer, in order
    args = scene_args(at)
    from app.scene_component import FOLDER
    from core.scene import COLOR_BY, viewer_script

    # vtk.js and the scene are files served beside the component, fetched (and cached) by the browser
    assert args["script_url"] == "cache/vtk_viewer.js"
    # index.html preloads that very URL (a module preload serves only a script of the same URL)
    assert f'<link rel="modulepreload" href="{args["script_url"]}"' in (FOLDER / "index.html").read_text()
    from core.scene import BACKGROUND
    assert args["background"] == BACKGROUND  # what scene.js fades see-through layers toward
    assert (FOLDER / "cache" / "vtk_viewer.js").read_text(encoding="utf-8") == viewer_script()
    assert re.fullmatch(r"cache/scenes/\w+\.vtksz", args["scene_url"]) and args["scene_b64"] is None
    data = (FOLDER / args["scene_url"]).read_bytes()
    assert scene_actors(data) == args["actors"] == 2 * len(arch.layers) + 1  # meshes, outlines, connections
    # every colouring travels with the scene: a colour per layer for each
    assert [lay["id"] for lay in args["layers"]] == [lay.layer_id for lay in arch.layers]
    assert all(set(lay["colors"]) == set(COLOR_BY) for lay in args["layers"])
    assert [c["key"] for c in args["colorings"]] == list(COLOR_BY) and args["color_by"] == "health"
    assert len(frames_json := json.dumps(args)) < 30_000, len(frames_json)  # arguments only: no scene in them


@pytest.mark.slow  # the module's real study trains for ~20-40 s, once
def test_colour_by_and_layer_highlight_change_the_scene(home, records):
    done, best = records
    arch = arch_of(done[best.number])
    at = run_viewer()
    first = scene_args(at)
    # the user picks a colouring in the scene (the browser switches it); it comes back with a rerun
    at.session_state["hpo.viewer.color_by"] = "dead_units"
    at.run()
    assert not at.exception
    dead = scene_args(at)
    assert dead["color_by"] == "dead_units"
    assert dead["scene_url"] == first["scene_url"] and dead["scene_key"] == first["scene_key"]  # not rebuilt

    # the layer table travels with the scene (the component draws it): a row per layer, in order,
    # and no Streamlit data grid on the page (its ~1.2 MB of script delayed the scene in a new tab)
    table = first["table"]
    assert [r["id"] for r in table["rows"]] == [lay.layer_id for lay in arch.layers]
    assert [c["name"] for c in table["columns"]][:3] == ["layer", "type", "output"]
    assert all(len(r["cells"]) == len(table["columns"]) for r in table["rows"])
    assert f"{arch.total_parameters:,} parameters" in table["title"]
    assert not at.dataframe

    target = next(i for i, lay in enumerate(arch.layers) if lay.layer_type == "dense")
    pick(at, arch.layers[target].layer_id)  # a click on its row in the scene's table
    assert not at.exception
    assert f"selected: **{arch.layers[target].name}**" in captions(at)
    lit = scene_args(at)
    assert lit["highlight"] == arch.layers[target].layer_id and lit["scene_url"] == first["scene_url"]


@pytest.mark.slow  # the module's real study trains for ~20-40 s, once
def test_pick_another_trial_and_download_its_json(home, records, media):
    done, best = records
    other = next(n for n in done if n != best.number)
    at = run_viewer()
    at.selectbox(key=f"viewer-trial-{STUDY}").select(other).run()
    assert not at.exception
    assert at.toggle(key=f"viewer-follow-{STUDY}").value is False  # a hand-picked trial is not "the best"
    arch = arch_of(done[other])
    assert table_layers(at) == [lay.name for lay in arch.layers]

    button = next(b for b in at.get("download_button") if b.proto.label == "Architecture (JSON)")
    payload = json.loads(media(button.proto.url))
    assert payload["metadata"]["study"] == STUDY
    assert payload["metadata"]["trial"] == other
    assert payload["metadata"]["metrics"]["val_accuracy"] == pytest.approx(done[other].val_accuracy)
    assert payload["metadata"]["timestamp"]
    assert len(payload["architecture"]["layers"]) == len(arch.layers)
    model = next(b for b in at.get("download_button") if b.proto.label == "Model (.keras)")
    assert model.proto.deferred_file_id  # the model file exists (2 trials, keep-best-k keeps both)


@pytest.mark.slow  # the module's real study trains for ~20-40 s, once
def test_html_export_renders_in_the_background(home, records):
    at = run_viewer()
    at.button(key="make-html").click().run()
    assert not at.exception
    deadline = time.time() + 60
    while not any(b.proto.label == "Download Interactive HTML" for b in at.get("download_button")):
        assert time.time() < deadline, "the HTML export did not finish"
        assert not [e for e in at.get("alert") if "failed" in str(e.proto)], "the HTML export failed"
        time.sleep(0.5)
        at.run()
    button = next(b for b in at.get("download_button") if b.proto.label == "Download Interactive HTML")
    assert re.fullmatch(rf"{STUDY}_scene_trial-\d{{4}}_val-acc-[0-9.]+_\d{{8}}-\d{{6}}\.html", button.proto.help)
    # the file is titled after the study and trial, not vtk.js's "VTK.js | Example - OfflineLocalView"
    from app.export_jobs import jobs

    job = next(j for j in jobs().jobs.values() if j.file_name == button.proto.help)
    trial = int(re.search(r"trial-(\d+)", job.file_name).group(1))
    html = job.path.read_text(encoding="utf-8")
    assert f"<title>HPO Studio — {STUDY} trial {trial}</title>" in html and "OfflineLocalView</title>" not in html


# --------------------------------------------------------------------------- empty and legacy states


def test_empty_storage_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    at = run_viewer()
    assert any("No studies yet" in i.value for i in at.info)
    assert not at.get("component_instance")


def test_study_without_complete_trials(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    settings = Settings(home=tmp_path)
    make_fake_study(S.resolve_url(None, settings), "waiting", n_complete=0, n_pruned=1, n_failed=1, settings=settings)
    at = run_viewer()
    assert any("no complete trial yet" in i.value for i in at.info)
    assert not at.get("component_instance")


def test_trial_without_architecture_data(tmp_path, monkeypatch):
    # fakes write results the way older versions did: no "visualization" layout
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    settings = Settings(home=tmp_path)
    make_fake_study(S.resolve_url(None, settings), "legacy", n_complete=2, n_pruned=0, n_failed=0, settings=settings)
    for model in tmp_path.rglob("model.keras"):
        model.unlink()  # what keep-best-k does to the models it does not keep
    at = run_viewer()
    assert any("recorded before" in i.value for i in at.info)
    assert not at.get("component_instance")
    assert "no longer on disk" in captions(at)


def test_follow_best_switches_to_a_better_trial(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    fake = make_fake_study(url, "live", n_complete=2, n_pruned=0, n_failed=0, n_running=1, with_models=False,
                           settings=settings)
    at = run_viewer()
    trial = at.selectbox(key="viewer-trial-live")
    assert trial.value == fake.best_number
    assert "checking for new trials every" in captions(at)  # the study runs: the page watches it

    # the running study finds a better trial (with a 3D layout, as trials made now have)
    layout = tiny_layout()
    newest = add_best_trial_with_layout(url, "live", fake, layout)
    at.run()
    assert not at.exception
    assert at.selectbox(key="viewer-trial-live").value == newest
    assert table_layers(at) == [lay.name for lay in layout.layers]
    args = scene_args(at)
    assert [lay["id"] for lay in args["layers"]] == [lay.layer_id for lay in layout.layers]
    from app.scene_component import FOLDER

    assert scene_actors((FOLDER / args["scene_url"]).read_bytes()) == 2 * len(layout.layers) + 1


# --------------------------------------------------------------------------- inside the network (issue 14)


def _images(at: AppTest) -> list:
    return at.get("image")


def _image_captions(at: AppTest) -> str:
    return "\n".join(c for i in _images(at) for c in i.captions)


def _select_layer(at: AppTest, arch, number: int, study: str, name: str) -> None:
    pick(at, next(lay.layer_id for lay in arch.layers if lay.name == name))


@pytest.mark.slow  # the module's real study trains for ~20-40 s, once
def test_inside_a_cnn_example_feature_maps_and_dead_channels(home, records):
    from app import inside as INSIDE
    from core.health import dead_units  # noqa: F401 - the masks come from the same rule (tests/test_insight.py)

    done, best = records
    rec = done[best.number]
    ins = INSIDE.INS.load(INSIDE.insight_path(rec))
    assert ins is not None and ins.kind == "image"
    at = run_viewer()
    picker = at.selectbox(key=f"viewer-example-{STUDY}-{best.number}")
    assert picker.options and len(picker.options) == len(ins.examples)
    assert picker.value == str(ins.examples[0].index) or picker.value == ins.examples[0].index
    # a misclassified example, as the Health screen's "Look inside" would choose it
    wrong = next((e for e in ins.examples if not e.correct), ins.examples[-1])
    picker.select(wrong.index).run()
    assert not at.exception
    verdict = "\n".join(m.value for m in at.markdown)
    assert f"Test example #{wrong.index}" in verdict
    assert ("wrong" in verdict) == (not wrong.correct)
    # the input is drawn (an 8x8 digit scaled with square pixels)
    assert any(not any(i.captions) for i in _images(at))

    arch = arch_of(rec)
    conv = next(lay for lay in ins.layers if lay.layer_type == "conv2d")
    _select_layer(at, arch, best.number, STUDY, conv.name)
    caps = _image_captions(at)
    assert f"{conv.name}: feature maps for this example" in caps
    n_dead = int(conv.dead.sum())
    assert f"{n_dead} of {conv.units} channels dead" in "\n".join(m.value for m in at.markdown) + captions(at)
    lay = arch.layer(next(x.layer_id for x in arch.layers if x.name == conv.name))
    assert f"{lay.parameters:,} parameters" in "\n".join(m.value for m in at.markdown)

    # a layer without units (flatten/pooling): its facts, and a line saying what is kept
    other = next(x for x in arch.layers if x.name not in {u.name for u in ins.layers} and x.layer_type != "input")
    _select_layer(at, arch, best.number, STUDY, other.name)
    assert "Outputs are kept for the layers with units" in captions(at)

    # the panel with every layer: drawn only once opened (closed, a new tab would load its charts
    # before the scene); then output probabilities, each kept layer, the first conv filters
    panel = next(e for e in at.expander if e.label.startswith("Inside the network"))
    assert str(wrong.index) in panel.label
    assert not panel.children and "learned filters of the first conv layer" not in _image_captions(at)
    at.session_state["viewer-inside-open"] = True  # what a click on the panel's header sets (viewer.INSIDE_OPEN)
    at.run()
    assert not at.exception
    panel = next(e for e in at.expander if e.label.startswith("Inside the network"))
    assert panel.children and "learned filters of the first conv layer" in _image_captions(at)
    assert panel.get("plotly_chart")  # the output probabilities


@pytest.mark.slow  # the module's real study trains for ~20-40 s, once
def test_a_click_in_the_scene_selects_the_layer_and_look_inside_opens_the_example(home, records):
    done, best = records
    rec = done[best.number]
    arch = arch_of(rec)
    from app import inside as INSIDE

    ins = INSIDE.INS.load(INSIDE.insight_path(rec))
    other = next(n for n in done if n != best.number)
    other_ins = INSIDE.INS.load(INSIDE.insight_path(done[other]))
    # "Look inside" on the Health screen: another trial (not the best), its last example
    at = AppTest.from_file(VIEWER, default_timeout=TIMEOUT)
    at.session_state["inside"] = {"study": STUDY, "trial": other, "example": other_ins.examples[-1].index}
    at.run()
    assert not at.exception
    assert at.selectbox(key=f"viewer-trial-{STUDY}").value == other
    assert at.selectbox(key=f"viewer-example-{STUDY}-{other}").value == other_ins.examples[-1].index
    assert "inside" not in at.session_state  # the request is used once

    # the scene reports a click on a dense layer: the app selects it and shows its unit outputs
    at = run_viewer()
    args = scene_args(at)
    dense = next(lay for lay in ins.layers if lay.layer_type == "dense")
    layer_id = next(x.layer_id for x in arch.layers if x.name == dense.name)
    from app.scene_component import scene_key

    url = S.resolve_url(None, Settings(home=home))
    comp_key = f"viewer-scene-{scene_key(url, STUDY, best.number, rec.complete.isoformat(), arch)}"
    at.session_state[comp_key] = {"color_by": args["color_by"], "layer": layer_id, "pick": 1}
    at.run()
    assert not at.exception
    assert scene_args(at)["highlight"] == layer_id
    assert f"selected: **{dense.name}**" in captions(at)
    assert any(c.proto.spec and f"{dense.name}: each unit" in c.proto.spec
               for c in at.get("plotly_chart"))


@pytest.mark.slow  # trains a one-trial LSTM study in a subprocess (~20-30 s)
def test_inside_an_lstm_hidden_state_over_the_words(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    make_real_study(tmp_path, "txt", dataset="synthetic_text", trials=1, max_samples=300)
    url = S.resolve_url(None, Settings(home=tmp_path))
    rec = next(r for r in load_records("txt", url) if r.state == "COMPLETE")
    from app import inside as INSIDE

    ins = INSIDE.INS.load(INSIDE.insight_path(rec))
    assert ins is not None and ins.kind == "text"
    at = run_viewer()
    ex = ins.examples[0]
    # the text is shown as its words, not an image
    assert any(" ".join(ex.words)[:40] in m.value for m in at.markdown)
    lstm = next(lay for lay in ins.layers if lay.layer_type in ("lstm", "bilstm"))
    _select_layer(at, arch_of(rec), rec.number, "txt", lstm.name)
    charts = [c for c in at.get("plotly_chart") if "hidden state over the words" in (c.proto.spec or "")
              and str(c.key).startswith("details-")]
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    rows = spec["data"][0]["y"]
    assert len(rows) == len(ex.words) and rows[0].endswith(ex.words[0])  # one row per kept word, in order
    assert "units dead" in captions(at) + "\n".join(m.value for m in at.markdown)
