"""Studies: creating, running and reading back Optuna studies (Optuna's package style).

Private modules, one idea each, behind this surface:

* ``_factories``: samplers, pruners, :func:`create_study`, :func:`load_study` (the one way to open one).
* ``_schema``: what is written into the storage (attribute keys, result <-> attributes,
  :func:`config_of`, :data:`FINISHED`, :data:`LIVE_STATUSES`) and THE ranking rule
  (:func:`rank_key`: what "best" means, on every screen, in the CLI and for the models kept).
* ``_liveness``: runner ids, the one stale threshold, :func:`sweep_stale`, :func:`request_stop`.
* ``_runner``: :class:`StudyRunner`, the ask/tell loop; its :class:`Role` (new, resume, join).
* ``_reader``: the read model the UI, the CLI and the demo use (study list, cached trial
  records, best trial, Pareto front, epochs spent, budget counts).

``core.study`` never imports Streamlit or TensorFlow; Optuna loads when a function needs it.
"""

from __future__ import annotations

from core.errors import StudyNotFound
from core.study._factories import create_study, load_study, make_pruner, make_sampler, max_epochs
from core.study._liveness import (
    HEARTBEAT_S,
    STALE_AFTER_S,
    new_runner_id,
    owner_alive,
    request_stop,
    runner_alive,
    runner_id_alive,
    sweep_stale,
)
from core.study._reader import (
    RunnerInfo,
    StudySummary,
    TrialRecord,
    best_record,
    budget_count,
    epochs_spent,
    forget_study,
    list_studies,
    load_records,
    pareto_front,
    record_from_trial,
    runners_from_attrs,
    state_counts,
    study_config,
    summary_from_attrs,
)
from core.study._runner import Role, RunCounts, StudyRunner
from core.study._schema import (
    ATTR_CONFIG,
    ATTR_CONTROL,
    ATTR_CREATED,
    ATTR_DISPLAY_NAME,
    ATTR_FALLBACK,
    ATTR_HEARTBEAT,
    ATTR_NOTE,
    ATTR_USER_NOTE,
    ATTR_RUNNER,
    ATTR_STATUS,
    ATTR_WORKER_PREFIX,
    FINISHED,
    LIVE_STATUSES,
    T_ERROR,
    T_EXECUTOR,
    T_HEALTH,
    T_HOST,
    T_INTERRUPTED,
    T_PARAMS,
    T_PROGRESS,
    T_RESULT,
    T_RUNNER,
    T_SHIFTED_ACCURACY,
    T_SPEC,
    T_TEST_ACCURACY,
    config_of,
    counts_against_budget,
    rank_key,
    result_attrs,
    result_of,
    score,
)

__all__ = [
    "ATTR_CONFIG",
    "ATTR_CONTROL",
    "ATTR_CREATED",
    "ATTR_DISPLAY_NAME",
    "ATTR_FALLBACK",
    "ATTR_HEARTBEAT",
    "ATTR_NOTE",
    "ATTR_USER_NOTE",
    "ATTR_RUNNER",
    "ATTR_STATUS",
    "ATTR_WORKER_PREFIX",
    "FINISHED",
    "HEARTBEAT_S",
    "LIVE_STATUSES",
    "Role",
    "RunCounts",
    "RunnerInfo",
    "STALE_AFTER_S",
    "StudyNotFound",
    "StudyRunner",
    "StudySummary",
    "T_ERROR",
    "T_EXECUTOR",
    "T_HEALTH",
    "T_HOST",
    "T_INTERRUPTED",
    "T_PARAMS",
    "T_PROGRESS",
    "T_RESULT",
    "T_RUNNER",
    "T_SHIFTED_ACCURACY",
    "T_SPEC",
    "T_TEST_ACCURACY",
    "TrialRecord",
    "best_record",
    "budget_count",
    "config_of",
    "counts_against_budget",
    "create_study",
    "epochs_spent",
    "forget_study",
    "list_studies",
    "load_records",
    "load_study",
    "make_pruner",
    "make_sampler",
    "max_epochs",
    "new_runner_id",
    "owner_alive",
    "pareto_front",
    "rank_key",
    "record_from_trial",
    "request_stop",
    "result_attrs",
    "result_of",
    "runner_alive",
    "runner_id_alive",
    "runners_from_attrs",
    "score",
    "state_counts",
    "study_config",
    "summary_from_attrs",
    "sweep_stale",
]
