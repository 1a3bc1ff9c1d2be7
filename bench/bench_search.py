"""Search quality: TPE vs random, and what pruning saves at equal accuracy, on a fixed digits space.

How it stays affordable: the search space is a grid of categorical choices (below).  Every
configuration on the grid is trained **once**, through the product's own path
(``LocalExecutor`` -> ``run_trial``, 2 workers, full digits, ``EPOCHS`` epochs), and its
per-epoch validation-accuracy curve is cached in ``bench/out/search_grid.json``.  Studies
are then *replayed*: Optuna picks a configuration, the objective looks its curve up,
reports it epoch by epoch (so the pruner sees exactly what it would have seen live) and
returns the final validation accuracy.  Hundreds of 30-trial studies then take seconds,
and every sampler faces the same landscape.  Samplers and pruners are built by
``core.study.make_sampler`` / ``make_pruner``, i.e. with the product's settings.

Pruning is judged at equal accuracy: per seed, the mark is the unpruned TPE study's best at
``--trials`` trials minus ``--tolerance`` (0.5 points); every pruner variant in
``PRUNER_VARIANTS`` runs TPE (same seed) for up to ``--max-trials`` trials until its
best-so-far reaches the mark, and epochs spent until then are compared (median over seeds, a
seed that never gets there counting as infinite), with a paired bootstrap 90% interval.

Usage: ``python bench/bench_search.py [--seeds 20] [--trials 30] [--max-trials 90] [--procs N] [--out F] [--rebuild]``.
Prints a table and writes ``bench/out/bench_search.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
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


# Pruner variants tried in the equal-accuracy comparison.  "product" entries are built by
# core.study.make_pruner exactly as the product builds them; the others are the same Optuna
# classes with other n_startup_trials / n_warmup_steps / min_resource / reduction_factor.
PRUNER_VARIANTS: dict[str, tuple[str, dict | None]] = {
    "median (product: startup 4, warmup 2)": ("median", None),
    "median startup 4, warmup 3": ("median", {"n_startup_trials": 4, "n_warmup_steps": 3}),
    "median startup 4, warmup 4": ("median", {"n_startup_trials": 4, "n_warmup_steps": 4}),
    "median startup 10, warmup 2": ("median", {"n_startup_trials": 10, "n_warmup_steps": 2}),
    "median startup 10, warmup 3": ("median", {"n_startup_trials": 10, "n_warmup_steps": 3}),
    "median startup 10, warmup 4": ("median", {"n_startup_trials": 10, "n_warmup_steps": 4}),
    "median startup 10, warmup 5": ("median", {"n_startup_trials": 10, "n_warmup_steps": 5}),
    "hyperband (product: min 1, rf 3)": ("hyperband", None),
    "hyperband min 2, rf 3": ("hyperband", {"min_resource": 2, "reduction_factor": 3}),
    "hyperband min 1, rf 2": ("hyperband", {"min_resource": 1, "reduction_factor": 2}),
    "sha (product: min 1, rf 3)": ("successive_halving", None),
    "sha min 2, rf 3": ("successive_halving", {"min_resource": 2, "reduction_factor": 3}),
    "sha min 3, rf 2": ("successive_halving", {"min_resource": 3, "reduction_factor": 2}),
    "sha min 1, rf 2": ("successive_halving", {"min_resource": 1, "reduction_factor": 2}),
    "sha min 2, rf 2": ("successive_halving", {"min_resource": 2, "reduction_factor": 2}),
    "sha min 4, rf 2": ("successive_halving", {"min_resource": 4, "reduction_factor": 2}),
    "hyperband min 2, rf 2": ("hyperband", {"min_resource": 2, "reduction_factor": 2}),
    "hyperband min 3, rf 2": ("hyperband", {"min_resource": 3, "reduction_factor": 2}),
    "median startup 4, warmup 5": ("median", {"n_startup_trials": 4, "n_warmup_steps": 5}),
    "median startup 7, warmup 3": ("median", {"n_startup_trials": 7, "n_warmup_steps": 3}),
}


def _pruner(kind: str, kw: dict | None, cfg):
    import optuna

    from core.study import make_pruner

    if kw is None or kind == "none":
        return make_pruner(cfg)
    if kind == "median":
        return optuna.pruners.MedianPruner(**kw)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(max_resource=EPOCHS, **kw)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**kw)
    raise ValueError(kind)


def replay(grid: dict[str, dict], sampler_name: str, pruner: tuple[str, dict | None], seed: int, trials: int,
           stop_at: float | None = None, min_trials: int = 0) -> dict:
    """One replayed study of up to ``trials`` trials (sequential, one worker).

    Each trial reports its cached val_accuracy per epoch (step = epoch, from 1) and asks
    ``should_prune`` after each, as ``StudyRunner._on_epoch`` does live.  A trial the pruner
    flags after its *last* epoch has trained fully; live it finishes before the stop arrives
    and is told COMPLETE, so here too.  ``trace[i]`` = (epochs spent, best-so-far completed
    value) after trial i.  With ``stop_at``, the study stops once its best-so-far reaches it and
    at least ``min_trials`` trials ran (later trials cannot change when the mark was reached).
    """
    import optuna

    from core.config import StudyConfig
    from core.study import make_sampler

    kind, kw = pruner
    cfg = StudyConfig(name="replay", n_trials=trials, epochs=EPOCHS, sampler=sampler_name, pruner=kind, seed=seed)
    # a fixed name per seed: HyperbandPruner assigns brackets by a hash of study name + trial number
    study = optuna.create_study(study_name=f"replay-{seed}", direction="maximize", sampler=make_sampler(cfg),
                                pruner=_pruner(kind, kw, cfg))
    state = {"epochs": 0, "best": float("-inf")}
    trace: list[tuple[int, float]] = []

    def objective(trial: optuna.Trial) -> float:
        cfg_ = {name: trial.suggest_categorical(name, choices) for name, choices in GRID.items()}
        rec = grid[_key(cfg_)]
        curve = rec["curve"]
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            if trial.should_prune() and epoch < len(curve):
                state["epochs"] += epoch
                trace.append((state["epochs"], state["best"]))
                raise optuna.TrialPruned()
        state["epochs"] += len(curve)
        state["best"] = max(state["best"], rec["final"])
        trace.append((state["epochs"], state["best"]))
        return rec["final"]

    def stopper(study_: optuna.Study, _trial) -> None:
        if stop_at is not None and len(trace) >= min_trials and state["best"] >= stop_at - 1e-9:
            study_.stop()

    study.optimize(objective, n_trials=trials, callbacks=[stopper])
    return {"trace": trace, "pruned": sum(t.state.name == "PRUNED" for t in study.trials)}


def at_trials(run: dict, n: int) -> dict:
    """Best, epochs and epochs-to-best after the first ``n`` trials of a replay."""
    tr = run["trace"][:n]
    best = tr[-1][1]
    return {"best": best, "epochs": tr[-1][0], "epochs_to_best": next(e for e, b in tr if b >= best)}


def epochs_to_reach(trace: list[tuple[int, float]], target: float) -> int | None:
    """Epochs spent when the best-so-far first reached ``target`` (None: never)."""
    return next((e for e, b in trace if b >= target - 1e-9), None)


def _job(args: tuple) -> tuple:
    key, grid_path, sampler, pruner, seed, trials, stop_at, min_trials = args
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    grid = _GRID_CACHE.setdefault(grid_path, json.loads(Path(grid_path).read_text()))
    return key, seed, replay(grid, sampler, pruner, seed, trials, stop_at, min_trials)


_GRID_CACHE: dict[str, dict] = {}


def _run_all(jobs: list[tuple], procs: int) -> dict:
    out: dict = {}
    if procs <= 1:
        results = map(_job, jobs)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(procs)
        results = pool.imap_unordered(_job, jobs, chunksize=2)
    for key, seed, r in results:
        out.setdefault(key, {})[seed] = r
    if procs > 1:
        pool.close()
        pool.join()
    return out


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _boot_ratio(plain: list[float], pruned: list[float], n: int = 2000) -> tuple[float, float]:
    """90% bootstrap interval (seeds resampled, paired) of median(plain) / median(pruned)."""
    import random

    rng = random.Random(0)
    k = len(plain)
    rs = []
    for _ in range(n):
        idx = [rng.randrange(k) for _ in range(k)]
        d = statistics.median(pruned[i] for i in idx)
        rs.append(statistics.median(plain[i] for i in idx) / d if d else 0.0)
    rs.sort()
    return round(rs[int(0.05 * n)], 3), round(rs[int(0.95 * n) - 1], 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=30, help="trials of the unpruned reference studies")
    ap.add_argument("--max-trials", type=int, default=90, help="trial budget of a pruned study chasing the mark")
    ap.add_argument("--tolerance", type=float, default=0.005, help="'within' this much of the unpruned best (0.005 = 0.5 points)")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rebuild", action="store_true", help="retrain the grid instead of using the cache")
    ap.add_argument("--out", default="bench_search.json", help="result file name under bench/out")
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
    seeds = list(range(args.seeds))
    tol = args.tolerance
    inf = float("inf")

    # 1) TPE vs random, no pruning, args.trials each.  Also run the unpruned TPE study on to
    #    max_trials (its first args.trials trials are the same study: same seed, same startup).
    t1 = time.perf_counter()
    gp = str(grid_path)
    base = _run_all([("random", gp, "random", ("none", None), s, args.trials, None, 0) for s in seeds]
                    + [("tpe", gp, "tpe", ("none", None), s, args.max_trials, None, 0) for s in seeds], args.procs)
    ref = {s: at_trials(base["tpe"][s], args.trials) for s in seeds}  # the unpruned reference at args.trials
    rnd = {s: at_trials(base["random"][s], args.trials) for s in seeds}
    target = {s: ref[s]["best"] - tol for s in seeds}  # per seed: within tol of the unpruned best at args.trials
    plain_to = {s: epochs_to_reach(base["tpe"][s]["trace"][:args.trials], target[s]) for s in seeds}
    assert all(v is not None for v in plain_to.values())

    # 2) every pruner variant, TPE, same seeds, up to max_trials, stopping once the mark is reached
    #    (and at least args.trials trials ran, for the equal-trials view).
    pr = _run_all([(name, gp, "tpe", spec, s, args.max_trials, target[s], args.trials)
                   for name, spec in PRUNER_VARIANTS.items() for s in seeds], args.procs)
    replay_s = time.perf_counter() - t1

    plain_med = _median([plain_to[s] for s in seeds])
    ref_best = [ref[s]["best"] for s in seeds]
    rows = {"tpe, no pruning": {
        "median_epochs_to_mark": plain_med, "ratio_vs_no_pruning": 1.0, "seeds_reached": args.seeds,
        "per_seed_epochs_to_mark": [plain_to[s] for s in seeds],
        "median_trials_to_mark": _median([next(i + 1 for i, (_, b) in enumerate(base["tpe"][s]["trace"]) if b >= target[s] - 1e-9) for s in seeds]),
        "median_best_at_equal_trials": _median(ref_best), "mean_best_at_equal_trials": round(statistics.fmean(ref_best), 4),
        "mean_epochs_at_equal_trials": round(statistics.fmean(ref[s]["epochs"] for s in seeds), 1),
        "mean_pruned_at_equal_trials": 0.0,
        "gap_points_at_equal_trials": 0.0, "setting": {"pruner": "none"}}}
    for name, (kind, kw) in PRUNER_VARIANTS.items():
        runs = pr[name]
        to = {s: epochs_to_reach(runs[s]["trace"], target[s]) for s in seeds}
        trials_to = [next((i + 1 for i, (_, b) in enumerate(runs[s]["trace"]) if b >= target[s] - 1e-9), None) for s in seeds]
        eq = {s: at_trials(runs[s], args.trials) for s in seeds}
        med_to = _median([to[s] if to[s] is not None else inf for s in seeds])  # unreached seeds count as infinite
        reached = [s for s in seeds if to[s] is not None]
        # per seed: did pruning get there >= 1.5x cheaper than no pruning (same seed, same mark)?
        wins = sum(1 for s in reached if plain_to[s] / to[s] >= 1.5)
        per_ratio = [plain_to[s] / to[s] if to[s] is not None else 0.0 for s in seeds]
        lo, hi = _boot_ratio([plain_to[s] for s in seeds], [to[s] if to[s] is not None else inf for s in seeds])
        rows[f"tpe + {name}"] = {
            "median_epochs_to_mark": med_to, "ratio_vs_no_pruning": round(plain_med / med_to, 3) if med_to else None,
            "seeds_reached": len(reached),
            "seeds_ge_1_5x_cheaper": wins,
            "median_per_seed_ratio": round(_median(per_ratio), 3),
            "ratio_90pct_bootstrap_ci": [lo, hi],
            "per_seed_epochs_to_mark": [to[s] for s in seeds],
            "median_trials_to_mark": _median([t if t is not None else inf for t in trials_to]),
            "epochs_if_not_reached": [runs[s]["trace"][-1][0] for s in seeds if to[s] is None],
            "median_best_at_equal_trials": _median([eq[s]["best"] for s in seeds]),
            "mean_best_at_equal_trials": round(statistics.fmean(eq[s]["best"] for s in seeds), 4),
            "mean_epochs_at_equal_trials": round(statistics.fmean(eq[s]["epochs"] for s in seeds), 1),
            "gap_points_at_equal_trials": round(100 * (_median(ref_best) - _median([eq[s]["best"] for s in seeds])), 2),
            "setting": {"pruner": kind, **(kw or {"as": "core.study.make_pruner"})}}

    meets = [n for n, r in rows.items() if n != "tpe, no pruning" and (r["ratio_vs_no_pruning"] or 0) >= 1.5]
    rnd_best = [rnd[s]["best"] for s in seeds]
    strategies = {
        "random": {"median_best": _median(rnd_best), "mean_best": round(statistics.fmean(rnd_best), 4),
                   "mean_epochs": round(statistics.fmean(rnd[s]["epochs"] for s in seeds), 1),
                   "mean_epochs_to_best": round(statistics.fmean(rnd[s]["epochs_to_best"] for s in seeds), 1),
                   "per_seed_best": rnd_best},
        "tpe": {"median_best": _median(ref_best), "mean_best": round(statistics.fmean(ref_best), 4),
                "mean_epochs": round(statistics.fmean(ref[s]["epochs"] for s in seeds), 1),
                "mean_epochs_to_best": round(statistics.fmean(ref[s]["epochs_to_best"] for s in seeds), 1),
                "per_seed_best": ref_best},
    }
    tpe_vs_random = strategies["tpe"]["median_best"] >= strategies["random"]["median_best"]
    val_step = min(b - a for a, b in zip(sorted(set(finals)), sorted(set(finals))[1:]))
    res = {
        "grid": {"configs": len(grid), "epochs": EPOCHS, "space": GRID, "fixed": FIXED, "train_s_this_run": round(grid_s, 1),
                 "trial_s_sum": round(sum(v.get("seconds") or 0 for v in grid.values()), 1),
                 "best_possible": finals[-1], "median_config": statistics.median(finals), "worst": finals[0],
                 "val_accuracy_step_points": round(100 * val_step, 3), "cores": os.cpu_count()},
        "seeds": args.seeds, "trials": args.trials, "max_trials_pruned": args.max_trials, "tolerance": tol,
        "replay_s": round(replay_s, 1),
        "method": ("Per seed, the mark is the unpruned TPE study's best at `trials` trials minus `tolerance`. Each "
                   "strategy (TPE, make_sampler settings, same seed) runs until its best-so-far completed value reaches "
                   "the mark; pruned studies may run up to `max_trials`. Epochs to the mark are compared by median over "
                   "seeds (a seed that never reaches it counts as infinite). Replay is sequential (1 worker)."),
        "strategies": strategies,
        "pruning": rows,
        "checks": {"tpe_median_best_ge_random": tpe_vs_random,
                   "pruning_meets_1_5x_at_equal_accuracy": meets,
                   "pruning_ok": bool(meets)},
    }
    print(f"\ngrid: {len(grid)} configurations x {EPOCHS} epochs (trained once, {grid_s:.0f} s; cached in {grid_path.name}); "
          f"final val acc best {finals[-1]:.4f}, median {statistics.median(finals):.4f}, worst {finals[0]:.4f}; "
          f"one val sample = {100 * val_step:.2f} points")
    print(f"replay: {args.seeds} seeds; reference {args.trials} trials, pruned studies up to {args.max_trials} ({replay_s:.0f} s)\n")
    print(f"{'strategy':<12} {'median best':>11} {'mean best':>9} {'epochs':>7} {'epochs to best':>14}")
    for name, s in strategies.items():
        print(f"{name:<12} {s['median_best']:>11.4f} {s['mean_best']:>9.4f} {s['mean_epochs']:>7.1f} {s['mean_epochs_to_best']:>14.1f}")
    print(f"TPE median best >= random's: {tpe_vs_random}\n")
    print(f"epochs until best-so-far is within {100 * tol:.1f} points of unpruned TPE's best at {args.trials} trials "
          f"(median over {args.seeds} seeds; pruned studies up to {args.max_trials} trials)")
    hdr = (f"{'strategy':<44} {'epochs':>7} {'ratio':>6} {'90% CI':>13} {'reached':>8} {'>=1.5x':>6} {'trials':>6} "
           f"| @{args.trials} trials: {'med best':>8} {'mean best':>9} {'epochs':>7}")
    print(hdr)
    print("-" * len(hdr))
    for name, r in rows.items():
        ratio = r["ratio_vs_no_pruning"]
        ci = r.get("ratio_90pct_bootstrap_ci")
        ci_s = f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-"
        print(f"{name:<44} {r['median_epochs_to_mark']:>7} {ratio if ratio is not None else '-':>6} {ci_s:>13} "
              f"{r['seeds_reached']:>5}/{args.seeds:<2} {r.get('seeds_ge_1_5x_cheaper', '-'):>6} {r['median_trials_to_mark']:>6} "
              f"| {'':>10}{r['median_best_at_equal_trials']:>8.4f} {r['mean_best_at_equal_trials']:>9.4f} "
              f"{r['mean_epochs_at_equal_trials']:>7.1f}")
    print(f"\npruners meeting >= 1.5x fewer epochs to the mark: {meets or 'none'}")
    def clean(o):  # JSON has no infinity: a mark never reached is written as null
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    (OUT / args.out).write_text(json.dumps(clean(res), indent=2, allow_nan=False))
    print(f"\nwritten {OUT / args.out}")


if __name__ == "__main__":  # grid workers are spawned and re-import this file
    main()
