"""What does health buy?  Do healthier models hold up better on shifted data?

Real studies through the product (``python -m core optimize``, TPE, no pruning so every trial
is measured), on digits and Fashion-MNIST, several seeds each, a broad search space (so the
trials differ in health, not only in accuracy).  Every trial has validation, test and
*shifted* accuracy (``core.shift``: the test split with noise, shifts, rotations and low
contrast).  Two questions:

1. Among trials of similar validation accuracy, are the healthier ones better on shifted
   data?  Shifted accuracy is regressed on validation accuracy within each study; the
   residual (how much better or worse than its accuracy predicts a trial holds up) is
   correlated with the health score and with each metric (Spearman, pooled over the
   studies of a data set, 95 % bootstrap interval over trials).  A second view: every
   pair of trials within 1 point of validation accuracy, and how often the healthier one
   has the higher shifted accuracy (50 % = health says nothing).
2. What do the modes pick?  From each study's trials, simple mode's pick (best validation
   accuracy) against health-aware's (best ``0.7 acc + 0.3 health``, which is also how
   Pareto mode names its best trial): the two picks' test and shifted accuracy.  (Picks
   from one pool of trials: a health-aware study would also have *sampled* differently.)

Usage: ``python bench/bench_health_robustness.py [--trials 30] [--seeds 2] [--analyse-only] [--write]``.
Writes ``core/evidence/health_robustness.json`` (the Learn screen quotes it) and, with
``--write``, a section of bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
EVIDENCE = ROOT / "core" / "evidence" / "health_robustness.json"
STATS = OUT / "health_robustness_stats"  # the raw health figures of every trial (re-scored at analysis)
sys.path.insert(0, str(ROOT))

STUDIES = {  # data set -> (epochs, max_samples)
    "digits": (8, None),
    "fashion_mnist": (3, 1500),
}
TUNE = "conv_blocks,filters,dense_units,dense_layers,dropout,activation,learning_rate,batch_size,batch_norm,optimizer"
HEALTH_WEIGHT = 0.3
PAIR_WINDOW = 0.01


def run_study(name: str, dataset: str, epochs: int, max_samples: int | None, trials: int, seed: int, storage: str) -> None:
    if _exists(storage, name):  # interrupted earlier: resume it to its budget
        subprocess.run([sys.executable, "-m", "core", "resume", name, "--storage", storage, "--trials", str(trials),
                        "--no-progress"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return
    cmd = [sys.executable, "-m", "core", "optimize", "--dataset", dataset, "--trials", str(trials), "--epochs",
           str(epochs), "--workers", "2", "--name", name, "--storage", storage, "--pruner", "none", "--seed", str(seed),
           "--tune", TUNE, "--no-progress", "--keep-best", "1"]
    if max_samples:
        cmd += ["--max-samples", str(max_samples)]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def spearman(a, b) -> float:
    import numpy as np
    from scipy.stats import spearmanr

    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def boot(fn, n: int, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    vals = [fn(rng.integers(0, n, n)) for _ in range(reps)]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def analyse(trials_by_study: dict[str, list[dict]]) -> dict:
    """Residual correlations, pair concordance and mode picks for one data set's studies."""
    import numpy as np

    from core.health import METRICS

    pooled: list[dict] = []
    picks = []
    pairs_total = pairs_healthier_wins = 0
    for study, trials in trials_by_study.items():
        t = [x for x in trials if x["val"] is not None and x["shifted"] is not None and x["health"] is not None]
        if len(t) < 5:
            continue
        v = np.array([x["val"] for x in t])
        s = np.array([x["shifted"] for x in t])
        slope, icpt = np.polyfit(v, s, 1)
        for x, res in zip(t, s - (slope * v + icpt)):
            pooled.append({**x, "residual": float(res), "study": study})
        for i in range(len(t)):
            for j in range(i + 1, len(t)):
                a, b = t[i], t[j]
                if abs(a["val"] - b["val"]) <= PAIR_WINDOW and a["health"] != b["health"] and a["shifted"] != b["shifted"]:
                    pairs_total += 1
                    healthier, other = (a, b) if a["health"] > b["health"] else (b, a)
                    pairs_healthier_wins += healthier["shifted"] > other["shifted"]
        simple = max(t, key=lambda x: (x["val"], -x["number"]))
        blend = max(t, key=lambda x: ((1 - HEALTH_WEIGHT) * x["val"] + HEALTH_WEIGHT * x["health"], -x["number"]))
        picks.append({"study": study, "simple": {k: simple[k] for k in ("number", "val", "test", "shifted", "health")},
                      "health_aware": {k: blend[k] for k in ("number", "val", "test", "shifted", "health")}})
    out: dict = {"trials": len(pooled), "studies": len(picks)}
    if len(pooled) >= 5:
        res = np.array([p["residual"] for p in pooled])
        corr = {}
        for key in ("health", *METRICS):
            vals = np.array([p["metrics"].get(key, float("nan")) if key != "health" else p["health"] for p in pooled],
                            dtype=float)
            ok = np.isfinite(vals)
            if ok.sum() < 5:
                continue
            vv, rr = vals[ok], res[ok]
            r = spearman(vv, rr)
            lo, hi = boot(lambda idx: spearman(vv[idx], rr[idx]), len(vv))
            corr[key] = {"rho": r, "ci95": [lo, hi], "n": int(ok.sum())}
        out["residual_correlation"] = corr
        out["val_vs_shifted"] = spearman(np.array([p["val"] for p in pooled]), np.array([p["shifted"] for p in pooled]))
    out["pairs"] = {"within": PAIR_WINDOW, "pairs": pairs_total,
                    "healthier_holds_up_better": pairs_healthier_wins / pairs_total if pairs_total else None}
    if picks:
        d_shift = [p["health_aware"]["shifted"] - p["simple"]["shifted"] for p in picks]
        d_test = [p["health_aware"]["test"] - p["simple"]["test"] for p in picks]
        same = sum(p["health_aware"]["number"] == p["simple"]["number"] for p in picks)
        out["picks"] = {"studies": picks, "same_trial": same, "shifted_diff_mean": float(np.mean(d_shift)),
                        "shifted_diff": d_shift, "test_diff_mean": float(np.mean(d_test)), "test_diff": d_test}
    return out


def collect(storage: str, names: list[str]) -> dict[str, list[dict]]:
    """Every complete trial's accuracies, and its health re-scored with the current core.health
    from the raw figures run_trial kept (HPO_KEEP_HEALTH_STATS)."""
    from core import health as H
    from core.study import load_records

    out = {}
    for name in names:
        rows = []
        for r in load_records(name, storage):
            if r.state != "COMPLETE" or r.result is None:
                continue
            kept = STATS / f"{name}-{r.number:04d}.json"
            if kept.exists():
                report = H.measure(json.loads(kept.read_text()))
                health, metrics = report.score, report.metrics
            else:
                health, metrics = r.health_score, dict(r.result.health or {})
            rows.append({"number": r.number, "val": r.val_accuracy, "test": r.test_accuracy,
                         "shifted": r.shifted_accuracy, "health": health, "metrics": metrics})
        out[name] = rows
    return out


def render(results: dict) -> str:
    lines = []
    for dataset, res in results.items():
        lines.append(f"\n**{dataset}**: {res['trials']} complete trials in {res['studies']} "
                     f"stud{'y' if res['studies'] == 1 else 'ies'} "
                     f"(validation vs shifted accuracy, Spearman {res.get('val_vs_shifted', float('nan')):.2f})\n")
        lines.append("| figure | Spearman ρ with the shifted-accuracy residual | 95 % CI |")
        lines.append("|---|---|---|")
        for key, c in (res.get("residual_correlation") or {}).items():
            lines.append(f"| {key} | {c['rho']:+.2f} | [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] |")
        p = res["pairs"]
        if p["pairs"]:
            lines.append(f"\nPairs within {100 * p['within']:.0f} point of validation accuracy: {p['pairs']}; the healthier "
                         f"one had the higher shifted accuracy in {100 * p['healthier_holds_up_better']:.0f} %.")
        k = res.get("picks")
        if k:
            lines.append(f"\nMode picks: health-aware picked the same trial as simple in {k['same_trial']} of "
                         f"{len(k['studies'])} studies; shifted accuracy of its pick minus simple's: "
                         + ", ".join(f"{100 * d:+.1f}" for d in k["shifted_diff"])
                         + f" points (mean {100 * k['shifted_diff_mean']:+.1f}); test: "
                         + ", ".join(f"{100 * d:+.1f}" for d in k["test_diff"]) + " points.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--datasets", nargs="+", default=list(STUDIES))
    ap.add_argument("--analyse-only", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    os.environ["HPO_HOME"] = str(OUT / "home_robust")
    os.environ["HPO_KEEP_HEALTH_STATS"] = str(STATS)
    storage = f"sqlite:///{OUT / 'health_robustness.db'}"
    results = {}
    for dataset in args.datasets:
        epochs, max_samples = STUDIES[dataset]
        names = []
        for seed in range(args.seeds):
            name = f"robust-{dataset}-{seed}-t{args.trials}"
            names.append(name)
            if not args.analyse_only:
                have = collect(storage, [name]).get(name) if _exists(storage, name) else []
                if len(have or []) < args.trials:
                    t = time.perf_counter()
                    run_study(name, dataset, epochs, max_samples, args.trials, seed, storage)
                    print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
        results[dataset] = analyse(collect(storage, [n for n in names if _exists(storage, n)]))
    text = render(results)
    print(text)
    EVIDENCE.parent.mkdir(parents=True, exist_ok=True)
    EVIDENCE.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d"), "health_weight": HEALTH_WEIGHT,
                                    "datasets": results}, indent=1))
    if args.write:
        readme = ROOT / "bench" / "README.md"
        body = readme.read_text()
        start, end = "<!-- health-robustness:start -->", "<!-- health-robustness:end -->"
        block = f"{start}\n{text}\n{end}"
        body = (body[: body.index(start)] + block + body[body.index(end) + len(end):]) if start in body else body + "\n" + block + "\n"
        readme.write_text(body)


def _exists(storage: str, name: str) -> bool:
    import optuna

    try:
        return name in optuna.get_all_study_names(storage)
    except Exception:  # noqa: BLE001 - no database yet
        return False


if __name__ == "__main__":
    main()
