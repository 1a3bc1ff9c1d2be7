"""Demo mode: limits refuse what a shared host cannot afford; the example study fills itself."""

from __future__ import annotations

import dataclasses

import pytest

from core import demo
from core.config import ConfigError, StudyConfig


def _ok(**kw) -> StudyConfig:
    base = dict(name="v", dataset="digits", n_trials=5, epochs=2, max_samples=500, timeout_s=300)
    return StudyConfig(**{**base, **kw})


def test_demo_flag(monkeypatch):
    monkeypatch.setenv("HPO_DEMO", "1")
    assert demo.demo_enabled()
    monkeypatch.setenv("HPO_DEMO", "0")
    assert not demo.demo_enabled()


@pytest.mark.parametrize(
    "patch, setting",
    [({"n_trials": 50}, "n_trials"), ({"epochs": 30}, "epochs"), ({"max_samples": None}, "max_samples"),
     ({"workers": 2}, "workers"), ({"timeout_s": None}, "timeout_s"), ({"dataset": "fashion_mnist"}, "dataset"),
     ({"executor": "runpod"}, "executor")],
)
def test_limits_name_the_setting_and_say_what_to_do(patch, setting):
    with pytest.raises(ConfigError, match=setting) as err:
        demo.check_limits(_ok(**patch))
    assert "make run" in str(err.value)


def test_a_small_study_passes_the_limits_and_the_example_is_valid():
    demo.check_limits(_ok())
    cfg = demo.example_config().validate()
    demo.check_limits(dataclasses.replace(cfg, timeout_s=600))


@pytest.mark.slow
def test_example_study_is_created_once_and_completes(hpo_home):
    from core import study as records

    runner = demo.ensure_example_study()
    assert runner is not None
    assert runner.join(timeout=600)
    recs = records.load_records(demo.EXAMPLE_STUDY)
    assert len(recs) == demo.example_config().n_trials
    assert all(r.state == "COMPLETE" for r in recs), [(r.number, r.state, r.error) for r in recs]
    assert all(r.result.architecture.get("visualization") for r in recs)  # the 3D view has data at once
    assert demo.ensure_example_study() is None  # complete: nothing more to do
