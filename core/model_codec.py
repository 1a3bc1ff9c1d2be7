"""The model part of a RunPod job's output: the worker encodes ``model.keras``, the client decodes it.

One format, two sides: :func:`encode_model` (``core.worker``) returns the model inline as base64
with its size and SHA-256, or, over the inline limit, a ``model_too_large`` marker with its
size; :func:`decode_model` (``core.executors.runpod``) checks and writes it.  Standard library
only, so the client never imports the worker.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("hpo.worker")  # encoding happens on the worker: its log says so

#: Largest model.keras (raw bytes) returned inline.  Base64 grows it by 4/3, and RunPod
#: caps a job's payloads at ~10 MB (/run) and 20 MB (/runsync); 6 MB raw is 8 MB encoded,
#: leaving room for the result JSON under the tighter limit.  HPO_MODEL_INLINE_MAX_BYTES overrides.
MODEL_INLINE_MAX_BYTES = 6_000_000
MODEL_TOO_LARGE = "model_too_large"
MODEL_INLINE = "inline"


def model_inline_limit() -> int:
    raw = os.environ.get("HPO_MODEL_INLINE_MAX_BYTES")
    try:
        return int(raw) if raw else MODEL_INLINE_MAX_BYTES
    except ValueError:
        return MODEL_INLINE_MAX_BYTES


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
