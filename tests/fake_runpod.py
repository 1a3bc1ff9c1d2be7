"""A fake RunPod serverless endpoint on loopback, for tests and benchmarks.

It speaks the queue-based API the real one does, under ``/v2/<endpoint_id>``:

* ``POST /run`` -> ``{"id", "status": "IN_QUEUE"}``; jobs wait for one of ``workers``
  simulated workers (threads) and run one at a time on each.
* ``GET /status/{id}`` -> ``{"id", "status", "delayTime", "executionTime", "workerId",
  "output"?, "error"?}``; while IN_PROGRESS, ``output`` is the job's latest
  ``progress_update`` payload, as on RunPod.  Unknown ids get 404.
* ``POST /cancel/{id}`` -> ``{"id", "status": "CANCELLED"}``; a running job's stop flag
  is raised (the real SDK cancels the handler's task).
* ``GET /health`` -> ``{"jobs": {completed, failed, inProgress, inQueue, retried},
  "workers": {idle, initializing, ready, running, throttled, unhealthy}}``.
* ``Authorization: Bearer <key>`` (or the bare key) is required when ``api_key`` is set: 401 otherwise.
* ``echo_auth=True`` plays a careless endpoint or proxy: every error answer (and every FAILED
  job's error) repeats the request's ``Authorization`` header, as some do when they dump the
  request they refused.

A job's body is a callable ``body(job_input, progress, should_stop) -> output``:
:func:`fake_body` sleeps a fixed time per epoch and returns a plausible TrialResult
(benchmarks, fault tests); :func:`worker_body` runs ``core.worker.run_job``, the real
handler's body (end-to-end tests).  An output with an ``"error"`` key makes the job
FAILED, as the SDK does; an exception does too, with the SDK's JSON error info.

Faults are injected with :class:`Faults` (probabilities, seeded) or :meth:`FakeRunPod.inject`
(scripted, for exact tests): 429s, 5xx, dropped connections, a dropped ``/run`` answer
after the job was created (the client's retry makes a duplicate job), FAILED jobs, and
redelivery (a job runs twice, as when RunPod retries a job whose worker was lost).
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import random
import socket
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from core.config import TrialResult, TrialSpec

Body = Callable[[Any, Callable[[dict], None], Callable[[], bool]], dict]


# --------------------------------------------------------------------------- job bodies


def fake_body(duration: float = 1.0, model_bytes: int = 0, fail_trials: set[int] | frozenset[int] = frozenset()) -> Body:
    """A job that takes ``duration`` seconds in all (split evenly over the spec's epochs).

    Args:
        duration: seconds per job.
        model_bytes: size of a fake model.keras to return inline (0: none).
        fail_trials: trial numbers whose job fails as a handler would ("CUDA out of memory").
    """

    def body(job_input: Any, progress: Callable[[dict], None], should_stop: Callable[[], bool]) -> dict:
        try:
            spec = TrialSpec.from_dict((job_input or {})["spec"])
        except Exception as exc:  # noqa: BLE001 - mirror the worker: a bad payload is a FAILED job
            return {"error": f"invalid job input: {exc}"}
        if spec.trial_number in fail_trials:
            return {"error": "ResourceExhaustedError: simulated CUDA out of memory"}
        rng = random.Random(spec.seed)
        history: list[dict[str, float]] = []
        per_epoch = duration / spec.epochs
        for epoch in range(1, spec.epochs + 1):
            end = time.monotonic() + per_epoch
            while time.monotonic() < end:
                if should_stop():
                    return {"result": TrialResult(status="stopped", trial_number=spec.trial_number, dataset=spec.dataset,
                                                  executor="runpod", epochs_run=len(history)).to_dict(), "model": None}
                time.sleep(min(0.02, max(0.0, end - time.monotonic())))
            acc = min(0.99, 0.5 + 0.4 * epoch / spec.epochs + rng.uniform(-0.02, 0.02))
            history.append({"loss": 1.0 / epoch, "accuracy": acc, "val_loss": 1.1 / epoch, "val_accuracy": acc - 0.03,
                            "lr": 1e-3, "seconds": per_epoch})
            progress({"progress": {"trial_number": spec.trial_number, "study": spec.study, "epoch": epoch,
                                   "epochs": spec.epochs, "history": list(history)}})
        result = TrialResult(
            status="complete", trial_number=spec.trial_number, dataset=spec.dataset, params=dict(spec.params),
            val_accuracy=history[-1]["val_accuracy"], val_loss=history[-1]["val_loss"],
            test_accuracy=history[-1]["val_accuracy"] - 0.01, test_loss=history[-1]["val_loss"],
            history={k: [h[k] for h in history] for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr")},
            epochs_run=spec.epochs, health_score=0.7, health={"training_stability": 0.9}, param_count=1000,
            timings={"train": duration, "total": duration}, executor="runpod", host="fake-runpod",
        )
        out: dict[str, Any] = {"result": result.to_dict(), "model": None}
        if model_bytes:
            raw = hashlib.sha256(str(spec.trial_number).encode()).digest() * (model_bytes // 32 + 1)
            raw = raw[:model_bytes]
            out.update(model="inline", model_b64=base64.b64encode(raw).decode(), model_bytes=len(raw),
                       model_sha256=hashlib.sha256(raw).hexdigest())
        return out

    return body


def worker_body(settings: Any | None = None) -> Body:
    """The real handler's body (``core.worker.run_job``): real training, real model."""

    def body(job_input: Any, progress: Callable[[dict], None], should_stop: Callable[[], bool]) -> dict:
        from core.worker import run_job

        return run_job(job_input, progress=progress, should_stop=should_stop, settings=settings)

    return body


# --------------------------------------------------------------------------- faults and jobs


@dataclass
class Faults:
    """Random faults, drawn from a seeded generator so a failing test can be replayed.

    Attributes:
        rate_limit: chance a request is answered 429 (with Retry-After: 0).
        server_error: chance a request is answered 500/502/503.
        drop: chance the connection is closed without an answer.
        drop_after_run: chance a /run creates the job, then drops the answer (the client's
            retry creates a second job for the same trial).
        fail_trials: trial numbers whose jobs end FAILED.
        redeliver_trials: trial numbers whose job runs twice (the first run's result is lost,
            as when RunPod retries a job whose worker vanished; progress restarts).
        routes: routes the random HTTP faults apply to.
        seed: the generator's seed.
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    drop: float = 0.0
    drop_after_run: float = 0.0
    fail_trials: set[int] = field(default_factory=set)
    redeliver_trials: set[int] = field(default_factory=set)
    routes: tuple[str, ...] = ("run", "status", "cancel", "health")
    seed: int = 0


@dataclass
class FakeJob:
    id: str
    input: Any
    trial: int | None
    status: str = "IN_QUEUE"
    output: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    worker: str | None = None
    deliveries: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


class FakeRunPod:
    """The fake endpoint. Use as a context manager, or ``start()`` / ``stop()``.

    Args:
        body: what a job does (:func:`fake_body` by default, 1 s per job).
        workers: simulated workers; each runs one job at a time.
        api_key: required key (None: no auth).
        endpoint_id: the id in ``/v2/<endpoint_id>``.
        faults: random faults (none by default).
    """

    def __init__(
        self,
        body: Body | None = None,
        workers: int = 2,
        *,
        api_key: str | None = "test-key",
        endpoint_id: str = "fake-endpoint",
        faults: Faults | None = None,
        echo_auth: bool = False,
    ) -> None:
        self.body = body or fake_body()
        self.n_workers = workers
        self.api_key = api_key
        self.endpoint_id = endpoint_id
        self.faults = faults or Faults()
        self.echo_auth = echo_auth
        self.last_auth = ""  # the Authorization header of the last request (what an echo repeats)
        self._rng = random.Random(self.faults.seed)
        self._script: deque[tuple[str, str | None]] = deque()
        self.jobs: dict[str, FakeJob] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self.counts: Counter[str] = Counter()  # "route", "fault:<kind>", "auth_failed", "retried"
        self.max_running = 0
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._conns: set[socket.socket] = set()
        self._api_down = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeRunPod":
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        t = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        self._threads.append(t)
        for i in range(self.n_workers):
            w = threading.Thread(target=self._worker, args=(f"fake-worker-{i}",), daemon=True)
            w.start()
            self._threads.append(w)
        return self

    def stop(self) -> None:
        # The API goes first, so no client sees the jobs wound down below (it sees the endpoint vanish).
        # From here no request is answered, even on a connection accepted an instant before the
        # shutdown and not yet in _conns (under load a handler thread can start that late).
        self._api_down = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # keep-alive connections outlive shutdown(); cut them too
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._closing.set()
        for job in self.jobs.values():
            job.stop.set()
        for _ in range(self.n_workers):
            self._queue.put(None)

    def __enter__(self) -> "FakeRunPod":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What RunPodExecutor takes as ``endpoint``: ``http://127.0.0.1:<port>/v2/<endpoint_id>``."""
        return f"http://127.0.0.1:{self.port}/v2/{self.endpoint_id}"

    # ------------------------------------------------------------------ test helpers

    def inject(self, kind: str, count: int = 1, route: str | None = None) -> None:
        """Script the next ``count`` matching requests: "400", "404", "429", "500", "503", "drop",
        "drop_after_run" (route run)."""
        with self._lock:
            for _ in range(count):
                self._script.append((kind, route))

    def jobs_for_trial(self, trial: int) -> list[FakeJob]:
        return [j for j in self.jobs.values() if j.trial == trial]

    def status_counts(self) -> Counter[str]:
        return Counter(j.status for j in self.jobs.values())

    # ------------------------------------------------------------------ workers

    def _worker(self, name: str) -> None:
        while not self._closing.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self.jobs[job_id]
            with self._lock:
                if job.status != "IN_QUEUE":  # cancelled while queued
                    continue
                job.status, job.worker, job.started = "IN_PROGRESS", name, time.time()
                job.deliveries += 1
                self._busy.add(job_id)
                self.max_running = max(self.max_running, len(self._busy))

            def progress(payload: dict, _job: FakeJob = job) -> None:
                with self._lock:
                    if _job.status == "IN_PROGRESS":
                        _job.output = payload

            try:
                output = self.body(job.input, progress, job.stop.is_set)
            except Exception as exc:  # noqa: BLE001 - the SDK reports handler exceptions as FAILED
                output = {"error": json.dumps({"error_type": str(type(exc)), "error_message": str(exc)})}
            with self._lock:
                self._busy.discard(job_id)
                if job.status == "CANCELLED":
                    continue
                if self.echo_auth and isinstance(output, dict) and output.get("error"):
                    output = {"error": f"{output['error']} (request had Authorization: {self.last_auth})"}
                if job.trial in self.faults.redeliver_trials and job.deliveries == 1:
                    # The worker "vanished": RunPod puts the job back in the queue; its progress starts over.
                    job.status, job.output = "IN_QUEUE", None
                    self.counts["retried"] += 1
                    self._queue.put(job_id)
                    continue
                job.finished = time.time()
                if isinstance(output, dict) and output.get("error"):
                    job.status, job.error, job.output = "FAILED", str(output["error"]), None
                elif job.trial in self.faults.fail_trials:
                    echo = f" (request had Authorization: {self.last_auth})" if self.echo_auth else ""
                    job.status, job.error, job.output = "FAILED", f"simulated worker crash{echo}", None
                else:
                    job.status, job.output = "COMPLETED", output

    # ------------------------------------------------------------------ HTTP

    def _fault_for(self, route: str) -> str | None:
        with self._lock:
            for i, (kind, r) in enumerate(self._script):
                if r is None or r == route:
                    if kind == "drop_after_run" and route != "run":
                        continue
                    del self._script[i]
                    return kind
            if route not in self.faults.routes:
                return None
            x = self._rng.random()
            f = self.faults
            if x < f.rate_limit:
                return "429"
            x -= f.rate_limit
            if x < f.server_error:
                return self._rng.choice(["500", "502", "503"])
            x -= f.server_error
            if x < f.drop:
                return "drop"
            if route == "run" and self._rng.random() < f.drop_after_run:
                return "drop_after_run"
        return None

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]] | None:
        """One request -> (status, JSON, headers), or None to drop the connection."""
        self.last_auth = headers.get("Authorization", "")
        answer = self._handle(method, path, headers, body)
        if self.echo_auth and answer is not None and answer[0] >= 400:
            code, payload, extra = answer
            payload = dict(payload, request={"method": method, "path": path,
                                             "headers": {"Authorization": self.last_auth}})
            return code, payload, extra
        return answer

    def _handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]] | None:
        prefix = f"/v2/{self.endpoint_id}"
        if not path.startswith(prefix + "/"):
            return 404, {"error": "endpoint not found"}, {}
        parts = path[len(prefix) + 1 :].split("?")[0].strip("/").split("/")
        route = parts[0]
        self.counts[route] += 1
        if self.api_key is not None:
            auth = headers.get("Authorization", "")
            if auth not in (f"Bearer {self.api_key}", self.api_key):
                self.counts["auth_failed"] += 1
                return 401, {"error": "Unauthorized"}, {}
        fault = self._fault_for(route)
        if fault:
            self.counts[f"fault:{fault}"] += 1
        if fault == "drop":
            return None
        if fault in ("400", "404", "429", "500", "502", "503"):
            extra = {"Retry-After": "0"} if fault == "429" else {}
            return int(fault), {"error": f"simulated {fault}"}, extra

        if route == "run" and method == "POST":
            try:
                payload = json.loads(body or b"{}")
                job_input = payload["input"]
            except (ValueError, KeyError, TypeError):
                return 400, {"error": "body must be JSON with an 'input' key"}, {}
            trial = None
            if isinstance(job_input, dict) and isinstance(job_input.get("spec"), dict):
                trial = job_input["spec"].get("trial_number")
            job = FakeJob(id=f"{uuid.uuid4()}-u1", input=job_input, trial=trial)
            with self._lock:
                self.jobs[job.id] = job
            self._queue.put(job.id)
            if fault == "drop_after_run":
                return None
            return 200, {"id": job.id, "status": "IN_QUEUE"}, {}
        if route == "status" and method == "GET" and len(parts) == 2:
            job = self.jobs.get(parts[1])
            if job is None:
                return 404, {"error": "request does not exist"}, {}
            with self._lock:
                return 200, self._status(job), {}
        if route == "cancel" and method == "POST" and len(parts) == 2:
            job = self.jobs.get(parts[1])
            if job is None:
                return 404, {"error": "request does not exist"}, {}
            with self._lock:
                if job.status in ("IN_QUEUE", "IN_PROGRESS"):
                    job.status, job.output, job.finished = "CANCELLED", None, time.time()
                    job.stop.set()
                return 200, {"id": job.id, "status": job.status}, {}
        if route == "health" and method == "GET":
            with self._lock:
                c = Counter(j.status for j in self.jobs.values())
                running = len(self._busy)
            return 200, {
                "jobs": {"completed": c["COMPLETED"], "failed": c["FAILED"], "inProgress": c["IN_PROGRESS"],
                         "inQueue": c["IN_QUEUE"], "retried": self.counts["retried"]},
                "workers": {"idle": self.n_workers - running, "initializing": 0, "ready": self.n_workers - running,
                            "running": running, "throttled": 0, "unhealthy": 0},
            }, {}
        if route in ("run", "status", "cancel", "health"):
            return 405, {"detail": "Method Not Allowed"}, {}
        return 404, {"error": f"unknown route {route!r}"}, {}

    def _status(self, job: FakeJob) -> dict[str, Any]:
        now = time.time()
        out: dict[str, Any] = {"id": job.id, "status": job.status, "workerId": job.worker,
                               "delayTime": int(((job.started or now) - job.created) * 1000)}
        if job.started:
            out["executionTime"] = int(((job.finished or now) - job.started) * 1000)
        if job.output is not None:
            out["output"] = job.output
        if job.error is not None:
            out["error"] = job.error
        return out


class _Handler(BaseHTTPRequestHandler):
    fake: FakeRunPod
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; a dropped answer then really drops a live connection

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = None if self.fake._api_down else self.fake.handle(method, self.path, self.headers, body)
        if answer is None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        code, payload, extra = answer
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")
