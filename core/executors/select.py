"""Choose where a study's trials run, falling back to this machine when RunPod cannot be used.

The runner calls :func:`build_executor` once per run (start or resume).  A study asked to
run on RunPod whose endpoint is not configured, has no key, or does not answer its
``/health`` within a few seconds still runs, locally, and the returned note says why;
the runner stores it as the study's ``ATTR_NOTE`` so every view shows it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from core.config import ConfigError, Settings

if TYPE_CHECKING:
    from core.config import StudyConfig
    from core.executors.base import Executor

log = logging.getLogger("hpo.executors")

#: Seconds the health check may take before the study starts locally instead.
HEALTH_TIMEOUT_S = 5.0


def build_executor(
    config: "StudyConfig",
    settings: Settings | None = None,
    api_key: str | None = None,
    *,
    health_timeout: float = HEALTH_TIMEOUT_S,
) -> tuple["Executor", str | None]:
    """The executor ``config`` asks for, or a local one and the reason when RunPod is unusable.

    Args:
        config: the study; ``executor`` ("local" | "runpod"), ``workers``, ``runpod_endpoint``
            (an endpoint id or a URL; ``RUNPOD_ENDPOINT_ID`` when empty).
        settings: paths (``Settings.from_env()`` by default).
        api_key: the RunPod API key (the UI passes ``st.secrets``); default ``RUNPOD_API_KEY``.
        health_timeout: seconds for the endpoint's ``/health``.

    Returns:
        ``(executor, note)``: ``note`` is None when the requested executor is used, else a
        sentence for the user ("RunPod endpoint abc unreachable (...): running locally").
        It never contains the API key.
    """
    from core.executors.local import LocalExecutor

    settings = settings or Settings.from_env()
    if config.executor != "runpod":
        return LocalExecutor.from_config(config, settings), None

    from core.executors.runpod import RunPodExecutor

    from core.executors.runpod import _safe_url

    endpoint = (config.runpod_endpoint or os.environ.get("RUNPOD_ENDPOINT_ID") or "").strip()
    shown = _safe_url(endpoint) if endpoint.startswith(("http://", "https://")) else endpoint
    if not endpoint:
        note = "RunPod endpoint not configured (set runpod_endpoint or RUNPOD_ENDPOINT_ID): running locally"
    else:
        try:
            executor = RunPodExecutor.from_config(config, settings, api_key=api_key)
        except ConfigError as exc:
            note = f"RunPod endpoint {shown} unusable ({exc}): running locally"
        else:
            ok, detail = executor.check_health(timeout=health_timeout)
            if ok:
                log.info("RunPod endpoint %s healthy: %s", executor.describe()["endpoint"], detail)
                return executor, None
            executor.shutdown(wait=0)
            note = f"RunPod endpoint {shown} unreachable ({detail}): running locally"
    # RunPod studies may ask for up to 6 workers; that many TensorFlow processes would
    # swamp a laptop, so the fallback runs no more workers than this machine has cores.
    from core.executors.local import cpu_count

    workers = max(1, min(config.workers, cpu_count()))
    if workers < config.workers:
        note += f" with {workers} worker{'s' if workers > 1 else ''}"
    log.warning(note)
    return LocalExecutor(workers=workers, settings=settings), note
