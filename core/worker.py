"""RunPod serverless worker: runs one TrialSpec per job through ``training.run_trial``.

A job's input is ``{"spec": <TrialSpec as JSON>}``.  The handler trains with the one
training path (:func:`core.training.run_trial`), saving the model into a temporary
folder, and returns::

    {
      "result": <TrialResult as JSON>,          # executor "runpod"; paths cleared (they were the worker's)
      "model": "inline" | "model_too_large" | None,
      "model_b64": "<base64 of model.keras>",   # only when model == "inline"
      "model_bytes": 123456,                    # size of model.keras (also when too large)
      "model_sha256": "<hex>",                  # lets the client check the decoded file
      "worker": {"host": ..., "concurrency": 1, "replicas": ...}
    }

A payload that is not a valid TrialSpec returns ``{"error": "..."}``, which the SDK turns
into a FAILED job with that message (no traceback, no crash).  While training, each epoch
is reported with ``runpod.serverless.progress_update(job, {"progress": ...})``; the
progress carries the whole history so far, so a client that polls less often than
epochs end still sees every epoch.  Cancelling a job (``POST /cancel``) makes the SDK
cancel the handler's task; the handler then raises the stop flag that ``run_trial``
polls, so training stops within a few batches instead of burning GPU time.

The handler is ``async`` and trains in ``asyncio.to_thread``: the event loop stays free
for heartbeats, progress and cancellation, and a worker whose concurrency is raised
(``HPO_WORKER_CONCURRENCY``, default 1) serves several jobs at once.

Run it:

* on RunPod: the image's ``CMD python core/worker.py`` (see docker/worker.Dockerfile);
* locally, as RunPod's development server::

      python core/worker.py --rp_serve_api --rp_api_host 127.0.0.1 --rp_api_port 8000

  and point a study at ``http://127.0.0.1:8000`` (RunPodExecutor detects the SDK server).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import hashlib
import logging
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    # `python core/worker.py` puts core/ (not the repo root) on sys.path; `import core` needs the root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import ConfigError, TrialResult, TrialSpec  # noqa: E402 - after the sys.path fix

log = logging.getLogger("hpo.worker")

ProgressSink = Callable[[dict[str, Any]], None]
StopCheck = Callable[[], bool]

#: Largest model.keras (raw bytes) returned inline.  Base64 grows it by 4/3, and RunPod
#: caps a job's payloads at ~10 MB (/run) and 20 MB (/runsync); 6 MB raw is 8 MB encoded,
#: leaving room for the result JSON under the tighter limit.  HPO_MODEL_INLINE_MAX_BYTES overrides.
MODEL_INLINE_MAX_BYTES = 6_000_000
MODEL_TOO_LARGE = "model_too_large"
MODEL_INLINE = "inline"

#: Bounds for HPO_WORKER_CONCURRENCY: one GPU rarely fits more small trials than this.
MAX_CONCURRENCY = 16


# --------------------------------------------------------------------------- settings from env


def worker_concurrency() -> int:
    """Jobs one worker serves at once, from ``HPO_WORKER_CONCURRENCY`` (default 1, clamped to 1..16)."""
    raw = os.environ.get("HPO_WORKER_CONCURRENCY", "1")
    try:
        value = int(raw)
    except ValueError:
        log.warning("HPO_WORKER_CONCURRENCY=%r is not a whole number; using 1", raw)
        return 1
    return max(1, min(MAX_CONCURRENCY, value))


def concurrency_modifier(current: int) -> int:  # noqa: ARG001 - the SDK's signature
    """The SDK asks this before taking jobs; the answer is read from the environment each time."""
    return worker_concurrency()


def model_inline_limit() -> int:
    raw = os.environ.get("HPO_MODEL_INLINE_MAX_BYTES")
    try:
        return int(raw) if raw else MODEL_INLINE_MAX_BYTES
    except ValueError:
        return MODEL_INLINE_MAX_BYTES


def _on_runpod() -> bool:
    # The platform sets the URL progress and results are posted to; the SDK's local
    # development server does not, and progress_update would only log an error per epoch.
    return bool(os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"))


# --------------------------------------------------------------------------- input / output


def parse_input(job_input: Any) -> TrialSpec:
    """The TrialSpec a job asks for.

    Raises:
        ConfigError: the input is not ``{"spec": {...}}`` with a valid TrialSpec; the
            message says what is wrong.
    """
    if not isinstance(job_input, dict):
        raise ConfigError(f'job input must be a JSON object {{"spec": {{...}}}} (got {type(job_input).__name__})')
    if "spec" not in job_input:
        raise ConfigError(f'job input must have a "spec" key holding a TrialSpec (got keys {sorted(job_input)})')
    return TrialSpec.from_dict(job_input["spec"])


def encode_model(path: Path | None, limit: int | None = None) -> dict[str, Any]:
    """The model part of a job's output: inline base64 under ``limit`` bytes, else a marker with the size."""
    if path is None or not Path(path).is_file():
        return {"model": None}
    raw = Path(path).read_bytes()
    limit = model_inline_limit() if limit is None else limit
    out: dict[str, Any] = {"model_bytes": len(raw), "model_sha256": hashlib.sha256(raw).hexdigest()}
    if len(raw) > limit:
        out.update(model=MODEL_TOO_LARGE, model_limit=limit)
        log.warning("model.keras is %d bytes, over the %d-byte inline limit: returned without the model", len(raw), limit)
    else:
        out.update(model=MODEL_INLINE, model_b64=base64.b64encode(raw).decode("ascii"))
    return out


def decode_model(output: dict[str, Any], dest: Path) -> Path | None:
    """Write an inline model from a job's output to ``dest``; None when there is none.

    Raises:
        ValueError: the base64 is corrupt or its SHA-256 does not match.
    """
    if output.get("model") != MODEL_INLINE or not output.get("model_b64"):
        return None
    raw = base64.b64decode(output["model_b64"], validate=True)
    want = output.get("model_sha256")
    if want and hashlib.sha256(raw).hexdigest() != want:
        raise ValueError("model.keras from the worker is corrupt (SHA-256 mismatch)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(raw)
    tmp.replace(dest)  # atomic: a reader never sees half a model
    return dest


# --------------------------------------------------------------------------- the job


def run_job(
    job_input: Any,
    *,
    progress: ProgressSink | None = None,
    should_stop: StopCheck | None = None,
    settings: Any | None = None,
) -> dict[str, Any]:
    """Run one job synchronously: validate, train, package the result and model.

    This is the handler's body without the SDK around it, so tests and the fake RunPod
    server can run exactly what a worker runs.

    Args:
        job_input: the job's ``input``: ``{"spec": {...}}``.
        progress: called with ``{"progress": {...}}`` after each epoch.
        should_stop: polled during training; True stops the trial (status "stopped").
        settings: paths (``Settings.from_env()`` by default); the data-set cache lives there.

    Returns:
        The job's output (see the module docstring), or ``{"error": message}`` for a bad payload.
    """
    try:
        spec = parse_input(job_input)
    except ConfigError as exc:
        log.warning("refused job: %s", exc)
        return {"error": f"invalid job input: {exc}"}

    from core import training  # TensorFlow loads here, not when the module is imported

    history: list[dict[str, float | None]] = []

    def on_epoch(epoch: int, logs: dict[str, float | None]) -> None:
        history.append(dict(logs))
        if progress is not None:
            payload = {
                "progress": {
                    "trial_number": spec.trial_number,
                    "study": spec.study,
                    "epoch": epoch,
                    "epochs": spec.epochs,
                    "history": list(history),  # all epochs so far: a slow poller misses none
                }
            }
            try:
                progress(payload)
            except Exception:  # noqa: BLE001 - progress is informative; it must never kill a trial
                log.debug("progress sink failed", exc_info=True)

    with tempfile.TemporaryDirectory(prefix="hpo-job-") as tmp:
        # The client decides where the model lands on its side; here it only needs a scratch folder.
        local_spec = dataclasses.replace(spec, artifacts_dir=tmp)
        result: TrialResult = training.run_trial(local_spec, on_epoch, should_stop, settings=settings)
        model = encode_model(Path(result.model_path) if result.model_path else None) if spec.save_model else {"model": None}
    result.executor = "runpod"
    result.model_path = None  # worker-local paths mean nothing to the client
    result.result_path = None
    output: dict[str, Any] = {"result": result.to_dict(), **model}
    output["worker"] = {
        "host": socket.gethostname(),
        "concurrency": worker_concurrency(),
        "replicas": _replicas(),
    }
    return output


@functools.lru_cache(maxsize=1)
def _replicas() -> int | None:
    """Replicas one trial trains on here (GPUs under MirroredStrategy); devices do not change in a process."""
    try:
        from core.training import distribution_strategy

        return int(distribution_strategy().num_replicas_in_sync)
    except Exception:  # noqa: BLE001 - informative only
        return None


def _send_progress(job: dict[str, Any], payload: dict[str, Any]) -> None:
    """Post one progress update through the SDK (only where the platform can receive it)."""
    if not _on_runpod():
        log.debug("job %s progress: epoch %s", job.get("id"), payload.get("progress", {}).get("epoch"))
        return
    import runpod

    runpod.serverless.progress_update(job, payload)


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """RunPod's entry point: one job in, its output (or ``{"error": ...}``) out.

    Training runs in a thread so the event loop keeps serving other jobs, heartbeats
    and stop signals.  When the SDK cancels this task (``/cancel``, execution timeout)
    the stop flag is raised so the training thread winds down instead of running on.
    """
    stop = threading.Event()
    job_id = job.get("id", "?")
    spec = (job.get("input") or {}).get("spec") if isinstance(job.get("input"), dict) else None
    log.info("job %s started: trial %s", job_id, spec.get("trial_number") if isinstance(spec, dict) else "?")
    try:
        output = await asyncio.to_thread(
            run_job,
            job.get("input"),
            progress=lambda payload: _send_progress(job, payload),
            should_stop=stop.is_set,
        )
    except asyncio.CancelledError:
        stop.set()
        log.info("job %s cancelled: stopping its training", job_id)
        raise
    if "error" in output:
        return output
    res = output["result"]
    log.info(
        "job %s finished: trial %s %s, val_accuracy=%s, model=%s",
        job_id, res.get("trial_number"), res.get("status"), res.get("val_accuracy"), output.get("model"),
    )
    return output


# --------------------------------------------------------------------------- entry point


def main() -> None:
    """Start the RunPod worker (or its local development server with ``--rp_serve_api``)."""
    os.environ["HPO_EXECUTOR"] = "runpod"  # every result says where it ran
    # Concurrent jobs share the GPU: without this, the first TF context takes all its memory.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.logs import setup_logging

    setup_logging("worker-runpod", console=True, console_level="INFO")
    log.info("HPO Studio RunPod worker starting: concurrency %d", worker_concurrency())

    import runpod

    runpod.serverless.start({"handler": handler, "concurrency_modifier": concurrency_modifier})


if __name__ == "__main__":
    main()
