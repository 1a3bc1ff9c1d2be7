"""Reading studies back from the storage: the read model every screen and the CLI use.

Views never hold study state of their own; they call these functions on each rerun.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Sequence

from core import storage as S
from core.config import StudyConfig, TrialResult, objective_value


@dataclass
class TrialRecord:
    """One trial as a screen shows it."""

    number: int
    state: str  # RUNNING | COMPLETE | PRUNED | FAIL | WAITING
    params: dict[str, Any]
    values: list[float] | None
    start: dt.datetime | None
    complete: dt.datetime | None
    intermediate: dict[int, float] = field(default_factory=dict)
    result: TrialResult | None = None
    progress: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    executor: str = ""
    host: str = ""
    error: str | None = None
    runner_id: str = ""  # the runner (owner or joined worker) that asked the trial
    interrupted: bool = False  # ended by cancel or a dead runner: not counted against the trial budget

    @property
    def duration_s(self) -> float | None:
        if self.start is None:
            return None
        end = self.complete or dt.datetime.now()
        return (end - self.start).total_seconds()

    @property
    def val_accuracy(self) -> float | None:
        if self.result and self.result.val_accuracy is not None:
            return self.result.val_accuracy
        return None

    @property
    def test_accuracy(self) -> float | None:
        return self.result.test_accuracy if self.result else None

    @property
    def shifted_accuracy(self) -> float | None:
        return self.result.shifted_accuracy if self.result else None

    @property
    def health_score(self) -> float | None:
        return self.result.health_score if self.result else None

    @property
    def param_count(self) -> int | None:
        return self.result.param_count if self.result and self.result.param_count else None

    def objective(self, config: StudyConfig) -> float | None:
        """A single number to rank by under the study's mode (pareto ranks by the health-aware blend)."""
        if self.state != "COMPLETE" or self.result is None:
            return None
        mode = "health-aware" if config.mode == "pareto" else config.mode
        return float(objective_value(self.result.val_accuracy, self.result.health_score, mode, config.health_weight))


@dataclass
class StudySummary:
    name: str
    config: StudyConfig | None
    status: str
    n_trials: int
    counts: dict[str, int]
    created: float | None
    heartbeat: float | None
    note: str | None
    runners: list[RunnerInfo] = field(default_factory=list)
    owner: dict[str, Any] | None = None  # the owning runner's host and pid (core.study.ATTR_RUNNER)

    @property
    def alive(self) -> bool:
        """A runner works on the study now (core.study.owner_alive: pid on this host, heartbeat elsewhere)."""
        from core.study import owner_alive

        return owner_alive(self.name, self.status, self.heartbeat, self.owner)

    @property
    def interrupted(self) -> bool:
        """Its runner is gone without finishing: killed, crashed, or the app restarted under it."""
        return self.status in ("running", "stopping", "crashed") and not self.alive

    @property
    def display_status(self) -> str:
        """The status a screen shows: never "running" for a study nobody runs."""
        if self.interrupted:
            return "interrupted"
        if self.alive and self.status not in ("running", "stopping"):
            return "running"  # a runner of this process between its start and its first status write
        return self.status


@dataclass
class RunnerInfo:
    """One runner that has worked on a study: the owner or a joined worker (``worker:<id>`` attributes)."""

    runner_id: str
    host: str
    pid: int | None
    owner: bool
    workers: int | None
    status: str
    asked: int
    joined: float | None
    beat: float | None

    @property
    def alive(self) -> bool:
        """Still working: a running status, and core.study.runner_id_alive (pid here, heartbeat elsewhere)."""
        from core.study import runner_id_alive

        if self.status not in ("running", "stopping"):
            return False
        attrs = {S.ATTR_WORKER_PREFIX + self.runner_id: {"beat": self.beat, "status": self.status}}
        return runner_id_alive(attrs, self.runner_id)


def runners_from_attrs(attrs: dict[str, Any]) -> list[RunnerInfo]:
    """The runners recorded in a study's user attributes, owner first, then by join time."""
    out = []
    for key, v in attrs.items():
        if not key.startswith(S.ATTR_WORKER_PREFIX) or not isinstance(v, dict):
            continue
        out.append(RunnerInfo(runner_id=key[len(S.ATTR_WORKER_PREFIX):], host=str(v.get("host") or "?"),
                              pid=v.get("pid"), owner=bool(v.get("owner")), workers=v.get("workers"),
                              status=str(v.get("status") or "unknown"), asked=int(v.get("asked") or 0),
                              joined=v.get("joined"), beat=v.get("beat")))
    out.sort(key=lambda r: (not r.owner, r.joined or 0))
    return out


def record_from_trial(t: Any) -> TrialRecord:
    """A TrialRecord from an optuna FrozenTrial (any storage)."""
    attrs = t.user_attrs
    result = None
    if attrs.get(S.T_RESULT):
        try:
            result = TrialResult.from_dict(attrs[S.T_RESULT])
        except Exception:  # noqa: BLE001 - an older or foreign record still shows its params
            result = None
    return TrialRecord(
        number=t.number,
        state=t.state.name,
        params=dict(t.params) if t.params else dict((attrs.get(S.T_SPEC) or {}).get("params", {})),
        values=list(t.values) if t.values is not None else None,
        start=t.datetime_start,
        complete=t.datetime_complete,
        intermediate=dict(t.intermediate_values),
        result=result,
        progress=attrs.get(S.T_PROGRESS),
        spec=attrs.get(S.T_SPEC),
        executor=attrs.get(S.T_EXECUTOR, ""),
        host=attrs.get(S.T_HOST, ""),
        error=attrs.get(S.T_ERROR),
        runner_id=attrs.get(S.T_RUNNER, "") or "",
        interrupted=bool(attrs.get("interrupted")),  # core.study.T_INTERRUPTED
    )


def study_config(study: Any) -> StudyConfig | None:
    raw = study.user_attrs.get(S.ATTR_CONFIG)
    if not raw:
        return None
    try:
        return StudyConfig.from_dict(raw)
    except Exception:  # noqa: BLE001 - a study made by another tool has no (or a foreign) config
        return None


def load_study(name: str, storage_url: str | None = None):
    import optuna

    return optuna.load_study(study_name=name, storage=S.open_storage(storage_url))


def load_records(name: str, storage_url: str | None = None) -> list[TrialRecord]:
    """Every trial of a study, oldest first."""
    study = load_study(name, storage_url)
    return [record_from_trial(t) for t in study.get_trials(deepcopy=False)]


def list_studies(storage_url: str | None = None) -> list[StudySummary]:
    """Every study in the storage, newest first."""
    import optuna

    storage = S.open_storage(storage_url)
    out = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        attrs = s.user_attrs
        cfg = None
        if attrs.get(S.ATTR_CONFIG):
            try:
                cfg = StudyConfig.from_dict(attrs[S.ATTR_CONFIG])
            except Exception:  # noqa: BLE001
                cfg = None
        out.append(
            StudySummary(
                name=s.study_name,
                config=cfg,
                status=attrs.get(S.ATTR_STATUS, "unknown"),
                n_trials=s.n_trials,
                counts={},
                created=attrs.get(S.ATTR_CREATED),
                heartbeat=attrs.get(S.ATTR_HEARTBEAT),
                note=attrs.get(S.ATTR_NOTE),
                runners=runners_from_attrs(attrs),
                owner=attrs.get("runner"),  # core.study.ATTR_RUNNER
            )
        )
    out.sort(key=lambda s: s.created or 0, reverse=True)
    return out


def best_record(records: Sequence[TrialRecord], config: StudyConfig) -> TrialRecord | None:
    """The best complete trial under the study's mode (validation-based, never test)."""
    scored = [(r.objective(config), r) for r in records]
    scored = [(v, r) for v, r in scored if v is not None]
    if not scored:
        return None
    return max(scored, key=lambda vr: (vr[0], -vr[1].number))[1]


def pareto_front(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Complete trials not dominated on (validation accuracy, health)."""
    pts = [r for r in records if r.state == "COMPLETE" and r.val_accuracy is not None and r.health_score is not None]
    front = []
    for r in pts:
        dominated = any(
            (o.val_accuracy >= r.val_accuracy and o.health_score >= r.health_score)
            and (o.val_accuracy > r.val_accuracy or o.health_score > r.health_score)
            for o in pts
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r.val_accuracy)


def epochs_spent(records: Sequence[TrialRecord]) -> tuple[int, int]:
    """(epochs trained, epochs had no trial been pruned) over the finished trials with a result.

    A pruned trial counts the epochs it trained and, in the second figure, the epochs it was
    set to train; the difference is what pruning saved.
    """
    trained = unpruned = 0
    for r in records:
        if r.state not in ("COMPLETE", "PRUNED", "FAIL") or r.result is None:
            continue
        ran = int(r.result.epochs_run or 0)
        trained += ran
        planned = int((r.spec or {}).get("epochs") or 0)
        unpruned += max(ran, planned) if r.state == "PRUNED" else ran
    return trained, unpruned


def budget_count(records: Sequence[TrialRecord]) -> int:
    """Finished trials that count against ``n_trials`` (as core.study counts them: cancelled and
    interrupted trials do not, so a resumed study never reads "15/14")."""
    return sum(1 for r in records if r.state in ("COMPLETE", "PRUNED") or (r.state == "FAIL" and not r.interrupted))


def state_counts(records: Sequence[TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.state] = counts.get(r.state, 0) + 1
    return counts
