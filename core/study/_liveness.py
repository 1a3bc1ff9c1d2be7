"""Who is working on a study now: runner ids, the one stale threshold, sweeping, stop and cancel.

One rule decides whether a runner is alive: a runner of this process while it is registered
(:func:`register`); one on this host by its pid; one elsewhere by a heartbeat younger than
:data:`STALE_AFTER_S`.  Optuna's own heartbeat does not cover ask/tell, so trials left RUNNING
by a dead runner are ended by :func:`sweep_stale`.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import artifacts
from core import storage as S
from core.config import ConfigError, Settings, StudyConfig
from core.study import _schema as K
from core.study._factories import load_study

if TYPE_CHECKING:
    from core.study._runner import StudyRunner

log = logging.getLogger("hpo.study")

HEARTBEAT_S = 2.0  # how often a runner refreshes its heartbeat; stop/cancel requests are read as often
STALE_AFTER_S = 30.0  # a heartbeat older than this means the runner is gone: the one stale threshold

# (storage url, study name) -> runner, for runners alive in this process
_ACTIVE: dict[tuple[str, str], "StudyRunner"] = {}
_ACTIVE_LOCK = threading.Lock()


def register(url: str, name: str, runner: "StudyRunner") -> None:
    """Claim study ``name`` for ``runner`` in this process, before any storage work, so two starts cannot race.

    Raises:
        ConfigError: a runner of this process already holds it.
    """
    with _ACTIVE_LOCK:
        if (url, name) in _ACTIVE:
            raise ConfigError(f"study: '{name}' is already running in this process; stop it first")
        _ACTIVE[(url, name)] = runner


def unregister(url: str, name: str) -> None:
    with _ACTIVE_LOCK:
        _ACTIVE.pop((url, name), None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def runner_alive(study: Any, *, stale_after: float = STALE_AFTER_S, storage_url: str | None = None,
                 ignore: "StudyRunner | None" = None) -> bool:
    """Whether a runner is driving ``study`` right now (here, or in another live process).

    See :func:`owner_alive`, which judges the same from the study's attributes alone.
    ``ignore`` is a runner of this process not to count (the one asking).
    """
    attrs = study.user_attrs
    return owner_alive(study.study_name, attrs.get(K.ATTR_STATUS), attrs.get(K.ATTR_HEARTBEAT), attrs.get(K.ATTR_RUNNER),
                       stale_after=stale_after, storage_url=storage_url, ignore=ignore)


def owner_alive(name: str, status: str | None, heartbeat: float | None, owner: dict[str, Any] | None, *,
                stale_after: float = STALE_AFTER_S, storage_url: str | None = None,
                ignore: "StudyRunner | None" = None) -> bool:
    """The one rule for "study ``name`` is being run now", from its ``status``, ``runner_heartbeat``
    and ``runner`` attributes (what any reader of the storage has, e.g. the app's study list).

    A runner of this process counts while it is registered.  Otherwise the status must be
    running or stopping; a runner on this host is judged by its pid (a ``kill -9``-ed runner,
    or an app server restarted under its study, is recognised at once); one on another host
    by its heartbeat (older than ``stale_after`` = gone).
    """
    with _ACTIVE_LOCK:
        if any(n == name and (storage_url is None or url == storage_url) and runner is not ignore
               for (url, n), runner in _ACTIVE.items()):
            return True
    if status not in K.LIVE_STATUSES:
        return False
    fresh = heartbeat is not None and time.time() - float(heartbeat) < stale_after
    owner = owner if isinstance(owner, dict) else {}
    if owner.get("host") == socket.gethostname() and owner.get("pid"):
        pid = int(owner["pid"])
        if pid == os.getpid():
            return False  # recorded by this process, but no runner here holds it (checked above)
        return fresh and _pid_alive(pid)
    return fresh


def request_stop(name: str, storage_url: str | None = None, *, cancel: bool = False, by: str | None = None,
                 settings: Settings | None = None) -> None:
    """Ask every runner of study ``name`` to stop (or, with ``cancel``, to cancel), through the storage.

    The owner and every joined runner (``python -m core worker``, on any machine) read the
    request at their next heartbeat (``HEARTBEAT_S``) and act as on ``stop()`` / ``cancel()``.
    A runner started or resumed after the request ignores it.

    Raises:
        ConfigError: no such study.
    """
    url = S.resolve_url(storage_url, settings)
    study = load_study(name, url, settings=settings)
    action = "cancel" if cancel else "stop"
    study.set_user_attr(K.ATTR_CONTROL, {"action": action, "at": time.time(), "by": by or socket.gethostname()})
    log.info("study %s: %s requested by %s", name, action, by or socket.gethostname())


def new_runner_id() -> str:
    """``host:pid:random``: unique per runner, and says where to look for its process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def active_runner_ids() -> set[str]:
    with _ACTIVE_LOCK:
        return {r.runner_id for r in _ACTIVE.values()}


def runner_id_alive(study_attrs: dict[str, Any], runner_id: str, *, stale_after: float = STALE_AFTER_S,
                    active_ids: set[str] | None = None) -> bool:
    """Whether the runner ``runner_id`` (a trial's ``runner_id``) is alive.

    In this process: while it is registered.  Same host: its pid exists.  Another host:
    its ``worker:<id>`` beat is younger than ``stale_after``.
    """
    active = active_runner_ids() if active_ids is None else active_ids
    if runner_id in active:
        return True
    host, _, rest = runner_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        return pid != os.getpid() and _pid_alive(pid)
    info = study_attrs.get(K.ATTR_WORKER_PREFIX + runner_id) or {}
    beat = info.get("beat")
    return beat is not None and info.get("status") in (None, *K.LIVE_STATUSES) and time.time() - float(beat) < stale_after


def _just_asked(t: Any, within_s: float = 10.0) -> bool:
    # ask and the runner_id stamp are separate writes: an unstamped trial this young may
    # belong to a live runner that has not stamped it yet (a later sweep still catches it)
    start = t.datetime_start
    return start is not None and (datetime.datetime.now() - start).total_seconds() < within_s


def set_trial_attr(study: Any, frozen: Any, key: str, value: Any) -> None:
    # A FrozenTrial has no setter; write through the storage as Optuna's own stale-trial sweep does.
    study._storage.set_trial_user_attr(frozen._trial_id, key, value)


def sweep_stale(study: Any, *, storage_url: str | None = None, stale_after: float = STALE_AFTER_S,
                force: bool = False) -> list[int]:
    """End the RUNNING trials a dead runner left behind; return their numbers.

    A trial stamped with a ``runner_id`` is swept when that runner is dead (see
    :func:`runner_id_alive`), whoever else is alive and even with ``force``.  An unstamped
    trial (older studies) is swept only when no runner is alive (or ``force``).  A trial whose worker had
    already written a complete ``result.json`` is recovered as COMPLETE (no finished
    work is lost); the others become FAIL with the reason in ``error`` and
    ``interrupted=True`` (so they do not count against the trial budget on resume).
    """
    from optuna.trial import TrialState

    candidates = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    if not candidates:
        return []
    owner_alive = not force and runner_alive(study, stale_after=stale_after, storage_url=storage_url)
    attrs = study.user_attrs
    active = active_runner_ids()
    stale = []
    for t in candidates:
        rid = t.user_attrs.get(K.T_RUNNER)
        if rid:
            if not runner_id_alive(attrs, rid, stale_after=stale_after, active_ids=active):
                stale.append(t)
        elif not owner_alive and not _just_asked(t):
            stale.append(t)
    if not stale:
        return []
    config = K.config_of(study)
    swept = []
    for t in stale:
        recovered = _recover_from_disk(study, t, config)
        if recovered:
            swept.append(t.number)
            continue
        reason = "interrupted: the runner stopped before this trial finished (process killed or crashed)"
        set_trial_attr(study, t, K.T_ERROR, reason)
        set_trial_attr(study, t, K.T_INTERRUPTED, True)
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError) as exc:  # finished meanwhile by someone else
            log.debug("trial %s not swept: %s", t.number, exc)
            continue
        swept.append(t.number)
    if swept:
        log.warning("study %s: swept %d trial(s) left running by a dead runner: %s", study.study_name, len(swept), swept)
    return swept


def _recover_from_disk(study: Any, t: Any, config: StudyConfig | None) -> bool:
    """Tell COMPLETE a trial whose result.json says complete (the runner died before telling)."""
    from optuna.trial import TrialState

    spec = t.user_attrs.get(K.T_SPEC) or {}
    folder = spec.get("artifacts_dir")
    if not folder or config is None:
        return False
    result = artifacts.load_result(Path(folder))
    if result is None or result.status != "complete":
        return False
    for key, value in K.result_attrs(result).items():
        set_trial_attr(study, t, key, value)
    values = result.objective(config.mode, config.health_weight)
    try:
        study.tell(t.number, list(values) if isinstance(values, tuple) else values, state=TrialState.COMPLETE)
    except (RuntimeError, ValueError):
        return False
    log.warning("study %s: trial %s recovered from %s", study.study_name, t.number, folder)
    return True
