"""What the UI remembers, and where: the running-study registry and per-tab selection.

Three kinds of state, kept apart on purpose:

* **Study state** lives in the Optuna storage. Every screen reads it back on every rerun
  through ``core.study``'s reader (:func:`read_records`, :func:`list_studies` here only supply
  the storage the UI reads); nothing about a study lives only in memory, so a reload, a second
  tab, an app restart or ``optuna-dashboard`` all agree.
* **Runners** (``core.study.StudyRunner``, one background thread each) are process-wide: a
  ``st.cache_resource`` registry keyed by storage URL and study name, so any tab can stop a
  study another tab started, and a rerun never starts a second runner for the same study.
* **Selection** (which study, which trial) is per browser tab: ``st.session_state``, under keys
  that are not widget keys so they survive page switches (Streamlit drops a widget's state
  when the page that draws it is left).

The storage URL comes from ``HPO_STORAGE`` or, by default, the SQLite file of
``core.config.Settings`` (which follows ``HPO_HOME``).
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import time
from typing import Any

import streamlit as st

from core import storage as S
from core import study as R
from core.config import ConfigError, Settings, StudyConfig

# Session-state keys (never used as widget keys).
_SEL_STUDY = "hpo.selected_study"
_SEL_TRIAL = "hpo.selected_trial"  # {study name: trial number}
_SEL_COMPARE = "hpo.compare"  # {study name: [trial numbers]}


# --------------------------------------------------------------------------- storage


def storage_url() -> str:
    """The Optuna storage every screen reads: ``HPO_STORAGE``, else the SQLite file under ``HPO_HOME``."""
    return S.resolve_url(None, Settings.from_env())


def settings() -> Settings:
    return Settings.from_env()


def open_storage(url: str | None = None) -> Any:
    """The storage every screen reads (``core.storage.open_storage`` serialises first opens)."""
    return S.open_storage(url or storage_url())


def forget_study(name: str, url: str | None = None) -> None:
    """Drop the cached handle (after a study is deleted or recreated under the same name)."""
    R.forget_study(name, url or storage_url())


def read_records(name: str, url: str | None = None) -> list[R.TrialRecord]:
    """Every trial of ``name``, oldest first, read from the storage now (``core.study.load_records``).

    Raises:
        KeyError: no study of that name in the storage (yet).
    """
    return R.load_records(name, url or storage_url())


def list_studies(url: str | None = None, *, with_counts: bool = False) -> list[R.StudySummary]:
    """Every study in the UI's storage, newest first (``core.study.list_studies``)."""
    return R.list_studies(url or storage_url(), with_counts=with_counts)


def study_summary(name: str, url: str | None = None) -> R.StudySummary | None:
    return next((s for s in list_studies(url) if s.name == name), None)


def study_config(name: str, url: str | None = None) -> StudyConfig | None:
    """The StudyConfig stored with the study (None for studies made by other tools)."""
    return R.study_config(name, url or storage_url())


# --------------------------------------------------------------------------- runners


class _Registry:
    """Runners started by this process, by (storage URL, study name)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runners: dict[tuple[str, str], Any] = {}


@st.cache_resource(show_spinner=False)
def _registry() -> _Registry:
    return _Registry()


def runner_for(name: str, url: str | None = None) -> Any | None:
    """The runner this process holds for ``name``, if any (running or finished)."""
    reg = _registry()
    with reg.lock:
        return reg.runners.get((url or storage_url(), name))


def _runner_alive(runner: Any) -> bool:
    try:
        return bool(runner.is_running)
    except Exception:  # noqa: BLE001 - a broken runner counts as not running
        return False


def is_running(name: str, summary: R.StudySummary | None = None, url: str | None = None) -> bool:
    """True while a runner works on the study: ours, or another process whose heartbeat is fresh."""
    runner = runner_for(name, url)
    if runner is not None and _runner_alive(runner):
        return True
    summary = summary or study_summary(name, url)
    return bool(summary and summary.alive)


def running_studies(summaries: list[R.StudySummary] | None = None, url: str | None = None) -> list[str]:
    """Names of studies being worked on now (this process's runners and live runners elsewhere).

    Pass ``summaries`` when the caller already listed the studies: listing costs a query.
    """
    url = url or storage_url()
    reg = _registry()
    with reg.lock:
        ours = [n for (u, n), r in reg.runners.items() if u == url and _runner_alive(r)]
    if summaries is None:
        summaries = list_studies(url)
    others = [s.name for s in summaries if s.alive]
    return sorted(set(ours) | set(others))


def any_running(summaries: list[R.StudySummary] | None = None, url: str | None = None) -> bool:
    """Whether anything runs: live screens refresh themselves only while this is true."""
    return bool(running_studies(summaries, url))


def setup_logs() -> None:
    """Send this process's logs (runners, executors, Optuna) to ``logs/hpo.log``, as the CLI does.

    The same ``core.logs.setup_logging`` every entry point calls, stamped "app"; idempotent,
    so calling it on every rerun and before every start costs nothing after the first time.
    Without it a study started here logs to the server's console only (trial failures,
    RunPod fallback, crash tracebacks).
    """
    from core.logs import setup_logging

    setup_logging("app")


def running_on_this_machine(summaries: list[R.StudySummary] | None = None, url: str | None = None) -> list[str]:
    """Studies that train on this machine now: this process's runners, and live runners of other
    processes on this host, with local workers (a RunPod study trains elsewhere)."""
    url = url or storage_url()
    if summaries is None:
        summaries = list_studies(url)
    here = socket.gethostname()
    reg = _registry()
    with reg.lock:
        ours = {n for (u, n), r in reg.runners.items() if u == url and _runner_alive(r)}
    out = []
    for s in summaries:
        if s.config is not None and s.config.executor != "local":
            continue
        hosts = {(s.owner or {}).get("host")} | {r.host for r in s.runners if r.alive}
        if s.name in ours or (s.alive and here in hosts):
            out.append(s.name)
    return out


def check_data(config: StudyConfig) -> None:
    """Refuse a study whose data set no trial could load here (offline, no local copy), once,
    with core.datasets' message saying what to do, instead of one failed trial after another.

    Raises:
        DatasetUnavailable: a ConfigError with the instructions.
    """
    if config.executor == "local":  # RunPod workers load the data on their side
        from core.datasets import check_available

        check_available(config.dataset, settings().datasets_dir)


def check_new_study(config: StudyConfig, url: str | None = None) -> StudyConfig:
    """Refuse a config before any work starts: its own validation, a name already taken, a data
    set that cannot be loaded.

    Raises:
        ConfigError: naming the setting to fix.
    """
    config.validate()
    if any(s.name == config.name for s in list_studies(url or config.storage or storage_url())):
        raise ConfigError(
            f"name: a study called {config.name!r} already exists in this storage; "
            "choose another name, or resume it from the list below"
        )
    check_data(config)
    return config


def start(config: StudyConfig, *, select: bool = True) -> Any:
    """Validate ``config``, then start a ``StudyRunner`` for it in the background.

    ``select``: make it this tab's study (Configure); an experiment started from a trial leaves
    the tab on that trial, where its plot is.

    Returns:
        The started runner (also kept in the registry).

    Raises:
        ConfigError: bad settings or a duplicate name; nothing has started.
    """
    setup_logs()
    url = config.storage or storage_url()
    check_new_study(config, url)
    if config.storage is None:
        # Pin the storage the UI reads, so HPO_STORAGE and the runner can never disagree.
        config.storage = url
    reg = _registry()
    with reg.lock:
        existing = reg.runners.get((url, config.name))
        if existing is not None and _runner_alive(existing):
            raise ConfigError(f"name: study {config.name!r} is already running")
        runner = R.StudyRunner(config, api_key=runpod_setting("RUNPOD_API_KEY"))
        runner.start()
        reg.runners[(url, config.name)] = runner
    if select:
        select_study(config.name)
    return runner


def resume(name: str, url: str | None = None) -> Any:
    """Resume a stopped or interrupted study from the storage (its stored config, its trials so far)."""
    setup_logs()
    url = url or storage_url()
    reg = _registry()
    with reg.lock:
        existing = reg.runners.get((url, name))
        if existing is not None and _runner_alive(existing):
            return existing
    summary = study_summary(name, url)
    if summary is not None and summary.alive:
        raise ConfigError(f"study {name!r} is being run by another process; stop it there first")
    if summary is not None and summary.config is not None:
        check_data(summary.config)
    runner = R.StudyRunner.resume(name, storage_url=url, api_key=runpod_setting("RUNPOD_API_KEY"))
    runner.start()
    with reg.lock:
        reg.runners[(url, name)] = runner
    select_study(name)
    return runner


def stop(name: str, url: str | None = None) -> bool:
    """Finish the trials that are running, start no more.

    A runner of this process is told directly; a study run elsewhere (the CLI, joined workers
    on other machines) gets the request through the storage and every runner of it stops at
    its next heartbeat.  Returns True when the runner was ours.
    """
    return _halt(name, url, cancel=False)


def cancel(name: str, url: str | None = None) -> bool:
    """Stop now: running trials are abandoned, here and in every joined worker. True when the runner was ours."""
    return _halt(name, url, cancel=True)


def _halt(name: str, url: str | None, *, cancel: bool) -> bool:
    runner = runner_for(name, url)
    if runner is not None:
        if cancel:  # the runner passes either on to joined workers
            runner.cancel()
        else:
            runner.stop()
        return True
    R.request_stop(name, url or storage_url(), cancel=cancel, by="app")
    return False


def runner_error(name: str, url: str | None = None) -> str | None:
    """The error that stopped this process's runner, as text (None when fine or not ours)."""
    runner = runner_for(name, url)
    err = getattr(runner, "error", None) if runner is not None else None
    return None if err is None else str(err)


# --------------------------------------------------------------------------- selection (per tab)


def selected_study(available: list[str]) -> str | None:
    """This tab's study: the one chosen before if it still exists, else the newest."""
    name = st.session_state.get(_SEL_STUDY)
    if name in available:
        return name
    return available[0] if available else None


def select_study(name: str | None) -> None:
    st.session_state[_SEL_STUDY] = name


def selected_trial(study: str) -> int | None:
    return (st.session_state.get(_SEL_TRIAL) or {}).get(study)


def select_trial(study: str, number: int | None) -> None:
    sel = dict(st.session_state.get(_SEL_TRIAL) or {})
    sel[study] = number
    st.session_state[_SEL_TRIAL] = sel


def compared_trials(study: str) -> list[int] | None:
    """The trials picked for comparison in this tab (gallery ticks or the Compare tab), in pick order;
    None when nothing was ever picked for this study."""
    picked = (st.session_state.get(_SEL_COMPARE) or {}).get(study)
    return None if picked is None else list(picked)


def compare_trials(study: str, numbers: list[int]) -> None:
    sel = dict(st.session_state.get(_SEL_COMPARE) or {})
    sel[study] = list(dict.fromkeys(int(n) for n in numbers))
    st.session_state[_SEL_COMPARE] = sel


def toggle_compared(study: str, number: int, on: bool) -> None:
    """Add trial ``number`` to (or take it off) the comparison of ``study``."""
    picked = [n for n in compared_trials(study) or [] if n != number]
    compare_trials(study, picked + [number] if on else picked)


def now() -> float:
    """Wall time (a function so tests can freeze it)."""
    return time.time()


# --------------------------------------------------------------------------- secrets, RunPod, demo


def runpod_setting(name: str) -> str | None:
    """A RunPod setting (RUNPOD_API_KEY, RUNPOD_ENDPOINT_ID) from st.secrets, else the environment."""
    try:
        value = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets.toml at all is normal
        value = None
    return str(value) if value else os.environ.get(name) or None


def apply_secret_flags() -> None:
    """``demo = true`` in secrets switches demo mode on (Community Cloud has no shell to export it)."""
    try:
        flag = st.secrets.get("demo")
    except Exception:  # noqa: BLE001
        flag = None
    if flag in (True, "true", "1", 1) and not os.environ.get(demo_module().DEMO_ENV):
        os.environ[demo_module().DEMO_ENV] = "1"


def demo_module():
    return importlib.import_module("core.demo")


@st.cache_resource(show_spinner=False)
def _demo_example() -> bool:
    runner = demo_module().ensure_example_study(settings())
    if runner is not None:
        reg = _registry()
        with reg.lock:
            reg.runners[(storage_url(), runner.study_name)] = runner
    return True


def ensure_demo() -> None:
    """In demo mode, make sure the example study exists (started once per server process)."""
    if demo_module().demo_enabled():
        setup_logs()
        _demo_example()
