"""Contracts: specs, results and study configs round-trip through JSON and refuse bad values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from core.config import (
    ConfigError,
    LayerHealth,
    Settings,
    StudyConfig,
    TrialResult,
    TrialSpec,
    objective_value,
    safe_name,
)


def test_trial_spec_round_trip():
    spec = TrialSpec(dataset="digits", params={"filters": 16, "activation": "elu"}, epochs=3, max_samples=300,
                     seed=7, mode="health-aware", health_weight=0.4, study="s", trial_number=5)
    again = TrialSpec.from_json(spec.to_json())
    assert again == spec


@pytest.mark.parametrize(
    "patch, word",
    [({"epochs": 0}, "epochs"), ({"max_samples": 5}, "max_samples"), ({"mode": "fast"}, "mode"),
     ({"health_weight": 1.5}, "health_weight"), ({"params": [1, 2]}, "params")],
)
def test_trial_spec_refuses_bad_values(patch, word):
    data = {"dataset": "digits", "params": {}, **patch}
    with pytest.raises(ConfigError, match=word):
        TrialSpec.from_dict(data)


def test_trial_spec_refuses_missing_and_unknown_fields():
    with pytest.raises(ConfigError, match="dataset"):
        TrialSpec.from_dict({"params": {}})
    with pytest.raises(ConfigError, match="unknown field"):
        TrialSpec.from_dict({"dataset": "digits", "params": {}, "gpu": 3})


def test_trial_result_round_trip_with_numpy_and_nan():
    np = pytest.importorskip("numpy")
    r = TrialResult(status="complete", val_accuracy=np.float32(0.5), history={"loss": [np.float64(1.0), float("nan")]},
                    layers=[LayerHealth(name="dense_1", layer_type="dense", units=8, dead_fraction=0.25)],
                    health={"gradient_health": float("inf")})
    data = json.loads(r.to_json())
    assert data["history"]["loss"] == [1.0, None]  # NaN cannot be JSON; it reads as "not measured"
    assert data["health"]["gradient_health"] is None
    back = TrialResult.from_dict(data)
    assert back.layers[0].dead_fraction == 0.25 and math.isclose(back.val_accuracy, 0.5)


def test_objective_by_mode():
    assert objective_value(0.9, 0.5, "simple") == 0.9
    assert math.isclose(objective_value(0.9, 0.5, "health-aware", 0.5), 0.7)
    assert objective_value(0.9, 0.5, "pareto") == (0.9, 0.5)
    with pytest.raises(ConfigError):
        objective_value(0.9, 0.5, "other")


def test_study_config_round_trip_and_spec():
    cfg = StudyConfig(name="a", dataset="digits", n_trials=3, epochs=2, max_samples=200, seed=4).validate()
    again = StudyConfig.from_json(cfg.to_json())
    assert again == cfg
    spec = cfg.trial_spec({"filters": 8}, trial_number=2)
    assert spec.seed == 6 and spec.data_seed == 4 and spec.study == "a" and spec.epochs == 2


def test_study_config_defaults_are_its_field_defaults_and_the_cli_s():
    from core.cli import build_parser

    d = StudyConfig.defaults()
    assert "name" not in d and d["dataset"] == "digits" and d["pruner"] == "successive_halving"
    made = StudyConfig(name="x")
    assert all(getattr(made, k) == v for k, v in d.items())
    d["ranges"]["filters"] = {}  # a fresh copy each call: mutating one never changes the next
    assert StudyConfig.defaults()["ranges"] == {}
    args = build_parser().parse_args(["optimize"])
    assert (args.trials, args.epochs, args.dataset, args.seed) == (d["n_trials"], d["epochs"], d["dataset"], d["seed"])


@pytest.mark.parametrize(
    "patch, setting",
    [
        ({"name": " "}, "name"),
        ({"dataset": "nope"}, "nope"),
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": None, "timeout_s": None}, "n_trials"),
        ({"epochs": 0}, "epochs"),
        ({"max_samples": 3}, "max_samples"),
        ({"mode": "x"}, "mode"),
        ({"sampler": "grid"}, "sampler"),
        ({"pruner": "x"}, "pruner"),
        ({"mode": "pareto", "sampler": "tpe", "pruner": "none"}, "sampler"),
        ({"mode": "pareto", "sampler": "nsga2", "pruner": "median"}, "pruner"),
        ({"executor": "runpod", "workers": 7}, "workers"),
        ({"tune": ["lstm_units"]}, "lstm_units"),
        ({"tune": ["bogus"]}, "bogus"),
        ({"ranges": {"filters": {"low": 64, "high": 16}}}, "filters"),
        ({"ranges": {"learning_rate": {"low": 1e-9, "high": 1e-2}}}, "learning_rate"),
        ({"health_weight": -0.1}, "health_weight"),
    ],
)
def test_study_config_refuses_bad_settings_naming_them(patch, setting):
    cfg = StudyConfig(**{"name": "ok", **patch})
    with pytest.raises(ConfigError, match=setting):
        cfg.validate()


def test_settings_follow_hpo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_DATASETS", raising=False)
    s = Settings.from_env().ensure()
    assert s.runs_dir == tmp_path / "runs" and s.logs_dir.is_dir() and s.datasets_dir.is_dir()
    assert s.default_storage.endswith("runs/studies.db")
    assert s.study_dir("my study").parent == s.runs_dir
    assert safe_name("../../etc") == "etc"


@pytest.mark.parametrize("names", [("col a", "col-a", "Col-A", "col_a", "col a "), ("study", "study.", "-study-"),
                                   ("é", "è", "ü", "x")])
def test_distinct_study_names_never_share_a_folder(tmp_path, names):
    s = Settings(home=tmp_path)
    folders = {s.study_dir(n) for n in names}
    assert len(folders) == len(names)
    assert all(f.parent == s.runs_dir and f.name.startswith(safe_name(n)[:5]) for f, n in zip(map(s.study_dir, names), names))


@pytest.mark.parametrize("name", ["col/a", "../../x", "..", ".", "   .  ", "a\\b", "a\x00b", "line\nbreak", "tab\there",
                                  "bidi\u202eevil", "", "   "])
def test_study_names_with_path_parts_or_control_characters_are_refused(name, tmp_path):
    with pytest.raises(ConfigError, match="name") as info:
        StudyConfig(name=name).validate()
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        Settings(home=tmp_path).study_dir(name)
    with pytest.raises(ConfigError, match="study"):
        TrialSpec(dataset="digits", params={}, study=name).validate()


def test_every_study_folder_comes_from_one_function(tmp_path):
    from core import paths
    from core.config import study_folder_name

    s = Settings(home=tmp_path)
    assert paths.study_dir("col a", s) == s.runs_dir / study_folder_name("col a")
    assert paths.trial_dir("col a", 3, s) == s.runs_dir / study_folder_name("col a") / "trial-0003"
    spec = TrialSpec(dataset="digits", params={}, study="col a", trial_number=3)
    assert s.trial_dir(spec) == paths.trial_dir("col a", 3, s)


@pytest.mark.parametrize(
    "patch, word",
    [({"health_weight": "abc"}, "health_weight"), ({"health_weight": None}, "health_weight"),
     ({"health_weight": float("nan")}, "health_weight"), ({"epochs": 100_000}, "epochs"), ({"epochs": "5"}, "epochs"),
     ({"epochs": True}, "epochs"), ({"params": {"learning_rate": float("nan")}}, "learning_rate"),
     ({"params": {"foo": 1}}, "foo"), ({"params": {"epochs": 100_000}}, "epochs"),
     ({"params": {"dense_units": 10**9}}, "dense_units"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
     ({"dataset": ["digits"]}, "dataset"), ({"study": "a/b"}, "study"), ({"study": 3}, "study"),
     ({"save_model": "yes"}, "save_model"), ({"artifacts_dir": 5}, "artifacts_dir"),
     ({"max_samples": float("inf")}, "max_samples"), ({"trial_number": None}, "trial_number")],
)
def test_trial_spec_refuses_hostile_values_in_one_line(patch, word):
    with pytest.raises(ConfigError) as info:
        TrialSpec.from_dict({"dataset": "digits", "params": {}, **patch})
    assert word in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "patch, word",
    [({"health_weight": "abc"}, "health_weight"), ({"health_weight": None}, "health_weight"),
     ({"timeout_s": float("nan")}, "timeout_s"), ({"timeout_s": "soon"}, "timeout_s"),
     ({"n_trials": 2.5}, "n_trials"), ({"epochs": 1000}, "epochs"), ({"fixed": {"epochs": 100_000}}, "epochs"),
     ({"fixed": {"learning_rate": float("nan")}}, "learning_rate"), ({"fixed": {"foo": 1}}, "foo"),
     ({"fixed": {"dense_units": 10**9}}, "dense_units"), ({"fixed": [1]}, "fixed"),
     ({"ranges": {"learning_rate": {"low": float("nan"), "high": 0.01}}}, "learning_rate"),
     ({"ranges": {"filters": {"low": "a", "high": "z"}}}, "filters"), ({"ranges": "x"}, "ranges"),
     ({"tune": "filters"}, "tune"), ({"workers": True}, "workers"), ({"seed": "0"}, "seed"),
     ({"dataset": {"a": 1}}, "dataset"), ({"storage": 5}, "storage"), ({"name": "x\ny"}, "name")],
)
def test_study_config_refuses_hostile_values_in_one_line(patch, word):
    with pytest.raises(ConfigError) as info:
        StudyConfig(**{"name": "ok", **patch}).validate()
    assert word in str(info.value) and "\n" not in str(info.value)


def test_deeply_nested_json_is_a_config_error():
    deep = "[" * 100_000 + "]" * 100_000
    for reader in (TrialSpec.from_json, StudyConfig.from_json):
        with pytest.raises(ConfigError, match="nested too deeply"):
            reader('{"dataset": "digits", "params": ' + deep + "}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrialSpec.from_json("{oops")


def test_artifacts_dir_stays_under_hpo_home(tmp_path):
    home = Settings(home=tmp_path / "home")
    inside = TrialSpec(dataset="digits", params={}, artifacts_dir=str(tmp_path / "home" / "runs" / "x"))
    assert home.trial_dir(inside) == tmp_path / "home" / "runs" / "x"
    for evil in (str(tmp_path / "evil" / "etc"), "/etc", str(tmp_path / "home" / ".." / "evil")):
        with pytest.raises(ConfigError, match="outside HPO_HOME.*--out"):
            home.trial_dir(TrialSpec(dataset="digits", params={}, artifacts_dir=evil))
    chosen = home.with_output(tmp_path / "chosen")
    assert chosen.trial_dir(TrialSpec(dataset="digits", params={}, artifacts_dir=str(tmp_path / "chosen" / "t"))) \
        == tmp_path / "chosen" / "t"


def test_a_private_scratch_folder_is_allowed_for_workers(tmp_path):
    """A RunPod worker trains into a tempfile.mkdtemp folder: private, empty, ours; a named folder is not that."""
    import os
    import tempfile

    home = Settings(home=tmp_path)
    with tempfile.TemporaryDirectory(prefix="hpo-job-") as scratch:
        assert home.trial_dir(TrialSpec(dataset="digits", params={}, artifacts_dir=scratch)) == Path(scratch).resolve()
        os.chmod(scratch, 0o755)
        with pytest.raises(ConfigError):
            home.trial_dir(TrialSpec(dataset="digits", params={}, artifacts_dir=scratch))


def test_a_storage_folder_that_does_not_exist_is_refused_not_created(tmp_path, monkeypatch):
    from core import storage as S

    missing = tmp_path / "nope" / "deeper"
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    with pytest.raises(ConfigError, match=f"folder {missing} does not exist"):
        S.resolve_url(f"sqlite:///{missing}/x.db", Settings(home=tmp_path))
    monkeypatch.setenv("HPO_STORAGE", f"journal:{missing}/j.log")
    with pytest.raises(ConfigError, match="does not exist"):
        S.resolve_url(None, Settings(home=tmp_path))
    assert not (tmp_path / "nope").exists()
    monkeypatch.delenv("HPO_STORAGE")
    home = Settings(home=tmp_path / "home")
    assert S.resolve_url(None, home) == home.default_storage and home.runs_dir.is_dir()  # its own runs/ is made
    assert S.resolve_url(f"sqlite:///{tmp_path}/x.db", home) == f"sqlite:///{tmp_path}/x.db"
