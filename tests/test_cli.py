"""``python -m core``: trial, optimize, list, show, export, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import parse_params, parse_ranges, parse_value

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--param", "conv_blocks=1", "--param", "filters=8", "--param", "dense_units=16", "--param", "batch_norm=false",
        "--param", "batch_size=32", "--param", "dropout=0"]


def _core(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HPO_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.tf
def test_trial_command_prints_a_readable_result(tmp_path):
    proc = _core("trial", "--dataset", "digits", "--epochs", "2", "--max-samples", "300", "--param",
                 "learning_rate=0.01", *TINY, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "COMPLETE" in out and "validation accuracy" in out and "test accuracy" in out
    for metric in ("neuron_utilization", "parameter_efficiency", "training_stability", "gradient_health",
                   "convergence_quality", "accuracy_consistency"):
        assert metric in out
    assert "filters=8" in out and "epochs=2" in out
    model = Path(out.split("Model:")[1].split()[0])
    assert model.is_file() and model.is_relative_to(tmp_path)
    assert "epoch 2/2" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "logs" / "hpo.log").exists()


@pytest.mark.tf
@pytest.mark.slow
def test_optimize_list_show_export_and_reproduce(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    proc = _core("optimize", "--dataset", "digits", "--trials", "2", "--epochs", "2", "--workers", "1", "--name", "cli",
                 "--storage", url, "--max-samples", "300", "--pruner", "none", "--tune", "learning_rate", "--range",
                 "learning_rate=0.005:0.03", *TINY, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Study cli: 2 trials (2 complete)" in proc.stdout
    assert "val acc" in proc.stdout and "test acc" in proc.stdout and "learning_rate=" in proc.stdout
    assert "Status: finished" in proc.stdout
    assert "2/2" in proc.stderr  # the progress bar got to the end

    listed = _core("list", "--storage", url, home=tmp_path)
    assert listed.returncode == 0 and "cli" in listed.stdout and "finished" in listed.stdout
    shown = _core("show", "cli", "--storage", url, home=tmp_path)
    assert shown.returncode == 0 and "2 complete" in shown.stdout

    out = tmp_path / "export"
    exported = _core("export", "cli", "--out", str(out), "--storage", url, home=tmp_path)
    assert exported.returncode == 0, exported.stderr
    files = sorted(p.name for p in out.iterdir())
    assert any(f.endswith(".csv") for f in files) and any(f.endswith(".keras") for f in files)
    doc = json.loads(next(out.glob("cli_study_*.json")).read_text())
    assert len(doc["trials"]) == 2 and doc["config"]["name"] == "cli"

    assert next(out.glob("cli_config_trial-*.json")).is_file()  # retraining from it: test_study_runner.py


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optimize", "--trials", "0", "--name", "x"], "n_trials"),
        (["optimize", "--dataset", "nope", "--name", "x"], "nope"),
        (["optimize", "--tune", "wings", "--name", "x"], "wings"),
        (["optimize", "--mode", "pareto", "--pruner", "median", "--name", "x"], "pruner"),
        (["optimize", "--param", "filters", "--name", "x"], "--param"),
        (["trial", "--param", "wings=2"], "wings"),
        (["trial", "--epochs", "0"], "epochs"),
        (["resume", "never-made"], "never-made"),
        (["export", "never-made", "--out", "x"], "never-made"),
        (["optimize", "--range", "learning_rate=NaN:0.01", "--name", "x"], "finite"),
        (["optimize", "--range", "filters=a:z", "--name", "x"], "'filters' low: must be a whole number"),
        (["optimize", "--param", "epochs=100000", "--name", "x"], "epochs"),
        (["optimize", "--param", "learning_rate=NaN", "--name", "x"], "learning_rate"),
        (["optimize", "--param", "dense_units=1000000000", "--name", "x"], "dense_units"),
        (["optimize", "--param", "foo=1", "--name", "x"], "foo"),
        (["optimize", "--timeout", "nan", "--name", "x"], "timeout_s"),
        (["optimize", "--name", "../../x"], "name"),
        (["optimize", "--name", "a\nb"], "name"),
        (["optimize", "--storage", "sqlite:////nonexistent-dir/x.db", "--name", "x"], "/nonexistent-dir does not exist"),
        (["trial", "--param", "learning_rate=abc"], "learning_rate"),
        (["trial", "--param", "epochs=100000"], "epochs"),
        (["trial", "--param", "epochs=0"], "epochs"),
        (["trial", "--param", "x=" + "[" * 50_000], "nested too deeply"),
        (["trial", "--spec", "does-not-exist.json"], "cannot read"),
        (["optimize", "--trials", "many"], "--trials"),
    ],
)
def test_bad_settings_exit_2_with_one_line(args, message, tmp_path):
    proc = _core(*args, home=tmp_path, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_value_parsing():
    assert parse_value("3") == 3 and parse_value("0.01") == 0.01 and parse_value("True") is True
    assert parse_value("elu") == "elu"
    assert parse_params(["filters=8", "activation=elu", "batch_norm=false"]) == {
        "filters": 8, "activation": "elu", "batch_norm": False}
    assert parse_ranges(["filters=8:32", "pooling=max|avg"]) == {
        "filters": {"low": 8, "high": 32}, "pooling": {"choices": ["max", "avg"]}}


def test_setup_logging_is_idempotent_and_writes_the_entry(tmp_path):
    import logging

    from core.config import Settings
    from core.logs import setup_logging

    settings = Settings(home=tmp_path)
    try:
        setup_logging("cli", settings=settings)
        logger = setup_logging("cli", settings=settings)
        ours = [h for h in logger.handlers if getattr(h, "_hpo_handler", False)]
        assert len(ours) == 2  # one file, one console: a second call replaced, not stacked
        logging.getLogger("hpo.test").info("hello from the test")
        for h in ours:
            h.flush()
        text = (tmp_path / "logs" / "hpo.log").read_text()
        assert "hello from the test" in text and f"[cli:{os.getpid()}]" in text
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
        assert logging.getLogger("tensorflow").level == logging.ERROR
    finally:
        for name in ("hpo", "optuna"):
            lg = logging.getLogger(name)
            for h in [h for h in lg.handlers if getattr(h, "_hpo_handler", False)]:
                lg.removeHandler(h)
                h.close()


def test_core_never_imports_streamlit_or_tensorflow_for_the_cli_parser(tmp_path):
    code = "import sys, core.cli, core.study, core.executors.local, core.artifacts, core.logs; " \
           "core.logs.setup_logging('cli'); " \
           "print('streamlit' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "HPO_HOME": str(tmp_path)})
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_summary_says_what_pruning_saved(tmp_path):
    from core import storage as S
    from core.cli import summary_table
    from core.config import Settings
    from core.study import epochs_spent, load_records
    from tests.fakes import make_fake_study

    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    # 4-epoch trials: 3 complete, 2 pruned after 2 epochs, 1 failed after 2, 1 still running
    make_fake_study(url, "saved", n_complete=3, n_pruned=2, n_failed=1, n_running=1, epochs=4, with_models=False,
                    settings=settings)
    records = load_records("saved", url)
    assert epochs_spent(records) == (3 * 4 + 2 * 2 + 2, 3 * 4 + 2 * 4 + 2)  # a failure saves nothing, running not counted
    assert "18 epochs trained of 22 had every trial run to the end (pruning saved 18 %)" in summary_table("saved", url)

    make_fake_study(url, "unpruned", n_complete=2, n_pruned=0, n_failed=0, n_running=0, epochs=4, with_models=False,
                    settings=settings)
    assert "pruning saved" not in summary_table("unpruned", url)


@pytest.mark.parametrize(
    ("patch", "message"),
    [({"health_weight": "abc"}, "health_weight"), ({"health_weight": None}, "health_weight"),
     ({"params": {"learning_rate": "NaN"}}, "learning_rate"), ({"epochs": 100000}, "epochs"),
     ({"params": "[" * 100_000}, "nested too deeply"), ({"artifacts_dir": "EVIL"}, "outside HPO_HOME")],
)
def test_hostile_spec_file_exits_2_with_one_line_and_writes_nothing(patch, message, tmp_path):
    home, evil = tmp_path / "home", tmp_path / "evil" / "etc"
    spec = {"dataset": "digits", "params": {}, "epochs": 1, "max_samples": 100}
    spec.update({k: (str(evil) if v == "EVIL" else v) for k, v in patch.items() if k != "params" or isinstance(v, dict)})
    text = json.dumps(spec)
    if patch.get("params") == "[" * 100_000:
        text = text.replace('"params": {}', '"params": ' + "[" * 100_000 + "]" * 100_000)
    (tmp_path / "s.json").write_text(text)
    proc = _core("trial", "--spec", str(tmp_path / "s.json"), home=home, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert not (tmp_path / "evil").exists()


@pytest.mark.tf
def test_out_option_is_the_one_way_to_write_outside_hpo_home(tmp_path):
    out = tmp_path / "chosen"
    proc = _core("trial", "--epochs", "1", "--max-samples", "200", *TINY, "--out", str(out), "--json",
                 home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert (out / "model.keras").is_file() and (out / "result.json").is_file()
    assert json.loads(proc.stdout)["model_path"] == str(out.resolve() / "model.keras")
