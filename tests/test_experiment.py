"""One-knob experiments (issue 14): config rules, suggested values, the table and its sentence, the sampler,
the CLI, and real runs on digits (tf-marked) with the same seed and fixed params."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from core import storage as S
from core import study as K
from core.config import ConfigError, Settings, StudyConfig
from core.experiment import (
    ExperimentRow,
    default_name,
    experiment_config,
    experiment_table,
    experiments_of,
    parse_values,
    suggest_values,
    what_changed_most,
)
from core.noise import accuracy_margin, difference_is_noise
from core.search_space import HYPERPARAMETERS, hyperparameters_for
from tests.fakes import FakeExecutor, _fake_result, make_fake_study

ROOT = Path(__file__).resolve().parent.parent
TINY = {"conv_blocks": 1, "filters": 8, "dense_units": 16, "batch_norm": False, "batch_size": 32, "dropout": 0.0}


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def base(tmp_path):
    """A fake digits study (no training) and its best complete trial."""
    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    fake = make_fake_study(url, "base", n_complete=3, n_pruned=0, n_failed=0, with_models=False, settings=settings)
    records = K.load_records("base", url)
    return fake.config, next(r for r in records if r.number == fake.best_number), url


def make_fake_experiment(base_config: StudyConfig, record, knob: str, values: list, url: str, *, name: str | None = None,
                         n_done: int | None = None):
    """An experiment study written as the runner writes one, with fake results (no training)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    base_config.storage = url
    cfg = experiment_config(base_config, record, knob, values, name)
    hp = HYPERPARAMETERS[knob]
    r = cfg.ranges[knob]
    dist = (CategoricalDistribution(r["choices"]) if "choices" in r else
            IntDistribution(r["low"], r["high"], log=hp.log) if hp.kind == "int" else
            FloatDistribution(r["low"], r["high"], log=hp.log))
    study = optuna.create_study(study_name=cfg.name, storage=S.open_storage(url))
    study.set_user_attr(K.ATTR_CONFIG, cfg.to_dict())
    study.set_user_attr(K.ATTR_STATUS, "finished")
    rng = random.Random(1)
    for i, value in enumerate(cfg.experiment["values"][: n_done if n_done is not None else len(values)]):
        spec = cfg.trial_spec({**cfg.fixed, knob: value}, i)
        res = _fake_result(i, spec.params, cfg.epochs, rng, cfg.name, None)
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[res.val_accuracy], params={knob: value},
                                     distributions={knob: dist},
                                     user_attrs={K.T_SPEC: spec.to_dict(), K.T_RESULT: res.to_dict()}))
    K.forget_study(cfg.name, url)
    return cfg


# --------------------------------------------------------------------------- config


def test_experiment_config_copies_the_base_trial_but_the_knob(base):
    config, rec, url = base
    cfg = experiment_config(config, rec, "learning_rate", [3e-4, 1e-3, 3e-3])
    assert cfg.experiment["knob"] == "learning_rate" and cfg.experiment["trial"] == rec.number
    assert cfg.experiment["seed"] == rec.spec["seed"] == config.seed + rec.number
    assert cfg.tuned == ["learning_rate"] and "learning_rate" not in cfg.fixed
    for k, v in rec.params.items():
        if k != "learning_rate":
            assert cfg.fixed[k] == v
    assert cfg.n_trials == 3 and cfg.pruner == "none" and cfg.dataset == config.dataset
    assert cfg.epochs == config.epochs and cfg.max_samples == config.max_samples and cfg.mode == config.mode
    # every trial gets the base seed, and the study's data split
    specs = [cfg.trial_spec({**cfg.fixed, "learning_rate": v}, n) for n, v in enumerate(cfg.experiment["values"])]
    assert {s.seed for s in specs} == {rec.spec["seed"]} and {s.data_seed for s in specs} == {config.seed}
    # an ordinary study still varies its seed per trial
    assert config.trial_spec(rec.params, 3).seed != config.trial_spec(rec.params, 4).seed
    # the config survives the storage round trip
    assert StudyConfig.from_dict(cfg.to_dict()).validate().experiment == cfg.experiment
    assert cfg.name == f"base · learning_rate from #{rec.number}"


@pytest.mark.parametrize("knob, values, message", [
    ("learning_rate", [1e-3], "give 2 to 7 values"),
    ("learning_rate", [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4], "give 2 to 7 values"),
    ("learning_rate", [1e-3, 0.5], "'learning_rate' must be from"),
    ("learning_rate", [1e-3, 1e-3], "given twice"),
    ("learning_rate", [1e-3, "fast"], "learning_rate"),
    ("activation", ["relu", "sigmoid"], "must be one of"),
    ("lstm_units", [8, 16], "knob must be a hyperparameter of image models"),
    ("nonsense", [1, 2], "knob must be a hyperparameter"),
    ("weight_decay", [0.0, 1e-3], "must be from 1e-06"),  # a log knob cannot sample 0
    ("conv_blocks", [1, 2.5], "conv_blocks"),
])
def test_bad_experiments_are_refused_with_the_setting_named(base, knob, values, message):
    config, rec, _ = base
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        experiment_config(config, rec, knob, values)


def test_validate_refuses_an_experiment_that_tunes_more_or_prunes(base):
    config, rec, _ = base
    cfg = experiment_config(config, rec, "dropout", [0.0, 0.3])
    for change, message in [(dict(tune=["dropout", "filters"]), "tunes only 'dropout'"),
                            (dict(pruner="median"), "pruner: an experiment"),
                            (dict(n_trials=5), "one trial per value"),
                            (dict(fixed={**cfg.fixed, "dropout": 0.1}), "cannot also be fixed")]:
        data = {**cfg.to_dict(), **change}
        with pytest.raises(ConfigError, match=message):
            StudyConfig.from_dict(data).validate()


def test_default_name_is_unique_and_fits():
    assert default_name("s", "dropout", 3) == "s · dropout from #3"
    assert default_name("s", "dropout", 3, taken=["s · dropout from #3"]) == "s · dropout from #3 (2)"
    long = default_name("x" * 200, "learning_rate", 12)
    assert len(long) <= 80 and long.endswith("learning_rate from #12")


# --------------------------------------------------------------------------- suggested values


@pytest.mark.parametrize("kind", ["image", "text"])
def test_suggested_values_are_valid_spread_and_include_the_current_one(kind):
    from core.config import check_knob_values
    from core.search_space import defaults

    for hp in hyperparameters_for(kind):
        current = defaults(kind)[hp.name]
        for n in (3, 5):
            values = suggest_values(kind, hp.name, current, n)
            assert check_knob_values(hp.name, values, kind) == values  # valid, distinct, 2..7
            if hp.kind in ("int", "float"):
                assert values[0] == hp.low and values[-1] == hp.high, hp.name  # spread over the whole range
                if hp.low <= current <= hp.high:
                    assert current in values, (hp.name, values)
            elif current in hp.range_dict()["choices"]:
                assert current in values


def test_log_knobs_get_log_spaced_values():
    values = suggest_values("image", "learning_rate", None, 5)
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert max(ratios) / min(ratios) < 1.1  # equal steps on a log scale, not on a linear one
    assert values == sorted(values) and values[0] == 1e-4 and values[-1] == 3e-2


# --------------------------------------------------------------------------- the sentence never lies about noise


def _row(value, val, n=216, **health) -> ExperimentRow:
    return ExperimentRow(value=value, trial=0, state="COMPLETE", accuracy={"val_accuracy": val},
                         samples={"val_accuracy": n}, margin={"val_accuracy": accuracy_margin(val, n)},
                         health={"neuron_utilization": 0.9, **health}, health_score=0.8)


def test_sentence_calls_a_small_difference_noise():
    rows = [_row(1e-3, 0.950), _row(3e-3, 0.960), _row(1e-2, 0.955)]
    assert difference_is_noise(0.960, 216, 0.950, 216)  # the premise
    text = what_changed_most(rows, "learning_rate")
    assert "within sampling noise" in text and "beyond" not in text and "tie" in text
    assert text.count(". ") == 0 and text.endswith(".")  # one sentence


def test_sentence_calls_a_large_difference_real_and_names_the_best():
    rows = [_row(1e-4, 0.60), _row(1e-3, 0.97), _row(3e-2, 0.80)]
    assert not difference_is_noise(0.97, 216, 0.60, 216)
    text = what_changed_most(rows, "learning_rate")
    assert "beyond sampling noise" in text and "best at 0.001" in text and "worst at 0.0001" in text
    assert "validation accuracy changed most" in text  # 37 points is the largest move here


def test_sentence_names_the_health_metric_that_moved_most():
    rows = [_row("relu", 0.95, neuron_utilization=0.40), _row("elu", 0.951, neuron_utilization=0.98)]
    text = what_changed_most(rows, "activation")
    assert "neuron utilisation changed most (0.40 at relu to 0.98 at elu)" in text
    assert "within sampling noise" in text


def test_sentence_without_sample_counts_never_claims_a_difference():
    rows = [_row(1e-4, 0.60, n=0), _row(1e-3, 0.97, n=0)]
    text = what_changed_most(rows, "learning_rate")
    assert "beyond" not in text and "within" not in text and "unknown" in text


def test_sentence_with_fewer_than_two_results_says_so():
    text = what_changed_most([_row(1e-3, 0.9), ExperimentRow(value=3e-3)], "learning_rate")
    assert text.startswith("Not enough to compare yet: 1 of 2")


def test_table_and_finding_experiments(base):
    config, rec, url = base
    cfg = make_fake_experiment(config, rec, "learning_rate", [1e-2, 1e-4, 1e-3], url, n_done=2)
    other = make_fake_experiment(config, rec, "activation", ["relu", "elu"], url)
    rows = experiment_table(K.load_records(cfg.name, url), cfg)
    assert [r.value for r in rows] == [1e-4, 1e-3, 1e-2]  # numeric knob: ascending
    assert [r.state for r in rows] == ["COMPLETE", "not run", "COMPLETE"]  # values run in the order given
    done = rows[0]
    assert done.samples["val_accuracy"] == 216 and done.samples["shifted_accuracy"] == 360
    assert done.margin["val_accuracy"] == pytest.approx(accuracy_margin(done.accuracy["val_accuracy"], 216))
    assert set(done.health) == set(K.load_records(cfg.name, url)[0].result.health)
    summaries = K.list_studies(url)
    assert {s.name for s in experiments_of(summaries)} == {cfg.name, other.name}
    assert [s.name for s in experiments_of(summaries, knob="activation")] == [other.name]
    assert [s.name for s in experiments_of(summaries, study="base", trial=rec.number, knob="learning_rate")] == [cfg.name]
    assert experiments_of(summaries, study="other") == []


# --------------------------------------------------------------------------- the runner: each value once, same seed


def test_runner_runs_each_value_once_in_order_with_the_base_seed(base, tmp_path):
    config, rec, url = base
    config.storage = url
    cfg = experiment_config(config, rec, "learning_rate", [1e-2, 1e-4, 1e-3])
    ex = FakeExecutor(capacity=2)
    seen = []
    submit = ex.submit
    ex.submit = lambda spec: (seen.append(spec), submit(spec))[1]
    runner = K.StudyRunner(cfg, executor=ex, settings=Settings(home=tmp_path)).start()
    assert runner.join(60)
    assert runner.status == "finished"
    assert [s.params["learning_rate"] for s in seen] == [1e-2, 1e-4, 1e-3]
    assert {s.seed for s in seen} == {cfg.experiment["seed"]}
    for s in seen:
        assert {k: v for k, v in s.params.items() if k != "learning_rate"} == cfg.fixed
    # a resumed, finished experiment asks nothing more; a bigger budget repeats no value
    again = K.StudyRunner.resume(cfg.name, url, executor=FakeExecutor(), settings=Settings(home=tmp_path)).start()
    assert again.join(60) and again.counts.asked == 0


def test_a_cancelled_value_is_run_again_on_resume(base, tmp_path):
    config, rec, url = base
    config.storage = url
    cfg = experiment_config(config, rec, "dropout", [0.0, 0.3, 0.6])
    runner = K.StudyRunner(cfg, executor=FakeExecutor(capacity=1, epoch_s=0.3), settings=Settings(home=tmp_path)).start()
    import time

    deadline = time.time() + 30
    while time.time() < deadline and sum(r.state == "COMPLETE" for r in K.load_records(cfg.name, url)) < 1:
        time.sleep(0.1)
    runner.cancel()
    assert runner.join(30)
    K.forget_study(cfg.name, url)
    ex = FakeExecutor(capacity=1)
    again = K.StudyRunner.resume(cfg.name, url, executor=ex, settings=Settings(home=tmp_path)).start()
    assert again.join(60)
    K.forget_study(cfg.name, url)
    records = K.load_records(cfg.name, url)
    complete = sorted(r.params["dropout"] for r in records if r.state == "COMPLETE")
    assert complete == [0.0, 0.3, 0.6]  # each value once, the interrupted one again


# --------------------------------------------------------------------------- CLI


def test_cli_refuses_bad_experiments_with_one_line(base, tmp_path):
    config, rec, url = base
    env = {**os.environ, "HPO_HOME": str(tmp_path)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "core", "experiment", "--study", "base", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    proc = run("--trial", "99", "--knob", "dropout", "--values", "0,0.3")
    assert proc.returncode == 2 and "no trial #99" in proc.stderr
    proc = run("--trial", str(rec.number), "--knob", "dropout", "--values", "0,0.9")
    assert proc.returncode == 2 and "'dropout' must be from 0.0 to 0.6" in proc.stderr
    assert proc.stderr.count("\n") == 1


# --------------------------------------------------------------------------- real training (tf)


@pytest.mark.tf
@pytest.mark.slow
def test_real_experiments_on_digits(tmp_path, monkeypatch):
    """A 1-trial base study, then a 3-value learning-rate experiment (same seed, fixed params) from the CLI, and a
    conv-blocks experiment whose every variant builds (deeper stacks pool 8x8 images further)."""
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    env = {**os.environ, "HPO_HOME": str(tmp_path)}
    url = S.resolve_url(None, Settings(home=tmp_path))
    base_cfg = StudyConfig(name="tiny", dataset="digits", n_trials=1, epochs=1, max_samples=200,
                           tune=["learning_rate"], fixed=dict(TINY), pruner="none", storage=url, seed=7)
    runner = K.StudyRunner(base_cfg, settings=Settings(home=tmp_path)).start()
    assert runner.join(300) and runner.status == "finished"
    rec = K.load_records("tiny", url)[0]
    assert rec.state == "COMPLETE"

    proc = subprocess.run([sys.executable, "-m", "core", "experiment", "--study", "tiny", "--trial", "0",
                           "--knob", "learning_rate", "--values", "0.0003,0.003,0.03", "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    name = "tiny · learning_rate from #0"
    assert "changed most" in proc.stdout
    records = K.load_records(name, url)
    assert sorted(r.params["learning_rate"] for r in records) == [0.0003, 0.003, 0.03]
    assert all(r.state == "COMPLETE" for r in records)
    assert {r.spec["seed"] for r in records} == {rec.spec["seed"]} == {7}
    for r in records:
        assert {k: v for k, v in r.result.params.items() if k not in ("learning_rate", "epochs")} == \
            {k: v for k, v in rec.result.params.items() if k not in ("learning_rate", "epochs")}
    rows = experiment_table(records, K.study_config(name, url))
    assert all(r.complete and r.samples["val_accuracy"] > 0 for r in rows)

    cfg = experiment_config(K.study_config("tiny", url), rec, "conv_blocks", [1, 2, 3, 4])
    blocks = K.StudyRunner(cfg, settings=Settings(home=tmp_path)).start()
    assert blocks.join(600) and blocks.status == "finished"
    records = K.load_records(cfg.name, url)
    assert sorted(r.params["conv_blocks"] for r in records) == [1, 2, 3, 4]
    assert all(r.state == "COMPLETE" for r in records), [r.error for r in records]
    counts = {r.params["conv_blocks"]: r.result.param_count for r in records}
    assert len(set(counts.values())) == 4  # four different networks, not one network four times


# --------------------------------------------------------------------------- the app (AppTest, no training)

from streamlit.testing.v1 import AppTest  # noqa: E402

ROUTER = str(ROOT / "streamlit_app.py")
TIMEOUT = 30
HEALTH, LEARN, TRIALS = "app/views/health.py", "app/views/learn.py", "app/views/trials.py"


@pytest.fixture
def app_home(base, tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    return base


@pytest.fixture
def started(monkeypatch) -> list:
    """core.study.StudyRunner replaced by a recorder: the configs the app starts, and nothing trains."""
    import core.study

    calls: list = []

    class RecordingRunner:
        is_running = False
        error = None

        def __init__(self, config, **kwargs):
            self.config = config

        def start(self):
            calls.append(self.config)
            return self

    monkeypatch.setattr(core.study, "StudyRunner", RecordingRunner)
    return calls


def _app(page: str, study: str) -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=TIMEOUT)
    at.session_state["hpo.selected_study"] = study
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at: AppTest) -> dict[str, dict]:
    import json

    out = {}
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        out[((spec["layout"].get("title") or {}).get("text")) or ""] = spec
    return out


def test_health_starts_a_knob_experiment_through_the_normal_start_path(app_home, started):
    config, rec, url = app_home
    at = _app(HEALTH, "base")
    prefix = f"knob-exp-base-{rec.number}"
    knob = at.selectbox(key=f"{prefix}-knob")
    assert "learning_rate" in knob.options and "lstm_units" not in knob.options  # the CNN's knobs only
    knob.set_value("learning_rate").run()
    values = at.text_input(key=f"{prefix}-values-learning_rate")
    # short numbers in the form (3 significant digits), the base trial's own value read back exactly
    assert all(len(v.strip()) <= 7 for v in values.value.split(",")), values.value
    prefilled = parse_values(values.value, "learning_rate", rec.params["learning_rate"])
    suggested = suggest_values("image", "learning_rate", rec.params["learning_rate"])
    assert prefilled == pytest.approx(suggested, rel=5e-3)
    assert rec.params["learning_rate"] in prefilled  # the base trial's value, exactly
    values.set_value("0.0003, 0.001, 0.003").run()
    at.button(key=f"{prefix}-start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(started) == 1
    cfg = started[0]
    assert cfg.experiment == {"study": "base", "trial": rec.number, "knob": "learning_rate",
                              "values": [0.0003, 0.001, 0.003], "seed": rec.spec["seed"]}
    assert cfg.storage == url and cfg.n_trials == 3
    assert any("Started" in s.value for s in at.success)


def test_health_refuses_bad_values_before_anything_starts(app_home, started):
    config, rec, url = app_home
    at = _app(HEALTH, "base")
    prefix = f"knob-exp-base-{rec.number}"
    at.selectbox(key=f"{prefix}-knob").set_value("dropout").run()
    at.text_input(key=f"{prefix}-values-dropout").set_value("0.1, 0.9").run()
    at.button(key=f"{prefix}-start").click().run()
    assert started == []
    assert any("'dropout' must be from 0.0 to 0.6" in e.value.replace("\\", "") for e in at.error)


def test_health_plots_the_trials_experiments_with_margins(app_home):
    config, rec, url = app_home
    cfg = make_fake_experiment(config, rec, "learning_rate", [1e-4, 1e-3, 1e-2], url)
    at = _app(HEALTH, "base")
    charts = _charts(at)
    acc = charts["Accuracy vs learning_rate (bars: 95 % sampling noise)"]
    health = charts["Health vs learning_rate"]
    assert acc["layout"]["xaxis"]["type"] == "log"
    rows = experiment_table(K.load_records(cfg.name, url), cfg)
    val = next(t for t in acc["data"] if t["name"] == "Validation accuracy")
    assert val["x"] == [1e-4, 1e-3, 1e-2]
    assert val["y"] == pytest.approx([100 * r.accuracy["val_accuracy"] for r in rows])
    assert val["error_y"]["array"] == pytest.approx([r.margin["val_accuracy"] for r in rows])
    assert {t["name"] for t in acc["data"]} == {"Validation accuracy", "Test accuracy", "Shifted accuracy"}
    assert "Health score" in {t["name"] for t in health["data"]} and len(health["data"]) == 7
    sentence = what_changed_most(rows, "learning_rate")
    from app.format import plain

    assert any(plain(sentence) == m.value for m in at.markdown)
    # open it in Trials
    at.button(key=f"knob-exp-base-{rec.number}-0-open").click().run()
    assert at.session_state["hpo.selected_study"] == cfg.name
    assert not at.exception and any(t.value == "Trials" for t in at.title)  # on the Trials screen, showing it


def test_a_choice_knob_is_plotted_on_categories(app_home):
    config, rec, url = app_home
    make_fake_experiment(config, rec, "activation", ["relu", "elu", "tanh"], url)
    at = _app(HEALTH, "base")
    acc = _charts(at)["Accuracy vs activation (bars: 95 % sampling noise)"]
    assert acc["layout"]["xaxis"]["type"] == "category"
    assert acc["data"][0]["x"] == ["relu", "elu", "tanh"]


def test_learn_links_each_knob_to_the_users_experiments(app_home):
    config, rec, url = app_home
    cfg = make_fake_experiment(config, rec, "learning_rate", [1e-4, 1e-3], url)
    at = _app(LEARN, "base")
    labels = [b.label for b in at.button]
    from app.format import plain

    assert plain(f"{cfg.name} (0.0001, 0.001)") in labels, labels
    assert any("No experiment on dropout yet" in c.value for c in at.caption)
    assert not any("No experiment on learning_rate yet" in c.value for c in at.caption)
    at.button(key="learn-exp-learning_rate-0").click().run()
    assert at.session_state["hpo.selected_study"] == cfg.name
    assert not at.exception and any(t.value == "Trials" for t in at.title)


def test_an_lstm_trial_offers_the_lstm_knobs(tmp_path, monkeypatch, started):
    """A text (LSTM) study written by hand: the experiment form offers its knobs and starts on imdb."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from core.search_space import defaults

    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    url = S.resolve_url(None, Settings(home=tmp_path))
    cfg = StudyConfig(name="words", dataset="imdb", n_trials=1, epochs=2, max_samples=500, tune=["learning_rate"],
                      storage=url)
    study = optuna.create_study(study_name="words", storage=S.open_storage(url))
    study.set_user_attr(K.ATTR_CONFIG, cfg.to_dict())
    study.set_user_attr(K.ATTR_STATUS, "finished")
    params = {**defaults("text"), "learning_rate": 2e-3}
    res = _fake_result(0, params, 2, random.Random(0), "words", None)
    res.dataset, res.layers, res.architecture = "imdb", [], None
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[res.val_accuracy], params={"learning_rate": 2e-3},
                                 distributions={"learning_rate": FloatDistribution(1e-4, 3e-2, log=True)},
                                 user_attrs={K.T_SPEC: cfg.trial_spec(params, 0).to_dict(), K.T_RESULT: res.to_dict()}))
    K.forget_study("words", url)
    at = _app(HEALTH, "words")
    knob = at.selectbox(key="knob-exp-words-0-knob")
    assert "lstm_units" in knob.options and "conv_blocks" not in knob.options
    knob.set_value("lstm_units").run()
    at.button(key="knob-exp-words-0-start").click().run()
    # imdb is not on this machine: the start path refuses it before anything runs, or starts on it
    assert (len(started) == 1 and started[0].experiment["knob"] == "lstm_units"
            and started[0].dataset == "imdb") or any("imdb" in e.value for e in at.error)


def test_a_value_typed_as_the_base_trials_value_shown_short_is_that_value_exactly():
    base = 0.0018952530338670589  # a learning rate TPE chose
    assert parse_values("0.0001, 0.0019, 0.03", "learning_rate", base) == [0.0001, base, 0.03]
    assert parse_values("0.002, 0.0019", "learning_rate", base) == [0.002, base]  # 0.002 is another value
    assert parse_values("0.0019", "learning_rate") == [0.0019]  # no base value given: as typed
    assert parse_values("1, 2, 4", "conv_blocks", 2) == [1, 2, 4]  # ints and choices are unchanged
    assert parse_values("relu, tanh", "activation", "relu") == ["relu", "tanh"]
