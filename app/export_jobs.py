"""The 3D viewer's rendered exports (PNG, GIF, MP4, HTML) as background jobs shared by every tab.

A job renders in a daemon thread; one render runs at a time (a semaphore: each is a CPU-bound
child process, see ``core.scene``, and the app shares the machine), the others wait for the slot.
Jobs are keyed by what they show (storage, study, trial, format, colouring, highlight), so a
second tab or a double click gets the job already made or on its way.  Finished files live in a
temporary folder removed at exit; the oldest finished jobs go once more than ``MAX_JOBS`` are kept.

The view (``app/views/viewer.py``) only starts jobs and shows their progress, files and errors.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from core.architecture import ArchitectureVisualization

MAX_JOBS = 24  # finished exports kept (process-wide) before the oldest files are deleted

Progress = Callable[[float], None]
Work = Callable[[Path, Progress], Any]


@dataclass
class ExportJob:
    """One export rendering in a background thread; ``progress`` in [0, 1] is set by the exporter."""

    fmt: str
    path: Path
    file_name: str
    mime: str
    progress: float = 0.0
    started: bool = False  # False while it waits for the render slot
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    created: float = field(default_factory=time.time)

    @property
    def running(self) -> bool:
        return not self.done.is_set()


class ExportJobs:
    """Export jobs by key, shared by every tab of one server process."""

    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        self.max_jobs = max_jobs
        self.lock = threading.Lock()
        self.jobs: dict[tuple, ExportJob] = {}
        # One render at a time: each is a CPU-bound child process, and the app shares the machine.
        self.slot = threading.Semaphore(1)
        self.folder = Path(tempfile.mkdtemp(prefix="hpo-viewer-exports-"))
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)

    def get(self, key: tuple) -> ExportJob | None:
        with self.lock:
            return self.jobs.get(key)

    def running(self, keys: list[tuple]) -> bool:
        """Whether any of these jobs is still rendering (or waiting for the slot)."""
        return any((job := self.get(key)) is not None and job.running for key in keys)

    def drop(self, key: tuple) -> None:
        with self.lock:
            job = self.jobs.pop(key, None)
        if job is not None and not job.running:
            shutil.rmtree(job.path.parent, ignore_errors=True)

    def start(self, key: tuple, fmt: str, file_name: str, mime: str, work: Work) -> ExportJob:
        """Start ``work(path, progress)`` for ``key``, unless that job is already made or on its way."""
        with self.lock:
            job = self.jobs.get(key)
            if job is not None and (job.running or job.error is None):
                return job  # the same export is already made or on its way (another tab, a double click)
            folder = Path(tempfile.mkdtemp(dir=self.folder))
            job = ExportJob(fmt=fmt, path=folder / file_name, file_name=file_name, mime=mime)
            self.jobs[key] = job
            self._evict()
        threading.Thread(target=self._run, args=(job, work), name=f"viewer-export-{fmt}", daemon=True).start()
        return job

    def _run(self, job: ExportJob, work: Work) -> None:
        def progress(fraction: float) -> None:
            job.progress = min(1.0, max(job.progress, float(fraction)))

        try:
            with self.slot:
                job.started = True
                work(job.path, progress)
            job.progress = 1.0
        except Exception as exc:  # noqa: BLE001 - shown next to the button; the page goes on
            job.error = str(exc).strip() or type(exc).__name__
        finally:
            job.done.set()

    def _evict(self) -> None:
        finished = sorted((j.created, k) for k, j in self.jobs.items() if not j.running)
        for _, key in finished[: max(0, len(self.jobs) - self.max_jobs)]:
            shutil.rmtree(self.jobs.pop(key).path.parent, ignore_errors=True)


@st.cache_resource(show_spinner=False)
def jobs() -> ExportJobs:
    """The server process's export jobs (one set for every tab)."""
    return ExportJobs()


def exporter(fmt: str, arch: ArchitectureVisualization, color_by: str, highlight: str | None,
             caption: str, title: str = "HPO Studio") -> Work:
    """The work of one export; raster formats render in core.scene's child process (no Mesa here)."""
    from core import scene

    opts = {"color_by": color_by, "highlight": highlight, "caption": caption}
    if fmt == "png":
        return lambda path, progress: scene.export_png(arch, path, size=(1920, 1080), progress=progress, **opts)
    if fmt == "gif":
        return lambda path, progress: scene.export_gif(arch, path, progress=progress, **opts)
    if fmt == "mp4":
        return lambda path, progress: scene.export_mp4(arch, path, progress=progress, **opts)
    if fmt == "html":
        return lambda path, progress: scene.export_html(arch, path, progress=progress, title=title, **opts)
    raise ValueError(f"unknown export format {fmt!r}")
