"""Scale-out on PostgreSQL: study throughput with 1 and 2 runner processes, and storage cost per trial.

1. Throughput: a digits study of N tiny trials (1 epoch) on a throw-away PostgreSQL
   server, run by one ``python -m core optimize`` process (1 local worker), then by that
   plus one ``python -m core worker`` process joining it (1 local worker each), as two
   machines would.  Trials per minute from the owner's start to the last runner's end
   (TensorFlow's start-up in each process included: it is part of what a user waits for).
2. Storage cost: M trials through the real StudyRunner with an instant fake executor
   (one epoch event, then a result), so every ask, report, tell and attribute write the
   runner does is timed and nothing else; PostgreSQL and SQLite side by side.  Reported
   as ms per trial overall and over the first and last 10 % (the runner reads the whole
   study before each ask to share the budget, so the cost grows with the study).

Usage: ``python bench/bench_postgres.py [--trials 8] [--storage-trials 1000]``.
Prints a table and writes ``bench/out/postgres.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from core import study as K  # the storage schema: attribute keys

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

TINY = ["--epochs", "1", "--max-samples", "200", "--pruner", "none", "--param", "filters=8", "--param",
        "dense_units=16", "--param", "conv_blocks=1", "--no-progress"]


def _machine() -> dict:
    return {"cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version()}


# --------------------------------------------------------------------------- 1. throughput


def _study_exists(name: str, url: str) -> bool:
    import optuna

    from core import storage as S

    try:
        optuna.load_study(study_name=name, storage=S.open_storage(url))
        return True
    except KeyError:
        return False


def throughput(url: str, n: int, runners: int, home: Path) -> dict:
    import optuna

    from core import storage as S

    name = f"tp-{runners}"
    env = dict(os.environ, HPO_HOME=str(home), PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "core", "optimize", "--storage", url, "--name", name, "--trials",
                               str(n), "--workers", "1", *TINY], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    while not _study_exists(name, url):
        time.sleep(0.2)
    for _ in range(runners - 1):
        procs.append(subprocess.Popen([sys.executable, "-m", "core", "worker", "--study", name, "--storage", url,
                                       "--workers", "1", "--no-progress"], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    trials = optuna.load_study(study_name=name, storage=S.open_storage(url)).get_trials(deepcopy=False)
    by_runner: dict[str, int] = {}
    for t in trials:
        rid = t.user_attrs.get(K.T_RUNNER, "?")
        by_runner[rid] = by_runner.get(rid, 0) + 1
    return {"runners": runners, "trials": len(trials), "complete": sum(t.state.name == "COMPLETE" for t in trials),
            "wall_s": round(wall, 1), "trials_per_min": round(60 * len(trials) / wall, 2),
            "per_runner": sorted(by_runner.values(), reverse=True), "exit_codes": codes}


# --------------------------------------------------------------------------- 2. storage cost


def storage_cost(url: str, n: int, home: Path, label: str) -> dict:
    from core.config import Settings, StudyConfig
    from core.study import StudyRunner
    from tests.fakes import FakeExecutor  # one instant epoch, then a complete result: no training

    settings = Settings(home=home)
    config = StudyConfig(name=f"cost-{label}", dataset="digits", n_trials=n, epochs=1, workers=1, storage=url,
                         sampler="random", pruner="none", seed=1, keep_best_k=5, tune=["learning_rate", "dropout"],
                         fixed={"conv_blocks": 1, "filters": 8, "dense_units": 16})
    ends: list[float] = []
    runner = StudyRunner(config, executor=FakeExecutor(capacity=1), settings=settings,
                         on_trial_end=lambda *_: ends.append(time.perf_counter()))
    t0 = time.perf_counter()
    runner.start()
    runner.join()
    total = time.perf_counter() - t0
    gaps = [b - a for a, b in zip([t0, *ends[:-1]], ends)]
    tenth = max(1, len(gaps) // 10)
    return {"storage": label, "trials": len(ends), "status": runner.status, "total_s": round(total, 2),
            "ms_per_trial": round(1000 * total / max(1, len(ends)), 2),
            "ms_first_10pct": round(1000 * sum(gaps[:tenth]) / tenth, 2),
            "ms_last_10pct": round(1000 * sum(gaps[-tenth:]) / tenth, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8, help="trials per throughput study")
    ap.add_argument("--storage-trials", type=int, default=1000)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from pg import postgres_server

    from core.logs import quiet_optuna

    quiet_optuna()
    out: dict = {"machine": _machine(), "throughput": [], "storage_cost": []}
    with tempfile.TemporaryDirectory(prefix="bench_pg_") as tmp, postgres_server() as url:
        home = Path(tmp)
        os.environ["HPO_HOME"] = str(home)
        if not args.skip_throughput:
            for runners in (1, 2):
                out["throughput"].append(throughput(url, args.trials, runners, home))
        for label, u in (("postgresql", url), ("sqlite", f"sqlite:///{home / 'cost.db'}")):
            out["storage_cost"].append(storage_cost(u, args.storage_trials, home, label))

    print(f"\nThroughput on PostgreSQL ({args.trials} digits trials, 1 epoch, 1 local worker per runner process)")
    print(f"  {'runners':>7}  {'trials':>6}  {'wall s':>7}  {'trials/min':>10}  per runner")
    for r in out["throughput"]:
        print(f"  {r['runners']:>7}  {r['trials']:>6}  {r['wall_s']:>7}  {r['trials_per_min']:>10}  {r['per_runner']}")
    print(f"\nStorage cost per trial through StudyRunner, no training ({args.storage_trials} trials)")
    print(f"  {'storage':<10}  {'total s':>8}  {'ms/trial':>8}  {'first 10%':>9}  {'last 10%':>8}")
    for r in out["storage_cost"]:
        print(f"  {r['storage']:<10}  {r['total_s']:>8}  {r['ms_per_trial']:>8}  {r['ms_first_10pct']:>9}"
              f"  {r['ms_last_10pct']:>8}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "postgres.json").write_text(json.dumps(out, indent=2))
    print(f"\nwrote {OUT / 'postgres.json'}")


if __name__ == "__main__":
    main()
