"""core.manage (rename, note, duplicate, delete) on a real SQLite Optuna storage, and
core.trial_logs on records written by the real logging setup."""

from __future__ import annotations

import datetime as dt
import logging

import optuna
import pytest

from core import manage
from core import storage as S
from core import study as K  # the storage schema: attribute keys
from core.config import ConfigError, Settings
from tests.fakes import make_fake_study


@pytest.fixture
def two(tmp_path):
    settings = Settings(home=tmp_path)
    url = S.resolve_url(None, settings)
    make_fake_study(url, "alpha", n_complete=3, n_pruned=0, n_failed=1, settings=settings)
    make_fake_study(url, "beta", n_complete=2, n_pruned=0, n_failed=0, settings=settings, with_models=False)
    return settings, url


def _attrs(name, url):
    return optuna.load_study(study_name=name, storage=S.open_storage(url)).user_attrs


def test_rename_sets_the_shown_name_and_refuses_a_taken_one(two):
    settings, url = two
    assert manage.rename_study("alpha", "  My   best run ", url) == "My best run"
    assert manage.display_name(_attrs("alpha", url), "alpha") == "My best run"
    with pytest.raises(ConfigError, match="another study is called 'beta'"):
        manage.rename_study("alpha", "beta", url)
    with pytest.raises(ConfigError, match="give the study a name"):
        manage.rename_study("alpha", "   ", url)
    with pytest.raises(ConfigError, match="no study called 'gamma'"):
        manage.rename_study("gamma", "x", url)
    manage.rename_study("alpha", "alpha", url)  # back to its own name: the display name is cleared
    assert manage.display_name(_attrs("alpha", url), "alpha") == "alpha"


def test_note_is_stored_and_bounded(two):
    settings, url = two
    manage.set_note("beta", "lr above 1e-2 diverges", url)
    assert manage.user_note(_attrs("beta", url)) == "lr above 1e-2 diverges"
    with pytest.raises(ConfigError, match="at most 2000 characters"):
        manage.set_note("beta", "x" * 2001, url)
    manage.set_note("beta", "", url)
    assert manage.user_note(_attrs("beta", url)) == ""


def test_duplicate_gives_the_config_under_a_free_name(two):
    settings, url = two
    cfg = manage.duplicate_config("alpha", url)
    assert cfg.name == "alpha-copy"
    stored = _attrs("alpha", url)["config"]
    assert {**cfg.to_dict(), "name": "alpha"} == stored
    optuna.create_study(study_name="alpha-copy", storage=S.open_storage(url))
    assert manage.duplicate_config("alpha", url).name == "alpha-copy2"


def test_delete_removes_trials_and_folder_and_refuses_a_running_study(two):
    settings, url = two
    folder = settings.study_dir("alpha")
    models = list(folder.rglob("*.keras"))
    assert len(models) == 3
    preview = manage.delete_preview("alpha", url, settings)
    assert preview.trials == 4 and preview.files == 3 and preview.folder == folder
    gone = manage.delete_study("alpha", url, settings)
    assert gone.trials == 4 and gone.files == 3
    assert not folder.exists()
    assert [s.study_name for s in S.open_storage(url).get_all_studies()] == ["beta"]
    # a study whose runner is alive (a live process on this host, by pid) is refused
    import socket
    import subprocess
    import time

    runner = subprocess.Popen(["sleep", "60"])

    study = optuna.load_study(study_name="beta", storage=S.open_storage(url))
    study.set_user_attr(K.ATTR_STATUS, "running")
    study.set_user_attr(K.ATTR_HEARTBEAT, time.time())
    study.set_user_attr("runner", {"host": socket.gethostname(), "pid": runner.pid})
    try:
        with pytest.raises(ConfigError, match="is running: stop it"):
            manage.delete_study("beta", url, settings)
    finally:
        runner.kill()
        runner.wait()
    assert [s.study_name for s in S.open_storage(url).get_all_studies()] == ["beta"]


def test_trial_log_keeps_the_records_of_that_trial_in_its_time(tmp_path):
    from core.logs import setup_logging
    from core.trial_logs import trial_log

    settings = Settings(home=tmp_path)
    setup_logging("worker-0", settings=settings)
    log = logging.getLogger("hpo.training")
    start = dt.datetime.now()
    log.info("trial 3 submitted to local: lr 3.0e-01")
    log.info("trial 13 submitted to local")  # another trial: not trial 3
    try:
        raise FloatingPointError("loss became NaN")
    except FloatingPointError:
        log.exception("trial 3 failed:")
    log.info("study x: 4 trials finished")  # names no trial
    end = dt.datetime.now()
    for h in logging.getLogger("hpo").handlers:
        h.flush()
    lines = trial_log(3, start, end, settings)
    assert len(lines) == 2, lines
    assert "trial 3 submitted" in lines[0]
    assert "trial 3 failed" in lines[1] and "FloatingPointError: loss became NaN" in lines[1]  # traceback kept
    assert trial_log(3, start + dt.timedelta(hours=1), end + dt.timedelta(hours=1), settings) == []  # another run's trial 3
    assert trial_log(3, None, None, settings) == []
