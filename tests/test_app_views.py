"""AppTests for every screen, through the router, on a fake study written into a temp storage.

The fake study (tests/fakes.py) has complete, pruned, failed and running trials written the
way the real runner writes them, so these tests check that the screens render the stored
values. StudyRunner is replaced by a recorder: no training happens here (tests/e2e does that).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from core import storage as S
from core.config import PRUNING_PAYS_FROM_EPOCHS, Settings, StudyConfig
from core.health import METRIC_INFO
from core.search_space import DEFAULT_TUNED, HYPERPARAMETERS
from core import study as K  # the storage schema: attribute keys
from tests.fakes import FakeStudy, advance_running_trial, make_fake_study, touch_heartbeat

ROOT = Path(__file__).resolve().parent.parent
ROUTER = str(ROOT / "streamlit_app.py")
TIMEOUT = 30  # the first run imports plotly, pandas and optuna: far over AppTest's 3 s default

CONFIGURE, TRIALS, HEALTH, LEARN = (f"app/views/{n}.py" for n in ("configure", "trials", "health", "learn"))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fake_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app_home")


@pytest.fixture(scope="module")
def fake(fake_home) -> FakeStudy:
    """One fake study shared by the read-only tests of this module (writing one costs seconds)."""
    settings = Settings(home=fake_home)
    url = S.resolve_url(None, settings)
    return make_fake_study(url, "fake-study", n_complete=6, n_pruned=1, n_failed=1, n_running=1, settings=settings)


@pytest.fixture
def home(fake, fake_home, monkeypatch) -> Path:
    """HPO_HOME for this test: the module's storage, which already holds the fake study."""
    monkeypatch.setenv("HPO_HOME", str(fake_home))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    touch_heartbeat(fake.storage_url, fake.name)  # "running" means a heartbeat under 30 s old
    return fake_home


@pytest.fixture
def runner_calls(monkeypatch) -> list[tuple[str, object]]:
    """Replace core.study.StudyRunner with a recorder; the list holds (event, config-or-name)."""
    import core.study

    calls: list[tuple[str, object]] = []

    class RecordingRunner:
        def __init__(self, config: StudyConfig, **kwargs) -> None:
            self.config = config
            calls.append(("init", config))

        @classmethod
        def resume(cls, name: str, storage_url: str | None = None, **kwargs) -> "RecordingRunner":
            calls.append(("resume", name))
            return cls(StudyConfig(name=name))

        def start(self) -> "RecordingRunner":
            calls.append(("start", self.config))
            return self

        is_running = False
        error = None

        def stop(self) -> None:
            calls.append(("stop", self.config.name))

        def cancel(self) -> None:
            calls.append(("cancel", self.config.name))

        def join(self, timeout=None) -> bool:
            return True

    monkeypatch.setattr(core.study, "StudyRunner", RecordingRunner)
    return calls


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=TIMEOUT)
    at.run()
    if page is not None and page != CONFIGURE:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def block_keys(at: AppTest) -> list[str]:
    """Keys of keyed containers (their ids end in '-<key>')."""
    keys: list[str] = []

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            if isinstance(child, Block):
                pid = getattr(child.proto, "id", "") if child.proto is not None else ""
                if pid.startswith("$$ID-"):
                    keys.append(pid.split("-", 2)[2])
                walk(child)

    walk(at.main)
    return keys


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


# --------------------------------------------------------------------------- router


def test_router_lists_the_viewer(tmp_path, home):
    # a copy of the app with a stub viewer: the router is under test here, the viewer in test_app_viewer.py
    shutil.copy(ROOT / "streamlit_app.py", tmp_path / "streamlit_app.py")
    shutil.copytree(ROOT / "app" / "views", tmp_path / "app" / "views")
    (tmp_path / "app" / "views" / "viewer.py").write_text("import streamlit as st\nst.title('3D stub')\n")
    at = AppTest.from_file(str(tmp_path / "streamlit_app.py"), default_timeout=TIMEOUT).run()
    assert [t.value for t in at.title] == ["Configure a study"]
    at.switch_page("app/views/viewer.py").run()
    assert [t.value for t in at.title] == ["3D stub"]


# --------------------------------------------------------------------------- configure


def test_configure_defaults_to_a_quick_digits_study(home, fake):
    at = app()
    assert at.selectbox(key="cfg_dataset").value == "digits"
    captions = texts(at)
    assert "8×8×1" in captions and "10 classes" in captions
    images = at.image[0]
    assert len(images.value) == 8 and "0" in images.captions  # sample digits, labelled
    # the form starts from StudyConfig's defaults, the same numbers as the CLI and the bench
    defaults = StudyConfig.defaults()
    assert at.number_input(key="cfg_trials").value == defaults["n_trials"]
    assert at.number_input(key="cfg_epochs").value == defaults["epochs"]
    # every tunable knob of the CNN with its one-line explanation
    tuned = {cb.key.rsplit("_image_", 1)[1] for cb in at.checkbox if cb.value}
    assert tuned == set(DEFAULT_TUNED["image"])
    assert HYPERPARAMETERS["learning_rate"].explanation in captions
    # local workers and RunPod (which falls back to local, and says so, without a key)
    assert at.selectbox(key="cfg_executor").options == ["Local worker processes", "RunPod serverless GPUs"]
    # the studies list shows the fake study
    assert any(m.value.startswith(f"**{fake.name}**") for m in at.markdown)


def test_configure_shows_text_samples_for_a_text_set(home):
    at = app()
    at.selectbox(key="cfg_dataset").set_value("synthetic_text").run()
    assert not at.exception
    assert any(":blue-badge[" in m.value for m in at.markdown)  # a labelled sample text
    assert any(cb.key.startswith("cfg_tune_text_lstm_units") for cb in at.checkbox)


@pytest.mark.parametrize(
    "setup, message",
    [
        ({"cfg_trials": 0}, "Trials / Time budget (min): give a number of trials, a time budget, or both"),
        ({"cfg_name": "   "}, "Study name: give the study a name"),
        ({"cfg_name": "fake-study"}, "Study name: a study called 'fake-study' already exists"),
        ({"cfg_low_image_learning_rate": 0.02, "cfg_high_image_learning_rate": 0.001},
         "Learning rate range: the low end 0.02 is above the high end 0.001"),
        ({"cfg_epochs": 0}, "Epochs per trial: must be from 1 to 500"),
        ({"cfg_max_samples": 5}, "Max training samples: 0 for all of them, or at least 20"),
        ({"cfg_name": "../../x"}, "may not contain '/'"),
    ],
    ids=["zero-trials", "empty-name", "duplicate-name", "low-above-high", "zero-epochs", "tiny-max-samples",
         "path-in-name"],
)
def test_configure_refuses_bad_settings_before_starting(home, runner_calls, setup, message):
    at = app()
    for key, value in setup.items():
        widget = at.text_input(key=key) if key == "cfg_name" else at.number_input(key=key)
        widget.set_value(value)
    at.button(key="cfg_start").click().run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # messages are escaped Markdown (they quote user input)
    assert any(message in e for e in errors), errors
    assert runner_calls == []  # nothing was constructed, let alone started
    assert [t.value for t in at.title] == ["Configure a study"]  # still on the form


def test_configure_good_submit_starts_the_right_study(home, runner_calls):
    at = app()
    at.text_input(key="cfg_name").set_value("my-first-study")
    at.number_input(key="cfg_trials").set_value(4)
    at.number_input(key="cfg_epochs").set_value(1)
    at.number_input(key="cfg_max_samples").set_value(300)
    at.radio(key="cfg_mode").set_value("health-aware").run()
    at.slider(key="cfg_health_weight").set_value(0.5)
    at.checkbox(key="cfg_tune_image_batch_size").uncheck()
    at.button(key="cfg_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [event for event, _ in runner_calls] == ["init", "start"]
    cfg = runner_calls[-1][1]
    assert isinstance(cfg, StudyConfig)
    assert (cfg.name, cfg.dataset, cfg.mode, cfg.health_weight) == ("my-first-study", "digits", "health-aware", 0.5)
    assert (cfg.n_trials, cfg.timeout_s, cfg.epochs, cfg.max_samples) == (4, None, 1, 300)
    assert sorted(cfg.tune) == sorted(n for n in DEFAULT_TUNED["image"] if n != "batch_size")
    assert cfg.ranges["learning_rate"] == {"low": 1e-4, "high": 3e-2}
    assert (cfg.sampler, cfg.pruner, cfg.executor, cfg.workers, cfg.seed) == ("tpe", "successive_halving", "local", 1, 0)
    assert cfg.storage == S.resolve_url(None, Settings(home=home))
    cfg.validate()
    # and the user lands on the live gallery
    assert [t.value for t in at.title] == ["Trials"]


def test_configure_runpod_choice_sends_endpoint_workers_and_key(home, runner_calls, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rp-secret-key")
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "abc123")
    at = app()
    at.selectbox(key="cfg_executor").set_value("runpod").run()
    assert at.text_input(key="cfg_runpod_endpoint").value == "abc123"
    assert "API key found" in texts(at) and "rp-secret-key" not in texts(at)
    at.slider(key="cfg_runpod_workers").set_value(4)
    at.text_input(key="cfg_name").set_value("on-runpod")
    at.button(key="cfg_start").click().run()
    assert not at.error, [e.value for e in at.error]
    cfg = runner_calls[-1][1]
    assert (cfg.executor, cfg.workers, cfg.runpod_endpoint) == ("runpod", 4, "abc123")
    assert "rp-secret-key" not in cfg.to_json()  # the key never enters the stored config


def test_configure_in_demo_mode_limits_the_study(home, runner_calls, monkeypatch):
    monkeypatch.setenv("HPO_DEMO", "1")
    monkeypatch.setattr("core.demo.ensure_example_study", lambda *a, **k: None)
    at = app()
    assert at.selectbox(key="cfg_executor").options == ["Local worker processes"]
    assert {o.split(" · ")[0] for o in at.selectbox(key="cfg_dataset").options} == {"digits", "synthetic_text"}
    assert "Hosted demo" in " ".join(i.value for i in at.info)
    from core.demo import LIMITS

    # the form starts within the demo's limits even where the study defaults exceed them
    assert at.number_input(key="cfg_trials").value <= LIMITS["n_trials"]
    assert at.number_input(key="cfg_epochs").value <= LIMITS["epochs"]
    at.number_input(key="cfg_trials").set_value(50)
    at.button(key="cfg_start").click().run()
    assert any("Trials: at most 12" in e.value.replace("\\", "") for e in at.error), [e.value for e in at.error]
    assert runner_calls == []


def test_configure_pareto_offers_only_matching_search_settings(home):
    at = app()
    at.radio(key="cfg_mode").set_value("pareto").run()
    assert at.selectbox(key="cfg_sampler_pareto").options == ["nsga2", "motpe", "random"]
    assert at.selectbox(key="cfg_pruner_pareto").options == ["none"]


def test_configure_says_when_pruning_has_little_room(home):
    at = app()
    note = "Pruning saves little"
    # the defaults leave pruning room to pay (bench/bench_default_study.py): no note at first
    assert at.number_input(key="cfg_epochs").value >= PRUNING_PAYS_FROM_EPOCHS
    assert note not in texts(at)
    at.number_input(key="cfg_epochs").set_value(3).run()
    assert note in texts(at)  # the default pruner with 3 epochs
    at.number_input(key="cfg_epochs").set_value(10).run()
    assert note not in texts(at)
    at.number_input(key="cfg_epochs").set_value(4).run()
    at.selectbox(key="cfg_pruner_simple").set_value("none").run()
    assert note not in texts(at)


def test_configure_stop_reaches_a_study_run_elsewhere_through_the_storage(home, fake, runner_calls, monkeypatch):
    import optuna

    import app.state as state

    def control():
        return optuna.load_study(study_name=fake.name, storage=S.open_storage(fake.storage_url)).user_attrs.get(
            K.ATTR_CONTROL)

    at = app()
    # the fake study is "running" (fresh heartbeat) but not by this process: no resume, but
    # stop and cancel reach its runners through the storage
    assert at.button(key="resume-0").disabled
    assert not at.button(key="stop-0").disabled and not at.button(key="cancel-0").disabled
    try:
        at.button(key="stop-0").click().run()
        assert not at.exception and (control() or {}).get("action") == "stop" and control()["by"] == "app"
        at.button(key="cancel-0").click().run()
        assert (control() or {}).get("action") == "cancel"
    finally:
        optuna.load_study(study_name=fake.name, storage=S.open_storage(fake.storage_url)).set_user_attr(
            K.ATTR_CONTROL, None)
    # a runner of this process is told directly
    monkeypatch.setattr(state, "runner_for", lambda name, url=None: object() if name == fake.name else None)
    monkeypatch.setattr(state, "stop", lambda name, url=None: runner_calls.append(("stop", name)) or True)
    at.run()
    at.button(key="stop-0").click().run()
    assert ("stop", fake.name) in runner_calls
    assert control() is None


# --------------------------------------------------------------------------- trials gallery


def test_gallery_lists_the_machines_working_on_the_study(home, fake):
    import optuna

    study = optuna.load_study(study_name=fake.name, storage=S.open_storage(fake.storage_url))
    trial_runner = study.trials[0].user_attrs[K.T_RUNNER]
    now = time.time()
    attrs = {
        K.ATTR_WORKER_PREFIX + trial_runner: {"host": "host-a", "pid": 11, "beat": now, "workers": 2,
                                              "status": "running", "joined": now - 60, "owner": True, "asked": 5},
        K.ATTR_WORKER_PREFIX + "host-b:22:bb": {"host": "host-b", "pid": 22, "beat": now - 300, "workers": 1,
                                                "status": "running", "joined": now - 50, "owner": False, "asked": 2},
    }
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    try:
        at = app(TRIALS)
        assert not at.exception
        label = next(e.label for e in at.expander if e.label.startswith("Machines"))
        assert label == "Machines: 2 runners, 1 working now"
        df = next(d.value for d in at.dataframe if "machine" in d.value.columns)
        assert list(df["machine"]) == ["host-a", "host-b"]
        assert list(df["role"]) == ["owner", "joined worker"]
        assert list(df["status"]) == ["running", "gone (no heartbeat)"]
        ran = sum(1 for t in study.trials if t.user_attrs.get(K.T_RUNNER) == trial_runner)
        assert ran == len(study.trials) > 0
        assert int(df["trials"][0]) == ran and int(df["trials"][1]) == 0
    finally:
        for k in attrs:
            study.set_user_attr(k, None)


def test_gallery_shows_a_card_per_trial_with_stored_values(home, fake):
    at = app(TRIALS)
    keys = [k for k in block_keys(at) if k.startswith("card-")]
    assert len(keys) == len(fake.states)
    assert f"card-best-{fake.best_number}" in keys  # highlighted
    best = fake.results[fake.best_number]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"Best: trial #{fake.best_number}"] == f"{100 * best.val_accuracy:.1f}%"
    assert metrics["Trials"] == f"8/{fake.config.n_trials}"
    assert f"{100 * best.val_accuracy:.1f}%" in [m.value for m in at.metric if m.label == "Val accuracy"]
    assert f"{best.health_score:.2f}" in [m.value for m in at.metric if m.label == "Health"]
    body = texts(at)
    assert f"test {100 * best.test_accuracy:.1f}%" in body
    assert "loss became NaN/Inf" in body  # the failed trial says why
    assert "pruned after 2 epoch(s)" in body
    saved = re.search(r"Pruning stopped 1 trial early: (\d+) epochs trained of (\d+) had every trial run", body)
    assert saved and int(saved.group(2)) - int(saved.group(1)) == fake.config.epochs - 2  # its 2 unrun epochs
    assert "local @ " in body  # executor / host
    progress = [p.proto.text for p in at.get("progress")]
    assert len(progress) == 2 and progress[1].startswith("epoch ")  # the running trial's card
    running_epoch = int(re.match(r"epoch (\d+)/", progress[1]).group(1))
    # the study's bar: 8 trials finished; epochs = 6 complete x 4 + pruned 2 + failed 2 + the running trial's
    assert progress[0] == (f"8/{fake.config.n_trials} trials · "
                           f"{6 * fake.config.epochs + 2 + 2 + running_epoch} of at most "
                           f"{fake.config.n_trials * fake.config.epochs} epochs trained")
    labels = [d.label for d in at.get("download_button")]
    assert f"Best model #{fake.best_number} (.keras)" in labels and "Study (CSV)" in labels and "Study (JSON)" in labels
    assert "Reproduce config" in labels and "Result (JSON)" in labels
    assert any(c["layout"].get("title", {}).get("text") == "Optimisation history" for c in charts(at))


def test_gallery_filter_and_sort(home, fake):
    at = app(TRIALS)
    pills = at.get("button_group")[0]
    pills.set_value(["FAIL"]).run()
    assert [k for k in block_keys(at) if k.startswith("card-")] == [f"card-{n}" for n, s in fake.states.items() if s == "FAIL"]
    pills.set_value(["COMPLETE"]).run()
    at.selectbox(key=f"sort-{fake.name}").set_value("Health score").run()
    keys = [k for k in block_keys(at) if k.startswith("card-")]
    by_health = sorted(fake.results.values(), key=lambda r: -r.health_score)
    assert keys[0].endswith(f"-{by_health[0].trial_number}")
    assert len(keys) == len(fake.results)


def test_gallery_reads_progress_from_the_storage_on_each_rerun(home, fake):
    at = app(TRIALS)
    running = next(n for n, s in fake.states.items() if s == "RUNNING")
    advance_running_trial(fake.storage_url, fake.name, running, epoch=3)
    at.run()
    assert at.get("progress")[1].proto.text.startswith("epoch 3/4")


def test_gallery_refreshes_only_while_a_study_runs(home, fake, monkeypatch, tmp_path):
    import streamlit

    seen: list[object] = []
    real = streamlit.fragment

    def recording_fragment(func=None, *, run_every=None, **kw):
        seen.append(run_every)
        return real(func, run_every=run_every, **kw)

    monkeypatch.setattr(streamlit, "fragment", recording_fragment)
    app(TRIALS)
    assert seen and seen[-1] == 2.0  # the fake study is running
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    make_fake_study(S.resolve_url(None, Settings(home=tmp_path)), "finished-study", n_complete=2, n_pruned=0,
                    n_failed=0, n_running=0, settings=Settings(home=tmp_path), with_models=False)
    seen.clear()
    app(TRIALS)
    assert seen and seen[-1] is None


def test_no_studies_yet_points_to_configure(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    for page in (TRIALS, HEALTH, LEARN):
        at = app(page)
        assert not at.exception
        if page != LEARN:
            assert any("No studies yet" in i.value for i in at.info)


# --------------------------------------------------------------------------- health dashboard


def test_health_defaults_to_the_best_trial(home, fake):
    at = app(HEALTH)
    assert at.selectbox(key=f"health-trial-{fake.name}").value == fake.best_number
    best = fake.results[fake.best_number]
    metrics = {m.label: m.value for m in at.metric}
    for key, info in METRIC_INFO.items():
        assert metrics[info["title"]] == f"{best.health[key]:.2f}"
    assert metrics["Test accuracy"] == f"{100 * best.test_accuracy:.1f}%"
    assert metrics["Shifted accuracy"] == f"{100 * best.shifted_accuracy:.1f}%"
    helps = {m.label: m.proto.help for m in at.metric}
    assert METRIC_INFO["gradient_health"]["meaning"] in helps["Gradient health"]
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert {"Dead units per layer", "How far each layer's weights moved", "Training vs validation accuracy",
            "Training vs validation loss"} <= set(titles)
    from core.diagnosis import diagnose

    shown = "\n".join(e.value for kind in (at.error, at.warning, at.info, at.success) for e in kind)
    expected = diagnose(best, 10)
    assert expected and all(f.title in shown for f in expected)  # the diagnosis, in plain language
    assert "Model (.keras)" in [d.label for d in at.get("download_button")]


def test_health_shows_the_diagnosis_of_a_failed_trial(home, fake):
    at = app(HEALTH)
    failed = next(n for n, s in fake.states.items() if s == "FAIL")
    at.selectbox(key=f"health-trial-{fake.name}").set_value(failed).run()
    assert any("Loss diverged at epoch 2" in e.value for e in at.error)


def test_health_study_wide_views(home, fake):
    at = app(HEALTH)
    at.session_state["health-tab"] = "Whole study"
    at.run()
    assert not at.exception
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert {"Hyperparameter importance", "Accuracy vs health", "Parallel coordinates (complete trials)",
            "Intermediate values"} <= set(titles)
    inter = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Intermediate values")
    assert any(t.get("name") == "pruned" for t in inter["data"])  # pruned trials are visible


def test_health_compare_trials(home, fake):
    at = app(HEALTH)
    at.session_state["health-tab"] = "Compare"
    at.run()
    df = at.dataframe[0].value
    assert df.columns[1] == f"#{fake.best_number}" and "differs" in df.columns  # the best first
    assert "Neuron utilisation" in set(df[""])


def test_pareto_front_is_highlighted(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    make_fake_study(S.resolve_url(None, Settings(home=tmp_path)), "pareto-study", mode="pareto", n_complete=6,
                    n_pruned=0, n_failed=0, settings=Settings(home=tmp_path), with_models=False)
    at = app(HEALTH)
    at.session_state["health-tab"] = "Whole study"
    at.run()
    scatter = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Accuracy vs health")
    assert any(t.get("name") == "Pareto front" for t in scatter["data"])
    at.switch_page(TRIALS).run()
    assert any(k.startswith("card-front-") or k.startswith("card-best-") for k in block_keys(at))


def test_importance_is_guarded_for_few_trials(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    make_fake_study(S.resolve_url(None, Settings(home=tmp_path)), "tiny-study", n_complete=2, n_pruned=0, n_failed=0,
                    settings=Settings(home=tmp_path), with_models=False)
    at = app(HEALTH)
    at.session_state["health-tab"] = "Whole study"
    at.run()
    assert any("at least 5 complete trials" in i.value for i in at.info)


# --------------------------------------------------------------------------- learn


def test_learn_explains_every_hyperparameter_and_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))  # no study: every hyperparameter is listed
    at = app(LEARN)
    labels = [e.label for e in at.expander]
    for hp in HYPERPARAMETERS.values():
        assert any(label.startswith(hp.title + " · ") for label in labels), hp.name
    for info in METRIC_INFO.values():
        assert any(label.startswith(info["title"] + " · ") for label in labels)
    body = texts(at)
    assert HYPERPARAMETERS["dropout"].effect in body and METRIC_INFO["training_stability"]["formula"] in body


def test_learn_links_to_the_users_study(home, fake):
    at = app(LEARN)
    at.session_state["learn-hp-learning_rate"] = True
    at.session_state["learn-hp-weight_decay"] = True
    at.session_state["learn-metric-neuron_utilization"] = True
    at.run()
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert "learning_rate vs validation accuracy in this study" in titles
    assert "Neuron utilisation vs accuracy in this study" in titles
    assert any("Not tuned in" in c.value for c in at.caption)  # weight_decay was fixed
    lr = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("learning_rate"))
    assert len(lr["data"][0]["x"]) == len(fake.results)  # one point per complete trial of the study
    # and how far apart two points must be to differ beyond sampling noise (fakes: 216 samples)
    assert any("samples; one sample is 0.46 points): points closer than that are a tie" in c.value for c in at.caption)


def test_learn_explains_the_search_with_the_users_pruned_trials(home, fake):
    from core.config import PRUNER_HELP, SAMPLER_HELP

    at = app(LEARN)
    labels = [e.label for e in at.expander]
    assert {"Modes: what the search optimises", "Samplers: how the next trial is chosen",
            "Pruning: stopping hopeless trials early"} <= set(labels)
    body = texts(at)
    assert all(text in body for text in [*SAMPLER_HELP.values(), *PRUNER_HELP.values()])
    assert "Intermediate values" not in [c["layout"]["title"]["text"] for c in charts(at)]  # closed: not drawn
    at.session_state["learn-search-pruning"] = True
    at.run()
    assert not at.exception
    assert any(c["layout"]["title"]["text"] == "Intermediate values" for c in charts(at))
    saved = re.search(r"1 trial pruned; (\d+) epochs trained of (\d+)", texts(at))
    assert saved and int(saved.group(2)) - int(saved.group(1)) == fake.config.epochs - 2


# --------------------------------------------------------------------------- figures and figures of speech


def test_figures_mark_what_they_teach():
    from app import figures as C
    from core.config import LayerHealth, TrialResult

    res = TrialResult(status="complete", history={"accuracy": [0.6, 0.9, 0.99], "val_accuracy": [0.6, 0.8, 0.85],
                                                  "loss": [1.0, 0.4, 0.1], "val_loss": [1.0, 0.6, 0.7]},
                      layers=[LayerHealth("conv_1", "conv2d", 8, dead_fraction=0.6, grad_norm=1e-7, update_ratio=1e-7,
                                          gradient_score=0.0),
                              LayerHealth("output", "dense", 0, grad_norm=0.3, update_ratio=1e-2, gradient_score=1.0)])
    acc = C.make_curves_figure(res, "accuracy").to_dict()
    assert acc["layout"]["annotations"][0]["text"] == "gap +14.0 pts"
    loss = C.make_curves_figure(res, "loss").to_dict()
    assert any(t["name"] == "best validation loss (epoch 2)" for t in loss["data"])
    dead, grads = C.make_layer_figures(res)
    assert dead.to_dict()["data"][0]["marker"]["color"] == ["#e03131"]  # 60% dead: red
    band = grads.to_dict()["layout"]["shapes"][0]
    assert (band["y0"], band["y1"]) == pytest.approx((math.log10(3e-4), -1.0))  # core.health's band; shapes on a log axis are in log10
    assert grads.to_dict()["data"][0]["marker"]["color"] == ["#e03131", "#2f9e44"]  # stalled red, healthy green


def test_summary_arithmetic():
    import datetime as dt

    from app import format as C
    from core.study import TrialRecord

    t0 = dt.datetime(2025, 1, 1, 12, 0, 0)

    def rec(n, state, secs):
        return TrialRecord(number=n, state=state, params={}, values=None, start=t0 + dt.timedelta(seconds=60 * n),
                           complete=t0 + dt.timedelta(seconds=60 * n + secs) if secs else None)

    records = [rec(0, "COMPLETE", 30), rec(1, "PRUNED", 10), rec(2, "RUNNING", None)]
    cfg = StudyConfig(name="x", n_trials=6, workers=1)
    assert C.elapsed_seconds(records, None, running=False) == 70
    # 4 of 6 trials not finished, one of them half done on average, at 20 s mean per finished trial
    assert C.eta_seconds(records, cfg, elapsed=120) == 20 * 3.5
    cfg.timeout_s = 150
    assert C.eta_seconds(records, cfg, elapsed=120) == 30  # the time budget ends first
    assert C.fmt_duration(3725) == "1 h 02 min" and C.fmt_count(305_726) == "306 k" and C.fmt_count(3_400) == "3.4 k" and C.fmt_count(1_234_567) == "1.23 M" and C.fmt_value(0.00023) == "2.3e-04"


# --------------------------------------------------------------------------- process hygiene


def test_views_never_import_tensorflow(fake_home, fake):
    code = f"""
import os, sys
os.environ["HPO_HOME"] = {str(fake_home)!r}
sys.path.insert(0, {str(ROOT)!r})
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({ROUTER!r}, default_timeout={TIMEOUT}).run()
for page in {[TRIALS, HEALTH, LEARN]!r}:
    at.switch_page(page).run()
    assert not at.exception, page
print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_health_and_learn_follow_a_running_study(home, fake):
    for page in (HEALTH, LEARN):
        at = app(page)
        assert not at.exception and "the study is running" in texts(at), page
    touch_heartbeat(fake.storage_url, fake.name, when=time.time() - 120)  # its runner is gone
    for page in (HEALTH, LEARN):
        at = app(page)
        assert not at.exception and "the study is running" not in texts(at), page
