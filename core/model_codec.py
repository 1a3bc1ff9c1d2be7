"""The file parts of a RunPod job's output: the worker encodes ``model.keras`` and ``insight.npz``, the client decodes them.

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
#: Largest insight.npz returned inline: measured 15-400 kB (bench/README.md); 1 MB raw keeps a model
#: at the model limit plus its insight under RunPod's 10 MB.
INSIGHT_INLINE_MAX_BYTES = 1_000_000


def model_inline_limit() -> int:
    raw = os.environ.get("HPO_MODEL_INLINE_MAX_BYTES")
    try:
        return int(raw) if raw else MODEL_INLINE_MAX_BYTES
    except ValueError:
        return MODEL_INLINE_MAX_BYTES


def encode_file(path: Path | None, key: str, limit: int) -> dict[str, Any]:
    """A file as part of a job's output, under ``key``: ``{key: "inline", key_b64, key_bytes, key_sha256}``
    below ``limit`` raw bytes, else ``{key: "<key>_too_large", key_bytes, key_sha256, key_limit}``;
    ``{key: None}`` when there is no file."""
    if path is None or not Path(path).is_file():
        return {key: None}
    raw = Path(path).read_bytes()
    out: dict[str, Any] = {f"{key}_bytes": len(raw), f"{key}_sha256": hashlib.sha256(raw).hexdigest()}
    if len(raw) > limit:
        out.update({key: f"{key}_too_large", f"{key}_limit": limit})
        log.warning("%s is %d bytes, over the %d-byte inline limit: returned without it", Path(path).name, len(raw), limit)
    else:
        out.update({key: MODEL_INLINE, f"{key}_b64": base64.b64encode(raw).decode("ascii")})
    return out


def decode_file(output: dict[str, Any], key: str, dest: Path) -> Path | None:
    """Write the inline file ``key`` of a job's output to ``dest`` (atomically); None when there is none.

    Raises:
        ValueError: the base64 is corrupt or its SHA-256 does not match.
    """
    if output.get(key) != MODEL_INLINE or not output.get(f"{key}_b64"):
        return None
    raw = base64.b64decode(output[f"{key}_b64"], validate=True)
    want = output.get(f"{key}_sha256")
    if want and hashlib.sha256(raw).hexdigest() != want:
        raise ValueError(f"{dest.name} from the worker is corrupt (SHA-256 mismatch)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(raw)
    tmp.replace(dest)  # atomic: a reader never sees half a file
    return dest


def encode_model(path: Path | None, limit: int | None = None) -> dict[str, Any]:
    """The model part of a job's output: inline base64 under ``limit`` bytes, else a marker with the size."""
    return encode_file(path, "model", model_inline_limit() if limit is None else limit)


def decode_model(output: dict[str, Any], dest: Path) -> Path | None:
    """Write an inline model from a job's output to ``dest``; None when there is none.

    Raises:
        ValueError: the base64 is corrupt or its SHA-256 does not match.
    """
    return decode_file(output, "model", dest)


def encode_insight(path: Path | None) -> dict[str, Any]:
    """The insight part of a job's output (``insight.npz``, core.insight), like the model's."""
    return encode_file(path, "insight", INSIGHT_INLINE_MAX_BYTES)


def decode_insight(output: dict[str, Any], dest: Path) -> Path | None:
    """Write the inline ``insight.npz`` of a job's output to ``dest``; None when there is none."""
    return decode_file(output, "insight", dest)
