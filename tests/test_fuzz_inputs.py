"""Property-based tests: thousands of hostile inputs give a one-line ConfigError (or the CLI's exit 2), nothing else.

Every entry point that reads values from outside is covered: a TrialSpec from a file or a
RunPod job (``TrialSpec.from_dict``, which the worker's ``parse_input`` calls), a StudyConfig
from the form or a storage, study names, and the CLI's ``trial`` and ``optimize`` parsing.
Hypothesis runs derandomized (the same examples every run, no example database) and fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import (
    MAX_EPOCHS,
    ConfigError,
    Settings,
    StudyConfig,
    TrialSpec,
    study_folder_name,
)
from core.paths import _private_scratch
from core.search_space import HYPERPARAMETERS

_BASE = settings(derandomize=True, database=None, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def fuzz(examples: int) -> settings:
    """Derandomized (the same examples on every run), no example database, no deadline."""
    return settings(_BASE, max_examples=examples)
NAMES = sorted(HYPERPARAMETERS)

# --------------------------------------------------------------------------- strategies

_nasty_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["", " ", "..", "../../etc", "/etc", "a/b", "a\\b", "a\x00b", "line\nbreak", "\ud800", "NaN", "1e999",
     "[x](https://evil.example/b)", "digits", "synthetic_text", "relu", "max", "true", "3"])
_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
         | st.floats(allow_nan=True, allow_infinity=True) | _nasty_text)
HOSTILE = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=3)


def _valid_values() -> list[Any]:
    """Values some knob accepts (choices, range ends, defaults): hostile keys meet plausible values."""
    out: list[Any] = []
    for hp in HYPERPARAMETERS.values():
        out += list(hp.range_dict().get("choices", [])) + [hp.default]
        if hp.low is not None:
            out += [hp.low, hp.high, (hp.low + hp.high) / 2]
    return out + [MAX_EPOCHS, MAX_EPOCHS + 1, 0, -1, 1e-12, 10**9]


PLAUSIBLE = st.sampled_from(_valid_values())
PARAMS = st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=10), PLAUSIBLE | HOSTILE, max_size=6)
RANGES = st.dictionaries(
    st.sampled_from(NAMES) | st.text(max_size=6),
    st.fixed_dictionaries({}, optional={"low": PLAUSIBLE | HOSTILE, "high": PLAUSIBLE | HOSTILE,
                                        "choices": st.lists(PLAUSIBLE | HOSTILE, max_size=4) | HOSTILE})
    | HOSTILE,
    max_size=3,
)
def _knob_values(name: str) -> st.SearchStrategy:
    hp = HYPERPARAMETERS[name]
    if hp.kind in ("categorical", "bool"):
        return st.sampled_from(hp.range_dict()["choices"])
    if hp.kind == "int":
        return st.integers(int(hp.low), int(hp.high))
    return st.floats(hp.low, hp.high)


# Params a digits (image) trial accepts: the valid path deserves as many examples as the refusals.
IMAGE_PARAMS = st.fixed_dictionaries({}, optional={h.name: _knob_values(h.name) for h in HYPERPARAMETERS.values()
                                                   if h.applies("image")})
STUDY_NAME = _nasty_text | st.sampled_from(["ok", "col a", "col-a", "x" * 81, "x" * 200])


def _outside(home: Path) -> list[str]:
    return ["/etc", "/tmp/evil/etc", str(home.parent / "evil"), str(home / ".." / "evil"), "../../x",
            str(home / "runs" / "fine")]


# --------------------------------------------------------------------------- helpers


def _one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and len(text) < 1_000, repr(text)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_home")


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A folder outside HPO_HOME that hostile paths point into: it must stay empty."""
    return tmp_path_factory.mktemp("fuzz_outside")


# --------------------------------------------------------------------------- TrialSpec (file, RunPod job)


def test_trial_spec_from_anything(home, outside):
    paths = st.sampled_from(_outside(home) + [str(outside / "etc")]) | _nasty_text

    spec_dicts = st.fixed_dictionaries(
        {"dataset": st.sampled_from(["digits", "synthetic_text", "nope"]) | HOSTILE, "params": PARAMS | HOSTILE},
        optional={"epochs": PLAUSIBLE | HOSTILE, "max_samples": PLAUSIBLE | HOSTILE, "seed": PLAUSIBLE | HOSTILE,
                  "data_seed": PLAUSIBLE | HOSTILE, "mode": st.sampled_from(["simple", "pareto"]) | HOSTILE,
                  "health_weight": PLAUSIBLE | HOSTILE, "study": STUDY_NAME | HOSTILE, "trial_number": PLAUSIBLE,
                  "save_model": st.booleans() | HOSTILE, "artifacts_dir": st.none() | paths | HOSTILE,
                  "gpu": HOSTILE},
    )
    mostly_valid = st.fixed_dictionaries(
        {"dataset": st.just("digits"), "params": IMAGE_PARAMS},
        optional={"epochs": st.integers(1, MAX_EPOCHS), "study": STUDY_NAME, "health_weight": st.floats(0, 1),
                  "artifacts_dir": st.none() | paths, "max_samples": st.integers(0, 10**6)},
    )
    settings_ = Settings(home=home)

    @fuzz(600)
    @given(st.one_of(spec_dicts, mostly_valid, HOSTILE))
    def check(data: Any) -> None:
        try:
            spec = TrialSpec.from_dict(data)
        except ConfigError as exc:
            _one_line(exc)
            return
        assert TrialSpec.from_dict(json.loads(spec.to_json())) == spec  # what was accepted survives JSON
        assert all(math.isfinite(v) for v in spec.params.values() if isinstance(v, float))
        assert 1 <= spec.epochs <= MAX_EPOCHS
        try:
            folder = settings_.trial_dir(spec)
        except ConfigError as exc:
            _one_line(exc)
            return
        assert folder.is_relative_to(home) or _private_scratch(folder), folder
        accepted.append(spec)

    accepted: list[TrialSpec] = []
    check()
    assert not any(outside.iterdir())
    assert len(accepted) >= 50  # the valid path is exercised too, not only refusals


# --------------------------------------------------------------------------- StudyConfig (form, storage)


def test_study_config_from_anything(home):
    configs = st.fixed_dictionaries(
        {"name": STUDY_NAME | HOSTILE},
        optional={"dataset": st.sampled_from(["digits", "synthetic_text"]) | HOSTILE,
                  "mode": st.sampled_from(["simple", "health-aware", "pareto"]) | HOSTILE,
                  "health_weight": PLAUSIBLE | HOSTILE, "n_trials": PLAUSIBLE | HOSTILE,
                  "timeout_s": PLAUSIBLE | HOSTILE, "epochs": PLAUSIBLE | HOSTILE, "max_samples": PLAUSIBLE | HOSTILE,
                  "tune": st.lists(st.sampled_from(NAMES) | _nasty_text, max_size=4) | st.none() | HOSTILE,
                  "ranges": RANGES | HOSTILE, "fixed": PARAMS | HOSTILE,
                  "sampler": st.sampled_from(["tpe", "random", "nsga2"]) | HOSTILE,
                  "pruner": st.sampled_from(["none", "median"]) | HOSTILE, "seed": PLAUSIBLE | HOSTILE,
                  "executor": st.sampled_from(["local", "runpod"]) | HOSTILE, "workers": PLAUSIBLE | HOSTILE,
                  "storage": st.none() | _nasty_text, "keep_best_k": PLAUSIBLE | HOSTILE},
    )
    settings_ = Settings(home=home)

    @fuzz(600)
    @given(st.one_of(configs, HOSTILE))
    def check(data: Any) -> None:
        try:
            cfg = StudyConfig.from_dict(data).validate()
        except ConfigError as exc:
            _one_line(exc)
            return
        assert settings_.study_dir(cfg.name).parent == settings_.runs_dir
        spec = cfg.trial_spec({**{k: HYPERPARAMETERS[k].default for k in cfg.tuned}, **cfg.fixed}, trial_number=3)
        spec.validate()  # a valid study only ever makes valid trials
        assert StudyConfig.from_json(cfg.to_json()).validate() == cfg
        accepted.append(cfg)

    accepted: list[StudyConfig] = []
    check()
    assert len(accepted) >= 5  # the valid path is exercised too, not only refusals


# --------------------------------------------------------------------------- study names -> folders


@fuzz(1_000)
@given(STUDY_NAME, STUDY_NAME)
def test_distinct_names_get_distinct_safe_folders(a: str, b: str) -> None:
    folders = {}
    for name in (a, b):
        try:
            folders[name] = study_folder_name(name)
        except ConfigError as exc:
            _one_line(exc)
            continue
        folder = folders[name]
        assert folder and folder not in (".", "..") and "/" not in folder and "\\" not in folder
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in folder)
    if len(folders) == 2 and a != b:
        assert folders[a] != folders[b]


# --------------------------------------------------------------------------- the CLI


class _WouldRun(Exception):
    """Raised instead of training or starting a study: the arguments were accepted."""


_argv_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10) | st.sampled_from(
    ["NaN", "inf", "-1", "0", "1e999", "abc", "a:z", "NaN:0.01", "0.001:0.01", "8:32", "max|avg", "[[[[", "{}",
     "learning_rate=abc", "epochs=100000", "filters=a:z", "learning_rate=NaN:0.01", "foo=1", "dense_units=1000000000",
     "filters=8", "epochs=3", "activation=elu", "-h", "../../x", "a\nb"])
_OPTIONS = {
    "trial": ["--dataset", "--epochs", "--param", "--seed", "--max-samples", "--study", "--out", "--spec"],
    "optimize": ["--dataset", "--trials", "--timeout", "--epochs", "--workers", "--name", "--mode", "--health-weight",
                 "--sampler", "--pruner", "--max-samples", "--tune", "--param", "--range", "--seed", "--executor",
                 "--keep-best", "--storage"],
}


def test_cli_parsing_of_anything(home, outside, tmp_path_factory):
    from core import cli

    spec_dir = home / "specs"
    spec_dir.mkdir(exist_ok=True)
    paths = st.sampled_from([str(outside / "x"), f"sqlite:///{outside}/no/x.db", f"sqlite:///{outside}/x.db",
                             str(spec_dir / "missing.json"), str(spec_dir)])

    @st.composite
    def argvs(draw) -> tuple[list[str], str | None]:
        command = draw(st.sampled_from(sorted(_OPTIONS)))
        argv = [command]
        for _ in range(draw(st.integers(0, 4))):
            argv += [draw(st.sampled_from(_OPTIONS[command])), draw(_argv_text | paths)]
        spec_text = None
        if command == "trial" and draw(st.booleans()):
            spec_text = draw(st.sampled_from(['{"dataset": "digits", "params": {}}', "{oops", "[" * 5000,
                                              '{"dataset": "digits", "params": {}, "health_weight": "abc"}',
                                              '{"dataset": "digits", "params": {}, "health_weight": null}',
                                              f'{{"dataset": "digits", "params": {{}}, "artifacts_dir": "{outside}/e"}}',
                                              '{"dataset": "digits", "params": {"learning_rate": NaN}}']))
            argv += ["--spec", str(spec_dir / "s.json")]
        return argv, spec_text

    @fuzz(250)
    @given(argvs())
    def check(case: tuple[list[str], str | None]) -> None:
        argv, spec_text = case
        if spec_text is not None:
            (spec_dir / "s.json").write_text(spec_text)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse: a bad option or value (or --help)
                code = exc.code
            except _WouldRun:
                accepted.append(argv)
                return  # accepted: it would now train or start the study
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        if code == 0:  # only --help ends a fuzzed command successfully without running it
            return
        assert code == 2, (argv, err.getvalue())
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in lines[0], (argv, lines)

    accepted: list[list[str]] = []
    with mock.patch("core.training.run_trial", side_effect=_WouldRun), \
            mock.patch("core.study.StudyRunner", side_effect=_WouldRun), \
            mock.patch.dict("os.environ", {"HPO_HOME": str(home)}):
        try:
            check()
        finally:
            for name in ("hpo", "optuna"):  # cli.main set up logging into the fuzz home
                lg = logging.getLogger(name)
                for h in [h for h in lg.handlers if getattr(h, "_hpo_handler", False)]:
                    lg.removeHandler(h)
                    h.close()
    assert not any(outside.iterdir())
    assert len(accepted) >= 10  # the valid path is exercised too, not only refusals
