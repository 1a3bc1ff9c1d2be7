"""RunPodExecutor against a fake RunPod API: faults, idempotency, cancel, key hygiene, fallback.

No TensorFlow here: the fake endpoint's jobs sleep and return made-up results
(``tests/fake_runpod.py``); the real handler is exercised in ``tests/test_worker.py``.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest

from core.config import StudyConfig, TrialSpec
from core.executors.base import DoneEvent, EpochEvent, ExecutorFull
from core.executors.runpod import RetryPolicy, RunPodExecutor, failure_reason, resolve_base_url
from core import study as K  # the storage schema: attribute keys
from tests.fake_runpod import FakeRunPod, Faults, fake_body

KEY = "rpa_SECRET_test_key_0123456789"
FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)


def make_executor(fake: FakeRunPod, workers: int = 3, **kw) -> RunPodExecutor:
    kw.setdefault("api_key", KEY)
    kw.setdefault("retry", FAST_RETRY)
    return RunPodExecutor(fake.base_url, workers=workers, poll_interval=0.03, max_poll_interval=0.15, **kw)


def spec(n: int, tmp_path: Path, epochs: int = 3, study: str = "rp") -> TrialSpec:
    return TrialSpec(dataset="digits", params={"learning_rate": 1e-3}, epochs=epochs, trial_number=n, study=study,
                     seed=n, artifacts_dir=str(tmp_path / f"trial-{n:04d}"))


def drive(ex: RunPodExecutor, specs: list[TrialSpec], timeout: float = 60.0):
    """A minimal runner loop: keep slots full, collect every event."""
    todo = list(specs)
    done: dict[int, list] = {}
    epochs: dict[int, list[int]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(specs) or any(len(v) > 1 for v in done.values()):
        assert time.monotonic() < deadline, f"timed out: done={sorted(done)} running={ex.running}"
        while todo and ex.free_slots:
            ex.submit(todo.pop(0))
        for ev in ex.events(0.1):
            if isinstance(ev, DoneEvent):
                done.setdefault(ev.trial_number, []).append(ev.result)
            else:
                assert isinstance(ev, EpochEvent)
                epochs.setdefault(ev.trial_number, []).append(ev.epoch)
        if len(done) == len(specs) and not todo:
            # linger: a duplicate DoneEvent, if the executor produced one, would show up now
            for ev in ex.events(0.3):
                if isinstance(ev, DoneEvent):
                    done.setdefault(ev.trial_number, []).append(ev.result)
            break
    return done, epochs


@pytest.fixture
def all_logs():
    """Every log record from every logger (urllib3's included) at DEBUG, for the key-hygiene check."""
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Grab(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(), logging.getLogger("hpo"), logging.getLogger("urllib3"), logging.getLogger("optuna")]
    old = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield records
    for lg, level in old:
        lg.removeHandler(handler)
        lg.setLevel(level)


# --------------------------------------------------------------------------- happy path and faults


def test_trials_run_and_models_land_in_the_artifacts_folder(tmp_path):
    with FakeRunPod(fake_body(0.3, model_bytes=4096), workers=2, api_key=KEY) as fake:
        ex = make_executor(fake)
        ok, detail = ex.check_health()
        assert ok and "idle" in detail
        done, epochs = drive(ex, [spec(n, tmp_path) for n in range(4)])
        ex.shutdown()
    for n in range(4):
        (res,) = done[n]
        assert res.status == "complete" and res.executor == "runpod"
        assert epochs[n] == [1, 2, 3]  # the last epoch ends after the last poll: reported from the result
        model = Path(res.model_path)
        assert model == tmp_path / f"trial-{n:04d}" / "model.keras" and model.stat().st_size == 4096
        assert json.loads(Path(res.result_path).read_text())["val_accuracy"] == res.val_accuracy
    assert fake.max_running == 2  # RunPod queued what its two workers could not take


def test_fault_storm_loses_nothing_and_reports_each_trial_once(tmp_path, all_logs):
    faults = Faults(rate_limit=0.1, server_error=0.1, drop=0.08, drop_after_run=0.3,
                    redeliver_trials={1, 4}, fail_trials={2}, seed=11)
    with FakeRunPod(fake_body(0.25, model_bytes=512), workers=3, api_key=KEY, faults=faults) as fake:
        # One certain duplicate: the random ones depend on which thread draws from the seeded
        # generator first, and some interleavings drew none (the check below failed ~1 run in 10).
        fake.inject("drop_after_run", route="run")
        ex = make_executor(fake, workers=3)
        done, epochs = drive(ex, [spec(n, tmp_path) for n in range(8)])
        desc = ex.describe()
        ex.shutdown()
        duplicates = [n for n in range(8) if len(fake.jobs_for_trial(n)) > 1]
    assert sorted(done) == list(range(8))
    assert all(len(v) == 1 for v in done.values()), "a trial was reported twice"
    for n in range(8):
        assert epochs.get(n, []) == list(range(1, len(epochs.get(n, [])) + 1)), f"trial {n}: epochs {epochs.get(n)}"
    assert done[2][0].status == "failed" and "simulated worker crash" in done[2][0].error
    assert all(done[n][0].status == "complete" for n in range(8) if n != 2)
    assert epochs[1] == [1, 2, 3] and epochs[4] == [1, 2, 3]  # redelivered: progress restarted, not re-reported
    # the storm really happened: retries were needed, dropped /run answers made duplicate jobs
    assert fake.counts["fault:429"] and fake.counts["fault:drop"] and desc["http"]["retries"] > 5
    assert duplicates, "expected a dropped /run answer to leave a duplicate job"
    text = "\n".join(all_logs) + json.dumps(desc) + repr(ex) + repr(ex.client)
    assert KEY not in text


def test_fault_storm_through_the_study_runner(tmp_path, hpo_home, all_logs):
    """Through a real StudyRunner: every trial recorded exactly once in storage, none lost, key never logged."""
    import optuna

    from core import storage as S
    from core.study import StudyRunner

    faults = Faults(rate_limit=0.08, server_error=0.08, drop=0.05, drop_after_run=0.25, redeliver_trials={3},
                    fail_trials={5}, seed=5)
    config = StudyConfig(name="rp-storm", dataset="digits", n_trials=10, epochs=3, pruner="none",
                         executor="runpod", workers=4, runpod_endpoint="unused", seed=1)
    with FakeRunPod(fake_body(0.2, model_bytes=256), workers=4, api_key=KEY, faults=faults) as fake:
        ex = make_executor(fake, workers=4)
        assert StudyRunner(config, executor=ex).run() == "finished"
        ex.shutdown()
    study = optuna.load_study(study_name="rp-storm", storage=S.resolve_url(None))
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(10))
    states = {t.number: t.state.name for t in trials}
    assert states.pop(5) == "FAIL" and set(states.values()) == {"COMPLETE"}
    for t in trials:
        assert t.user_attrs[K.T_EXECUTOR] == "runpod"
        if t.state.name == "COMPLETE":
            assert sorted(t.intermediate_values) == [1, 2, 3]
            assert t.user_attrs[K.T_RESULT]["model_path"].endswith("model.keras")  # downloaded (keep-best-k may prune it)
    assert "simulated worker crash" in trials[5].user_attrs[K.T_RESULT]["error"]
    assert KEY not in "\n".join(all_logs)


def test_stop_trial_cancels_the_job(tmp_path):
    with FakeRunPod(fake_body(20.0), workers=1, api_key=KEY) as fake:
        ex = make_executor(fake, workers=2)
        ex.submit(spec(0, tmp_path, epochs=40))
        ex.submit(spec(1, tmp_path, epochs=40))  # one of the two waits in RunPod's queue: one fake worker
        first = None
        deadline = time.monotonic() + 30  # the first epoch event (seconds on a busy machine)
        while first is None and time.monotonic() < deadline:
            first = next((e for e in ex.events(0.1) if isinstance(e, EpochEvent)), None)
        assert first is not None
        running, queued = first.trial_number, 1 - first.trial_number
        t0 = time.monotonic()
        # The queued job first: cancelled while the one fake worker is still busy, so it can never start
        # (the other order races the freed worker for it on a loaded machine).
        ex.stop_trial(queued)
        ex.stop_trial(running)  # the worker's stop flag is raised
        results = {}
        while len(results) < 2 and time.monotonic() - t0 < 12:
            results.update({e.trial_number: e.result for e in ex.events(0.1) if isinstance(e, DoneEvent)})
        ex.shutdown()
        assert time.monotonic() - t0 < 10.0  # the jobs had ~19 s to go (a loaded machine may take seconds)
        assert results[running].status == "stopped" and results[running].epochs_run >= 1
        assert results[running].history["val_accuracy"]
        assert results[queued].status == "stopped" and results[queued].epochs_run == 0
        assert fake.status_counts()["CANCELLED"] == 2
        assert fake.jobs_for_trial(queued)[0].started is None  # never ran


def test_duplicate_submit_of_a_running_trial_makes_no_second_job(tmp_path):
    with FakeRunPod(fake_body(0.3), workers=2, api_key=KEY) as fake:
        ex = make_executor(fake, workers=2)
        ex.submit(spec(7, tmp_path))
        ex.submit(spec(7, tmp_path))  # e.g. a runner retry: ignored while 7 is in flight
        assert ex.running == {7} and ex.free_slots == 1
        deadline = time.monotonic() + 10
        got = []
        while not got and time.monotonic() < deadline:
            got = [e for e in ex.events(0.1) if isinstance(e, DoneEvent)]
        assert len(got) == 1 and not [e for e in ex.events(0.5) if isinstance(e, DoneEvent)]
        assert len(fake.jobs_for_trial(7)) == 1
        ex.submit(spec(8, tmp_path))
        ex.submit(spec(9, tmp_path))
        with pytest.raises(ExecutorFull):
            ex.submit(spec(10, tmp_path))
        ex.shutdown()


def test_failed_job_carries_the_workers_reason(tmp_path):
    with FakeRunPod(fake_body(0.1, fail_trials={0}), workers=1, api_key=KEY) as fake:
        ex = make_executor(fake)
        done, _ = drive(ex, [spec(0, tmp_path)])
        ex.shutdown()
    res = done[0][0]
    assert res.status == "failed" and "simulated CUDA out of memory" in res.error and res.executor == "runpod"
    # the SDK reports a handler exception as JSON error info; the reason is its message
    sdk_error = json.dumps({"error_type": "<class 'ValueError'>", "error_message": "boom", "error_traceback": "..."})
    assert failure_reason(sdk_error) == "ValueError: boom"


def test_wrong_key_fails_fast_and_never_shows_the_key(tmp_path, all_logs):
    with FakeRunPod(fake_body(0.1), workers=1, api_key="the-right-key") as fake:
        ex = make_executor(fake, api_key=KEY)
        ok, reason = ex.check_health()
        assert not ok and "refused the API key" in reason
        done, _ = drive(ex, [spec(0, tmp_path)])
        ex.shutdown()
        assert fake.counts["run"] == 1  # a 401 is not retried
    res = done[0][0]
    assert res.status == "failed" and "401" in res.error
    assert KEY not in "\n".join(all_logs) + res.to_json() + json.dumps(ex.describe())


def test_an_endpoint_that_echoes_the_key_never_gets_it_stored_or_shown(tmp_path, hpo_home, all_logs):
    """A careless endpoint (or proxy) repeats our Authorization header in its error bodies and job
    errors: the key must reach neither the log, the storage, result.json, the exports nor the note."""
    import optuna

    from core import storage as S
    from core.artifacts import export_study
    from core.executors.runpod import redact
    from core.executors.select import build_executor
    from core.study import StudyRunner

    config = StudyConfig(name="rp-echo", dataset="digits", n_trials=4, epochs=2, pruner="none",
                         executor="runpod", workers=2, runpod_endpoint="unused", seed=1)
    with FakeRunPod(fake_body(0.1, model_bytes=64), workers=2, api_key=KEY, echo_auth=True,
                    faults=Faults(fail_trials={2})) as fake:
        fake.inject("400", route="run")  # the first /run is refused with the request dumped in the body
        ex = make_executor(fake, workers=2)
        assert StudyRunner(config, executor=ex).run() == "finished"
        ex.shutdown()
        fake.inject("400", route="health")  # the start-up check sees the echo too: the note must not carry it
        cfg = StudyConfig(name="rp-echo-note", executor="runpod", workers=1, runpod_endpoint=fake.base_url)
        local, note = build_executor(cfg, api_key=KEY)
        local.shutdown(wait=0)
    assert fake.counts["fault:400"] == 2

    study = optuna.load_study(study_name="rp-echo", storage=S.resolve_url(None))
    errors = {t.number: t.user_attrs[K.T_RESULT].get("error") for t in study.get_trials()}
    echoed = [e for e in errors.values() if e and "Authorization" in e]
    assert len(echoed) == 2, errors  # the refused /run and the crashed job both quoted the header...
    assert all("[redacted]" in e for e in echoed)  # ...and the key was cut out of each
    assert "HTTP 400" in note and "[redacted]" in note

    stored = json.dumps([{**t.user_attrs, "params": t.params} for t in study.get_trials()]) + json.dumps(study.user_attrs)
    files = [p.read_text(errors="replace") for p in hpo_home.rglob("*") if p.is_file() and p.suffix in (".json", ".log")]
    exported = export_study("rp-echo", tmp_path / "export")
    files += [exported[k].read_text() for k in ("csv", "json")]
    everything = "\n".join(all_logs) + stored + "\n".join(files) + note
    assert KEY not in everything
    assert KEY[:12] not in everything  # not even the part a 200-character excerpt would have kept

    # the patterns alone, for text that never carried our key (a worker's message, a proxy's page)
    assert redact('{"Authorization": "Bearer abc.DEF-123_456"}') == '{"Authorization": "Bearer [redacted]"}'
    assert redact("key rpa_0123456789ABCDEF leaked") == "key [redacted] leaked"
    assert redact(f"raw {KEY}", KEY) == "raw [redacted]"


def test_endpoint_vanishing_mid_job_fails_the_trial_fast(tmp_path):
    """Without a fallback, an endpoint that stops answering fails its trials in seconds (three
    unanswered requests and a failed /health), not after ``lost_after_s`` (5 minutes)."""
    fake = FakeRunPod(fake_body(30.0), workers=1, api_key=KEY).start()
    ex = make_executor(fake, retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02))
    assert ex.lost_after_s == 300
    ex.submit(spec(0, tmp_path, epochs=30))
    deadline = time.monotonic() + 5
    while not fake.jobs_for_trial(0) and time.monotonic() < deadline:
        time.sleep(0.05)
    fake.stop()  # the API goes away: connections are refused from now on
    t0 = time.monotonic()
    got = []
    while not got and time.monotonic() - t0 < 10:
        got = [e for e in ex.events(0.1) if isinstance(e, DoneEvent)]
    took = time.monotonic() - t0
    ex.shutdown()
    assert got and got[0].result.status == "failed", got
    assert "stopped answering mid-study" in got[0].result.error and "/health" in got[0].result.error
    assert ex.outage == got[0].result.error and took < 5, took


def test_fallback_queues_moved_trials_and_reports_each_epoch_once(tmp_path):
    """Three trials in flight, one local slot: two wait in the backlog; a waiting trial can be
    stopped; epochs RunPod reported are not reported again; each trial ends exactly once."""
    from core.executors.select import FallbackExecutor
    from tests.fakes import FakeExecutor

    fake = FakeRunPod(fake_body(3.0), workers=3, api_key=KEY).start()
    local = FakeExecutor(capacity=1, epoch_s=0.02)
    ex = FallbackExecutor(make_executor(fake, workers=3), lambda: local)
    specs = [spec(n, tmp_path, epochs=3) for n in range(3)]
    for s in specs:
        ex.submit(s)
    epochs: dict[int, list[int]] = {}
    deadline = time.monotonic() + 10
    while len(epochs) < 3 and time.monotonic() < deadline:
        for e in ex.events(0.05):
            epochs.setdefault(e.trial_number, []).append(e.epoch)
    assert epochs == {0: [1], 1: [1], 2: [1]} and ex.name == "runpod"
    fake.stop()
    done: dict[int, list] = {}
    deadline = time.monotonic() + 15
    while ex.notice is None and time.monotonic() < deadline:
        for e in ex.events(0.05):
            assert isinstance(e, EpochEvent), (e, getattr(getattr(e, "result", None), "error", None))  # nothing ends before the move
            epochs[e.trial_number].append(e.epoch)
    assert ex.notice is not None and ex.notice["moved"] == [0, 1, 2] and ex.name == "fake"
    assert ex.running == {0, 1, 2} and ex.free_slots == 0  # one runs locally, two wait
    ex.stop_trial(2)  # waiting in the backlog: it ends at once
    while len(done) < 3 and time.monotonic() < deadline:
        for e in ex.events(0.05):
            if isinstance(e, DoneEvent):
                done.setdefault(e.trial_number, []).append(e.result)
            else:
                epochs[e.trial_number].append(e.epoch)
    ex.shutdown()
    assert {n: [r.status for r in v] for n, v in done.items()} == {0: ["complete"], 1: ["complete"], 2: ["stopped"]}
    assert done[2][0].epochs_run == epochs[2][-1]
    assert epochs[0] == [1, 2, 3] and epochs[1] == [1, 2, 3]  # epoch 1 from RunPod, 2 and 3 from the local worker
    assert ex.running == set() and local.shut


@pytest.mark.slow
def test_endpoint_down_mid_study_moves_the_trials_to_local_workers(hpo_home, clear_keras):
    """RunPod goes away with two trials in flight: the runner's executor notices in seconds,
    retrains them (and the rest of the study) on local workers, and the study records why."""
    import optuna

    from core import storage as S
    from core.study import StudyRunner

    tiny = {"conv_blocks": 1, "filters": 8, "dense_units": 32, "batch_size": 32, "batch_norm": False,
            "dropout": 0.1, "learning_rate": 0.003}
    config = StudyConfig(name="rp-down", dataset="digits", n_trials=3, epochs=2, max_samples=300, pruner="none",
                         executor="runpod", workers=2, fixed={k: v for k, v in tiny.items() if k != "dropout"},
                         tune=["dropout"], ranges={"dropout": {"low": 0.0, "high": 0.2}}, seed=4)
    fake = FakeRunPod(fake_body(8.0), workers=2, api_key=KEY).start()
    config.runpod_endpoint = fake.base_url
    runner = StudyRunner(config, api_key=KEY)  # the executor is the runner's own: build_executor, default retries
    runner.start()
    try:
        def first_epochs() -> dict[int, float]:  # epoch 1 of each trial, as the runner recorded it
            trials = optuna.load_study(study_name="rp-down", storage=S.resolve_url(None)).get_trials()
            return {t.number: t.intermediate_values[1] for t in trials if 1 in t.intermediate_values}

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(first_epochs()) < 2:
            time.sleep(0.2)
        first = first_epochs()
        assert sorted(first) == [0, 1], fake.status_counts()  # both trials are mid-way on RunPod
        fake.stop()
        down_at = time.time()
        assert runner.join(240), "the study did not finish after the endpoint went down"
    finally:
        runner.cancel()
        runner.join(30)
        fake.stop()
    assert runner.status == "finished", runner.error

    study = optuna.load_study(study_name="rp-down", storage=S.resolve_url(None))
    fallback = study.user_attrs[K.ATTR_FALLBACK]
    assert fallback["from"] == "runpod" and fallback["to"] == "local" and fallback["moved"] == [0, 1]
    assert fallback["at"] - down_at < 15, fallback["at"] - down_at  # seconds, not lost_after_s (300 s)
    note = study.user_attrs[K.ATTR_NOTE]
    assert note == fallback["message"] and "stopped answering mid-study" in note and "trials 0, 1 moved" in note
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for t in trials:
        assert t.user_attrs[K.T_RESULT]["executor"] == "local" and t.user_attrs[K.T_EXECUTOR] == "local"
        assert sorted(t.intermediate_values) == [1, 2]  # epoch 1 of a moved trial is not reported twice
        assert t.user_attrs[K.T_RESULT]["val_accuracy"] is not None
    # the moved trials' first epoch stays RunPod's report; the second is the local worker's
    assert {n: trials[n].intermediate_values[1] for n in (0, 1)} == first


def test_model_too_large_keeps_the_metrics(tmp_path):
    body = fake_body(0.05)

    def too_large(job_input, progress, should_stop):
        out = body(job_input, progress, should_stop)
        out.update(model="model_too_large", model_bytes=50_000_000, model_limit=6_000_000)
        return out

    with FakeRunPod(too_large, workers=1, api_key=KEY) as fake:
        ex = make_executor(fake)
        done, _ = drive(ex, [spec(0, tmp_path)])
        ex.shutdown()
    res = done[0][0]
    assert res.status == "complete" and res.model_path is None and res.val_accuracy is not None


def test_shutdown_cancels_jobs_in_flight(tmp_path):
    with FakeRunPod(fake_body(20.0), workers=2, api_key=KEY) as fake:
        ex = make_executor(fake, workers=3)
        for n in range(3):
            ex.submit(spec(n, tmp_path, epochs=20))
        deadline = time.monotonic() + 5
        while not all(j["job_id"] for j in ex.describe()["jobs"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        ex.shutdown(wait=3)
        assert fake.status_counts() == {"CANCELLED": 3}
        assert ex.events(0.2) == [] and ex.running == set()


def test_resolve_base_url():
    assert resolve_base_url("abc123") == "https://api.runpod.ai/v2/abc123"
    assert resolve_base_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    with pytest.raises(Exception, match="runpod_endpoint"):
        resolve_base_url("")


# --------------------------------------------------------------------------- choosing an executor


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_build_executor_falls_back_to_local_with_a_note(monkeypatch, all_logs):
    from core.executors.local import LocalExecutor
    from core.executors.select import FallbackExecutor, build_executor

    monkeypatch.delenv("RUNPOD_ENDPOINT_ID", raising=False)
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    cfg = StudyConfig(name="fb", executor="runpod", workers=2, runpod_endpoint=None)
    ex, note = build_executor(cfg)
    assert isinstance(ex, LocalExecutor) and "not configured" in note and "running locally" in note

    dead = f"http://127.0.0.1:{_closed_port()}/v2/dead"
    cfg.runpod_endpoint = dead
    t0 = time.monotonic()
    ex, note = build_executor(cfg, health_timeout=1.0)
    assert isinstance(ex, LocalExecutor)
    assert note.startswith(f"RunPod endpoint {dead} unreachable (") and "running locally" in note
    assert time.monotonic() - t0 < 10
    assert KEY not in note and KEY not in "\n".join(all_logs)

    with FakeRunPod(fake_body(0.1), workers=1, api_key="other-key") as fake:  # reachable, but our key is refused
        cfg.runpod_endpoint = fake.base_url
        ex, note = build_executor(cfg)
        assert isinstance(ex, LocalExecutor) and "refused the API key" in note

    with FakeRunPod(fake_body(0.1), workers=1, api_key=KEY) as fake:
        cfg.runpod_endpoint = fake.base_url
        ex, note = build_executor(cfg)
        assert note is None and isinstance(ex, FallbackExecutor) and isinstance(ex.primary, RunPodExecutor)
        assert ex.capacity == 2 and ex.name == "runpod" and ex.notice is None
        ex.shutdown()

    cfg.executor = "local"
    ex, note = build_executor(cfg)
    assert isinstance(ex, LocalExecutor) and note is None and ex.capacity == 2


def test_runpod_without_a_key_is_not_healthy(monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    ex = RunPodExecutor("abc123", workers=2)
    ok, reason = ex.check_health()
    assert not ok and reason == "RUNPOD_API_KEY is not set"


def test_a_url_that_is_not_a_runpod_endpoint_is_not_healthy():
    with FakeRunPod(fake_body(0.1), workers=1, api_key=None) as fake:
        ex = RunPodExecutor(f"http://127.0.0.1:{fake.port}/v2/some-other-endpoint", workers=1)
        ok, reason = ex.check_health(timeout=2)
        assert not ok and "does not look like a RunPod endpoint" in reason


def test_the_executor_never_imports_tensorflow(tmp_path):
    """The runner's process stays light: submitting, polling and decoding a model need no TensorFlow."""
    import subprocess
    import sys

    code = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from tests.fake_runpod import FakeRunPod, fake_body
from core.executors.runpod import RunPodExecutor
from core.executors.base import DoneEvent
from core.config import TrialSpec
with FakeRunPod(fake_body(0.1, model_bytes=100), workers=1, api_key="k") as fake:
    ex = RunPodExecutor(fake.base_url, workers=1, api_key="k", poll_interval=0.02)
    ex.submit(TrialSpec(dataset="digits", params={{}}, epochs=1, artifacts_dir={str(tmp_path)!r}))
    while not [e for e in ex.events(0.1) if isinstance(e, DoneEvent)]:
        pass
    ex.shutdown()
print(sorted(m for m in ("tensorflow", "keras", "streamlit") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
    assert (tmp_path / "model.keras").stat().st_size == 100
