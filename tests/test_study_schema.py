"""core.study._schema: the one ranking rule and the budget rule (pure functions, no storage)."""

from __future__ import annotations

import datetime as dt

from core.config import StudyConfig, TrialResult
from core.study import TrialRecord, best_record, counts_against_budget, pareto_front, rank_key


def _rec(n: int, acc: float, health: float) -> TrialRecord:
    res = TrialResult(status="complete", trial_number=n, dataset="digits", params={}, val_accuracy=acc, health_score=health)
    return TrialRecord(number=n, state="COMPLETE", params={}, values=None, start=dt.datetime.now(), complete=None,
                       result=res)


def test_pareto_best_is_the_most_accurate_trial_of_the_front():
    # the case from issue 13: #11 (95.4 %, healthier) outranked #9 (97.7 %) under the old blend
    recs = [_rec(9, 0.977, 0.60), _rec(11, 0.954, 0.95), _rec(12, 0.977, 0.70)]
    cfg = StudyConfig(name="p", mode="pareto", health_weight=0.3)
    best = best_record(recs, cfg)
    assert best.number == 12  # equal accuracy: the healthier one, which is on the front
    assert best.number in {r.number for r in pareto_front(recs)}
    assert best_record(recs, StudyConfig(name="a", mode="health-aware", health_weight=0.3)).number == 11
    assert best_record(recs, StudyConfig(name="s", mode="simple")).number == 9  # a tie goes to the earliest
    assert best_record(recs, None).number == 9  # a foreign study: by accuracy
    assert rank_key(0.9, 0.5, cfg) == (0.9, 0.5) and recs[0].objective(cfg) == 0.977


def test_budget_rule():
    assert counts_against_budget("COMPLETE", False) and counts_against_budget("PRUNED", False)
    assert counts_against_budget("FAIL", False) and not counts_against_budget("FAIL", True)
    assert not counts_against_budget("RUNNING", False) and counts_against_budget("RUNNING", False, running=True)
