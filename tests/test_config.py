"""Contracts: specs, results and study configs round-trip through JSON and refuse bad values."""

from __future__ import annotations

import json
import math

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
    assert s.study_dir("my study/../x").parent == s.runs_dir
    assert safe_name("../../etc") == "etc"
