"""app.export_jobs: background export jobs shared by every tab (no Streamlit session needed)."""

from __future__ import annotations

import threading

import pytest

from app.export_jobs import ExportJobs, exporter


def _wait(job, timeout: float = 10) -> None:
    assert job.done.wait(timeout), "the job did not finish"


def test_a_job_writes_its_file_reports_progress_and_is_shared_by_key():
    jobs = ExportJobs()
    calls = []

    def work(path, progress):
        calls.append(path)
        progress(0.5)
        path.write_text("made")

    job = jobs.start(("k",), "png", "a.png", "image/png", work)
    _wait(job)
    assert job.path.read_text() == "made" and job.progress == 1.0 and job.started and job.error is None
    assert jobs.start(("k",), "png", "a.png", "image/png", work) is job  # made already: not rendered again
    assert len(calls) == 1 and not jobs.running([("k",)])
    jobs.drop(("k",))
    assert jobs.get(("k",)) is None and not job.path.exists()


def test_a_failed_job_keeps_its_error_and_can_be_started_again():
    jobs = ExportJobs()
    job = jobs.start(("k",), "gif", "a.gif", "image/gif", lambda path, progress: 1 / 0)
    _wait(job)
    assert job.error == "division by zero"
    again = jobs.start(("k",), "gif", "a.gif", "image/gif", lambda path, progress: path.write_text("ok"))
    assert again is not job
    _wait(again)
    assert again.error is None and again.path.read_text() == "ok"


def test_one_render_at_a_time_and_the_oldest_finished_jobs_are_evicted():
    jobs = ExportJobs(max_jobs=2)
    release = threading.Event()
    first = jobs.start(("a",), "mp4", "a.mp4", "video/mp4", lambda path, progress: release.wait(10))
    second = jobs.start(("b",), "mp4", "b.mp4", "video/mp4", lambda path, progress: path.write_text("b"))
    assert jobs.running([("a",), ("b",)])
    second.done.wait(0.3)
    assert not second.started and second.running  # waiting for the render slot
    release.set()
    _wait(first)
    _wait(second)
    third = jobs.start(("c",), "png", "c.png", "image/png", lambda path, progress: None)
    _wait(third)
    jobs.start(("d",), "png", "d.png", "image/png", lambda path, progress: None).done.wait(10)
    assert jobs.get(("a",)) is None and jobs.get(("d",)) is not None  # the oldest went first
    assert not first.path.parent.exists()


def test_exporter_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="unknown export format"):
        exporter("bmp", None, "health", None, "caption")
