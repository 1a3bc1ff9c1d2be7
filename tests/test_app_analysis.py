"""AppTests for issue 15's analysis and study management: comparing several trials, failed trials'
logs, what health-aware and Pareto studies optimise, progress and end-of-study notices, and
rename / note / duplicate / delete.  Each test writes its own study into a fresh storage."""

from __future__ import annotations

import datetime as dt
import logging

import optuna
import pytest
from streamlit.testing.v1 import AppTest

from core import storage as S
from core import study as K  # the storage schema: attribute keys
from core.config import Settings
from core.study import load_records, pareto_front
from tests.fakes import make_fake_study, touch_heartbeat
from tests.test_app_views import CONFIGURE, HEALTH, ROUTER, TIMEOUT, TRIALS, block_keys, charts

NAME = "cmp-study"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    return tmp_path


def _study(home, name=NAME, **kw):
    settings = Settings(home=home)
    kw.setdefault("n_pruned", 1)
    kw.setdefault("n_failed", 1)
    return make_fake_study(S.resolve_url(None, settings), name, settings=settings, **kw)


def app(page=None) -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=TIMEOUT).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _title(c) -> str | None:
    return (c["layout"].get("title") or {}).get("text")


def _compare(at) -> AppTest:
    at.session_state["health-tab"] = "Compare"
    return at.run()


# --------------------------------------------------------------------------- compare any number


def test_compare_defaults_to_the_top_three_with_one_unit_per_kind(home):
    fake = _study(home, n_complete=6)
    records = load_records(NAME, fake.storage_url)
    top = sorted((r for r in records if r.state == "COMPLETE"), key=lambda r: -r.val_accuracy)[:3]
    at = _compare(app(HEALTH))
    assert not at.exception
    df = at.dataframe[0].value
    assert [c for c in df.columns if c.startswith("#")] == [f"#{r.number}" for r in top]
    rows = df.set_index("")
    for label in ("validation accuracy", "test accuracy", "shifted accuracy"):
        assert all(v.endswith("%") for v in rows.loc[label, [f"#{r.number}" for r in top]])
    params = rows.loc["parameters", [f"#{r.number}" for r in top]]
    assert all("e+" not in v and (v.endswith(" k") or v.endswith(" M") or v.isdigit()) for v in params)
    assert bool(rows.loc["validation accuracy", "differs"]) is True
    assert rows.loc["validation accuracy", "best"].startswith(f"#{top[0].number}")  # "(tie ...)" within noise
    acc = next(c for c in charts(at) if (_title(c) or "").endswith("(solid) accuracy"))
    assert acc["layout"]["yaxis"]["range"] == [0, 100]  # one fixed percent axis for every trial
    assert {t["name"] for t in acc["data"]} == {f"#{r.number} {w}" for r in top for w in ("validation", "training")}
    val = next(t for t in acc["data"] if t["name"] == f"#{top[0].number} validation")
    assert val["y"][-1] == pytest.approx(100 * top[0].val_accuracy)


def test_compare_takes_the_top_n_and_refuses_a_bad_n(home):
    _study(home, n_complete=6)
    at = _compare(app(HEALTH))
    at.number_input(key=f"cmp-topn-{NAME}").set_value(5).run()
    at.button(key=f"cmp-top-{NAME}").click().run()
    assert len([c for c in at.dataframe[0].value.columns if c.startswith("#")]) == 5
    at.number_input(key=f"cmp-topn-{NAME}").set_value(1).run()
    at.button(key=f"cmp-top-{NAME}").click().run()
    assert any("choose from 2 to 10 trials" in w.value for w in at.warning)


def test_trials_picked_in_the_gallery_open_side_by_side(home):
    _study(home, n_complete=5)
    at = app(TRIALS)
    assert at.button(key=f"compare-{NAME}").disabled
    picks = [0, 2, 4]
    for n in picks:
        at.button(key=f"pick-{n}").click().run()
    assert at.button(key="pick-0").label == "In comparison"
    assert "Picked to compare: #0, #2, #4" in [c.value for c in at.caption]
    at.button(key=f"compare-{NAME}").click().run()
    assert not at.exception
    assert at.session_state["health-tab"] == "Compare"
    df = at.dataframe[0].value
    assert [c for c in df.columns if c.startswith("#")] == [f"#{n}" for n in picks]


def test_compare_never_calls_a_trial_without_health_figures_healthy(home):
    fake = _study(home, n_complete=3)  # then one pruned (#3) and one failed (#4)
    records = {r.number: r for r in load_records(NAME, fake.storage_url)}
    assert records[3].state == "PRUNED" and records[4].state == "FAIL"
    at = app(TRIALS)
    for n in (0, 3, 4):
        at.button(key=f"pick-{n}").click().run()
    at.button(key=f"compare-{NAME}").click().run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert "#3: pruned before its last epoch, so its health was not measured" in captions
    four = next(c for c in captions if c.startswith("#4: "))  # what went wrong, or that nothing was measured
    assert "no health problems" not in four and ("diverged" in four or "not measured" in four), four
    assert any(c.startswith("#0: ") for c in captions)


def test_health_and_cards_say_how_much_of_an_accuracy_is_noise(home):
    fake = _study(home, n_complete=3)
    at = app(HEALTH)
    assert not at.exception
    captions = [c.value for c in at.caption]
    best = fake.results[fake.best_number].val_accuracy  # Health opens on the best trial
    noise = next(c for c in captions if "one sample is 0.46 points" in c)
    assert noise.startswith(f"Validation accuracy {100 * best:.1f}% ± ") and "216 samples" in noise, noise
    at = app(TRIALS)
    assert any(c.value.startswith("val ± ") and " pts · test " in c.value for c in at.caption)


# --------------------------------------------------------------------------- failed trials


def test_a_failed_trial_shows_its_error_and_its_log_lines(home):
    from core.logs import setup_logging

    settings = Settings(home=home)
    url = S.resolve_url(None, settings)
    study = optuna.create_study(study_name="fails", storage=S.open_storage(url))
    setup_logging("worker-0", settings=settings)
    log = logging.getLogger("hpo.training")
    start = dt.datetime.now() - dt.timedelta(seconds=1)
    log.info("trial 0 submitted to local: lr 3.0e-01")
    try:
        raise FloatingPointError("loss became NaN at epoch 2")
    except FloatingPointError:
        log.exception("trial 0 failed:")
    log.info("trial 10 submitted to local")  # another trial
    for h in logging.getLogger("hpo").handlers:
        h.flush()
    t = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={}, distributions={},
                                  user_attrs={K.T_ERROR: "loss became NaN at epoch 2: lower the learning rate"})
    t.datetime_start, t.datetime_complete = start, dt.datetime.now() + dt.timedelta(seconds=1)
    study.add_trial(t)
    at = app(TRIALS)
    assert any("loss became NaN at epoch 2\\: lower the learning rate" in m.value for m in at.markdown)
    exp = [e for e in at.expander if e.label.startswith("Log of trial #0")]
    assert exp and exp[0].label == "Log of trial #0 (2 records)"
    code = "\n".join(c.value for c in at.code)
    assert "FloatingPointError: loss became NaN at epoch 2" in code and "trial 10" not in code


def test_the_health_screen_says_why_a_trial_failed(home):
    fake = _study(home, n_complete=3)
    failed = next(n for n, s in fake.states.items() if s == "FAIL")
    at = app(HEALTH)
    at.selectbox(key=f"health-trial-{NAME}").set_value(failed).run()
    assert "Why it failed" in [h.value for h in at.subheader]
    assert any("loss became NaN/Inf at epoch 2" in m.value for m in at.markdown)
    # these trials have no start time recorded, so no log line can be attributed: said, not invented
    assert any("has no record of this trial" in c.value for c in at.caption)


# --------------------------------------------------------------------------- what is optimised


def test_health_aware_cards_and_best_show_the_blend(home):
    fake = _study(home, mode="health-aware", n_complete=4, n_pruned=0, n_failed=0)
    at = app(TRIALS)
    best = fake.results[fake.best_number]
    w = fake.config.health_weight
    blend = (1 - w) * best.val_accuracy + w * best.health_score
    metric = next(m for m in at.metric if m.label == f"Best: trial #{fake.best_number}")
    assert metric.value == f"{blend:.3f}"
    assert any(m.value.startswith(f"**Objective {blend:.3f}**") for m in at.markdown)
    assert sum(1 for m in at.markdown if m.value.startswith("**Objective ")) == 4  # one per complete card


def test_pareto_front_is_a_staircase_through_the_front(home):
    fake = _study(home, name="pareto", mode="pareto", n_complete=8, n_pruned=0, n_failed=0, with_models=False)
    at = app(HEALTH)
    at.session_state["health-tab"] = "Whole study"
    at.run()
    scatter = next(c for c in charts(at) if _title(c) == "Accuracy vs health")
    front = next(t for t in scatter["data"] if t.get("name") == "Pareto front")
    assert front["line"]["shape"] == "vh"
    expected = pareto_front(load_records("pareto", fake.storage_url))
    assert front["text"] == [f"#{r.number}" for r in expected]
    assert any("dashed staircase" in c.value for c in at.caption)
    at.switch_page(TRIALS).run()
    best = next(m for m in at.metric if m.label.startswith("Best: trial #"))
    assert "%" not in best.value  # the blend it is ranked by, not an accuracy another trial beats


# --------------------------------------------------------------------------- progress and notices


def test_study_progress_bar_counts_trials_and_epochs(home):
    fake = _study(home, n_complete=3, n_pruned=1, n_failed=1, epochs=4)
    at = app(TRIALS)
    bars = [p.proto.text for p in at.get("progress")]
    # 3 x 4 epochs + pruned 2 + failed 2, budget 5 x 4
    assert bars == ["5/5 trials · 16 of at most 20 epochs trained"]
    assert at.get("progress")[0].proto.value == 100
    assert fake.config.n_trials == 5


def test_a_toast_says_when_a_study_finishes_on_any_screen(home):
    fake = _study(home, n_complete=3, n_running=1)
    touch_heartbeat(fake.storage_url, NAME)
    study = optuna.load_study(study_name=NAME, storage=S.open_storage(fake.storage_url))
    import socket
    import subprocess

    runner = subprocess.Popen(["sleep", "60"])  # a live "runner" process on this host
    try:
        study.set_user_attr("runner", {"host": socket.gethostname(), "pid": runner.pid})
        at = app(CONFIGURE)
        assert not at.toast
        at.switch_page("app/views/learn.py").run()
        study.set_user_attr(K.ATTR_STATUS, "finished")
        at.run()
    finally:
        runner.kill()
        runner.wait()
    assert not at.exception
    msgs = [t.value for t in at.toast]
    assert any(m.startswith(f"Study cmp-study finished: best trial #{fake.best_number}") for m in msgs), msgs
    at.run()
    assert not at.toast  # said once


# --------------------------------------------------------------------------- study management


def _manage_index(at, name) -> int:
    return next(int(k.split("-")[1]) for k in block_keys(at) if k.startswith("study-") and k.endswith(name))


def test_rename_and_note_show_in_the_list_and_the_picker(home):
    _study(home, n_complete=2)
    at = app(CONFIGURE)
    i = _manage_index(at, NAME)
    at.text_input(key=f"rename-{i}").set_value("Best digits run").run()
    at.text_area(key=f"note-{i}").set_value("lr above 1e-2 diverges").run()
    at.button(key=f"save-{i}").click().run()
    assert not at.exception
    body = "\n".join(m.value for m in at.markdown) + "\n".join(c.value for c in at.caption)
    assert "**Best digits run**" in body and "lr above 1e-2 diverges" in body
    at.switch_page(TRIALS).run()
    picker = next(s for s in at.selectbox if s.label == "Study")
    assert picker.format_func(NAME).startswith(f"Best digits run ({NAME})")


def test_rename_to_a_taken_name_is_refused(home):
    _study(home, n_complete=2)
    _study(home, name="other", n_complete=2, with_models=False)
    at = app(CONFIGURE)
    i = _manage_index(at, NAME)
    at.text_input(key=f"rename-{i}").set_value("other").run()
    at.button(key=f"save-{i}").click().run()
    assert any("another study is called 'other'" in e.value for e in at.error)


def test_duplicate_puts_the_configuration_into_the_form(home):
    fake = _study(home, mode="health-aware", n_complete=2, epochs=6)
    at = app(CONFIGURE)
    at.button(key=f"dup-{_manage_index(at, NAME)}").click().run()
    assert not at.exception
    assert at.text_input(key="cfg_name").value == f"{NAME}-copy"
    assert at.radio(key="cfg_mode").value == "health-aware"
    assert at.number_input(key="cfg_epochs").value == 6
    assert at.number_input(key="cfg_trials").value == fake.config.n_trials
    assert any("is in the form below" in s.value for s in at.success)


def test_delete_asks_first_then_removes_trials_models_and_folder(home):
    fake = _study(home, n_complete=3)
    folder = Settings(home=home).study_dir(NAME)
    assert len(list(folder.rglob("*.keras"))) == 3
    at = app(CONFIGURE)
    i = _manage_index(at, NAME)
    at.button(key=f"delete-{i}").click().run()
    warning = next(w.value for w in at.warning if w.value.startswith("Delete"))
    assert "5 trials" in warning and "3 files" in warning
    at.button(key=f"delete-no-{i}").click().run()
    assert folder.is_dir() and [s.study_name for s in S.open_storage(fake.storage_url).get_all_studies()] == [NAME]
    at.button(key=f"delete-{i}").click().run()
    at.button(key=f"delete-yes-{i}").click().run()
    assert not at.exception
    assert not folder.exists()
    assert S.open_storage(fake.storage_url).get_all_studies() == []
    assert any(t.value.startswith("Deleted cmp-study: 5 trials and 3 files") for t in at.toast), [t.value for t in at.toast]
