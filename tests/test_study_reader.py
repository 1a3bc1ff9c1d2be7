"""core.study's read model (``_reader``): what every screen, the CLI and the demo read back."""

from __future__ import annotations

import optuna
import pytest

from core import storage as S
from core import study as K
from core.config import Settings, StudyConfig
from core.errors import StudyNotFound
from tests.fakes import make_fake_study


@pytest.fixture
def url(tmp_path):
    return S.resolve_url(None, Settings(home=tmp_path))


def test_records_list_every_trial_in_order_and_an_unknown_study_is_refused(url, tmp_path):
    fake = make_fake_study(url, "r", n_complete=3, n_pruned=1, n_failed=1, n_running=1,
                           settings=Settings(home=tmp_path), with_models=False)
    records = K.load_records("r", url)
    assert [r.number for r in records] == list(range(6))
    assert K.state_counts(records) == {"COMPLETE": 3, "PRUNED": 1, "FAIL": 1, "RUNNING": 1}
    assert K.study_config("r", url).to_dict() == fake.config.to_dict()
    with pytest.raises(StudyNotFound):
        K.load_records("nope", url)
    assert K.study_config("nope", url) is None


def test_finished_records_are_read_once_running_ones_every_time(url, tmp_path):
    make_fake_study(url, "cache", n_complete=2, n_pruned=0, n_failed=0, n_running=1,
                    settings=Settings(home=tmp_path), with_models=False)
    first = K.load_records("cache", url)
    study = optuna.load_study(study_name="cache", storage=S.open_storage(url))
    running = next(t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING")
    study.tell(running.number, 0.5)
    again = K.load_records("cache", url)
    assert again[0] is first[0] and again[1] is first[1]  # finished: the same parsed record
    assert first[2].state == "RUNNING" and again[2].state == "COMPLETE"  # re-read until it finishes


def test_study_list_is_newest_first_with_counts(url, tmp_path):
    make_fake_study(url, "older", n_complete=1, n_pruned=0, n_failed=0, settings=Settings(home=tmp_path),
                    with_models=False)
    make_fake_study(url, "newer", n_complete=2, n_pruned=1, n_failed=0, settings=Settings(home=tmp_path),
                    with_models=False)
    study = optuna.load_study(study_name="older", storage=S.open_storage(url))
    study.set_user_attr(K.ATTR_CREATED, 1.0)
    summaries = K.list_studies(url, with_counts=True)
    assert [s.name for s in summaries] == ["newer", "older"]
    assert summaries[0].n_trials == 3 and summaries[0].counts == {"COMPLETE": 2, "PRUNED": 1}
    assert K.list_studies(S.resolve_url(None, Settings(home=tmp_path / "empty"))) == []


def _rec(number, state="COMPLETE", val=None, health=None, epochs_run=None, planned=None, interrupted=False):
    from core.config import TrialResult

    result = None if epochs_run is None else TrialResult(status="complete", trial_number=number, val_accuracy=val,
                                                          health_score=health, epochs_run=epochs_run)
    return K.TrialRecord(number=number, state=state, params={}, values=None, start=None, complete=None,
                         result=result, spec={"epochs": planned} if planned else None, interrupted=interrupted)


@pytest.mark.parametrize("mode, best", [("simple", 1), ("health-aware", 2), ("pareto", 1)])
def test_best_follows_the_one_ranking_rule(mode, best):
    cfg = StudyConfig(name="b", mode=mode, health_weight=0.5, sampler="nsga2" if mode == "pareto" else "tpe",
                      pruner="none")
    records = [_rec(0, val=0.80, health=0.50, epochs_run=1), _rec(1, val=0.95, health=0.40, epochs_run=1),
               _rec(2, val=0.90, health=0.90, epochs_run=1), _rec(3, "PRUNED", val=0.99, health=0.99, epochs_run=1)]
    assert K.best_record(records, cfg).number == best
    front = K.pareto_front(records)
    assert [r.number for r in front] == [2, 1]  # by accuracy; 0 is dominated, pruned trials never count
    if mode == "pareto":
        assert K.best_record(records, cfg) in front
    assert K.best_record([], cfg) is None


def test_epochs_spent_and_the_budget_count():
    records = [_rec(0, epochs_run=10, planned=10), _rec(1, "PRUNED", epochs_run=2, planned=10),
               _rec(2, "FAIL", epochs_run=3, planned=10), _rec(3, "FAIL", epochs_run=1, planned=10, interrupted=True),
               _rec(4, "RUNNING")]
    assert K.epochs_spent(records) == (16, 24)  # the pruned trial would have trained 10
    assert K.budget_count(records) == 3  # the interrupted trial and the running one do not count
