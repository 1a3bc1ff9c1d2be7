"""Runner overhead and local parallelism.

1. Overhead: N trials through StudyRunner + LocalExecutor (1 warm worker: storage writes,
   epoch events, health metrics, model saving, result.json) against the same N
   configurations trained back to back by bare ``model.fit`` + ``evaluate`` in one
   process.  TensorFlow's import (~4-20 s) is excluded from both: the worker is warmed
   up before timing, the bare loop imports TensorFlow before timing.  Target <= 1.15x.
2. Parallelism: the same M trials (random sampler, same seed, so the same configs)
   through 1 worker and through 2 workers; trials per hour.  Target >= 1.6x.

Both are measured in interleaved rounds and the fastest round of each side is reported:
on a shared machine other processes otherwise decide the result.

Usage: ``python bench/bench_runner.py [--trials 6] [--parallel-trials 8] [--epochs 5]``.
Prints a table and writes ``bench/out/bench_runner.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def _machine() -> dict:
    from core.executors.local import cpu_count

    return {"cores": cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "machine": platform.machine()}


def _config(name: str, url: str, n: int, epochs: int, workers: int):
    from core.config import StudyConfig

    # Full digits, a small-to-medium CNN space: trials of a few seconds, like a real quick study.
    return StudyConfig(name=name, dataset="digits", n_trials=n, epochs=epochs, workers=workers, storage=url,
                       sampler="random", pruner="none", seed=7, keep_best_k=n,
                       tune=["filters", "dense_units", "learning_rate", "dropout"],
                       ranges={"filters": {"low": 8, "high": 32}, "dense_units": {"low": 16, "high": 128}},
                       fixed={"conv_blocks": 2, "batch_size": 64})


def warm_executor(workers: int, settings):
    """A started LocalExecutor whose workers have imported TensorFlow and run one tiny trial each."""
    from core.config import TrialSpec
    from core.executors import DoneEvent
    from core.executors.local import LocalExecutor

    t0 = time.perf_counter()
    ex = LocalExecutor(workers=workers, settings=settings)
    ex.start()
    assert ex.wait_ready(300), ex.describe()
    startup = time.perf_counter() - t0
    for i in range(workers):  # first-trial costs (kernel registration, first tracing) paid before timing
        ex.submit(TrialSpec(dataset="digits", params={"conv_blocks": 1, "filters": 8}, epochs=1, max_samples=100,
                            trial_number=10_000 + i, save_model=False, artifacts_dir=str(settings.home / "warm")))
    done = 0
    while done < workers:
        done += sum(isinstance(e, DoneEvent) for e in ex.events(1.0))
    return ex, startup


def run_study(name: str, url: str, n: int, epochs: int, ex, settings) -> tuple[float, list]:
    """Run a study on a warm executor; return (wall seconds, the specs it ran)."""
    import optuna

    from core.study import StudyRunner

    t = time.perf_counter()
    runner = StudyRunner(_config(name, url, n, epochs, ex.capacity), executor=ex, settings=settings).start()
    runner.join()
    wall = time.perf_counter() - t
    assert runner.error is None, runner.error
    study = optuna.load_study(study_name=name, storage=url)
    specs = [t.user_attrs["spec"] for t in study.get_trials()]
    states = {t.state.name for t in study.get_trials()}
    assert states == {"COMPLETE"}, states
    timings = [t.user_attrs["result"]["timings"] for t in study.get_trials()]
    TIMINGS.setdefault(name.split("-")[0], []).extend(timings)
    return wall, specs


TIMINGS: dict[str, list[dict]] = {}  # per-trial run_trial timings, by study kind


def _extras_fraction(timings: list[dict]) -> float:
    """Share of run_trial's own time not spent in model.fit: build, evaluate, health, save (load-independent-ish)."""
    total = sum(t["total"] for t in timings)
    return sum(t["total"] - t["train"] for t in timings) / total if total else 0.0


def bare_keras(specs: list[dict]) -> float:
    """Train the same specs with bare Keras in this process; return wall seconds (TF import excluded)."""
    import keras

    from core.datasets import load_dataset
    from core.models import build_model

    data = load_dataset(specs[0]["dataset"], max_samples=specs[0]["max_samples"], seed=specs[0]["data_seed"])
    keras.backend.clear_session()  # pays TF's lazy start-up before timing
    t = time.perf_counter()
    for spec in specs:
        p = spec["params"]
        keras.backend.clear_session()
        keras.utils.set_random_seed(spec["seed"])
        steps = -(-len(data.x_train) // int(p["batch_size"]))
        model = build_model(p, data.info, steps_per_epoch=steps, epochs=spec["epochs"])
        model.fit(data.x_train, data.y_train, batch_size=int(p["batch_size"]), epochs=spec["epochs"],
                  validation_data=(data.x_val, data.y_val), verbose=0)
        model.evaluate(data.x_test, data.y_test, verbose=0)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5, help="trials for the overhead comparison")
    ap.add_argument("--parallel-trials", type=int, default=6, help="trials for the 1-vs-2-worker comparison")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the fastest of each side is reported")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bench_runner_", dir=OUT))
    os.environ["HPO_HOME"] = str(home)
    from core.config import Settings
    from core.logs import setup_logging

    setup_logging("bench")
    settings = Settings(home=home)
    url = f"sqlite:///{home / 'bench.db'}"
    before = _machine()

    ex1, startup1 = warm_executor(1, settings)
    ex2, startup2 = warm_executor(2, settings)
    import tensorflow as tf  # noqa: F401 - imported before any bare timing starts

    from core.search_space import defaults

    runner_s, bare_s, one_s, two_s = [], [], [], []
    same_configs = True
    try:
        warm = {**defaults("image"), "conv_blocks": 1, "filters": 8}
        bare_keras([dict(dataset="digits", max_samples=100, data_seed=0, seed=0, epochs=1, params=warm)])  # as the workers had
        # Interleaved repeats (runner, bare, 1 worker, 2 workers, again ...): other work on a shared
        # machine then inflates every side alike, and the minimum is the least disturbed run.
        for r in range(args.repeats):
            wall, specs = run_study(f"overhead-{r}", url, args.trials, args.epochs, ex1, settings)
            runner_s.append(wall)
            bare_s.append(bare_keras(specs))
            wall1, specs1 = run_study(f"par1-{r}", url, args.parallel_trials, args.epochs, ex1, settings)
            wall2, specs2 = run_study(f"par2-{r}", url, args.parallel_trials, args.epochs, ex2, settings)
            one_s.append(wall1)
            two_s.append(wall2)
            same_configs &= [s["params"] for s in specs1] == [s["params"] for s in specs2]
            print(f"round {r}: runner {wall:.1f} s, bare {bare_s[-1]:.1f} s, 1 worker {wall1:.1f} s, "
                  f"2 workers {wall2:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        ex1.shutdown()
        ex2.shutdown()
    wall_runner, wall_bare, wall_1, wall_2 = min(runner_s), min(bare_s), min(one_s), min(two_s)
    ratio = wall_runner / wall_bare
    tph_1 = 3600 * args.parallel_trials / wall_1
    tph_2 = 3600 * args.parallel_trials / wall_2
    speedup = tph_2 / tph_1

    res = {
        "machine_before": before,
        "machine_after": _machine(),
        "epochs": args.epochs,
        "overhead": {"trials": args.trials, "runner_s": round(wall_runner, 2), "bare_keras_s": round(wall_bare, 2),
                     "ratio": round(ratio, 3), "target": 1.15, "worker_startup_s": round(startup1, 2),
                     "runner_rounds_s": [round(x, 2) for x in runner_s], "bare_rounds_s": [round(x, 2) for x in bare_s],
                     "run_trial_extras_fraction": round(_extras_fraction(TIMINGS.get("overhead", [])), 3)},
        "parallel": {"trials": args.parallel_trials, "one_worker_s": round(wall_1, 2), "two_workers_s": round(wall_2, 2),
                     "trials_per_hour_1": round(tph_1, 1), "trials_per_hour_2": round(tph_2, 1),
                     "speedup": round(speedup, 3), "target": 1.6, "same_configs": same_configs,
                     "two_worker_startup_s": round(startup2, 2),
                     "one_worker_rounds_s": [round(x, 2) for x in one_s], "two_worker_rounds_s": [round(x, 2) for x in two_s]},
    }
    print(f"\nmachine: {before['cores']} cores, load average {before['load_avg_1m']} before / "
          f"{res['machine_after']['load_avg_1m']} after (other work on the machine inflates both sides)")
    print(f"{'measure':<44} {'value':>10}  target")
    print(f"{'runner, ' + str(args.trials) + ' trials (1 warm worker) [s]':<44} {wall_runner:>10.1f}  (fastest of {args.repeats})")
    print(f"{'bare model.fit, same configs [s]':<44} {wall_bare:>10.1f}")
    print(f"{'overhead ratio':<44} {ratio:>10.3f}  <= 1.15")
    print(f"{'run_trial time outside model.fit (health...)':<44} {_extras_fraction(TIMINGS.get('overhead', [])):>10.1%}")
    print(f"{'worker start-up (not in the ratio) [s]':<44} {startup1:>10.1f}")
    print(f"{'1 worker, ' + str(args.parallel_trials) + ' trials [trials/h]':<44} {tph_1:>10.0f}")
    print(f"{'2 workers, same configs [trials/h]':<44} {tph_2:>10.0f}")
    print(f"{'parallel speed-up':<44} {speedup:>10.3f}  >= 1.6")
    (OUT / "bench_runner.json").write_text(json.dumps(res, indent=2))
    print(f"\nwritten {OUT / 'bench_runner.json'}")


if __name__ == "__main__":  # worker processes are spawned and re-import this file
    main()
