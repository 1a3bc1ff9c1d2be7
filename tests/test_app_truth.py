"""The screen tells the truth (issue 12): interrupted studies, stale labels, the Configure form,
unavailable data sets and a second study on a busy machine.

Each study is written into a temporary SQLite storage (tests/fakes.py) the way the runner writes
it; StudyRunner is replaced by a recorder, so nothing trains here.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from core import storage as S
from core.config import Settings
from core.study import list_studies
from core import study as K  # the storage schema: attribute keys
from tests.fakes import FAKE_RUNNER_ID, make_fake_study
from tests.test_app_views import CONFIGURE, TRIALS, app, block_keys, runner_calls, texts  # noqa: F401 - fixture

NAME = "truth-study"


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    return tmp_path


def _fake(home: Path, name: str = NAME, **kw):
    settings = Settings(home=home)
    kw = {"n_complete": 3, "n_pruned": 0, "n_failed": 0, "n_running": 1, "with_models": False, **kw}
    return make_fake_study(S.resolve_url(None, settings), name, settings=settings, **kw)


def _study(fake) -> optuna.Study:
    return optuna.load_study(study_name=fake.name, storage=S.open_storage(fake.storage_url))


def _errors(at) -> str:
    return "\n".join(e.value.replace("\\", "") for e in at.error)


# --------------------------------------------------------------------------- 1. interrupted studies


@pytest.mark.parametrize("how", ["app-restarted", "heartbeat-stale", "crashed"])
def test_an_interrupted_study_is_shown_as_interrupted_with_resume(home, runner_calls, how):  # noqa: F811
    fake = _fake(home)
    study = _study(fake)
    if how == "app-restarted":  # the runner's process is gone; its last heartbeat is still fresh
        pid, now = _dead_pid(), time.time()
        study.set_user_attr("runner", {"host": socket.gethostname(), "pid": pid, "started": now - 60})
        study.set_user_attr(K.ATTR_WORKER_PREFIX + f"{socket.gethostname()}:{pid}:abc", {
            "host": socket.gethostname(), "pid": pid, "beat": now, "workers": 2, "status": "running",
            "joined": now - 60, "owner": True, "asked": 4})
    elif how == "heartbeat-stale":  # a runner elsewhere stopped beating
        study.set_user_attr(K.ATTR_HEARTBEAT, time.time() - 120)
    else:
        study.set_user_attr(K.ATTR_STATUS, "crashed")
    # the core rule and the summary agree
    summary = next(s for s in list_studies(fake.storage_url) if s.name == NAME)
    assert not summary.alive and summary.interrupted and summary.display_status == "interrupted"

    at = app(TRIALS)
    assert not at.exception
    assert at.selectbox[0].options[0].endswith("· interrupted")
    assert any("Interrupted" in w.value for w in at.warning)
    # no "epoch 2/4" bar for a trial nobody trains (the study's own trials/epochs bar stays)
    assert not [p for p in at.get("progress") if p.proto.text.startswith("epoch")]
    body = texts(at)
    assert ":orange-badge[interrupted]" in body and "Resume the study to run it again" in body
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ETA"] == "interrupted"
    assert not any(b.key == "gallery-stop" for b in at.button)
    if how == "app-restarted":
        label = next(e.label for e in at.expander if e.label.startswith("Machines"))
        assert "0 working now" not in label and label.endswith("none working now")
        df = next(d.value for d in at.dataframe if "machine" in d.value.columns)
        assert list(df["status"]) == ["gone (process ended)"]
    at.button(key="gallery-resume").click().run()
    assert ("resume", NAME) in runner_calls

    at = app()  # Configure's list: interrupted, resumable, nothing to stop
    assert any(f"**{NAME}** :red-badge[interrupted]" in m.value for m in at.markdown)
    assert not at.button(key="resume-0").disabled
    assert at.button(key="stop-0").disabled and at.button(key="cancel-0").disabled


def test_a_runner_process_alive_on_this_host_is_running(home):
    fake = _fake(home)
    _study(fake).set_user_attr("runner", {"host": socket.gethostname(), "pid": os.getppid(), "started": time.time()})
    summary = next(s for s in list_studies(fake.storage_url) if s.name == NAME)
    assert summary.alive and not summary.interrupted and summary.display_status == "running"


# --------------------------------------------------------------------------- 2. stale labels


def test_picker_label_follows_the_status(home):
    fake = _fake(home)
    at = app(TRIALS)
    picker = at.selectbox[0]
    assert picker.options[0].endswith("· running")
    _study(fake).set_user_attr(K.ATTR_STATUS, "finished")
    at.run()
    picker2 = at.selectbox[0]
    assert picker2.options[0].endswith("· finished")
    # a fresh widget: the browser would otherwise keep showing the label it had ("· running")
    assert picker2.key != picker.key and picker2.value == NAME


def test_trial_counter_counts_against_the_resumed_budget(home):
    fake = _fake(home, n_complete=4, n_failed=1, n_running=1)
    study = _study(fake)
    failed = next(t for t in study.trials if t.state.name == "FAIL")
    # as sweep_stale leaves a trial of a dead runner (Optuna lets nobody change a finished trial)
    db = sqlite3.connect(fake.storage_url.removeprefix("sqlite:///"))
    with db:
        db.execute("INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?, 'interrupted', 'true')",
                   (failed._trial_id,))
    db.close()
    cfg = dict(study.user_attrs[K.ATTR_CONFIG])
    cfg["n_trials"] = 5  # resumed with a budget of 5: #5 is the last one and still runs
    study.set_user_attr(K.ATTR_CONFIG, cfg)
    at = app(TRIALS)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials"] == "4/5"
    assert metrics["ETA"] not in ("0 s", "done")


def test_machines_panel_has_no_ghost_runners(home):
    fake = _fake(home)
    study = _study(fake)
    now = time.time()
    host, pid = FAKE_RUNNER_ID.split(":")[:2]
    runners = {  # one process ran the study, was stopped and resumed: two owner records, one PID
        FAKE_RUNNER_ID: {"host": host, "pid": int(pid), "beat": now - 600, "workers": 1, "status": "stopped",
                         "joined": now - 900, "owner": True, "asked": 3},
        f"{host}:{pid}:again": {"host": host, "pid": int(pid), "beat": now, "workers": 1, "status": "running",
                                "joined": now - 100, "owner": True, "asked": 1},
        "other-host:77:idle": {"host": "other-host", "pid": 77, "beat": now - 900, "workers": 1, "status": "running",
                               "joined": now - 950, "owner": False, "asked": 0},  # dead, never asked a trial
    }
    for rid, info in runners.items():
        study.set_user_attr(K.ATTR_WORKER_PREFIX + rid, info)
    at = app(TRIALS)
    label = next(e.label for e in at.expander if e.label.startswith("Machines"))
    assert label == "Machines: 1 runner, 1 working now"
    df = next(d.value for d in at.dataframe if "machine" in d.value.columns)
    assert list(df["role"]) == ["owner"] and list(df["status"]) == ["running"]
    assert int(df["trials"][0]) == len(study.trials)


# --------------------------------------------------------------------------- 3. the Configure form


def test_form_reports_every_invalid_field_at_once_in_its_own_words(home, runner_calls):  # noqa: F811
    at = app()
    at.number_input(key="cfg_trials").set_value(-5)
    at.number_input(key="cfg_epochs").set_value(0)
    at.number_input(key="cfg_low_image_learning_rate").set_value(0.1)
    at.number_input(key="cfg_high_image_learning_rate").set_value(0.001)
    at.button(key="cfg_start").click().run()
    assert not at.exception and runner_calls == []
    assert len(at.error) == 1
    err = _errors(at)
    assert "Trials: must be at least 1" in err
    assert "Epochs per trial: must be from 1 to 500" in err
    assert "Learning rate range: the low end 0.1 is above the high end 0.001" in err
    assert "n_trials" not in err and "'learning_rate'" not in err


def test_number_fields_leave_limits_to_validation(home):
    # A min/max in the browser turns a typed -5 red and keeps sending the old value: Start would
    # begin a study with a number the user no longer sees.
    at = app()
    for key in ("cfg_trials", "cfg_minutes", "cfg_epochs", "cfg_max_samples", "cfg_workers"):
        proto = at.number_input(key=key).proto
        assert not proto.has_min and not proto.has_max, key


def test_form_keeps_its_values_across_screens(home):
    at = app()
    at.text_input(key="cfg_name").set_value("kept-name")
    at.number_input(key="cfg_trials").set_value(7)
    at.number_input(key="cfg_low_image_learning_rate").set_value(0.0005)
    at.radio(key="cfg_mode").set_value("health-aware").run()
    at.slider(key="cfg_health_weight").set_value(0.6).run()
    at.switch_page(TRIALS).run()
    at.switch_page(CONFIGURE).run()
    assert not at.exception
    assert at.text_input(key="cfg_name").value == "kept-name"
    assert at.number_input(key="cfg_trials").value == 7
    assert at.number_input(key="cfg_low_image_learning_rate").value == 0.0005
    assert at.radio(key="cfg_mode").value == "health-aware" and at.slider(key="cfg_health_weight").value == 0.6


# --------------------------------------------------------------------------- 4. unavailable data


def test_an_unavailable_data_set_is_refused_once_before_any_trial(home, runner_calls, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HPO_OFFLINE", "1")
    at = app()
    at.selectbox(key="cfg_dataset").set_value("mnist").run()
    assert "first trial will try to download" not in "\n".join(w.value for w in at.warning)
    at.button(key="cfg_start").click().run()
    assert not at.exception and runner_calls == []
    err = _errors(at)
    assert "The mnist data set is not available: no local copy found and HPO_OFFLINE is set" in err
    assert "mnist.npz" in err and "datasets/README.md" in err  # what to do, whole


def test_trials_failed_for_want_of_data_say_so_once_whole(home):
    fake = _fake(home, n_complete=0, n_failed=0, n_running=0, status="finished")
    study = _study(fake)
    why = ("invalid configuration: The mnist data set is not available: no local copy found, and the download "
           "failed (Exception: URL fetch failure on https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
           "mnist.npz: None -- [Errno -3] Temporary failure in name resolution)\nPut one of these in place and try "
           "again:\n- datasets/mnist/mnist.npz\ndatasets/README.md has the details.")
    for _ in range(3):
        t = study.ask()
        t.set_user_attr(K.T_ERROR, why)
        study.tell(t, state=optuna.trial.TrialState.FAIL)
    at = app(TRIALS)
    tops = [e.value.replace("\\", "") for e in at.error if "could not be loaded" in e.value]
    assert len(tops) == 1
    assert "3 trials failed" in tops[0] and "mnist.npz: None" in tops[0] and "datasets/README.md" in tops[0]


# --------------------------------------------------------------------------- 5. a second study on a busy machine


def test_a_second_study_on_a_busy_machine_is_warned_and_needs_a_go_ahead(home, runner_calls):  # noqa: F811
    fake = _fake(home, name="busy-study")
    _study(fake).set_user_attr("runner", {"host": socket.gethostname(), "pid": os.getppid(), "started": time.time()})
    at = app()
    warning = "\n".join(w.value for w in at.warning)
    assert "busy" in warning and "already training on this machine" in warning and "half as fast" in warning
    assert at.button(key="cfg_start").disabled
    at.checkbox(key="cfg_share_ok").check().run()
    at.text_input(key="cfg_name").set_value("second-study")
    at.button(key="cfg_start").click().run()
    assert [e for e, _ in runner_calls] == ["init", "start"], _errors(at)
