"""RunPodExecutor: trials on RunPod serverless GPU workers, over RunPod's HTTP API.

Each submitted trial becomes one RunPod job (``POST /run`` with ``{"input": {"spec": ...}}``)
handled by ``core/worker.py``.  A watcher thread per in-flight trial submits the job,
polls ``/status/{id}`` with backoff, turns the worker's progress updates into
:class:`EpochEvent`\\ s, and on completion decodes the returned model into the trial's
artifacts folder and reports one :class:`DoneEvent`.  The runner only sees the usual
``submit`` / ``events`` / ``stop_trial`` interface and never waits on the network.

What the network may do, and what happens then:

* 429 and 5xx answers and dropped connections are retried with exponential backoff and
  jitter (``Retry-After`` honoured), a bounded number of times per request; a poll loop
  that keeps failing gives up after ``lost_after_s`` and reports the trial failed.
* RunPod delivers a job at least once: a job can be retried on another worker (progress
  restarts at epoch 1) and a dropped ``/run`` answer is retried, which may leave an
  orphan duplicate job we never learn the id of.  Events are therefore idempotent by
  trial number: epochs are reported once each, in order, and a trial yields exactly one
  DoneEvent whatever the server repeats.
* ``stop_trial`` (pruning, cancel) sends ``POST /cancel/{id}``; the worker's SDK cancels
  the handler, which stops training.  The trial comes back ``status="stopped"`` with the
  epochs it reported.
* FAILED, TIMED_OUT and externally CANCELLED jobs come back as failed TrialResults whose
  ``error`` says why (the worker's exception message when there is one).

RunPod's development server (``python core/worker.py --rp_serve_api``) speaks a dialect:
``/status`` is POST and *runs the job inside that request*, and there is no ``/cancel`` or
``/health``.  That difference lives in one place, :meth:`RunPodClient.status`, switched by
``local_sdk_server=True`` or detected from the 405 a GET gets.

The API key comes from the caller (the UI passes ``st.secrets``) or ``RUNPOD_API_KEY``.
It is sent only in the ``Authorization`` header and is never logged, returned by
:meth:`describe`, or shown in ``repr``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

import requests

from core.artifacts import save_result
from core.config import ConfigError, Settings, TrialResult, TrialSpec
from core.executors.base import DoneEvent, EpochEvent, Event, Executor, ExecutorFull, failed_result
from core.model_codec import MODEL_TOO_LARGE, decode_insight, decode_model
from core.paths import INSIGHT_FILE, MODEL_FILE, trial_dir

if TYPE_CHECKING:
    from core.config import StudyConfig

log = logging.getLogger("hpo.executors.runpod")

DEFAULT_API = "https://api.runpod.ai/v2"
#: Longest one job may train unless the study says less (its timeout): the worker stops it there.
DEFAULT_JOB_TIME_LIMIT_S = 6 * 3600.0
IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT = (
    "IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT",
)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})
RETRYABLE_HTTP = frozenset({429, 500, 502, 503, 504})


# --------------------------------------------------------------------------- errors


class RunPodError(RuntimeError):
    """A request to the endpoint failed (after retries, where retrying made sense)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RunPodAuthError(RunPodError):
    """401/403: the key is wrong or lacks access. Retrying cannot help."""


class RunPodNotFound(RunPodError):
    """404: the endpoint or the job does not exist (a job's result expired or was purged)."""


# --------------------------------------------------------------------------- endpoint resolution


def resolve_base_url(endpoint: str) -> str:
    """The API base for ``endpoint``: an endpoint id, or a full URL (the local SDK server, a proxy).

    >>> resolve_base_url("abc123")
    'https://api.runpod.ai/v2/abc123'
    >>> resolve_base_url("http://127.0.0.1:8000/")
    'http://127.0.0.1:8000'
    """
    endpoint = (endpoint or "").strip()
    if not endpoint:
        raise ConfigError("runpod_endpoint: give the RunPod endpoint id (or a URL such as http://127.0.0.1:8000)")
    if endpoint.startswith(("http://", "https://")):
        return endpoint.rstrip("/")
    if "/" in endpoint or " " in endpoint:
        raise ConfigError(f"runpod_endpoint: {endpoint!r} is neither an endpoint id nor an http(s) URL")
    base = os.environ.get("HPO_RUNPOD_API", DEFAULT_API).rstrip("/")
    return f"{base}/{endpoint}"


def safe_url(url: str) -> str:
    """``url`` without user:password or a query string, for logs and the UI."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


# --------------------------------------------------------------------------- HTTP client


@dataclass
class RetryPolicy:
    """How often and how patiently one request is retried.

    Attributes:
        attempts: tries in all (the first one included).
        base_delay: seconds before the first retry; doubles each time, with jitter.
        max_delay: cap on one wait (Retry-After is honoured up to ``max_retry_after``).
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        d = min(self.max_delay, self.base_delay * (2 ** attempt)) * (0.5 + random.random() / 2)
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_retry_after))
        return d


class RunPodClient:
    """A small client for one serverless endpoint: /run, /status, /cancel, /health.

    Thread-safe: each thread gets its own ``requests.Session``.

    Args:
        base_url: ``https://api.runpod.ai/v2/<endpoint_id>`` or a local server's URL.
        api_key: sent as ``Authorization: Bearer <key>``; None sends no header (local server).
        local_sdk_server: True for the SDK's development server (POST /status that runs the
            job); None detects it from the 405 a GET /status gets.
        timeout: seconds for one ordinary request.
        job_timeout: seconds one blocking /status may take on the local server (a whole trial).
        retry: the retry policy.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        local_sdk_server: bool | None = None,
        timeout: float = 15.0,
        job_timeout: float = 6 * 3600.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.__key = api_key or None  # name-mangled: keeps it out of vars()-style dumps
        self.local_sdk_server = local_sdk_server
        self.timeout = timeout
        self.job_timeout = job_timeout
        self.retry = retry or RetryPolicy()
        self._tls = threading.local()
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "errors": 0}
        #: attempts in a row (any thread's) that got no answer at all; any HTTP answer resets it
        self.failures_in_a_row = 0
        #: time.monotonic() of the last answer from the endpoint (any HTTP status but 429/5xx)
        self.last_answer = time.monotonic()

    def __repr__(self) -> str:
        return f"RunPodClient({safe_url(self.base_url)!r}, key={'set' if self.__key else 'none'})"

    @property
    def has_key(self) -> bool:
        return bool(self.__key)

    def redact(self, text: str) -> str:
        """``text`` with this client's key (and any bearer token or RunPod key) replaced: see :func:`redact`."""
        return redact(text, self.__key)

    # ------------------------------------------------------------------ plumbing

    def _session(self) -> requests.Session:
        s = getattr(self._tls, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["Accept"] = "application/json"
            if self.__key:
                s.headers["Authorization"] = f"Bearer {self.__key}"
            self._tls.session = s
        return s

    def close(self) -> None:
        """Close this thread's session (each watcher closes its own when it ends)."""
        s = getattr(self._tls, "session", None)
        if s is not None:
            s.close()
            self._tls.session = None

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def request(
        self,
        method: str,
        path: str,
        *,
        payload: Any = None,
        timeout: float | None = None,
        attempts: int | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> requests.Response:
        """One API call with bounded retries on 429, 5xx and dropped connections.

        Args:
            method: "GET" or "POST".
            path: appended to the base URL ("/run", "/status/<id>" ...).
            payload: JSON body.
            timeout: seconds for this request (default ``self.timeout``).
            attempts: tries in all; 1 disables retrying.
            cancelled: checked between retries; True gives up early (shutdown).

        Returns:
            The response (2xx, or a non-retryable status the caller interprets, e.g. 405).

        Raises:
            RunPodAuthError: 401/403.
            RunPodNotFound: 404.
            RunPodError: retries exhausted, or another 4xx.
        """
        url = self.base_url + path
        tries = max(1, attempts if attempts is not None else self.retry.attempts)
        last = "no attempt"
        for attempt in range(tries):
            if attempt:
                self._count("retries")
            self._count("requests")
            retry_after: float | None = None
            try:
                resp = self._session().request(method, url, json=payload, timeout=timeout or self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                # The message names host and path only; the key lives in a header, never in a URL.
                last = f"{type(exc).__name__} on {method} {path}"
                with self._lock:
                    self.failures_in_a_row += 1
                log.debug("RunPod %s %s: %s (attempt %d/%d)", method, path, type(exc).__name__, attempt + 1, tries)
            else:
                code = resp.status_code
                if code not in RETRYABLE_HTTP:
                    self._answered()
                if code < 400 or code == 405:
                    return resp
                if code in (401, 403):
                    raise RunPodAuthError(
                        f"RunPod refused the API key (HTTP {code}): check RUNPOD_API_KEY and that the key can use this endpoint",
                        code,
                    )
                if code == 404:
                    raise RunPodNotFound(f"{method} {path}: not found (HTTP 404){_brief(resp)}", code)
                if code not in RETRYABLE_HTTP:
                    raise RunPodError(f"{method} {path}: HTTP {code}{_brief(resp)}", code)
                last = f"HTTP {code} on {method} {path}"
                retry_after = _retry_after(resp)
                log.debug("RunPod %s %s: HTTP %d (attempt %d/%d)", method, path, code, attempt + 1, tries)
            if attempt + 1 < tries:
                if cancelled is not None and cancelled():
                    break
                time.sleep(self.retry.delay(attempt, retry_after))
        self._count("errors")
        raise RunPodError(f"{last} (gave up after {tries} tries)")

    def _answered(self) -> None:
        with self._lock:
            self.failures_in_a_row = 0
            self.last_answer = time.monotonic()

    # ------------------------------------------------------------------ operations

    def run(self, job_input: dict[str, Any], cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Queue a job: ``POST /run``. Returns ``{"id": ..., "status": ...}``.

        A dropped connection is retried like any other: RunPod has no idempotency key, so
        at worst an orphan duplicate job runs whose id we never see (and whose result is
        therefore never reported).
        """
        resp = self.request("POST", "/run", payload={"input": job_input}, cancelled=cancelled)
        body = _json(resp)
        if resp.status_code == 405 or not isinstance(body, dict) or not body.get("id"):
            raise RunPodError(f"POST /run: unexpected answer (HTTP {resp.status_code}){_brief(resp)}")
        return body

    def status(self, job_id: str, cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
        """A job's state: ``GET /status/{id}`` on RunPod, ``POST`` on the SDK's local server.

        This is the one place that knows the local server's dialect.  There, POST /status
        *runs* the job within the request, so it blocks for the whole trial and must never
        be retried (a second POST would run the job a second time).
        """
        path = f"/status/{job_id}"
        if not self.local_sdk_server:
            resp = self.request("GET", path, cancelled=cancelled)
            if resp.status_code != 405:
                return _status_body(resp)
            if self.local_sdk_server is None:
                log.info("%s is RunPod's local development server (POST /status): adapting", safe_url(self.base_url))
            self.local_sdk_server = True
        resp = self.request("POST", path, timeout=self.job_timeout, attempts=1)
        return _status_body(resp)

    def cancel(self, job_id: str, attempts: int | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Cancel a queued or running job: ``POST /cancel/{id}``. Returns its new status."""
        if self.local_sdk_server:
            raise RunPodError("the local development server cannot cancel jobs")
        resp = self.request("POST", f"/cancel/{job_id}", attempts=attempts, timeout=timeout)
        if resp.status_code == 405:
            self.local_sdk_server = True
            raise RunPodError("the local development server cannot cancel jobs")
        body = _json(resp)
        return body if isinstance(body, dict) else {}

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """The endpoint's ``/health``: ``{"jobs": {...}, "workers": {...}}``.

        On the local development server (no /health) its OpenAPI page stands in, and the
        answer is ``{"local_sdk_server": True, "jobs": {}, "workers": {}}``.

        Raises:
            RunPodError: unreachable, refused, or not a RunPod endpoint.
        """
        hosted = urlsplit(self.base_url).hostname == urlsplit(DEFAULT_API).hostname
        try:
            resp = self.request("GET", "/health", timeout=timeout, attempts=2)
        except RunPodNotFound as exc:
            if hosted or self.local_sdk_server is False:
                raise RunPodNotFound("RunPod endpoint not found (HTTP 404): check the endpoint id", 404) from exc
            resp = None
        if resp is not None and resp.status_code == 200:
            body = _json(resp)
            if isinstance(body, dict) and ("jobs" in body or "workers" in body):
                return body
        not_runpod = RunPodError(f"{safe_url(self.base_url)} does not look like a RunPod endpoint (no /health)")
        if hosted:
            raise not_runpod
        # The SDK's development server: FastAPI, titled "Runpod | Development Worker API".
        try:
            resp = self.request("GET", "/openapi.json", timeout=timeout, attempts=1)
        except RunPodNotFound:
            raise not_runpod from None
        info = (_json(resp) or {}).get("info", {}) if resp.status_code == 200 else {}
        if "runpod" in str(info.get("title", "")).lower():
            self.local_sdk_server = True
            return {"local_sdk_server": True, "jobs": {}, "workers": {}}
        raise not_runpod


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


#: What a credential looks like in text we did not write: a bearer token, a RunPod key (rpa_...).
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\\?[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{6,}")
_RUNPOD_KEY = re.compile(r"\brpa_[A-Za-z0-9_-]{6,}")
REDACTED = "[redacted]"


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret, bearer token and RunPod key replaced by ``[redacted]``.

    Applied to whatever comes back from an endpoint before it is logged, stored or shown:
    a proxy or a misbehaving endpoint may echo our ``Authorization`` header in an error body.
    """
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _RUNPOD_KEY.sub(REDACTED, text)


def _sent_key(resp: requests.Response) -> str | None:
    """The key a response's request carried (its ``Authorization`` header, without "Bearer ")."""
    request = getattr(resp, "request", None)
    auth = (request.headers.get("Authorization") if request is not None else None) or ""
    return auth.split(None, 1)[-1] if auth else None


def _brief(resp: requests.Response) -> str:
    """A short excerpt of an error body for messages, with our key redacted *before* it is cut
    (an endpoint or proxy may echo the Authorization header; a cut key would escape a match)."""
    text = redact((resp.text or "").strip().replace("\n", " "), _sent_key(resp))
    return f": {text[:200]}" if text else ""


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _status_body(resp: requests.Response) -> dict[str, Any]:
    body = _json(resp)
    if not isinstance(body, dict) or "status" not in body:
        raise RunPodError(f"/status: unexpected answer (HTTP {resp.status_code}){_brief(resp)}")
    return body


def failure_reason(error: Any) -> str:
    """A readable reason from a FAILED job's ``error`` (the SDK sends its exception info as JSON)."""
    if error is None or error == "":
        return "no reason given"
    if isinstance(error, str):
        try:
            error = json.loads(error)
        except ValueError:
            return redact(error.strip())[:500]
    if isinstance(error, dict):
        msg = error.get("error_message") or error.get("message") or error.get("error")
        kind = str(error.get("error_type", "")).replace("<class '", "").replace("'>", "")
        if msg:
            return redact(f"{kind}: {msg}" if kind else str(msg))[:500]
    return redact(str(error))[:500]


# --------------------------------------------------------------------------- executor


@dataclass
class _Job:
    """One trial on RunPod, as its watcher thread sees it."""

    spec: TrialSpec
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)  # cuts a poll wait short
    job_id: str | None = None
    status: str = "SUBMITTING"
    emitted_epochs: int = 0  # epochs already reported: progress that repeats (redelivery) is not re-reported
    history: list[dict[str, Any]] = field(default_factory=list)
    submitted_at: float = field(default_factory=time.time)
    started: float | None = None  # time.monotonic() when RunPod first said IN_PROGRESS
    cancel_sent: bool = False
    finished: bool = False
    thread: threading.Thread | None = None

    @property
    def trial(self) -> int:
        return self.spec.trial_number


class RunPodExecutor(Executor):
    """Runs trials as jobs on a RunPod serverless endpoint (see the module docstring).

    Args:
        endpoint: the endpoint id (``abc123``) or a base URL (``http://127.0.0.1:8000`` for
            the SDK's local server).
        workers: trials in flight at once (2-6 is sensible; RunPod queues the rest).
        api_key: the RunPod API key; default ``RUNPOD_API_KEY``.
        settings: where artifacts land (``runs/<study>/trial-NNNN``) when a spec has no
            ``artifacts_dir``.
        local_sdk_server: see :class:`RunPodClient`.
        poll_interval: first wait between status polls; grows by 1.5x to ``max_poll_interval``
            while nothing changes and drops back when progress arrives.
        lost_after_s: a job whose status cannot be read for this long is reported failed
            (and cancelled, best effort).
        retry: per-request retry policy.
        timeout: seconds for one ordinary request.
        down_after_failures: attempts in a row (retries included, all trials together) that
            got no answer at all before the executor asks ``/health``; if that gets none
            either the endpoint is down (:attr:`outage`).  Five: a flaky network drops one
            request in ten or twenty, not five in a row.
        down_after_s: the same after this long without a usable answer (429 and 5xx do not
            count), whatever the count: an endpoint that hangs or only answers 503.
        job_time_limit_s: the longest one job may train, sent with each job as
            ``limits.max_seconds`` (the worker stops the trial there); the executor itself
            gives up on a job that is still not done a minute after it.  None: no limit.
    """

    name = "runpod"

    def __init__(
        self,
        endpoint: str,
        workers: int = 2,
        *,
        api_key: str | None = None,
        settings: Settings | None = None,
        local_sdk_server: bool | None = None,
        poll_interval: float = 1.0,
        max_poll_interval: float = 5.0,
        lost_after_s: float = 300.0,
        retry: RetryPolicy | None = None,
        timeout: float = 15.0,
        down_after_failures: int = 5,
        down_after_s: float = 20.0,
        job_time_limit_s: float | None = DEFAULT_JOB_TIME_LIMIT_S,
    ) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers: must be at least 1 (got {workers!r})")
        self.endpoint = endpoint
        self.client = RunPodClient(
            resolve_base_url(endpoint),
            api_key if api_key is not None else os.environ.get("RUNPOD_API_KEY"),
            local_sdk_server=local_sdk_server,
            timeout=timeout,
            retry=retry,
        )
        self._capacity = workers
        self._settings = settings or Settings.from_env()
        self.poll_interval = poll_interval
        self.max_poll_interval = max(poll_interval, max_poll_interval)
        self.lost_after_s = lost_after_s
        self._jobs: dict[int, _Job] = {}
        self._queue: queue.Queue[tuple[_Job, Event]] = queue.Queue()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._last_health: dict[str, Any] | None = None
        self._warned_no_cancel = False
        self.down_after_failures = max(1, int(down_after_failures))
        self.down_after_s = float(down_after_s)
        self.job_time_limit_s = job_time_limit_s
        self._outage: str | None = None
        self._outage_lock = threading.Lock()
        #: True when someone (``FallbackExecutor``) takes over the trials of an endpoint that
        #: went down: its watchers then leave them unreported instead of failing them.
        self.hand_off_on_outage = False

    def __repr__(self) -> str:
        return f"RunPodExecutor({safe_url(self.client.base_url)!r}, workers={self._capacity})"

    @classmethod
    def from_config(
        cls, config: "StudyConfig", settings: Settings | None = None, *, api_key: str | None = None
    ) -> "RunPodExecutor":
        """The executor for ``config``: its ``runpod_endpoint`` (or ``RUNPOD_ENDPOINT_ID``) and ``workers``.

        Raises:
            ConfigError: no endpoint configured.
        """
        endpoint = config.runpod_endpoint or os.environ.get("RUNPOD_ENDPOINT_ID") or ""
        limit = DEFAULT_JOB_TIME_LIMIT_S
        if config.timeout_s:  # no job needs to outlive its study's time budget
            limit = min(limit, float(config.timeout_s) + 60.0)
        return cls(endpoint, workers=config.workers, api_key=api_key, settings=settings, job_time_limit_s=limit)

    # ------------------------------------------------------------------ outage

    @property
    def outage(self) -> str | None:
        """Why the endpoint is considered down (None while it answers)."""
        return self._outage

    def in_flight(self) -> list[TrialSpec]:
        """Specs of the trials submitted and not yet reported (what a fallback takes over)."""
        with self._lock:
            return [j.spec for j in sorted(self._jobs.values(), key=lambda j: j.trial)]

    def _endpoint_down(self, exc: Exception | None = None, *, confirm_now: bool = False) -> bool:
        """Is the endpoint down?  True once :attr:`outage` is set.

        Called between a request's retries and after a request failed.  Cheap until
        ``down_after_failures`` attempts in a row got no answer (or nothing usable answered
        for ``down_after_s``, or ``confirm_now``); then ``/health`` decides.
        """
        if self._outage is not None:
            return True
        client = self.client
        if client.failures_in_a_row == 0 and exc is None:
            return False  # the last attempt was answered (a 429 or 5xx being retried)
        quiet_for = time.monotonic() - client.last_answer
        if not (confirm_now or client.failures_in_a_row >= self.down_after_failures or quiet_for >= self.down_after_s):
            return False
        with self._outage_lock:  # one watcher asks; the others wait for its verdict
            if self._outage is not None:
                return True
            if time.monotonic() - client.last_answer < quiet_for:
                return False  # someone got an answer meanwhile
            failures = client.failures_in_a_row
            try:
                client.request("GET", "/health", timeout=min(5.0, client.timeout), attempts=2)
            except RunPodError as health_exc:
                if health_exc.status is None:  # no answer at all (a 404 or 401 is an answer: it is up)
                    last = f"the last: {exc}; " if exc is not None else ""
                    self._outage = client.redact(
                        f"RunPod endpoint {safe_url(client.base_url)} stopped answering mid-study "
                        f"({failures} attempts in a row got no answer, none usable for {quiet_for:.0f} s; "
                        f"{last}/health: {health_exc})"
                    )
                    log.error("%s", self._outage)
                    return True
            return False  # the endpoint answered: a slow spell, not an outage

    # ------------------------------------------------------------------ health

    def check_health(self, timeout: float = 5.0) -> tuple[bool, str]:
        """Is the endpoint reachable and does it accept our key?

        Returns:
            ``(True, summary)`` or ``(False, reason)``; the reason never contains the key.
        """
        if not self.client.has_key and not self._looks_local():
            return False, "RUNPOD_API_KEY is not set"
        try:
            body = self.client.health(timeout=timeout)
        except RunPodError as exc:
            return False, self.client.redact(str(exc))
        self._last_health = body
        if body.get("local_sdk_server"):
            return True, "local RunPod development server"
        jobs, workers = body.get("jobs") or {}, body.get("workers") or {}
        return True, (
            f"{workers.get('idle', 0)} idle / {workers.get('running', 0)} running workers, "
            f"{jobs.get('inQueue', 0)} queued / {jobs.get('inProgress', 0)} in progress jobs"
        )

    def _looks_local(self) -> bool:
        host = urlsplit(self.client.base_url).hostname or ""
        return self.client.local_sdk_server is True or host in ("127.0.0.1", "localhost", "::1")

    # ------------------------------------------------------------------ Executor

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def running(self) -> set[int]:
        with self._lock:
            return set(self._jobs)

    def submit(self, spec: TrialSpec) -> None:
        """Start a watcher that submits ``spec`` as a RunPod job. Returns at once.

        Submitting a trial number that is already in flight is ignored (one job, one
        DoneEvent per trial); a trial number whose DoneEvent was delivered may run again.

        Raises:
            ExecutorFull: no free slot.
        """
        if self._closing.is_set():
            raise RuntimeError("RunPodExecutor is shut down")
        with self._lock:
            if spec.trial_number in self._jobs:
                log.warning("trial %d is already running on RunPod: duplicate submit ignored", spec.trial_number)
                return
            if len(self._jobs) >= self._capacity:
                raise ExecutorFull(f"all {self._capacity} RunPod slots are busy")
            job = _Job(spec=spec)
            self._jobs[spec.trial_number] = job
        job.thread = threading.Thread(target=self._watch, args=(job,), name=f"runpod-trial-{spec.trial_number}", daemon=True)
        job.thread.start()

    def events(self, timeout: float = 0.5) -> list[Event]:
        out: list[Event] = []
        try:
            pending = [self._queue.get(timeout=max(0.0, timeout))]
        except queue.Empty:
            return out
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            for job, event in pending:
                if self._jobs.get(job.trial) is not job:
                    continue  # a stale job's event (after shutdown or a delivered DoneEvent): drop it
                if isinstance(event, DoneEvent):
                    del self._jobs[job.trial]
                out.append(event)
        return out

    def stop_trial(self, trial_number: int) -> None:
        with self._lock:
            job = self._jobs.get(trial_number)
        if job is not None and not job.stop.is_set():
            job.stop.set()
            job.wake.set()

    def shutdown(self, wait: float = 5.0) -> None:
        """Cancel every job still queued or running on RunPod (they cost money), then forget them."""
        self._closing.set()
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            job.wake.set()
        deadline = time.monotonic() + max(0.0, wait)
        for job in jobs:
            if job.job_id and not job.finished and job.status not in TERMINAL and not self.client.local_sdk_server:
                try:
                    self.client.cancel(job.job_id, attempts=1 if self._outage else 2,
                                       timeout=max(0.5, min(3.0, deadline - time.monotonic())))
                    log.info("shutdown: cancelled RunPod job of trial %d", job.trial)
                except RunPodError as exc:
                    log.warning("shutdown: could not cancel RunPod job of trial %d: %s", job.trial, exc)
        for job in jobs:
            if job.thread is not None:
                job.thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def describe(self) -> dict[str, Any]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {
            "name": self.name,
            "capacity": self._capacity,
            "running": sorted(j.trial for j in jobs),
            "endpoint": safe_url(self.client.base_url),
            "local_sdk_server": bool(self.client.local_sdk_server),
            "api_key": "set" if self.client.has_key else "missing",
            "jobs": [
                {
                    "trial": j.trial,
                    "job_id": j.job_id,
                    "status": j.status,
                    "epoch": j.emitted_epochs,
                    "epochs": j.spec.epochs,
                    "stopping": j.stop.is_set(),
                    "seconds": round(time.time() - j.submitted_at, 1),
                }
                for j in sorted(jobs, key=lambda j: j.trial)
            ],
            "http": dict(self.client.stats),
            "health": self._last_health,
        }

    # ------------------------------------------------------------------ the watcher

    def _emit(self, job: _Job, event: Event) -> None:
        if isinstance(event, DoneEvent):
            with self._lock:
                if job.finished:
                    log.debug("trial %d: second completion ignored", job.trial)
                    return
                job.finished = True
        self._queue.put((job, event))

    def _watch(self, job: _Job) -> None:
        try:
            result = self._drive(job)
        except Exception as exc:  # noqa: BLE001 - a watcher bug must cost one trial, not the study
            log.exception("trial %d: RunPod watcher failed", job.trial)
            result = self._failed(job, f"RunPod executor error: {type(exc).__name__}: {exc}")
        finally:
            self.client.close()
        if result is not None and not self._closing.is_set():
            self._emit(job, DoneEvent(job.trial, result))

    def _drive(self, job: _Job) -> TrialResult | None:
        """Submit, poll and interpret one job. None: abandoned because of shutdown."""
        closing = self._closing.is_set
        if job.stop.is_set():
            return self._stopped(job)
        if self._outage is not None:
            return self._down(job)
        answer = self._submit(job)
        if not isinstance(answer, dict):
            return answer
        job.job_id = str(answer["id"])
        job.status = str(answer.get("status") or IN_QUEUE)
        if closing():  # shut down while /run was in flight: shutdown() could not know this job
            self._cancel_quietly(job)
            return None
        log.info("trial %d -> RunPod job %s (%s)", job.trial, job.job_id, job.status)

        delay = self.poll_interval
        last_ok = time.monotonic()
        give_up = self._give_up_check()
        while not closing():
            if self._outage is not None:  # another watcher found the endpoint down
                return self._down(job)
            if job.stop.is_set() and not job.cancel_sent:
                done = self._cancel(job)
                if done is not None:
                    return done
            if self._past_time_limit(job):
                self._cancel_quietly(job)
                return self._failed(job, f"RunPod job {job.job_id} ran past its time limit of "
                                         f"{self.job_time_limit_s:g} s without finishing")
            try:
                body = self.client.status(job.job_id, cancelled=give_up)
            except RunPodNotFound:
                return self._failed(job, f"RunPod job {job.job_id} no longer exists (expired or purged)")
            except RunPodAuthError as exc:
                return self._failed(job, str(exc))
            except RunPodError as exc:
                if closing():
                    return None
                if self.client.local_sdk_server:
                    # The local server ran (or is running) the job inside the lost request; asking again would rerun it.
                    if self._endpoint_down(exc, confirm_now=True):
                        return self._down(job)
                    return self._failed(job, f"lost the connection to the local RunPod server while trial ran: {exc}")
                if self._endpoint_down(exc):
                    return self._down(job)
                if time.monotonic() - last_ok > self.lost_after_s:
                    self._cancel_quietly(job)
                    return self._failed(job, f"lost contact with RunPod job {job.job_id} for {self.lost_after_s:.0f} s: {exc}")
                log.warning("trial %d: status of job %s unavailable (%s); retrying", job.trial, job.job_id, exc)
                job.wake.wait(delay)
                job.wake.clear()
                delay = min(self.max_poll_interval, delay * 1.5)
                continue
            last_ok = time.monotonic()
            job.status = str(body.get("status"))
            if job.status == IN_PROGRESS and job.started is None:
                job.started = time.monotonic()
            if self._progress(job, body.get("output")):
                delay = self.poll_interval
            if job.status in TERMINAL:
                return self._terminal(job, body)
            job.wake.wait(delay)
            job.wake.clear()
            delay = min(self.max_poll_interval, delay * 1.5)
        return None

    def _submit(self, job: _Job) -> dict[str, Any] | TrialResult | None:
        """POST /run until RunPod takes the job: its answer, or the trial's result when it never does.

        A burst of 429s or 5xx can outlast one request's retries; a trial is only given up
        after ``lost_after_s`` of refusals (or at once for a refused key, a missing endpoint
        or a 4xx that retrying cannot fix).
        """
        closing = self._closing.is_set
        give_up = self._give_up_check()
        deadline = time.monotonic() + self.lost_after_s
        while True:
            try:
                return self.client.run(self.job_input(job.spec), cancelled=give_up)
            except (RunPodAuthError, RunPodNotFound) as exc:
                return self._failed(job, f"could not submit the trial to RunPod: {exc}")
            except RunPodError as exc:
                if closing():
                    return None
                if exc.status is None and self._endpoint_down(exc):
                    return self._down(job)
                if exc.status is not None or time.monotonic() > deadline:
                    return self._failed(job, f"could not submit the trial to RunPod: {exc}")
                if job.stop.is_set():
                    return self._stopped(job)
                log.warning("trial %d: RunPod has not accepted the job yet (%s); retrying", job.trial, exc)
            job.wake.wait(self.max_poll_interval)
            job.wake.clear()

    def _give_up_check(self) -> Callable[[], bool]:
        """What a watcher's requests check between retries: shutdown, or the endpoint found down."""
        return lambda: self._closing.is_set() or self._endpoint_down()

    def job_input(self, spec: TrialSpec) -> dict[str, Any]:
        """A job's input: the spec, and the caps the worker enforces (``core.worker.job_limits``)."""
        limits: dict[str, Any] = {"max_epochs": spec.epochs}
        if self.job_time_limit_s:
            limits["max_seconds"] = float(self.job_time_limit_s)
        return {"spec": spec.to_dict(), "limits": limits}

    def _past_time_limit(self, job: _Job) -> bool:
        """Still not done a minute after the worker should have stopped it (lost result, old worker image)."""
        return bool(self.job_time_limit_s and job.started is not None
                    and time.monotonic() - job.started > self.job_time_limit_s + 60.0)

    def _down(self, job: _Job) -> TrialResult | None:
        """The endpoint is down: leave the trial to the fallback, or fail it with the reason."""
        if self.hand_off_on_outage:
            return None  # stays in flight here until the fallback takes it (in_flight, shutdown)
        return self._failed(job, self._outage or "RunPod endpoint is down")

    def _progress(self, job: _Job, output: Any) -> bool:
        """Turn a progress update into EpochEvents for epochs not yet reported. True if any were new."""
        if not isinstance(output, dict) or not isinstance(output.get("progress"), dict):
            return False
        history = output["progress"].get("history")
        if not isinstance(history, list):
            return False
        new = False
        for epoch in range(job.emitted_epochs + 1, len(history) + 1):
            logs = history[epoch - 1] if isinstance(history[epoch - 1], dict) else {}
            job.history.append(logs)
            job.emitted_epochs = epoch
            self._emit(job, EpochEvent(job.trial, epoch, dict(logs)))
            new = True
        return new

    def _emit_remaining_epochs(self, job: _Job, result: TrialResult) -> None:
        """Report epochs that ended after the last poll (the final ones usually do) from the result's history."""
        columns = result.history or {}
        n = max((len(v) for v in columns.values() if isinstance(v, list)), default=0)
        for epoch in range(job.emitted_epochs + 1, n + 1):
            logs = {k: v[epoch - 1] for k, v in columns.items() if isinstance(v, list) and len(v) >= epoch}
            job.history.append(logs)
            job.emitted_epochs = epoch
            self._emit(job, EpochEvent(job.trial, epoch, logs))

    def _cancel(self, job: _Job) -> TrialResult | None:
        """Ask RunPod to cancel a stopped trial's job. A result when the trial is over, else None (keep polling)."""
        job.cancel_sent = True
        if self.client.local_sdk_server:
            if not self._warned_no_cancel:
                self._warned_no_cancel = True
                log.warning("the local RunPod development server cannot cancel jobs: stopped trials run to the end")
            return None
        try:
            body = self.client.cancel(job.job_id or "")
        except RunPodNotFound:
            return self._stopped(job)
        except RunPodError as exc:
            log.warning("trial %d: cancel of job %s failed (%s); it will be reported when it ends", job.trial, job.job_id, exc)
            return None
        if body.get("status") == CANCELLED:
            job.status = CANCELLED
            log.info("trial %d: RunPod job %s cancelled", job.trial, job.job_id)
            return self._stopped(job)
        return None

    def _cancel_quietly(self, job: _Job) -> None:
        if job.job_id and not self.client.local_sdk_server:
            try:
                self.client.cancel(job.job_id, attempts=1, timeout=3.0)
            except RunPodError:
                pass

    def _terminal(self, job: _Job, body: dict[str, Any]) -> TrialResult:
        status = job.status
        if status == COMPLETED:
            return self._completed(job, body.get("output"))
        if status == CANCELLED:
            if job.stop.is_set():
                return self._stopped(job)
            return self._failed(job, f"RunPod job {job.job_id} was cancelled outside HPO Studio")
        if status == TIMED_OUT:
            return self._failed(
                job,
                "RunPod job timed out: the endpoint's execution timeout is shorter than this trial "
                "(raise it in the endpoint settings, or lower epochs / max_samples)",
            )
        return self._failed(job, f"RunPod job failed: {failure_reason(body.get('error'))}")

    def _completed(self, job: _Job, output: Any) -> TrialResult:
        if not isinstance(output, dict) or not isinstance(output.get("result"), dict):
            return self._failed(
                job, "RunPod job completed without a TrialResult: is the endpoint running HPO Studio's worker image?"
            )
        try:
            result = TrialResult.from_dict(output["result"])
        except (ConfigError, TypeError, ValueError) as exc:
            return self._failed(job, f"RunPod returned a malformed TrialResult: {exc}")
        result.trial_number = job.trial
        result.executor = result.executor if result.executor and result.executor != "local" else "runpod"
        result.model_path = result.result_path = None
        # Whatever the endpoint sent is stored and shown: no credential may ride along in it.
        result.error = self.client.redact(result.error) if result.error else result.error
        result.host = self.client.redact(result.host) if result.host else result.host
        self._emit_remaining_epochs(job, result)
        if result.status != "complete":
            if job.stop.is_set() and result.status == "stopped" and not result.history and job.history:
                result.history = _history_columns(job.history)
            return result
        folder = self._artifacts_dir(job.spec)
        try:
            path = decode_model(output, folder / MODEL_FILE)
        except (ValueError, OSError) as exc:
            log.warning("trial %d: model from RunPod not saved: %s", job.trial, exc)
            path = None
        if path is not None:
            result.model_path = str(path)
        elif output.get("model") == MODEL_TOO_LARGE:
            log.warning(
                "trial %d: model.keras (%s bytes) was too large to return inline; metrics kept, model not downloaded",
                job.trial, output.get("model_bytes"),
            )
        try:
            decode_insight(output, folder / INSIGHT_FILE)
        except (ValueError, OSError) as exc:
            log.warning("trial %d: %s from RunPod not saved: %s", job.trial, INSIGHT_FILE, exc)
        try:
            save_result(result, folder)
        except OSError as exc:
            log.warning("trial %d: result.json not written: %s", job.trial, exc)
            result.result_path = None
        return result

    def _artifacts_dir(self, spec: TrialSpec) -> Path:
        if spec.artifacts_dir:
            return Path(spec.artifacts_dir)
        return trial_dir(spec.study, spec.trial_number, self._settings)

    def _failed(self, job: _Job, error: str) -> TrialResult:
        error = self.client.redact(error)
        log.warning("trial %d failed on RunPod: %s", job.trial, error)
        return failed_result(job.spec, error, executor=self.name, host=safe_url(self.client.base_url))

    def _stopped(self, job: _Job) -> TrialResult:
        return TrialResult(
            status="stopped",
            trial_number=job.trial,
            dataset=job.spec.dataset,
            params=dict(job.spec.params),
            history=_history_columns(job.history),
            epochs_run=len(job.history),
            executor=self.name,
            host=safe_url(self.client.base_url),
        )


def _history_columns(rows: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per-epoch log dicts -> TrialResult.history's per-key lists."""
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")
    return {k: [r.get(k) for r in rows] for k in keys} if rows else {}
