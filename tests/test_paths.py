"""core.paths: the one owner of names and paths on disk; core.errors: the import-cycle breaker."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from core import artifacts, paths
from core.config import PROJECT_ROOT, Settings, TrialResult

WHEN = dt.datetime(2025, 1, 2, 15, 30, 0)


def test_trial_folder_names_round_trip(tmp_path):
    s = Settings(home=tmp_path)
    assert paths.trial_folder_name(7) == "trial-0007"
    folder = paths.trial_dir("col a", 7, s)
    assert folder.parent == s.study_dir("col a") and paths.trial_number_of(folder) == 7
    assert paths.trial_number_of(tmp_path / "notes") is None and paths.trial_number_of("trial-x") is None


def test_download_names_say_what_a_file_is():
    assert paths.download_name("my study", "trials", "csv", when=WHEN) == "my-study_trials_20250102-153000.csv"
    assert paths.download_name("s", "config", ".json", trial=3, when=WHEN) == "s_config_trial-0003_20250102-153000.json"
    # a missing or NaN figure is written "na", never dropped silently or printed as "nan"
    assert paths.download_name("s", "model", "keras", trial=1, metric="val-acc", value=float("nan"), when=WHEN) \
        == "s_model_trial-0001_val-acc-na_20250102-153000.keras"
    # one rule: artifacts hands out core.paths' function, not a second spelling of it
    assert artifacts.download_name is paths.download_name and not hasattr(artifacts, "artifact_name")


def test_save_result_is_the_one_writer(tmp_path):
    res = TrialResult(status="complete", trial_number=4, dataset="digits", params={"lr": 0.01}, val_accuracy=0.9)
    path = artifacts.save_result(res, tmp_path / paths.trial_folder_name(4))
    assert path.name == paths.RESULT_FILE and res.result_path == str(path)
    assert json.loads(path.read_text())["val_accuracy"] == 0.9
    assert artifacts.load_result(path.parent).val_accuracy == 0.9


def test_registry_modules_do_not_import_config():
    """config -> datasets/search_space is one-way: they use core.errors and core.paths."""
    code = ("import sys, core.datasets, core.search_space, core.errors, core.paths; "
            "print('core.config' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
