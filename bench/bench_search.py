"""Search quality: TPE vs random, and what pruning saves at equal accuracy, on a fixed digits space.

How it stays affordable: the search space is a grid of categorical choices (below).  Every
configuration on the grid is trained **once**, through the product's own path
(``LocalExecutor`` -> ``run_trial``, 2 workers, full digits, ``GRID_EPOCHS`` epochs), and its
per-epoch validation-accuracy curve is cached in ``bench/out/search_grid_e15.json``.  Studies
are then *replayed*: Optuna picks a configuration, the objective looks its curve up,
reports it epoch by epoch (so the pruner sees exactly what it would have seen live) and
returns the final validation accuracy.  A study of E epochs per trial replays the first E
epochs of each curve (``truncate``), so one grid answers every horizon in ``HORIZONS``.
Hundreds of 30-trial studies take seconds, and every sampler faces the same landscape.
Samplers and pruners are built by ``core.study.make_sampler`` / ``make_pruner``, i.e. with the
product's settings, beside other settings of the same Optuna classes.

Pruning is judged per seed against the unpruned TPE study with the same seed, at equal trials
(epochs spent in ``--trials`` trials, and the gap between the bests) and at equal accuracy
(epochs until the best-so-far is within ``--tolerance`` of the unpruned best; see
:func:`horizon`).

Usage: ``python bench/bench_search.py [--seeds 40] [--trials 30] [--max-trials 90] [--epochs 3,4,...]
[--procs N] [--out F] [--rebuild]``.  Prints a table per horizon and writes
``bench/out/bench_search.json`` (or ``--out``).
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


def build_grid(path: Path, epochs: int, workers: int = 2) -> dict[str, dict]:
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
    print(f"training {len(todo)} grid configurations x {epochs} epochs on {workers} workers (cached afterwards)...",
          flush=True)
    try:
        queue = list(enumerate(todo))
        by_number: dict[int, dict] = {}
        while queue or ex.running:
            while queue and ex.free_slots:
                n, cfg = queue.pop(0)
                by_number[n] = cfg
                ex.submit(TrialSpec(dataset="digits", params={**FIXED, **cfg}, epochs=epochs, seed=0, data_seed=0,
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


# The grid is trained for GRID_EPOCHS epochs; a study of E <= GRID_EPOCHS epochs per trial is
# replayed on the first E epochs of each curve.  That is exact: no hyperparameter of the grid
# (nor the default constant learning rate) depends on the epoch budget, and the validation
# accuracy after epoch E is what an E-epoch trial returns.
GRID_EPOCHS = 15
HORIZONS = (3, 4, 5, 6, 8, 10, 12, 15)
HEADLINE = 10  # the search space's default for the `epochs` knob


def truncate(grid: dict[str, dict], epochs: int) -> dict[str, dict]:
    """The grid as E-epoch trials: curves cut after ``epochs``; a trial that failed before then scores 0."""
    out = {}
    for key, rec in grid.items():
        curve = rec["curve"][:epochs]
        ok = rec.get("status", "complete") == "complete" or len(rec["curve"]) > epochs
        out[key] = {"curve": curve, "final": curve[-1] if ok and len(curve) == epochs else 0.0}
    return out


def pruner_variants(epochs: int) -> dict[str, tuple[str, dict | None]]:
    """Pruners compared at an E-epoch horizon: the product's three (built by core.study.make_pruner,
    ``None``) and the same Optuna classes with other settings, incl. Optuna's own defaults.
    Variants that coincide at this horizon are listed once."""
    e = epochs
    third, half = max(1, e // 3), max(1, e // 2)
    cands: list[tuple[str, dict | None]] = [
        ("successive_halving", None), ("median", None), ("hyperband", None),
        ("successive_halving", {"min_resource": 1, "reduction_factor": 4}),  # Optuna's defaults
        ("successive_halving", {"min_resource": 1, "reduction_factor": 2}),
        ("successive_halving", {"min_resource": 2, "reduction_factor": 3}),
        ("successive_halving", {"min_resource": third, "reduction_factor": 2}),  # the earlier product rule
        ("successive_halving", {"min_resource": half, "reduction_factor": 2}),
        ("median", {"n_startup_trials": 5, "n_warmup_steps": 0}),  # Optuna's defaults
        ("median", {"n_startup_trials": 4, "n_warmup_steps": 1}),
        ("hyperband", {"min_resource": 1, "reduction_factor": 3}),  # Optuna's defaults
        ("hyperband", {"min_resource": 1, "reduction_factor": 2}),
        ("hyperband", {"min_resource": 2, "reduction_factor": 3}),
    ]
    out: dict[str, tuple[str, dict | None]] = {}
    seen: set = set()
    for kind, kw in cands:
        if kw and kw.get("min_resource", 1) >= e:
            continue  # its first rung is the last epoch: nothing left to prune
        settings = _settings(_pruner(kind, kw, epochs))
        sig = (kind, tuple(sorted(settings.items())))
        if sig in seen:
            continue
        seen.add(sig)
        label = {"successive_halving": "sha", "median": "median", "hyperband": "hyperband"}[kind]
        desc = ", ".join(f"{_SHORT[k]} {v}" for k, v in settings.items())
        out[f"{label} {desc}" + (" (product)" if kw is None else "")] = (kind, kw)
    return out


_SHORT = {"min_resource": "min", "reduction_factor": "rf", "n_startup_trials": "startup", "n_warmup_steps": "warmup"}


def _settings(pruner) -> dict:
    """The settings of an Optuna pruner object (for labels and the JSON)."""
    names = {"SuccessiveHalvingPruner": ("min_resource", "reduction_factor"),
             "HyperbandPruner": ("min_resource", "reduction_factor"),
             "MedianPruner": ("n_startup_trials", "n_warmup_steps")}[type(pruner).__name__]
    return {n: getattr(pruner, f"_{n}") for n in names}


def _pruner(kind: str, kw: dict | None, epochs: int):
    import optuna

    from core.config import StudyConfig
    from core.study import make_pruner

    if kw is None or kind == "none":
        return make_pruner(StudyConfig(name="replay", epochs=epochs, pruner=kind))
    if kind == "median":
        return optuna.pruners.MedianPruner(**kw)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(max_resource=epochs, **kw)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**kw)
    raise ValueError(kind)


def replay(grid: dict[str, dict], epochs: int, sampler_name: str, pruner: tuple[str, dict | None], seed: int,
           trials: int, stop_at: float | None = None, min_trials: int = 0) -> dict:
    """One replayed study of up to ``trials`` trials (sequential, one worker) on an ``epochs``-epoch grid.

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
    cfg = StudyConfig(name="replay", n_trials=trials, epochs=epochs, sampler=sampler_name, pruner=kind, seed=seed)
    # a fixed name per seed: HyperbandPruner assigns brackets by a hash of study name + trial number
    study = optuna.create_study(study_name=f"replay-{seed}", direction="maximize", sampler=make_sampler(cfg),
                                pruner=_pruner(kind, kw, epochs))
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
    key, grid_path, epochs, sampler, pruner, seed, trials, stop_at, min_trials = args
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if (grid_path, epochs) not in _GRID_CACHE:
        _GRID_CACHE[(grid_path, epochs)] = truncate(json.loads(Path(grid_path).read_text()), epochs)
    return key, seed, replay(_GRID_CACHE[(grid_path, epochs)], epochs, sampler, pruner, seed, trials, stop_at, min_trials)


_GRID_CACHE: dict[tuple, dict] = {}


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


def _trials_to(trace: list[tuple[int, float]], target: float) -> int | None:
    return next((i + 1 for i, (_, b) in enumerate(trace) if b >= target - 1e-9), None)


def horizon(grid_path: Path, epochs: int, args) -> dict:
    """TPE vs random and every pruner variant on the grid cut to ``epochs`` epochs per trial.

    Pruning is judged two ways, per seed against the unpruned TPE study with the same seed:

    * equal trials: both run ``args.trials`` trials; epochs spent (ratio) and the gap between
      their best validation accuracies (target: ratio >= 1.5 with the median gap <= tolerance);
    * equal accuracy: the mark is the unpruned best at ``args.trials`` trials minus the
      tolerance; the pruned study runs (up to ``args.max_trials``) until its best-so-far reaches
      it; epochs to the mark are compared by median over seeds (never reached = infinite).
    """
    grid = truncate(json.loads(grid_path.read_text()), epochs)
    finals = sorted(v["final"] for v in grid.values())
    seeds = list(range(args.seeds))
    tol = args.tolerance
    inf = float("inf")
    gp = str(grid_path)
    t1 = time.perf_counter()
    # 1) TPE vs random, no pruning; the TPE study runs on to max_trials (its first `trials`
    #    trials are the reference: same seed, same startup).
    base = _run_all([("random", gp, epochs, "random", ("none", None), s, args.trials, None, 0) for s in seeds]
                    + [("tpe", gp, epochs, "tpe", ("none", None), s, args.max_trials, None, 0) for s in seeds],
                    args.procs)
    ref = {s: at_trials(base["tpe"][s], args.trials) for s in seeds}
    rnd = {s: at_trials(base["random"][s], args.trials) for s in seeds}
    target = {s: ref[s]["best"] - tol for s in seeds}
    plain_to = {s: epochs_to_reach(base["tpe"][s]["trace"][:args.trials], target[s]) for s in seeds}
    assert all(v is not None for v in plain_to.values())
    # 2) every pruner variant, TPE, same seeds, until the mark is reached and at least `trials` ran
    variants = pruner_variants(epochs)
    pr = _run_all([(name, gp, epochs, "tpe", spec, s, args.max_trials, target[s], args.trials)
                   for name, spec in variants.items() for s in seeds], args.procs)
    replay_s = time.perf_counter() - t1

    plain_med = _median([plain_to[s] for s in seeds])
    ref_best = [ref[s]["best"] for s in seeds]
    ref_epochs = [ref[s]["epochs"] for s in seeds]
    rows = {"no pruning": {
        "setting": {"pruner": "none"},
        "eq_trials": {"median_epochs": _median(ref_epochs), "ratio": 1.0, "median_best": _median(ref_best),
                      "mean_best": round(statistics.fmean(ref_best), 4), "median_gap_points": 0.0,
                      "seeds_within_tolerance": args.seeds, "mean_pruned": 0.0},
        "eq_accuracy": {"median_epochs_to_mark": plain_med, "ratio": 1.0, "seeds_reached": args.seeds,
                        "per_seed_epochs_to_mark": [plain_to[s] for s in seeds]}}}
    for name, (kind, kw) in variants.items():
        runs = pr[name]
        eq = {s: at_trials(runs[s], args.trials) for s in seeds}
        gaps = [100 * (ref[s]["best"] - eq[s]["best"]) for s in seeds]
        eq_epochs = [eq[s]["epochs"] for s in seeds]
        to = {s: epochs_to_reach(runs[s]["trace"], target[s]) for s in seeds}
        med_to = _median([to[s] if to[s] is not None else inf for s in seeds])
        lo, hi = _boot_ratio([plain_to[s] for s in seeds], [to[s] if to[s] is not None else inf for s in seeds])
        elo, ehi = _boot_ratio(ref_epochs, eq_epochs)
        rows[name] = {
            "setting": {"pruner": kind, **_settings(_pruner(kind, kw, epochs)), "product": kw is None},
            "eq_trials": {"median_epochs": _median(eq_epochs), "ratio": round(_median(ref_epochs) / _median(eq_epochs), 3),
                          "ratio_90pct_bootstrap_ci": [elo, ehi],
                          "median_best": _median([eq[s]["best"] for s in seeds]),
                          "mean_best": round(statistics.fmean(eq[s]["best"] for s in seeds), 4),
                          "median_gap_points": round(_median(gaps), 3), "mean_gap_points": round(statistics.fmean(gaps), 3),
                          "seeds_within_tolerance": sum(g <= 100 * tol + 1e-9 for g in gaps),
                          "mean_pruned": round(statistics.fmean(runs[s]["pruned"] for s in seeds), 1)},
            "eq_accuracy": {"median_epochs_to_mark": med_to,
                            "ratio": round(plain_med / med_to, 3) if med_to else None,
                            "ratio_90pct_bootstrap_ci": [lo, hi],
                            "seeds_reached": sum(to[s] is not None for s in seeds),
                            "seeds_ge_1_5x_cheaper": sum(1 for s in seeds if to[s] and plain_to[s] / to[s] >= 1.5),
                            "per_seed_epochs_to_mark": [to[s] for s in seeds],
                            "median_trials_to_mark": _median([t if t is not None else inf for t in
                                                              (_trials_to(runs[s]["trace"], target[s]) for s in seeds)])}}
    for r in rows.values():
        r["meets_eq_trials"] = r["eq_trials"]["ratio"] >= 1.5 and r["eq_trials"]["median_gap_points"] <= 100 * tol + 1e-9
        r["meets_eq_accuracy"] = (r["eq_accuracy"]["ratio"] or 0) >= 1.5
    rnd_best = [rnd[s]["best"] for s in seeds]
    steps = sorted(set(finals))
    return {
        "epochs": epochs,
        "grid": {"best_possible": finals[-1], "median_config": statistics.median(finals), "worst": finals[0],
                 "configs_within_tolerance_of_best": sum(f >= finals[-1] - tol - 1e-9 for f in finals),
                 "val_accuracy_step_points": round(100 * min(b - a for a, b in zip(steps, steps[1:])), 3)},
        "replay_s": round(replay_s, 1),
        "strategies": {
            "random": {"median_best": _median(rnd_best), "mean_best": round(statistics.fmean(rnd_best), 4),
                       "per_seed_best": rnd_best},
            "tpe": {"median_best": _median(ref_best), "mean_best": round(statistics.fmean(ref_best), 4),
                    "per_seed_best": ref_best}},
        "tpe_median_best_ge_random": _median(ref_best) >= _median(rnd_best),
        "pruning": rows,
    }


def _print_horizon(h: dict, args) -> None:
    g = h["grid"]
    st = h["strategies"]
    print(f"\n=== {h['epochs']} epochs per trial: best config {g['best_possible']:.4f}, median {g['median_config']:.4f}; "
          f"{g['configs_within_tolerance_of_best']} configs within {100 * args.tolerance:.1f} pts of the best "
          f"({h['replay_s']:.0f} s replay)")
    print(f"TPE median best {st['tpe']['median_best']:.4f} (mean {st['tpe']['mean_best']:.4f}) vs random "
          f"{st['random']['median_best']:.4f} (mean {st['random']['mean_best']:.4f}): TPE >= random: "
          f"{h['tpe_median_best_ge_random']}")
    hdr = (f"{'pruner':<40} | @{args.trials} trials: {'epochs':>6} {'ratio':>5} {'gap':>5} {'ok seeds':>8} | "
           f"to mark: {'epochs':>6} {'ratio':>5} {'90% CI':>11} {'reached':>7}")
    print(hdr)
    print("-" * len(hdr))
    for name, r in h["pruning"].items():
        e, a = r["eq_trials"], r["eq_accuracy"]
        ci = a.get("ratio_90pct_bootstrap_ci")
        ci_s = f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-"
        ratio_a = f"{a['ratio']:.2f}" if a["ratio"] else "-"
        print(f"{name:<40} | {'':>11}{e['median_epochs']:>6} {e['ratio']:>5.2f} {e['median_gap_points']:>5.2f} "
              f"{e['seeds_within_tolerance']:>5}/{args.seeds:<2} | {'':>9}{a['median_epochs_to_mark']:>6} {ratio_a:>5} "
              f"{ci_s:>11} {a['seeds_reached']:>4}/{args.seeds:<2}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--trials", type=int, default=30, help="trials of the unpruned reference studies")
    ap.add_argument("--max-trials", type=int, default=90, help="trial budget of a pruned study chasing the mark")
    ap.add_argument("--tolerance", type=float, default=0.005, help="'within' this much of the unpruned best (0.005 = 0.5 points)")
    ap.add_argument("--epochs", default=",".join(map(str, HORIZONS)),
                    help=f"epochs per trial to replay, comma-separated, each <= {GRID_EPOCHS}")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rebuild", action="store_true", help="retrain the grid instead of using the cache")
    ap.add_argument("--out", default="bench_search.json", help="result file name under bench/out")
    args = ap.parse_args()
    horizons = [int(x) for x in args.epochs.split(",")]
    if not all(1 <= e <= GRID_EPOCHS for e in horizons):
        ap.error(f"--epochs: each value must be from 1 to {GRID_EPOCHS}")

    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HPO_HOME", str(OUT / "home_search"))  # logs and runs stay under bench/out
    from core.logs import setup_logging

    setup_logging("bench")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    grid_path = OUT / f"search_grid_e{GRID_EPOCHS}.json"
    if args.rebuild and grid_path.exists():
        grid_path.unlink()
    t0 = time.perf_counter()
    grid = build_grid(grid_path, GRID_EPOCHS)
    grid_s = time.perf_counter() - t0
    mismatch = max(abs(v["curve"][-1] - v["final"]) for v in grid.values() if v["status"] == "complete")
    print(f"grid: {len(grid)} configurations x {GRID_EPOCHS} epochs, trained once ({grid_s:.0f} s this run; "
          f"{sum(v.get('seconds') or 0 for v in grid.values()):.0f} s of trials; cached in {grid_path.name}); "
          f"replay: {args.seeds} seeds, reference {args.trials} trials, pruned studies up to {args.max_trials}")
    results = []
    for e in horizons:
        h = horizon(grid_path, e, args)
        _print_horizon(h, args)
        results.append(h)
    meets = {h["epochs"]: {"eq_trials": [n for n, r in h["pruning"].items() if r["meets_eq_trials"] and n != "no pruning"],
                           "eq_accuracy": [n for n, r in h["pruning"].items() if r["meets_eq_accuracy"] and n != "no pruning"]}
             for h in results}
    print(f"\nthe product's default (successive halving as core.study.make_pruner builds it) at each horizon, "
          f"{args.seeds} seeds:")
    print(f"{'epochs':>6} {'setting':<14} | {'to mark: ratio':>14} {'90% CI':>11} {'reached':>7} | "
          f"{'@' + str(args.trials) + ' trials: ratio':>18} {'gap':>5}")
    default = {}
    for h in results:
        name, r = next((n, r) for n, r in h["pruning"].items() if r["setting"].get("product")
                       and r["setting"]["pruner"] == "successive_halving")
        a, q = r["eq_accuracy"], r["eq_trials"]
        ci = a["ratio_90pct_bootstrap_ci"]
        default[h["epochs"]] = {"pruner": name, "eq_accuracy_ratio": a["ratio"], "ci": ci, "reached": a["seeds_reached"],
                                "eq_trials_ratio": q["ratio"], "gap_points": q["median_gap_points"],
                                "meets": r["meets_eq_accuracy"] and r["meets_eq_trials"]}
        mark = " <- headline" if h["epochs"] == HEADLINE else ""
        print(f"{h['epochs']:>6} {'min ' + str(r['setting']['min_resource']) + ', rf ' + str(r['setting']['reduction_factor']):<14} | "
              f"{(a['ratio'] or 0):>14.2f} {ci[0]:>5.2f}-{ci[1]:<5.2f} {a['seeds_reached']:>4}/{args.seeds:<2} | "
              f"{q['ratio']:>18.2f} {q['median_gap_points']:>5.2f}{mark}")
    print("\npruners meeting 1.5x fewer epochs within the tolerance, per horizon:")
    for e, m in meets.items():
        print(f"  {e:>2} epochs: equal trials: {m['eq_trials'] or 'none'}; equal accuracy: {m['eq_accuracy'] or 'none'}")

    def clean(o):  # JSON has no infinity: a mark never reached is written as null
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    res = {"grid": {"configs": len(grid), "epochs": GRID_EPOCHS, "space": GRID, "fixed": FIXED,
                    "train_s_this_run": round(grid_s, 1),
                    "trial_s_sum": round(sum(v.get("seconds") or 0 for v in grid.values()), 1),
                    "curve_end_vs_final_max_diff": mismatch, "cores": os.cpu_count()},
           "seeds": args.seeds, "trials": args.trials, "max_trials_pruned": args.max_trials, "tolerance": args.tolerance,
           "headline_epochs": HEADLINE, "default_pruner": default,
           "horizons": results, "meets": meets, "load_avg": os.getloadavg()}
    (OUT / args.out).write_text(json.dumps(clean(res), indent=2, allow_nan=False))
    print(f"\nwritten {OUT / args.out}")


if __name__ == "__main__":  # grid workers are spawned and re-import this file
    main()
