"""LocalExecutor: concurrent worker processes, events, stop, and a worker killed mid-trial."""

from __future__ import annotations

import os
import signal
import time

import pytest

from core.config import TrialSpec
from core.executors import DoneEvent, EpochEvent, ExecutorFull, executor_class
from core.executors.local import LocalExecutor, _death_reason, detect_gpus

TINY = {"conv_blocks": 1, "filters": 8, "dense_units": 16, "batch_norm": False, "learning_rate": 0.01,
        "batch_size": 32, "dropout": 0.0}


def _spec(n: int, tmp_path, epochs: int = 2, **params) -> TrialSpec:
    return TrialSpec(dataset="digits", params={**TINY, **params}, epochs=epochs, max_samples=300, seed=n,
                     study="exec", trial_number=n, artifacts_dir=str(tmp_path / f"trial-{n:04d}"))


def _collect(ex, until, timeout: float = 180.0):
    """Events (with arrival times) until ``until(events)`` is true."""
    events: list[tuple[float, object]] = []
    deadline = time.monotonic() + timeout
    while not until([e for _, e in events]):
        assert time.monotonic() < deadline, f"timed out; got {events}"
        events.extend((time.monotonic(), e) for e in ex.events(timeout=0.5))
    return events


def _done(events, n):
    return [e for e in events if isinstance(e, DoneEvent) and e.trial_number == n]


@pytest.fixture(scope="module")
def ex():
    executor = LocalExecutor(workers=2)
    executor.start()
    assert executor.wait_ready(240), executor.describe()
    yield executor
    executor.shutdown()


@pytest.mark.tf
def test_two_trials_run_concurrently_in_two_processes(ex, tmp_path):
    assert ex.capacity == 2 and ex.free_slots == 2
    # 6 epochs: long enough that neither trial can finish before the other has started
    ex.submit(_spec(0, tmp_path, epochs=6))
    ex.submit(_spec(1, tmp_path, epochs=6))
    assert ex.running == {0, 1} and ex.free_slots == 0
    with pytest.raises(ExecutorFull):
        ex.submit(_spec(2, tmp_path))

    timed = _collect(ex, lambda evs: _done(evs, 0) and _done(evs, 1))
    events = [e for _, e in timed]
    for n in (0, 1):
        epochs = [e.epoch for e in events if isinstance(e, EpochEvent) and e.trial_number == n]
        assert epochs == [1, 2, 3, 4, 5, 6]
        result = _done(events, n)[0].result
        assert result.status == "complete", result.error
        assert result.executor == "local" and result.model_path and os.path.exists(result.model_path)
    # concurrency: each trial reported an epoch before the other one finished
    first_epoch = {n: min(t for t, e in timed if isinstance(e, EpochEvent) and e.trial_number == n) for n in (0, 1)}
    finished = {n: min(t for t, e in timed if isinstance(e, DoneEvent) and e.trial_number == n) for n in (0, 1)}
    assert first_epoch[0] < finished[1] and first_epoch[1] < finished[0], (first_epoch, finished, events)
    assert ex.running == set()
    info = ex.describe()
    assert [w["trials_run"] for w in info["workers"]] == [1, 1]
    assert len({w["pid"] for w in info["workers"]}) == 2 and info["threads_per_worker"] >= 1


@pytest.mark.tf
def test_stop_trial_ends_it_early(ex, tmp_path):
    ex.submit(_spec(10, tmp_path, epochs=40))
    _collect(ex, lambda evs: any(isinstance(e, EpochEvent) and e.trial_number == 10 for e in evs))
    ex.stop_trial(10)
    ex.stop_trial(999)  # unknown numbers are ignored
    events = [e for _, e in _collect(ex, lambda evs: _done(evs, 10))]
    result = _done(events, 10)[0].result
    assert result.status == "stopped"
    assert result.epochs_run < 40


@pytest.mark.tf
def test_killed_worker_fails_its_trial_and_is_replaced(ex, tmp_path):
    ex.submit(_spec(20, tmp_path, epochs=60))
    _collect(ex, lambda evs: any(isinstance(e, EpochEvent) and e.trial_number == 20 for e in evs))
    slot = ex.slot_of(20)
    old_pid = ex.pids[slot]
    restarts = ex.describe()["workers"][slot]["restarts"]
    os.kill(old_pid, signal.SIGKILL)

    events = [e for _, e in _collect(ex, lambda evs: _done(evs, 20), timeout=60)]
    result = _done(events, 20)[0].result
    assert result.status == "failed"
    assert "SIGKILL" in result.error and str(old_pid) in result.error
    info = ex.describe()["workers"][slot]
    assert info["restarts"] == restarts + 1 and info["pid"] != old_pid

    # the replacement takes work (both slots are free; the new one may still be importing TensorFlow)
    ex.submit(_spec(21, tmp_path))
    ex.submit(_spec(22, tmp_path))
    events = [e for _, e in _collect(ex, lambda evs: _done(evs, 21) and _done(evs, 22), timeout=240)]
    assert {_done(events, n)[0].result.status for n in (21, 22)} == {"complete"}


def test_death_reasons_are_readable():
    assert "SIGKILL" in _death_reason(-9, 123) and "out of memory" in _death_reason(-9, 123)
    assert "code 1" in _death_reason(1, 123)


def test_gpu_detection_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert detect_gpus() == ["0", "1"]
    ex = LocalExecutor()  # not started: no processes
    assert ex.capacity == 2
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in ex._slots] == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == [] and LocalExecutor().capacity == 1


def test_executor_registry():
    assert executor_class("local") is LocalExecutor
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="executor"):
        executor_class("cloud9")


def test_one_factory_driven_by_the_registry(monkeypatch, tmp_path):
    """build_executor looks every name up in EXECUTORS; a remote one that cannot load runs locally, with a note."""
    from core import config as C
    from core.config import Settings, StudyConfig
    from core.executors import build_executor

    settings = Settings(home=tmp_path)
    local, note = build_executor(StudyConfig(name="f", workers=1), settings)
    assert isinstance(local, LocalExecutor) and note is None
    local.shutdown(wait=0)
    monkeypatch.setitem(C.EXECUTORS, "runpod", "core.executors.not_installed:RunPodExecutor")
    local, note = build_executor(StudyConfig(name="f", executor="runpod", workers=1, runpod_endpoint="x"), settings)
    assert isinstance(local, LocalExecutor) and "not available in this installation" in note
    assert note.endswith("running locally")
    local.shutdown(wait=0)
