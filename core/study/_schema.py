"""What HPO Studio writes into an Optuna storage, and how it is read back: the one schema.

The storage is the one source of truth: runners write, every screen, the CLI and
optuna-dashboard read.  The attribute keys, the mapping between a :class:`TrialResult`
and a trial's attributes, a study's stored :class:`StudyConfig`, which trials count
against the budget and which trial is *best* are each defined here once.
"""

from __future__ import annotations

from typing import Any, Mapping

from core.config import StudyConfig, TrialResult, objective_value

# --------------------------------------------------------------------------- study user attributes

ATTR_CONFIG = "config"  # StudyConfig.to_dict()
ATTR_STATUS = "status"  # "created" | LIVE_STATUSES | "stopped" | "finished" | "cancelled" | "crashed"
ATTR_HEARTBEAT = "runner_heartbeat"  # unix time the owning runner last said it is alive
ATTR_RUNNER = "runner"  # {"host", "pid", "started", "id"} of the runner that owns the study now
ATTR_NOTE = "note"  # a message for the user (e.g. "RunPod unreachable: running locally")
ATTR_DISPLAY_NAME = "display_name"  # the name the app shows (core.manage); the storage name never changes
ATTR_USER_NOTE = "user_note"  # the user's own note about the study (ATTR_NOTE is the runner's message)
ATTR_FALLBACK = "executor_fallback"  # {"at", "from", "to", "reason", "moved": [trial numbers]}: RunPod went down mid-study
ATTR_CREATED = "created"  # unix time
ATTR_CONTROL = "control"  # {"action": "stop" | "cancel", "at", "by"}: asks every runner of the study (owner and joined) to stop
ATTR_WORKER_PREFIX = "worker:"  # "worker:<runner id>" -> {"host", "pid", "beat", "workers", "status", "joined"}, one per runner

# --------------------------------------------------------------------------- trial user attributes
# (flat keys are for optuna-dashboard's table; "result" is the whole record)

T_RESULT = "result"  # TrialResult.to_dict()
T_PROGRESS = "progress"  # {"epoch", "epochs", "logs", "time"} while running
T_SPEC = "spec"  # TrialSpec.to_dict(): the configuration that reproduces the trial
T_EXECUTOR = "executor"
T_HOST = "host"  # the machine that ran the trial (set on ask by the runner's host, replaced by the result's)
T_RUNNER = "runner_id"  # "<host>:<pid>:<random>" of the runner that asked the trial (several runners may share a study)
T_ERROR = "error"
T_TEST_ACCURACY = "test_accuracy"
T_SHIFTED_ACCURACY = "shifted_accuracy"
T_HEALTH = "health_score"
T_PARAMS = "param_count"
T_INTERRUPTED = "interrupted"  # True on trials ended by cancel or a dead runner (not counted in the budget)

# --------------------------------------------------------------------------- states

#: Study statuses a runner writes while it works on the study.
LIVE_STATUSES = ("running", "stopping")
#: Trial states (``TrialState.name``) that never change again.
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


# --------------------------------------------------------------------------- result <-> attributes


def result_attrs(result: TrialResult) -> dict[str, Any]:
    """The trial user attributes written for a result (flat keys for optuna-dashboard's table)."""
    attrs: dict[str, Any] = {
        T_RESULT: result.to_dict(),
        T_TEST_ACCURACY: result.test_accuracy,
        T_SHIFTED_ACCURACY: result.shifted_accuracy,
        T_HEALTH: result.health_score,
        T_PARAMS: result.param_count,
        T_HOST: result.host,
        T_EXECUTOR: result.executor,
    }
    if result.error:
        attrs[T_ERROR] = result.error
    return attrs


def result_of(attrs: Mapping[str, Any]) -> TrialResult | None:
    """The TrialResult stored in a trial's attributes; None when absent or unreadable (older or foreign)."""
    raw = attrs.get(T_RESULT)
    if not raw:
        return None
    try:
        return TrialResult.from_dict(raw)
    except Exception:  # noqa: BLE001 - an older or foreign record still shows its params
        return None


def config_of(study: Any) -> StudyConfig | None:
    """The StudyConfig stored with a study (an ``optuna.Study``, a ``FrozenStudy`` or its user
    attributes); None for a study made by another tool, or with a config this version cannot read."""
    attrs = study if isinstance(study, Mapping) else study.user_attrs
    raw = attrs.get(ATTR_CONFIG)
    if not raw:
        return None
    try:
        return StudyConfig.from_dict(raw)
    except Exception:  # noqa: BLE001 - a study made by another tool has no (or a foreign) config
        return None


def counts_against_budget(state: str, interrupted: bool, *, running: bool = False) -> bool:
    """Whether a trial counts against ``n_trials``: finished on its own (a trial cut off by a cancel
    or a dead runner does not, so a resumed study never reads "15/14"); with ``running``, the
    RUNNING and WAITING ones too (asked by any runner)."""
    if state in ("COMPLETE", "PRUNED"):
        return True
    if state == "FAIL":
        return not interrupted
    return running and state in ("RUNNING", "WAITING")


# --------------------------------------------------------------------------- the one ranking rule


def rank_key(val_accuracy: float | None, health_score: float | None, config: StudyConfig | None) -> tuple[float, ...]:
    """What "better" means for a complete trial; higher is better.  THE rule behind "best" everywhere
    (Trials, Health, 3D viewer, Learn, the CLI, exports, and the models kept on disk).

    * simple, or a study without a config: validation accuracy;
    * health-aware: the blend Optuna maximised, ``(1 - w) * accuracy + w * health``;
    * pareto: validation accuracy, then health: the most accurate trial of the Pareto front
      (ties on accuracy go to the healthier one, so the best is always on the front).  Pareto
      studies have no single objective; accuracy comes first because the product optimises
      on it, and health is shown beside it.

    Validation figures only: test accuracy never chooses.
    """
    acc = float(val_accuracy or 0.0)
    if config is None or config.mode == "simple":
        return (acc,)
    if config.mode == "health-aware":
        return (float(objective_value(val_accuracy, health_score, "health-aware", config.health_weight)),)
    return (acc, float(health_score or 0.0))


def score(val_accuracy: float | None, health_score: float | None, config: StudyConfig | None) -> float:
    """The single number a screen shows as a trial's objective: the first part of :func:`rank_key`."""
    return rank_key(val_accuracy, health_score, config)[0]
