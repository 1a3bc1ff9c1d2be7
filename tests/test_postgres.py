"""Several runners on one study over a real PostgreSQL server (Optuna's distributed mode).

Process A owns the study (``python -m core optimize``); process B joins it
(``python -m core worker``) with its own local executor, as a second machine would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import study as K  # the storage schema: attribute keys
from tests.pg import pg_bin, postgres_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(pg_bin() is None, reason="no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb); "
                                                "apt-get install postgresql"),
]

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--epochs", "1", "--max-samples", "200", "--pruner", "none", "--param", "filters=8", "--param",
        "dense_units=16", "--param", "conv_blocks=1", "--no-progress"]


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, HPO_HOME=str(home), PYTHONPATH=str(ROOT))


def _start(args: list[str], home: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, env=_env(home),
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _trials(name: str, url: str):
    import optuna

    from core import storage as S

    try:
        return optuna.load_study(study_name=name, storage=S.open_storage(url)).get_trials(deepcopy=False)
    except KeyError:
        return None


def _wait(pred, timeout: float, what: str, procs=()) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.3)
    for p in procs:
        p.kill()
    raise AssertionError(f"timed out waiting for {what}")


def _finish(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 420) -> None:
    deadline = time.time() + timeout
    for p, log in zip(procs, logs):
        try:
            p.wait(max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"runner did not end; log:\n{log.read_text()[-3000:]}")
        assert p.returncode == 0, log.read_text()[-3000:]


def _owner_and_worker(name: str, url: str, tmp_path: Path, trials: int, *extra: str):
    """Process A owns study ``name`` (``optimize``); once it exists, process B joins it (``worker``)."""
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = _start(["optimize", "--storage", url, "--name", name, "--trials", str(trials), "--workers", "1", *TINY,
                *extra], tmp_path, a_log)
    _wait(lambda: _trials(name, url) is not None, 60, "the study to exist", [a])
    b = _start(["worker", "--study", name, "--storage", url, "--workers", "1", "--no-progress"], tmp_path, b_log)
    return a, b, a_log, b_log


def _running_by(name: str, url: str, proc: subprocess.Popen) -> bool:
    """Whether process ``proc``'s runner has a RUNNING trial in the study."""
    from optuna.trial import TrialState


    return any(t.state == TrialState.RUNNING and str(t.user_attrs.get(K.T_RUNNER, "")).split(":")[1:2] == [str(proc.pid)]
               for t in _trials(name, url))


def test_two_runners_share_one_study(pg_url, tmp_path):
    from core import storage as S
    from core.study import load_records

    name = "pg"
    a, b, a_log, b_log = _owner_and_worker(name, pg_url, tmp_path, 6)

    saw_running, hosts_while_running = False, set()
    while a.poll() is None or b.poll() is None:  # the app's reader, polling as a view does
        for r in load_records(name, pg_url):
            if r.state == "RUNNING":
                saw_running = True
                if r.spec:  # written after the host, right after ask: the host is known long before the result
                    hosts_while_running.add(r.host)
        time.sleep(0.5)
    _finish([a, b], [a_log, b_log])

    trials = _trials(name, pg_url)
    records = load_records(name, pg_url)
    numbers = [r.number for r in records]
    assert len(numbers) == len(set(numbers))
    assert 6 <= len(records) <= 7, [(r.number, r.state) for r in records]  # overshoot <= runners - 1
    assert all(r.state == "COMPLETE" for r in records), [(r.number, r.state, r.error) for r in records]
    dirs = [r.spec["artifacts_dir"] for r in records]
    assert len(dirs) == len(set(dirs))
    runners = {t.user_attrs.get(K.T_RUNNER) for t in trials}
    pids = {rid.split(":")[1] for rid in runners}
    assert pids == {str(a.pid), str(b.pid)}, runners  # both processes ran trials
    assert saw_running
    assert all(r.host for r in records) and hosts_while_running and "" not in hosts_while_running
    attrs = __import__("optuna").load_study(study_name=name, storage=S.open_storage(pg_url)).user_attrs
    assert attrs[K.ATTR_STATUS] == "finished"  # the owner's; the worker never wrote it
    workers = {k: v for k, v in attrs.items() if k.startswith(K.ATTR_WORKER_PREFIX)}
    assert len(workers) == 2 and sorted(v["owner"] for v in workers.values()) == [False, True]


def test_killed_worker_is_swept_and_budget_completes(pg_url, tmp_path):
    from optuna.trial import TrialState

    from core.study import T_INTERRUPTED

    name = "pg-kill"
    a, b, a_log, b_log = _owner_and_worker(name, pg_url, tmp_path, 6)

    _wait(lambda: _running_by(name, pg_url, b), 120, "the worker to run a trial", [a, b])
    os.killpg(b.pid, signal.SIGKILL)  # the whole machine goes: runner and its trial processes
    b.wait()
    _finish([a], [a_log])

    trials = _trials(name, pg_url)
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    counted = [t for t in trials if t.state == TrialState.COMPLETE
               or (t.state == TrialState.FAIL and not t.user_attrs.get(T_INTERRUPTED))]
    assert 6 <= len(counted) <= 7, [(t.number, t.state.name) for t in trials]
    killed = [t for t in trials if str(t.user_attrs.get(K.T_RUNNER, "")).split(":")[1:2] == [str(b.pid)]]
    assert killed and all(t.state in (TrialState.FAIL, TrialState.COMPLETE) for t in killed)
    assert any(t.user_attrs.get(T_INTERRUPTED) or t.state == TrialState.COMPLETE for t in killed)


@pytest.mark.parametrize("cancel", [False, True], ids=["stop", "cancel"])
def test_stop_from_the_app_reaches_joined_workers(pg_url, tmp_path, cancel):
    """The app's Stop/Cancel for a study it does not run (request_stop) ends the owner *and*
    the joined worker: both processes exit, nothing is left RUNNING, the budget is not used up."""
    from optuna.trial import TrialState

    from core import storage as S
    from core.study import request_stop

    name = f"pg-{'cancel' if cancel else 'stop'}"
    epochs = ["--epochs", "40"] if cancel else []  # long trials: only a cancel ends them early
    a, b, a_log, b_log = _owner_and_worker(name, pg_url, tmp_path, 40, *epochs)
    _wait(lambda: _running_by(name, pg_url, a) and _running_by(name, pg_url, b), 180, "both runners to run a trial",
          [a, b])
    asked = time.time()
    request_stop(name, pg_url, cancel=cancel, by="app")
    _finish([a, b], [a_log, b_log], timeout=60 if cancel else 120)
    took = time.time() - asked

    trials = _trials(name, pg_url)
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len(trials) < 40
    attrs = __import__("optuna").load_study(study_name=name, storage=S.open_storage(pg_url)).user_attrs
    assert attrs[K.ATTR_STATUS] == ("cancelled" if cancel else "stopped")
    workers = [v for k, v in attrs.items() if k.startswith(K.ATTR_WORKER_PREFIX)]
    assert sorted(v["status"] for v in workers) == ["cancelled" if cancel else "stopped"] * 2
    if cancel:  # 40-epoch trials were cut off: both runners' last trials are FAIL "cancelled"
        cut = [t for t in trials if t.user_attrs.get(K.T_ERROR) == "cancelled"]
        assert {str(t.user_attrs[K.T_RUNNER]).split(":")[1] for t in cut} == {str(a.pid), str(b.pid)}
        assert took < 40, took
    else:
        assert {t.state for t in trials} == {TrialState.COMPLETE}  # running trials were finished, not cut
