"""app.format's pure rules: how much of an accuracy is sampling noise, and when Compare calls a lead a tie."""

from __future__ import annotations

import pytest

from app import format as F
from core.config import TrialResult
from core.study import TrialRecord


def _rec(number: int, val: float, n: int) -> TrialRecord:
    res = TrialResult(status="complete", trial_number=number, val_accuracy=val, test_accuracy=val,
                      health_score=0.8, val_samples=n, test_samples=n)
    return TrialRecord(number=number, state="COMPLETE", params={}, values=[val], start=None, complete=None, result=res)


def test_the_margin_is_the_wilson_interval_and_shrinks_with_more_samples():
    # digits' validation split: 216 samples, one of them is 0.46 points
    assert "one sample is 0.46 points" in F.noise_text(0.95, 216)
    m216, m2160 = F.accuracy_margin(0.95, 216), F.accuracy_margin(0.95, 2160)
    assert 2.5 < m216 < 3.5 and m2160 < m216 / 2.5  # ~sqrt(10) narrower with 10x the samples
    assert F.accuracy_margin(1.0, 216) > 0  # a perfect score is still an estimate
    assert F.accuracy_margin(0.9, 0) is None and F.noise_text(0.9, 0) == ""  # older results: no claim


@pytest.mark.parametrize("a, b, tie", [(0.972, 0.967, True), (0.98, 0.90, False)])
def test_compare_calls_a_lead_within_noise_a_tie(a, b, tie):
    rows = {r[""]: r for r in F.compare_rows([_rec(1, a, 216), _rec(2, b, 216)], None)}
    lead = rows["validation accuracy"]["best"]
    assert lead.startswith("#1")
    assert ("tie with #2" in lead) is tie, lead
    assert F.difference_is_noise(a, 216, b, 216) is tie


def test_without_sample_counts_a_lead_is_never_called_a_tie():
    rows = {r[""]: r for r in F.compare_rows([_rec(1, 0.972, 0), _rec(2, 0.967, 0)], None)}
    assert rows["validation accuracy"]["best"] == "#1"
