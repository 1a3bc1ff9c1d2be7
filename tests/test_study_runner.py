"""StudyRunner end to end on tiny digits with two local workers: storage, pruning, stop/resume, kill -9, NaN."""

from __future__ import annotations

import json

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import storage as S
from core.config import ConfigError, Settings, StudyConfig
from core.study import T_INTERRUPTED, StudyRunner, create_study, runner_alive, sweep_stale
from core import study as K  # the storage schema: attribute keys
from tests.fakes import FakeExecutor

ROOT = Path(__file__).resolve().parent.parent
TINY = {"conv_blocks": 1, "filters": 8, "dense_units": 16, "batch_norm": False, "batch_size": 32, "dropout": 0.0}
METRICS = {"neuron_utilization", "parameter_efficiency", "training_stability", "gradient_health",
           "convergence_quality", "accuracy_consistency"}


def _config(name: str, storage: str, **kw) -> StudyConfig:
    base = dict(name=name, dataset="digits", n_trials=4, epochs=2, max_samples=300, tune=["learning_rate"],
                fixed=dict(TINY), ranges={"learning_rate": {"low": 3e-3, "high": 3e-2}}, workers=2,
                storage=storage, keep_best_k=2, pruner="none")
    base.update(kw)
    return StudyConfig(**base)


def _trials(name: str, url: str):
    import optuna

    return optuna.load_study(study_name=name, storage=S.open_storage(url)).get_trials(deepcopy=False)


def _states(name: str, url: str) -> dict[int, str]:
    return {t.number: t.state.name for t in _trials(name, url)}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("study_home")


@pytest.fixture(scope="module")
def settings(home):
    return Settings(home=home)


@pytest.fixture(scope="module")
def url(home):
    return f"sqlite:///{home / 'studies.db'}"


@pytest.fixture(scope="module")
def ex(settings):
    """Two warm workers shared by the tests (a runner leaves an executor it was given running)."""
    from core.executors.local import LocalExecutor

    # a generous verdict wait: the runner always answers, and pruning tests can then count epochs exactly
    executor = LocalExecutor(workers=2, settings=settings, verdict_wait=(100.0, 10.0))
    executor.start()
    assert executor.wait_ready(240)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def finished(ex, settings, url):
    """A 4-trial study run to the end on two workers."""
    cfg = _config("four", url)
    ended: list[tuple[int, str]] = []
    runner = StudyRunner(cfg, executor=ex, settings=settings, on_trial_end=lambda n, s, r: ended.append((n, s)))
    runner.start()
    assert runner.join(300), "study did not finish"
    assert runner.error is None, runner.error
    return runner, ended


@pytest.mark.tf
def test_study_on_two_workers_stores_every_trial(finished, url, settings):
    runner, ended = finished
    assert runner.status == "finished" and not runner.is_running
    trials = _trials("four", url)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert sorted(n for n, _ in ended) == [0, 1, 2, 3]
    for t in trials:
        attrs = t.user_attrs
        result = attrs[K.T_RESULT]
        assert result["status"] == "complete"
        assert set(result["health"]) == METRICS and all(0 <= v <= 1 for v in result["health"].values())
        assert t.values[0] == pytest.approx(result["val_accuracy"])
        assert attrs[K.T_TEST_ACCURACY] == result["test_accuracy"]
        assert attrs[K.T_HEALTH] == result["health_score"] and attrs[K.T_PARAMS] > 0
        assert attrs[K.T_EXECUTOR] == "local" and attrs[K.T_HOST]
        assert attrs[K.T_SPEC]["params"]["filters"] == 8 and attrs[K.T_SPEC]["epochs"] == 2
        assert attrs[K.T_PROGRESS]["epoch"] == 2
        assert set(t.intermediate_values) == {1, 2}
    # two workers: some trials overlapped in time
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))
    # keep-best-k=2: every trial keeps result.json, only two keep their model
    folder = settings.study_dir("four")
    assert len(list(folder.glob("trial-*/result.json"))) == 4
    assert len(list(folder.glob("trial-*/model.keras"))) == 2
    study_attrs = _study("four", url).user_attrs
    assert study_attrs[K.ATTR_STATUS] == "finished" and StudyConfig.from_dict(study_attrs[K.ATTR_CONFIG]).name == "four"
    assert study_attrs[K.ATTR_CREATED] <= study_attrs[K.ATTR_HEARTBEAT]


def _study(name, url):
    import optuna

    return optuna.load_study(study_name=name, storage=S.open_storage(url))


@pytest.mark.tf
def test_optuna_own_api_reads_the_study(finished, url):
    """What optuna-dashboard does: plain optuna on the storage URL, no HPO Studio code."""
    import optuna

    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(url)}
    assert summaries["four"].n_trials == 4
    assert summaries["four"].user_attrs["config"]["dataset"] == "digits"
    study = optuna.load_study(study_name="four", storage=url)
    best = study.best_trial
    assert 3e-3 <= best.params["learning_rate"] <= 3e-2
    assert best.value == pytest.approx(best.user_attrs["result"]["val_accuracy"])
    assert 0 <= best.user_attrs["test_accuracy"] <= 1 and 0 <= best.user_attrs["health_score"] <= 1
    df = study.trials_dataframe()
    assert len(df) == 4 and "user_attrs_test_accuracy" in df.columns


@pytest.mark.tf
def test_records_artifacts_and_export(finished, url, tmp_path):
    from core import artifacts
    from core.study import best_record, config_of, load_records

    records = load_records("four", url)
    config = config_of(_study("four", url))
    table = artifacts.study_table(records, config)
    assert len(table) == 4 and {"val_accuracy", "test_accuracy", "health_score", "param_learning_rate"} <= set(table.columns)
    best = best_record(records, config)
    spec = artifacts.reproduce_config(best)
    assert spec["params"] == best.spec["params"] and spec["seed"] == best.spec["seed"]
    assert spec["artifacts_dir"] is None and spec["study"] == "four-reproduce"
    written = artifacts.export_study("four", tmp_path / "out", storage_url=url)
    assert set(written) == {"csv", "json", "config", "model", "errors"}  # errors: the best trial's insight
    assert written["model"].name.startswith(f"four_model_trial-{best.number:04d}_val-acc-")
    errors = json.loads(written["errors"].read_text())
    assert sum(map(sum, errors["confusion"])) == best.result.test_samples  # the whole test split


@pytest.mark.tf
def test_reproduce_config_retrains_the_same_model(finished, url, tmp_path, clear_keras):
    from core import artifacts
    from core.config import TrialSpec
    from core.study import best_record, config_of, load_records
    from core.training import run_trial

    best = best_record(load_records("four", url), config_of(_study("four", url)))
    spec = TrialSpec.from_dict({**artifacts.reproduce_config(best), "save_model": False})
    again = run_trial(spec)
    # same seeds and data; only the thread count differs from the worker (float summation order)
    assert again.status == "complete"
    assert again.val_accuracy == pytest.approx(best.val_accuracy, abs=0.02)


@pytest.mark.tf
def test_duplicate_name_is_refused_with_a_hint(finished, url, settings):
    with pytest.raises(ConfigError, match="already exists.*resume"):
        StudyRunner(_config("four", url), settings=settings).start()


@pytest.mark.tf
def test_pruning_stops_trials_early(ex, url, settings):
    import optuna

    # a threshold no tiny model reaches after one epoch: every trial is pruned at epoch 1
    cfg = _config("pruned", url, n_trials=3, epochs=30, pruner="median")
    runner = StudyRunner(cfg, executor=ex, settings=settings, pruner=optuna.pruners.ThresholdPruner(lower=0.999))
    runner.start()
    assert runner.join(240)
    trials = _trials("pruned", url)
    assert [t.state.name for t in trials] == ["PRUNED"] * 3
    for t in trials:
        assert t.user_attrs[K.T_RESULT]["status"] == "stopped"
        # pruned at epoch 1, and it stopped there: the worker waited for the verdict
        assert list(t.intermediate_values) == [1]
        assert t.user_attrs[K.T_RESULT]["epochs_run"] == 1
    assert runner.counts.pruned == 3 and runner.status == "finished"


@pytest.mark.parametrize("epochs, first_rung", [(2, 1), (3, 2), (10, 2), (40, 2)])
def test_default_pruner_first_judges_at_epoch_two(epochs, first_rung):
    """Successive halving as built for a study: no trial is judged before ``first_rung``
    (slow starters survive epoch 1, bench_search), and there the worse half is stopped."""
    import optuna

    from core.study import make_pruner

    pruner = make_pruner(StudyConfig(name="p", epochs=epochs, pruner="successive_halving"))
    study = optuna.create_study(direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    verdicts = {}
    for i, value in enumerate([0.9, 0.8, 0.7, 0.1]):  # the last trial is the worst at every epoch
        trial = study.ask()
        verdicts[i] = []
        for step in range(1, epochs + 1):
            trial.report(value, step)
            verdicts[i].append(trial.should_prune())
            if verdicts[i][-1]:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, value)
    worst = verdicts[3]
    assert not any(worst[: first_rung - 1]), "judged before its first rung"
    assert worst[first_rung - 1], "the worst trial survived its first rung"
    assert not verdicts[0][0]  # the first trial is never pruned at its first epoch


@pytest.mark.tf
def test_out_of_range_trial_fails_and_the_study_goes_on(ex, url, settings):
    """A learning rate of 1e6 once trained a whole epoch to NaN; now the worker refuses the spec before any data loads."""
    fixed = {**TINY, "optimizer": "sgd", "activation": "leaky_relu"}
    cfg = _config("nan", url, n_trials=3, fixed=fixed)
    study = create_study(cfg, settings=settings)
    with pytest.warns(UserWarning, match="out of range"):
        study.enqueue_trial({"learning_rate": 1e6})  # outside the search range on purpose
        runner = StudyRunner.resume("nan", url, executor=ex, settings=settings).start()
        assert runner.join(240)
    states = _states("nan", url)
    assert states[0] == "FAIL" and [states[1], states[2]] == ["COMPLETE", "COMPLETE"]
    failed = _trials("nan", url)[0]
    assert "learning_rate" in failed.user_attrs[K.T_ERROR] and "0.03" in failed.user_attrs[K.T_ERROR]
    assert not failed.user_attrs.get(K.T_RESULT, {}).get("epochs_run")  # refused, not trained
    assert (settings.study_dir("nan") / "trial-0000" / "result.json").exists()
    assert runner.status == "finished"


@pytest.mark.tf
def test_stop_then_resume_continues_numbering(ex, url, settings):
    cfg = _config("stopres", url, n_trials=5)
    runner = StudyRunner(cfg, executor=ex, settings=settings).start()
    deadline = time.monotonic() + 180
    while runner.counts.complete < 1:
        assert time.monotonic() < deadline and runner.is_running
        time.sleep(0.2)
    runner.stop()
    assert runner.join(120)
    assert runner.status == "stopped"
    first = _states("stopres", url)
    assert set(first.values()) == {"COMPLETE"} and len(first) < 5  # running trials finished, no new ones
    assert _study("stopres", url).user_attrs[K.ATTR_STATUS] == "stopped"

    resumed = StudyRunner.resume("stopres", url, executor=ex, settings=settings).start()
    assert resumed.join(240)
    after = _states("stopres", url)
    assert sorted(after) == list(range(5)) and set(after.values()) == {"COMPLETE"}
    assert {n: after[n] for n in first} == first


@pytest.mark.tf
def test_cancel_ends_running_trials_as_failed(ex, url, settings):
    cfg = _config("cancelled", url, n_trials=4, epochs=60)
    runner = StudyRunner(cfg, executor=ex, settings=settings).start()
    deadline = time.monotonic() + 120
    while runner.counts.epochs < 1:
        assert time.monotonic() < deadline and runner.is_running
        time.sleep(0.2)
    runner.cancel()
    assert runner.join(60)
    assert runner.status == "cancelled"
    trials = _trials("cancelled", url)
    assert trials and all(t.state.name == "FAIL" for t in trials)
    assert all(t.user_attrs[K.T_ERROR] == "cancelled" and t.user_attrs[T_INTERRUPTED] for t in trials)
    assert ex.running == set()  # the shared workers are free again


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"n_trials": 0}, "n_trials"),
        ({"mode": "best"}, "mode"),
        ({"workers": 0}, "workers"),
        ({"epochs": 0}, "epochs"),
        ({"dataset": "nope"}, "nope"),
        ({"tune": ["wings"]}, "wings"),
        ({"sampler": "nsga2"}, "sampler"),
        ({"mode": "pareto", "sampler": "nsga2", "pruner": "median"}, "pruner"),
        ({"health_weight": 2.0}, "health_weight"),
        ({"name": " "}, "name"),
    ],
)
def test_invalid_configs_are_refused_naming_the_setting(change, setting, url, settings):
    change = dict(change)
    cfg = _config(change.pop("name", "invalid"), url, **change)
    with pytest.raises(ConfigError, match=setting):
        StudyRunner(cfg, settings=settings).start()


def test_an_unavailable_data_set_is_refused_before_any_trial(url, settings, monkeypatch):
    import optuna

    from core.datasets import DatasetUnavailable

    monkeypatch.setenv("HPO_OFFLINE", "1")
    cfg = _config("offline-mnist", url, dataset="mnist")
    with pytest.raises(DatasetUnavailable, match="mnist data set is not available: no local copy found and HPO_OFFLINE"):
        StudyRunner(cfg, settings=settings).start()
    assert "offline-mnist" not in [s.study_name for s in optuna.get_all_study_summaries(S.open_storage(url))]


@pytest.mark.tf
@pytest.mark.slow
def test_kill_dash_nine_then_resume_loses_nothing(ex, home, url, settings):
    """kill -9 the CLI mid-study; resume: no completed trial lost, none left RUNNING, orphans exit."""
    name = "killed"
    cmd = [sys.executable, "-m", "core", "optimize", "--dataset", "digits", "--trials", "5", "--epochs", "3",
           "--workers", "1", "--name", name, "--storage", url, "--max-samples", "300", "--tune", "learning_rate",
           "--range", "learning_rate=0.003:0.03", "--pruner", "none", "--no-progress"]
    cmd += [f"--param={k}={str(v).lower()}" for k, v in TINY.items()]
    env = {**os.environ, "HPO_HOME": str(home)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no trial completed in time"
            try:
                states = _states(name, url)
            except KeyError:
                states = {}
            if "COMPLETE" in states.values() and "RUNNING" in states.values():
                break
            time.sleep(0.3)
        workers = _children(proc.pid)
        assert workers, "the CLI should have a worker process"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = {t.number: (t.state.name, t.values) for t in _trials(name, url)}
    assert "RUNNING" in {s for s, _ in before.values()}
    study = _study(name, url)
    assert not runner_alive(study)  # the runner's pid is gone: no need to wait for the heartbeat to age

    runner = StudyRunner.resume(name, url, executor=ex, settings=settings).start()
    assert runner.join(240) and runner.error is None
    after = {t.number: t for t in _trials(name, url)}
    assert all(t.state.name != "RUNNING" for t in after.values())
    for n, (state, values) in before.items():
        if state == "COMPLETE":
            assert after[n].state.name == "COMPLETE" and after[n].values == values
        elif state == "RUNNING":  # failed as interrupted, or recovered from a result.json written just in time
            assert after[n].state.name == "COMPLETE" or after[n].user_attrs.get(T_INTERRUPTED)
    counted = [t for t in after.values() if not t.user_attrs.get(T_INTERRUPTED)]
    assert len(counted) == 5 and all(t.state.name == "COMPLETE" for t in counted)
    assert sorted(after) == list(range(len(after)))
    assert sweep_stale(_study(name, url)) == []  # nothing left to sweep

    # the killed runner's worker noticed its parent died and exited on its own
    deadline = time.monotonic() + 60
    while any(_pid_exists(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_pid_exists(p) for p in workers), workers


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _pid_exists(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


# --------------------------------------------------------------------------- runner logic with a fake executor (no TensorFlow)


def test_health_aware_and_pareto_objectives(url, settings):
    runner = StudyRunner(_config("aware", url, mode="health-aware", health_weight=0.4), executor=FakeExecutor(),
                         settings=settings).start()
    assert runner.join(30) and runner.error is None
    for t in _trials("aware", url):
        acc = t.user_attrs[K.T_RESULT]["val_accuracy"]
        assert t.value == pytest.approx(0.6 * acc + 0.4 * 0.5)
        assert t.user_attrs[K.T_EXECUTOR] == "fake" and t.user_attrs[K.T_HOST] == "fake-host"

    cfg = _config("front", url, mode="pareto", sampler="nsga2", pruner="none", n_trials=6)
    runner = StudyRunner(cfg, executor=FakeExecutor(), settings=settings).start()
    assert runner.join(30) and runner.error is None
    study = _study("front", url)
    assert all(len(t.values) == 2 for t in study.trials) and study.best_trials


def test_timeout_budget_stops_asking(url, settings):
    cfg = _config("timed", url, n_trials=None, timeout_s=1.0, epochs=2)
    runner = StudyRunner(cfg, executor=FakeExecutor(epoch_s=0.1), settings=settings).start()
    assert runner.join(30) and runner.status == "finished"
    n = len(_trials("timed", url))
    assert 2 <= n < 20 and set(_states("timed", url).values()) == {"COMPLETE"}


def test_runner_crash_is_recorded(url, settings):
    fake = FakeExecutor(capacity=1, crash_after=1)
    runner = StudyRunner(_config("crash", url, n_trials=3), executor=fake, settings=settings).start()
    assert runner.join(30)
    assert runner.status == "crashed" and isinstance(runner.error, RuntimeError)
    states = _states("crash", url)
    assert states[0] == "COMPLETE" and states[1] == "FAIL" and len(states) == 2
    failed = _trials("crash", url)[1]
    assert "runner crashed" in failed.user_attrs[K.T_ERROR] and failed.user_attrs[T_INTERRUPTED]
    assert _study("crash", url).user_attrs[K.ATTR_STATUS] == "crashed"
    assert not fake.shut  # an executor passed in belongs to the caller


def test_live_runner_is_not_swept_and_cannot_be_resumed_twice(url, settings):
    cfg = _config("live", url, n_trials=2, epochs=50)
    runner = StudyRunner(cfg, executor=FakeExecutor(epoch_s=0.05), settings=settings).start()
    try:
        time.sleep(0.3)
        study = _study("live", url)
        assert runner_alive(study) and sweep_stale(study) == []
        with pytest.raises(ConfigError, match="already running"):
            StudyRunner.resume("live", url, executor=FakeExecutor(), settings=settings).start()
    finally:
        runner.cancel()
        runner.join(30)
    assert runner.status == "cancelled" and not runner_alive(_study("live", url))


def test_stop_and_cancel_asked_through_the_storage(url, settings, monkeypatch):
    """What the app does for a study run by another process: request_stop writes to the
    storage, the runner obeys at its next heartbeat, and a later resume ignores the old request."""
    from core.study import _runner, request_stop

    monkeypatch.setattr(_runner, "HEARTBEAT_S", 0.5)  # the runner reads the storage's requests every beat

    cfg = _config("asked", url, n_trials=40, epochs=4, workers=1)
    runner = StudyRunner(cfg, executor=FakeExecutor(capacity=1, epoch_s=0.1), settings=settings).start()
    deadline = time.time() + 30
    while runner.counts.complete < 2 and time.time() < deadline:
        time.sleep(0.05)
    request_stop("asked", url, by="test")
    assert runner.join(15) and runner.status == "stopped", runner.status
    states = _states("asked", url)
    assert 2 <= len(states) < 40 and set(states.values()) == {"COMPLETE"}  # the running trial finished
    assert _study("asked", url).user_attrs[K.ATTR_STATUS] == "stopped"

    again = StudyRunner.resume("asked", url, n_trials=len(states) + 2, executor=FakeExecutor(capacity=1),
                               settings=settings).start()
    assert again.join(30) and again.status == "finished"  # the earlier stop does not stop a new run
    assert len(_trials("asked", url)) == len(states) + 2

    slow = StudyRunner.resume("asked", url, n_trials=100, executor=FakeExecutor(capacity=1, epoch_s=5.0),
                              settings=settings).start()
    deadline = time.time() + 30
    while not slow.running_trials and time.time() < deadline:
        time.sleep(0.05)
    request_stop("asked", url, cancel=True)
    assert slow.join(15) and slow.status == "cancelled"
    last = _trials("asked", url)[-1]
    assert last.state.name == "FAIL" and last.user_attrs[K.T_ERROR] == "cancelled"


@pytest.mark.parametrize("owner_started_ago, asks", [(100.0, False), (5.0, True)])
def test_joined_runner_time_budget_runs_from_the_owners_start(url, settings, owner_started_ago, asks):
    """A worker joining a study with a 60 s budget whose owner (alive, on another machine)
    started 100 s ago starts nothing; 5 s ago, it works."""
    from core.study import ATTR_RUNNER

    name = f"joined-clock-{int(owner_started_ago)}"
    study = create_study(_config(name, url, n_trials=None, timeout_s=60.0, epochs=1), settings=settings)
    now = time.time()
    study.set_user_attr(ATTR_RUNNER, {"host": "elsewhere", "pid": 1, "started": now - owner_started_ago, "id": "x"})
    study.set_user_attr(K.ATTR_STATUS, "running")
    study.set_user_attr(K.ATTR_HEARTBEAT, now)
    worker = StudyRunner.attach(name, url, executor=FakeExecutor(capacity=1, epoch_s=0.05), settings=settings).start()
    try:
        if asks:
            deadline = time.time() + 10
            while worker.counts.complete < 2 and time.time() < deadline:
                time.sleep(0.05)
            assert worker.counts.complete >= 2 and worker.is_running
        else:
            assert worker.join(10) and worker.status == "finished" and worker.counts.asked == 0
    finally:
        worker.stop()
        worker.join(10)


class _SubmitFails(FakeExecutor):
    """Refuses the second trial it is given: the runner dies between ask and submit."""

    def submit(self, spec):
        if spec.trial_number >= 1:
            raise RuntimeError("executor refused the spec")
        super().submit(spec)


def test_runner_crash_between_ask_and_submit_leaves_nothing_running(url, settings):
    runner = StudyRunner(_config("crash-ask", url, n_trials=3), executor=_SubmitFails(capacity=2, epoch_s=0.05),
                         settings=settings).start()
    assert runner.join(30)
    assert runner.status == "crashed" and "refused the spec" in str(runner.error)
    states = _states("crash-ask", url)
    assert "RUNNING" not in states.values() and states[1] == "FAIL", states
    asked = _trials("crash-ask", url)[1]
    assert "runner crashed" in asked.user_attrs[K.T_ERROR] and asked.user_attrs[T_INTERRUPTED]
    study = _study("crash-ask", url)
    assert study.user_attrs[K.ATTR_WORKER_PREFIX + runner.runner_id]["status"] == "crashed"
    assert not runner_alive(study)


def test_keep_best_never_deletes_another_runners_unfinished_model(url, settings):
    """Another runner's trial has saved model.keras but is not told yet: keep-best must leave it."""
    from core import paths

    cfg = _config("keep-race", url, n_trials=4, keep_best_k=1)
    study = create_study(cfg, settings=settings)
    other = "elsewhere:4242:abcdef"
    foreign = study.ask()
    foreign.set_user_attr(K.T_RUNNER, other)
    study.set_user_attr(K.ATTR_WORKER_PREFIX + other, {"host": "elsewhere", "pid": 4242, "beat": time.time(),
                                                       "status": "running"})
    model = paths.trial_dir("keep-race", foreign.number, settings) / "model.keras"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"a trained model")
    finished_model = paths.trial_dir("keep-race", 99, settings) / "model.keras"  # no trial 99 in the storage
    finished_model.parent.mkdir(parents=True)
    finished_model.write_bytes(b"not ours to judge")
    ours = [paths.trial_dir("keep-race", n, settings) / "model.keras" for n in (1, 2, 3)]
    for path in ours:  # the runner's own trials (FakeExecutor saves no models)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"model")

    runner = StudyRunner.attach("keep-race", url, executor=FakeExecutor(capacity=1), settings=settings).start()
    assert runner.join(30) and runner.error is None, runner.error
    states = _states("keep-race", url)
    assert states[foreign.number] == "RUNNING" and list(states.values()).count("COMPLETE") == 3
    assert model.is_file() and finished_model.is_file()
    assert sum(p.is_file() for p in ours) == 1  # finished trials outside the best 1 still lose their models
