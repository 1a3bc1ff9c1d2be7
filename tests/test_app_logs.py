"""Studies started from the app log to ``logs/hpo.log`` like the CLI (trial failures, RunPod
HTTP errors and fallback, crash tracebacks), and what the runner records about a RunPod
fallback is what the Trials screen shows.

The app's process is played by a fresh Python process that imports ``app.state`` and starts
studies through it (the functions the Configure screen calls), so the logging setup under test
is the app's own, not one left behind by another test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
import pytest

from core import study as K  # the storage schema: attribute keys

ROOT = Path(__file__).resolve().parent.parent
KEY = "rpa_APPLOG_secret_key_0123456789"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.tf
def test_studies_started_from_the_app_write_to_hpo_log(tmp_path):
    dead = f"http://127.0.0.1:{_closed_port()}/v2/gone"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from app import state
        from core.config import StudyConfig
        from tests.fake_runpod import FakeRunPod, Faults, fake_body

        with FakeRunPod(fake_body(0.1), workers=1, api_key={KEY!r}, faults=Faults(fail_trials={{1}})) as fake:
            fake.inject("400", route="run")  # trial 0: an HTTP error RunPod will not take back
            runner = state.start(StudyConfig(name="app-rp", dataset="digits", n_trials=2, epochs=1, workers=1,
                                             pruner="none", executor="runpod", runpod_endpoint=fake.base_url))
            runner.join(60)
            print("first:", runner.status)

        # The endpoint is gone: the study falls back to local workers, then its runner crashes.
        import core.search_space
        def boom(*args, **kwargs):
            raise RuntimeError("boom in suggest")
        core.search_space.suggest = boom
        runner = state.start(StudyConfig(name="app-crash", dataset="digits", n_trials=1, epochs=1, workers=1,
                                         pruner="none", executor="runpod", runpod_endpoint={dead!r}))
        runner.join(60)
        print("second:", runner.status)
        """
    )
    env = dict(os.environ, HPO_HOME=str(tmp_path), RUNPOD_API_KEY=KEY, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("HPO_STORAGE", None)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "first: finished" in out.stdout and "second: crashed" in out.stdout, out.stdout + out.stderr[-2000:]

    log = (tmp_path / "logs" / "hpo.log").read_text()
    app_lines = [ln for ln in log.splitlines() if "[app:" in ln]
    assert app_lines, log[-2000:]
    assert any("trial 0 failed" in ln and "HTTP 400" in ln for ln in app_lines), log[-3000:]  # RunPod HTTP error
    assert any("trial 1 failed" in ln and "simulated worker crash" in ln for ln in app_lines), log[-3000:]
    assert any(f"RunPod endpoint {dead} unreachable" in ln and "running locally" in ln for ln in app_lines)
    assert "runner of study app-crash crashed" in log and "Traceback (most recent call last)" in log
    assert "RuntimeError: boom in suggest" in log
    assert KEY not in log


def test_the_trials_screen_shows_a_mid_study_fallback(tmp_path, monkeypatch):
    """What the runner records when RunPod goes down mid-study is what the Trials screen says."""
    import optuna
    from streamlit.testing.v1 import AppTest

    from core import storage as S
    from core.config import Settings
    from tests.fakes import make_fake_study

    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    make_fake_study(url, "fell-back", n_complete=2, n_pruned=0, n_failed=0, settings=settings, status="finished")
    message = ("RunPod endpoint abc123 stopped answering mid-study (5 attempts in a row got no answer): "
               "the study goes on with 2 local workers from 14:02:11 (trials 0, 1 moved to this machine)")
    study = optuna.load_study(study_name="fell-back", storage=url)
    study.set_user_attr(K.ATTR_NOTE, message)  # as StudyRunner._follow_notice writes them
    study.set_user_attr(K.ATTR_FALLBACK, {"message": message, "from": "runpod", "to": "local", "moved": [0, 1]})
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    at.switch_page("app/views/trials.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert message in [i.value.replace("\\", "") for i in at.info]  # notes are shown as escaped Markdown
