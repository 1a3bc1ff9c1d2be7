"""The study's CSV export: one column per field, values at full precision."""

from __future__ import annotations

import io

import pandas as pd

from core import artifacts
from core import storage as S
from core.config import Settings
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
