"""core.artifacts: result.json (its one writer), keep-best-k, and the study's CSV export
(one column per field, values at full precision)."""

from __future__ import annotations

import io

import pandas as pd

from core import artifacts
from core import storage as S
from core.config import Settings, TrialResult
from core.paths import MODEL_FILE, RESULT_FILE, trial_folder_name
from core.study import load_records
from tests.fakes import make_fake_study


def test_csv_has_one_column_per_field_and_full_precision(tmp_path):
    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    fake = make_fake_study(url, "csv-study", n_complete=3, n_pruned=1, n_failed=1, settings=settings, with_models=False)
    records = load_records("csv-study", url)
    text = artifacts.study_csv(records, fake.config)
    header = text.splitlines()[0].split(",")
    assert len(header) == len(set(header)), [c for c in header if header.count(c) > 1]
    assert header.count("param_count") == 1
    back = pd.read_csv(io.StringIO(text), float_precision="round_trip")
    for r in records:
        row = back[back["number"] == r.number].iloc[0]
        # exact round trip: 2.3e-4 must not come back as 0.0002
        assert row["param_learning_rate"] == r.params["learning_rate"]
        assert row["param_dropout"] == r.params["dropout"]
        if r.val_accuracy is not None:
            assert row["val_accuracy"] == r.val_accuracy
    assert any(r.params["learning_rate"] != round(r.params["learning_rate"], 4) for r in records)  # the test can fail


def test_result_round_trips_and_a_damaged_file_reads_as_none(tmp_path):
    folder = tmp_path / trial_folder_name(3)
    path = artifacts.save_result(TrialResult(status="complete", trial_number=3, val_accuracy=0.875), folder)
    assert path == folder / RESULT_FILE and path.is_file()
    back = artifacts.load_result(folder)
    assert back.val_accuracy == 0.875 and back.result_path == str(path)
    path.write_text("{ not json")
    assert artifacts.load_result(folder) is None
    assert artifacts.load_result(tmp_path / "nowhere") is None


def test_keep_best_removes_only_the_models_it_may_touch(tmp_path):
    for n in range(4):
        folder = tmp_path / trial_folder_name(n)
        artifacts.save_result(TrialResult(status="complete", trial_number=n), folder)
        (folder / MODEL_FILE).write_bytes(b"model")
    (tmp_path / "not-a-trial").mkdir()
    (tmp_path / "not-a-trial" / MODEL_FILE).write_bytes(b"keep")
    # trial 3 is still running elsewhere: not in `only`, so never touched
    removed = artifacts.prune_models(tmp_path, keep=[1], only=[0, 1, 2])
    assert sorted(p.parent.name for p in removed) == [trial_folder_name(0), trial_folder_name(2)]
    left = sorted(p.parent.name for p in tmp_path.rglob(MODEL_FILE))
    assert left == ["not-a-trial", trial_folder_name(1), trial_folder_name(3)]
    assert all((tmp_path / trial_folder_name(n) / RESULT_FILE).is_file() for n in range(4))  # records stay
    assert artifacts.prune_models(tmp_path / "missing", keep=[]) == []
