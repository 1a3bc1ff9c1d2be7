"""Do the health metrics tell a healthy model from a broken one?  The pathology benchmark.

Real models, trained through the product's own path (``core.training.run_trial``), on real
data: scikit-learn's digits (all of it) and Fashion-MNIST (5 000 training samples, Debian's
copy).  Healthy controls against pathologies built the way they happen in practice:

==============  =================================================================  ==========================
model           how it is made                                                     the metric that must see it
==============  =================================================================  ==========================
default         the product's default CNN                                          (control)
tuned           a well-tuned CNN (GELU, dropout 0.3, cosine schedule; 3 conv blocks (control)
                on 28x28 Fashion, 2 on 8x8 digits)
dead_units      ReLU, no batch norm, Adam at 3e-2 (the top of the search range)    neuron_utilization
vanishing       4 conv blocks + 3 dense layers of tanh, no batch norm, SGD at 1e-4  gradient_health
unstable        SGD (momentum 0.9) at 3e-2 with batches of 16, no batch norm        training_stability
overfitting     100 (digits) / 300 (Fashion) training samples, two 512-unit dense   convergence_quality
                layers, no dropout, 3x the epochs
bloat           the same CNN with a huge dense head (3 x 512, 32x more parameters)  parameter_efficiency
class_collapse  3 classes kept at 2 % of their training samples (imbalanced data)   accuracy_consistency
==============  =================================================================  ==========================

Each model is trained with several seeds.  The raw figures each metric is computed from
are kept (``bench/out/health_validity/*.json``), so ``--rescore`` re-scores every model with
the current ``core.health`` in seconds, without training.

Targets (issue 11): each pathology's own metric below every healthy control of the same data
set and seed in >= 90 % of seeds; the composite of every pathology >= 0.15 below the
controls; a model stuck far below what the data allows (``vanishing``) <= 0.45; a bloated
model's parameter efficiency clearly lower at equal accuracy.

Usage: ``python bench/bench_health_validity.py [--seeds 5] [--datasets digits fashion_mnist]
[--rescore] [--only MODEL ...]``.  Prints the table; ``--write`` puts it into bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "health_validity"
sys.path.insert(0, str(ROOT))

CONTROLS = ("default", "tuned")
PATHOLOGIES = {  # model -> the metric that names its pathology
    "dead_units": "neuron_utilization",
    "vanishing": "gradient_health",
    "unstable": "training_stability",
    "overfitting": "convergence_quality",
    "bloat": "parameter_efficiency",
    "class_collapse": "accuracy_consistency",
}
MODELS = CONTROLS + tuple(PATHOLOGIES)
SETTINGS = {  # data set -> (max_samples, epochs)
    "digits": (None, 10),
    "fashion_mnist": (3000, 5),
}
OVERFIT_SAMPLES = {"digits": 100, "fashion_mnist": 300}
COLLAPSED_CLASSES = (0, 1, 2)
COLLAPSE_KEEP = 0.02


def model_params(model: str, dataset: str = "digits") -> dict:
    """Hyperparameters of each benchmark model (the rest are the product's defaults)."""
    blocks = 2 if dataset == "digits" else 3  # 8x8 digits have no room for a third block: it only adds parameters
    return {
        "default": {},
        "tuned": {"conv_blocks": blocks, "filters": 32, "dense_units": 128, "dropout": 0.3, "learning_rate": 2e-3,
                  "lr_schedule": "cosine", "activation": "gelu"},
        "dead_units": {"batch_norm": False, "activation": "relu", "learning_rate": 3e-2, "dropout": 0.0},
        "vanishing": {"batch_norm": False, "activation": "tanh", "conv_blocks": 4, "dense_layers": 3,
                      "optimizer": "sgd", "learning_rate": 1e-4, "dropout": 0.0},
        "unstable": {"batch_norm": False, "optimizer": "sgd", "learning_rate": 3e-2, "batch_size": 16},
        "overfitting": {"dense_layers": 2, "dense_units": 512, "dropout": 0.0},
        "bloat": {"dense_layers": 3, "dense_units": 512},
        "class_collapse": {},
    }[model]


def load(name: str, model: str, seed: int):
    """The data a model is trained on (overfitting: 300 samples; class collapse: imbalanced train split)."""
    import numpy as np

    from core.datasets import Dataset, load_dataset

    max_samples, _ = SETTINGS[name]
    if model == "overfitting":
        return load_dataset(name, max_samples=OVERFIT_SAMPLES[name], seed=0)
    data = load_dataset(name, max_samples=max_samples, seed=0)
    if model != "class_collapse":
        return data
    rng = np.random.default_rng(seed)
    keep = np.ones(len(data.y_train), dtype=bool)
    for c in COLLAPSED_CLASSES:
        idx = np.flatnonzero(data.y_train == c)
        drop = rng.permutation(idx)[max(1, int(len(idx) * COLLAPSE_KEEP)):]
        keep[drop] = False
    return Dataset(data.info, data.x_train[keep], data.y_train[keep], data.x_val, data.y_val, data.x_test, data.y_test)


def train(name: str, model: str, seed: int, extra: dict | None = None) -> dict:
    """Train one benchmark model through run_trial; ``extra`` overrides some of its hyperparameters."""
    from core.config import TrialSpec
    from core.training import run_trial

    _, epochs = SETTINGS[name]
    if model == "overfitting":
        epochs = epochs * 3  # long enough to memorise a few hundred samples
    data = load(name, model, seed)
    spec = TrialSpec(dataset=name, params={**model_params(model, name), **(extra or {})}, epochs=epochs, seed=seed, save_model=False,
                     study="bench-health-validity")
    stats: dict = {}
    t = time.perf_counter()
    result = run_trial(spec, dataset=data, stats_out=stats)
    return {"dataset": name, "model": model, "seed": seed, "status": result.status, "error": result.error,
            "seconds": time.perf_counter() - t, "val_accuracy": result.val_accuracy,
            "test_accuracy": result.test_accuracy, "shifted_accuracy": result.shifted_accuracy,
            "param_count": result.param_count, "health": result.health, "health_score": result.health_score,
            "stats": stats, "result": {k: v for k, v in result.to_dict().items() if k != "architecture"}}


def rescore(run: dict) -> dict:
    """The run's metrics recomputed from its raw figures with the current core.health."""
    from core import health as H

    if run["status"] != "complete":
        return {"metrics": {}, "score": 0.0 if run["status"] == "failed" else None}
    report = H.measure(run["stats"])
    return {"metrics": report.metrics, "score": report.score}


def fmt(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "—"
    mean = sum(vals) / len(vals)
    sd = (sum((v - mean) ** 2 for v in vals) / max(1, len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
    return f"{mean:.2f} ± {sd:.2f}"


def table(runs: list[dict]) -> tuple[str, list[str]]:
    """The markdown table (metric x model, mean ± sd over seeds) and the verdict lines."""
    from core.health import METRICS

    lines, verdicts = [], []
    scored = [dict(r, **rescore(r)) for r in runs]
    for name in SETTINGS:
        rows = [r for r in scored if r["dataset"] == name]
        if not rows:
            continue
        models = [m for m in MODELS if any(r["model"] == m for r in rows)]
        seeds = sorted({r["seed"] for r in rows})
        lines.append(f"\n**{name}** ({len(seeds)} seeds; mean ± sd over seeds; failed runs count as health 0)\n")
        lines.append("| figure | " + " | ".join(models) + " |")
        lines.append("|---|" + "---|" * len(models))
        get = lambda m, f: [f(r) for r in rows if r["model"] == m]  # noqa: E731
        lines.append("| val accuracy | " + " | ".join(fmt(get(m, lambda r: r["val_accuracy"])) for m in models) + " |")
        lines.append("| shifted accuracy | " + " | ".join(fmt(get(m, lambda r: r["shifted_accuracy"])) for m in models) + " |")
        lines.append("| parameters (k) | " + " | ".join(fmt(get(m, lambda r: (r["param_count"] or 0) / 1e3)) for m in models) + " |")
        for metric in METRICS:
            cells = []
            for m in models:
                cell = fmt(get(m, lambda r: r["metrics"].get(metric)))
                cells.append(f"**{cell}**" if PATHOLOGIES.get(m) == metric else cell)
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        lines.append("| **composite** | " + " | ".join(fmt(get(m, lambda r: r["score"])) for m in models) + " |")
        failed = {m: sum(1 for r in rows if r["model"] == m and r["status"] != "complete") for m in models}
        if any(failed.values()):
            lines.append("\nfailed runs: " + ", ".join(f"{m} {n}" for m, n in failed.items() if n))

        # Verdicts, per seed against the controls of the same seed.
        for m, metric in PATHOLOGIES.items():
            wins = total = 0
            margins = []
            for s in seeds:
                ctrl = [r for r in rows if r["seed"] == s and r["model"] in CONTROLS and r["status"] == "complete"]
                path = [r for r in rows if r["seed"] == s and r["model"] == m]
                if not ctrl or not path:
                    continue
                pv = path[0]["metrics"].get(metric) if path[0]["status"] == "complete" else 0.0
                cv = min(r["metrics"].get(metric) or 0.0 for r in ctrl)
                total += 1
                wins += pv is not None and pv < cv
                pscore = path[0]["score"] if path[0]["score"] is not None else 0.0
                margins.append(min(r["score"] for r in ctrl) - pscore)
            if total:
                ok_metric = wins / total >= 0.9
                ok_comp = min(margins) >= 0.15
                verdicts.append(f"{name:13s} {m:14s} {metric:20s} below every control in {wins}/{total} seeds "
                                f"[{'ok' if ok_metric else 'FAIL'}]; composite margin min {min(margins):+.2f} "
                                f"mean {sum(margins) / len(margins):+.2f} [{'ok' if ok_comp else 'FAIL'}]")
        stuck = [r["score"] if r["score"] is not None else 0.0 for r in rows if r["model"] == "vanishing"]
        if stuck:
            verdicts.append(f"{name:13s} vanishing (stuck) composite max {max(stuck):.2f} [{'ok' if max(stuck) <= 0.45 else 'FAIL'}]")
    return "\n".join(lines), verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--datasets", nargs="+", default=list(SETTINGS))
    ap.add_argument("--only", nargs="+", default=list(MODELS))
    ap.add_argument("--rescore", action="store_true", help="re-score the kept runs, train nothing")
    ap.add_argument("--retrain", action="store_true", help="train again even where a kept run exists")
    ap.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HPO_HOME", str(OUT.parent / "home_validity"))
    if not args.rescore:
        from core.logs import setup_logging

        setup_logging("bench")
        for name in args.datasets:
            for seed in range(args.seeds):
                for model in args.only:
                    path = OUT / f"{name}_{model}_{seed}.json"
                    if path.exists() and not args.retrain:
                        continue
                    run = train(name, model, seed)
                    path.write_text(json.dumps(run))
                    print(f"{name} {model} seed {seed}: {run['status']} val {run['val_accuracy']} "
                          f"health {run['health_score']} ({run['seconds']:.1f} s)", flush=True)
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    runs = [r for r in runs if r["dataset"] in args.datasets and r["seed"] < args.seeds]
    text, verdicts = table(runs)
    print(text)
    print("\n" + "\n".join(verdicts))
    if args.write:
        readme = ROOT / "bench" / "README.md"
        body = readme.read_text()
        start, end = "<!-- health-validity:start -->", "<!-- health-validity:end -->"
        block = f"{start}\n{text}\n\n```\n" + "\n".join(verdicts) + f"\n```\n{end}"
        if start in body:
            body = body[: body.index(start)] + block + body[body.index(end) + len(end):]
        else:
            body += "\n" + block + "\n"
        readme.write_text(body)


if __name__ == "__main__":
    main()
