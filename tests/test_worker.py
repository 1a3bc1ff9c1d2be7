"""The RunPod worker: its handler on real (tiny) trials, bad payloads, cancellation, the
model's round trip, MirroredStrategy over two logical CPUs, and a small study through the
SDK's own local server with two concurrent jobs."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests

from core import worker
from core.config import StudyConfig, TrialResult, TrialSpec

ROOT = Path(__file__).resolve().parent.parent

# A small CNN that learns something on 300 digits in a few epochs (no batch norm: its moving
# averages need more steps than a tiny run has, and would make accuracy look like chance).
TINY = {"conv_blocks": 1, "filters": 8, "dense_units": 32, "batch_size": 32, "batch_norm": False,
        "dropout": 0.1, "learning_rate": 0.003}


def tiny_spec(**kw) -> TrialSpec:
    base = dict(dataset="digits", params=dict(TINY), epochs=2, max_samples=300, seed=7, study="worker-test")
    base.update(kw)
    return TrialSpec(**base)


# --------------------------------------------------------------------------- payloads (no TensorFlow)


@pytest.mark.parametrize(
    "job_input, words",
    [
        (None, "JSON object"),
        ("spec", "JSON object"),
        ({"params": {}}, '"spec" key'),
        ({"spec": {"params": {}}}, "missing 'dataset'"),
        ({"spec": {"dataset": "digits", "params": {}, "epochs": 0}}, "epochs"),
        ({"spec": {"dataset": "digits", "params": {}, "colour": "red"}}, "unknown field"),
    ],
)
def test_bad_payload_is_a_clear_error_not_a_crash(job_input, words):
    out = asyncio.run(worker.handler({"id": "job-1", "input": job_input}))
    assert set(out) == {"error"}  # the SDK marks the job FAILED with this message
    assert out["error"].startswith("invalid job input")
    assert words in out["error"]


def test_model_round_trip_and_size_limit(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK\x03\x04" + os.urandom(3000))
    inline = worker.encode_model(model, limit=10_000)
    assert inline["model"] == worker.MODEL_INLINE and inline["model_bytes"] == 3004
    out = worker.decode_model(inline, tmp_path / "copy" / "model.keras")
    assert out is not None and out.read_bytes() == model.read_bytes()

    big = worker.encode_model(model, limit=1000)
    assert big["model"] == worker.MODEL_TOO_LARGE and big["model_bytes"] == 3004 and "model_b64" not in big
    assert worker.decode_model(big, tmp_path / "none.keras") is None

    corrupt = dict(inline, model_b64=base64.b64encode(b"other bytes").decode())
    with pytest.raises(ValueError, match="SHA-256"):
        worker.decode_model(corrupt, tmp_path / "bad.keras")


def test_concurrency_from_env(monkeypatch):
    monkeypatch.delenv("HPO_WORKER_CONCURRENCY", raising=False)
    assert worker.concurrency_modifier(5) == 1
    monkeypatch.setenv("HPO_WORKER_CONCURRENCY", "3")
    assert worker.concurrency_modifier(1) == 3
    monkeypatch.setenv("HPO_WORKER_CONCURRENCY", "lots")
    assert worker.worker_concurrency() == 1
    monkeypatch.setenv("HPO_WORKER_CONCURRENCY", "99")
    assert worker.worker_concurrency() == worker.MAX_CONCURRENCY


def test_worker_module_does_not_start_the_sdk_on_import():
    # `import core.worker` must be cheap and side-effect free: no TensorFlow, no runpod.serverless.start.
    code = "import sys, core.worker; print('tensorflow' in sys.modules, 'runpod' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


# --------------------------------------------------------------------------- real training


def test_handler_trains_and_returns_result_and_model(tmp_path, monkeypatch, clear_keras):
    sent: list[dict] = []
    monkeypatch.setattr(worker, "_send_progress", lambda job, payload: sent.append(payload))
    spec = tiny_spec(trial_number=3)
    out = asyncio.run(worker.handler({"id": "job-3", "input": {"spec": spec.to_dict()}}))

    result = TrialResult.from_dict(out["result"])
    assert result.status == "complete", result.error
    assert result.executor == "runpod" and result.trial_number == 3
    assert result.model_path is None and result.result_path is None  # the worker's paths stay there
    assert 0.0 <= result.test_accuracy <= 1.0 and result.health_score is not None
    assert [p["progress"]["epoch"] for p in sent] == [1, 2]
    assert len(sent[-1]["progress"]["history"]) == 2  # the whole history each time: slow pollers miss nothing

    import keras

    path = worker.decode_model(out, tmp_path / "model.keras")
    model = keras.models.load_model(path)
    assert model.count_params() == result.param_count


def test_cancelling_the_handler_stops_training(monkeypatch, clear_keras):
    """The SDK cancels the handler's task on /cancel; training must stop, not run on in its thread."""
    returned: list[dict] = []
    real_run_job = worker.run_job

    def spy(*args, **kwargs):
        out = real_run_job(*args, **kwargs)
        returned.append(out)
        return out

    monkeypatch.setattr(worker, "run_job", spy)
    first_epoch = threading.Event()
    monkeypatch.setattr(worker, "_send_progress", lambda job, payload: first_epoch.set())
    spec = tiny_spec(epochs=40, trial_number=4)

    async def scenario() -> None:
        task = asyncio.create_task(worker.handler({"id": "job-4", "input": {"spec": spec.to_dict()}}))
        while not first_epoch.is_set():
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())  # asyncio.run waits for the to_thread worker thread as it closes
    deadline = time.monotonic() + 60
    while not returned and time.monotonic() < deadline:
        time.sleep(0.1)
    result = returned[0]["result"]
    assert result["status"] == "stopped"
    assert 1 <= result["epochs_run"] < 40


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    """Several devices -> MirroredStrategy; checked with the CPU split in two (before TF initialises)."""
    script = textwrap.dedent(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(ROOT)!r})
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from core import training
        from core.config import TrialSpec
        seen = []
        real = training.distribution_strategy
        def spy():
            s = real()
            seen.append(s.num_replicas_in_sync)
            return s
        training.distribution_strategy = spy
        spec = TrialSpec.from_dict(json.loads(sys.argv[1]))
        r = training.run_trial(spec)
        print(json.dumps({{"replicas": seen, "status": r.status, "error": r.error, "model": r.model_path}}))
        """
    )
    spec = tiny_spec(epochs=1, artifacts_dir=str(tmp_path / "trial"))
    env = dict(os.environ, HPO_MIRRORED="1", HPO_HOME=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", script, spec.to_json()], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["replicas"] == [2], report
    assert report["status"] == "complete", report["error"]
    assert Path(report["model"]).is_file()


# --------------------------------------------------------------------------- the SDK's local server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sdk_server(tmp_path):
    """``python core/worker.py --rp_serve_api`` as RunPod's docs run it, with two concurrent jobs."""
    port = _free_port()
    log_path = tmp_path / "sdk-server.log"
    env = dict(os.environ, HPO_WORKER_CONCURRENCY="2", HPO_HOME=str(tmp_path / "worker-home"),
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", UVICORN_LOG_LEVEL="warning")
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "core/worker.py", "--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", str(port)],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"SDK server exited: {log_path.read_text()[-3000:]}")
            try:
                if requests.get(url + "/openapi.json", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"SDK server did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.slow
def test_study_through_the_sdk_local_server(sdk_server, hpo_home, clear_keras):
    import optuna

    from core import storage as S
    from core.executors.runpod import RunPodExecutor
    from core.executors.select import build_executor
    from core.study import StudyRunner

    url, log_path = sdk_server
    config = StudyConfig(name="via-sdk", dataset="digits", n_trials=4, epochs=2, max_samples=300, pruner="none",
                         executor="runpod", workers=2, runpod_endpoint=url,
                         fixed={k: v for k, v in TINY.items() if k != "dropout"}, tune=["dropout"],
                         ranges={"dropout": {"low": 0.0, "high": 0.2}}, seed=3)
    wrapped, note = build_executor(config)
    assert note is None and isinstance(wrapped.primary, RunPodExecutor)
    executor = wrapped.primary
    try:
        status = StudyRunner(config, executor=executor).run()
        assert status == "finished"
        assert executor.client.local_sdk_server is True  # detected from the 405, handled in one place

        study = optuna.load_study(study_name="via-sdk", storage=S.resolve_url(None))
        trials = study.get_trials()
        assert len(trials) == 4
        for t in trials:
            assert t.state == optuna.trial.TrialState.COMPLETE, t.user_attrs
            res = t.user_attrs[S.T_RESULT]
            assert res["executor"] == "runpod" and res["val_accuracy"] is not None and res["test_accuracy"] is not None
            assert res["model_path"] is None or Path(res["model_path"]).is_file()

        # Two jobs ran at once in the one worker process: both started before either finished.
        lines = [ln for ln in log_path.read_text().splitlines() if "job " in ln and ("started" in ln or "finished" in ln)]
        assert [("started" in ln) for ln in lines[:2]] == [True, True], lines

        # The same spec locally and through the worker: same seed, same accuracy (brief: < 0.5 points).
        from core.executors.base import DoneEvent
        from core.training import run_trial

        spec = tiny_spec(epochs=3, trial_number=99, study="parity", artifacts_dir=str(hpo_home / "parity-remote"))
        executor.submit(spec)
        remote = None
        deadline = time.monotonic() + 120
        while remote is None and time.monotonic() < deadline:
            remote = next((e.result for e in executor.events(1.0) if isinstance(e, DoneEvent)), None)
        assert remote is not None and remote.status == "complete", remote
        assert Path(remote.model_path).is_file()
        local = run_trial(tiny_spec(epochs=3, trial_number=99, study="parity", artifacts_dir=str(hpo_home / "parity-local")))
        assert abs(local.test_accuracy - remote.test_accuracy) * 100 < 0.5, (local.test_accuracy, remote.test_accuracy)
    finally:
        executor.shutdown()
