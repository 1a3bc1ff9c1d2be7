"""Search quality: TPE vs random, and what median pruning saves, on a fixed digits space.

How it stays affordable: the search space is a grid of categorical choices (below).  Every
configuration on the grid is trained **once**, through the product's own path
(``LocalExecutor`` -> ``run_trial``, 2 workers, full digits, ``EPOCHS`` epochs), and its
per-epoch validation-accuracy curve is cached in ``bench/out/search_grid.json``.  Studies
are then *replayed*: Optuna picks a configuration, the objective looks its curve up,
reports it epoch by epoch (so the pruner sees exactly what it would have seen live) and
returns the final validation accuracy.  Hundreds of 30-trial studies then take seconds,
and every sampler faces the same landscape.  Samplers and pruners are built by
``core.study.make_sampler`` / ``make_pruner``, i.e. with the product's settings.

Usage: ``python bench/bench_search.py [--seeds 20] [--trials 30] [--rebuild]``.
Prints a table and writes ``bench/out/bench_search.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

EPOCHS = 6
GRID: dict[str, list] = {
    "filters": [8, 32],
    "dense_units": [16, 64],
    "learning_rate": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
    "dropout": [0.0, 0.5],
    "batch_size": [32, 128],
}
FIXED = {"conv_blocks": 2, "batch_norm": True}


def _key(cfg: dict) -> str:
    return json.dumps({k: cfg[k] for k in GRID}, sort_keys=True)


def build_grid(path: Path, workers: int = 2) -> dict[str, dict]:
    """Train every grid configuration once (cached); return {config key: {"curve", "final", "seconds"}}."""
    from core.config import Settings, TrialSpec
    from core.executors import DoneEvent
    from core.executors.local import LocalExecutor

    cache: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}
    configs = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    todo = [c for c in configs if _key(c) not in cache]
    if not todo:
        return cache
    home = Path(tempfile.mkdtemp(prefix="bench_search_", dir=OUT))
    ex = LocalExecutor(workers=workers, settings=Settings(home=home))
    t0 = time.perf_counter()
    print(f"training {len(todo)} grid configurations x {EPOCHS} epochs on {workers} workers (cached afterwards)...",
          flush=True)
    try:
        queue = list(enumerate(todo))
        by_number: dict[int, dict] = {}
        while queue or ex.running:
            while queue and ex.free_slots:
                n, cfg = queue.pop(0)
                by_number[n] = cfg
                ex.submit(TrialSpec(dataset="digits", params={**FIXED, **cfg}, epochs=EPOCHS, seed=0, data_seed=0,
                                    trial_number=n, save_model=False, study="grid",
                                    artifacts_dir=str(home / f"trial-{n:04d}")))
            for ev in ex.events(1.0):
                if isinstance(ev, DoneEvent):
                    r = ev.result
                    curve = [v if v is not None else 0.0 for v in r.history.get("val_accuracy", [])]
                    cache[_key(by_number[ev.trial_number])] = {
                        "curve": curve, "final": r.val_accuracy if r.status == "complete" else 0.0,
                        "status": r.status, "seconds": r.timings.get("total")}
                    if len(cache) % 8 == 0:
                        path.write_text(json.dumps(cache))
                        print(f"  {len(cache)}/{len(configs)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        ex.shutdown()
        path.write_text(json.dumps(cache))
    return cache


def replay(grid: dict[str, dict], sampler_name: str, pruner_name: str, seed: int, trials: int) -> dict:
    """One replayed study; returns best final val acc, epochs spent, epochs until the best was found."""
    import optuna

    from core.config import StudyConfig
    from core.study import make_pruner, make_sampler

    cfg = StudyConfig(name="replay", n_trials=trials, epochs=EPOCHS, sampler=sampler_name, pruner=pruner_name, seed=seed)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(cfg), pruner=make_pruner(cfg))
    spent = {"epochs": 0}
    trace: list[tuple[int, float]] = []  # (epochs spent so far, best so far)

    def objective(trial: optuna.Trial) -> float:
        cfg_ = {name: trial.suggest_categorical(name, choices) for name, choices in GRID.items()}
        rec = grid[_key(cfg_)]
        for epoch, value in enumerate(rec["curve"], start=1):
            trial.report(value, epoch)
            if trial.should_prune():
                spent["epochs"] += epoch
                raise optuna.TrialPruned()
        spent["epochs"] += len(rec["curve"])
        best = max([rec["final"]] + [b for _, b in trace[-1:]])
        trace.append((spent["epochs"], best))
        return rec["final"]

    study.optimize(objective, n_trials=trials)
    best = max(t.value for t in study.trials if t.state.name == "COMPLETE")
    epochs_to_best = next(e for e, b in trace if b >= best)
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    return {"best": best, "epochs": spent["epochs"], "epochs_to_best": epochs_to_best, "pruned": pruned, "trace": trace}


def epochs_to_reach(trace: list[tuple[int, float]], target: float) -> int | None:
    """Epochs spent when the best-so-far first reached ``target`` (None: never)."""
    return next((e for e, b in trace if b >= target - 1e-9), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--rebuild", action="store_true", help="retrain the grid instead of using the cache")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HPO_HOME", str(OUT / "home_search"))  # logs and runs stay under bench/out
    from core.logs import setup_logging

    setup_logging("bench")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    grid_path = OUT / "search_grid.json"
    if args.rebuild and grid_path.exists():
        grid_path.unlink()
    t0 = time.perf_counter()
    grid = build_grid(grid_path)
    grid_s = time.perf_counter() - t0
    finals = sorted(v["final"] for v in grid.values())

    t1 = time.perf_counter()
    strategies = {"random": ("random", "none"), "tpe": ("tpe", "none"), "tpe+median": ("tpe", "median")}
    runs = {name: [replay(grid, s, p, seed, args.trials) for seed in range(args.seeds)]
            for name, (s, p) in strategies.items()}
    # Equal-accuracy view: pruning frees epochs to try more configurations.  Per seed, the target
    # is the no-pruning study's best minus 0.5 points; count the epochs each strategy spends until
    # its best-so-far reaches it (the pruned study may run up to twice the trials).
    long_pruned = [replay(grid, "tpe", "median", seed, 2 * args.trials) for seed in range(args.seeds)]
    to_target = []
    for plain, pruned in zip(runs["tpe"], long_pruned):
        target = plain["best"] - 0.005
        to_target.append((epochs_to_reach(plain["trace"], target), epochs_to_reach(pruned["trace"], target)))
    reached = [(a, b) for a, b in to_target if a is not None and b is not None]
    replay_s = time.perf_counter() - t1

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def mean(name: str, key: str) -> float:
        return statistics.fmean(r[key] for r in runs[name])

    tpe_vs_random = med("tpe", "best") >= med("random", "best")
    epoch_saving = mean("tpe", "epochs") / mean("tpe+median", "epochs")
    acc_gap_points = 100 * (med("tpe", "best") - med("tpe+median", "best"))
    target_ratio = statistics.fmean(a for a, _ in reached) / statistics.fmean(b for _, b in reached) if reached else 0.0
    for name in runs:
        for r in runs[name]:
            r.pop("trace")
    res = {
        "grid": {"configs": len(grid), "epochs": EPOCHS, "space": GRID, "fixed": FIXED, "train_s_this_run": round(grid_s, 1),
                 "trial_s_sum": round(sum(v.get("seconds") or 0 for v in grid.values()), 1),
                 "best_possible": finals[-1], "median_config": statistics.median(finals), "worst": finals[0],
                 "cores": os.cpu_count()},
        "seeds": args.seeds, "trials": args.trials, "replay_s": round(replay_s, 1),
        "strategies": {name: {"median_best": med(name, "best"), "mean_best": round(mean(name, "best"), 4),
                              "mean_epochs": round(mean(name, "epochs"), 1), "mean_epochs_to_best": round(mean(name, "epochs_to_best"), 1),
                              "mean_pruned": round(mean(name, "pruned"), 1),
                              "per_seed_best": [r["best"] for r in runs[name]]} for name in runs},
        "checks": {"tpe_median_best_ge_random": tpe_vs_random, "pruning_epoch_saving": round(epoch_saving, 3),
                   "pruning_best_gap_points": round(acc_gap_points, 2),
                   "pruning_ok_same_trials": epoch_saving >= 1.5 and acc_gap_points <= 0.5,
                   "epochs_to_within_half_point": {
                       "no_pruning_mean": round(statistics.fmean(a for a, _ in reached), 1) if reached else None,
                       "median_pruning_mean": round(statistics.fmean(b for _, b in reached), 1) if reached else None,
                       "ratio": round(target_ratio, 3), "seeds_reached": len(reached), "seeds": args.seeds,
                       "pruned_trials_allowed": 2 * args.trials}},
    }
    print(f"\ngrid: {len(grid)} configurations x {EPOCHS} epochs (trained once, {grid_s:.0f} s; cached in {grid_path.name}); "
          f"final val acc best {finals[-1]:.4f}, median {statistics.median(finals):.4f}, worst {finals[0]:.4f}")
    print(f"replay: {args.seeds} seeds x {args.trials} trials per strategy ({replay_s:.0f} s)\n")
    print(f"{'strategy':<12} {'median best':>11} {'mean best':>9} {'epochs':>7} {'epochs to best':>14} {'pruned':>6}")
    for name in runs:
        s = res["strategies"][name]
        print(f"{name:<12} {s['median_best']:>11.4f} {s['mean_best']:>9.4f} {s['mean_epochs']:>7.1f} "
              f"{s['mean_epochs_to_best']:>14.1f} {s['mean_pruned']:>6.1f}")
    print(f"\nTPE median best >= random's: {tpe_vs_random}")
    print(f"pruning, same {args.trials} trials: {epoch_saving:.2f}x fewer epochs (target >= 1.5), best accuracy "
          f"{acc_gap_points:+.2f} points below no pruning (target within 0.5)")
    print(f"pruning, epochs until the best is within 0.5 points of no-pruning's best: {target_ratio:.2f}x fewer "
          f"({len(reached)}/{args.seeds} seeds reached it within {2 * args.trials} pruned trials)")
    (OUT / "bench_search.json").write_text(json.dumps(res, indent=2))
    print(f"\nwritten {OUT / 'bench_search.json'}")


if __name__ == "__main__":  # grid workers are spawned and re-import this file
    main()
