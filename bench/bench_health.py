"""What measuring health costs: bare ``model.fit`` vs ``run_trial`` on the same model and data.

For digits (all of it) and Fashion-MNIST (10 000 training samples, loaded by
``core.datasets`` from Debian's copy under /usr/share/datasets/fashion-mnist), the default
CNN is trained twice in this process, interleaved, each way:

* bare: build, ``model.fit`` with the validation set, evaluate validation and test;
* ``run_trial``: the same plus what health needs (``HealthMonitor``: batch losses, weight
  snapshots around each epoch's middle step, gradient norms at 3 scheduled epochs; the activation
  probe; per-class accuracy; the six metrics) and the shifted-data accuracy (model saving off:
  it is not health).

Health overhead = (run_trial - bare) / run_trial, fastest run of each side, in wall
seconds and in CPU seconds of this process (CPU time is far less disturbed by other work
on a shared machine), next to run_trial's own account (``timings["health"] /
timings["total"]``; the shifted-data evaluation is reported beside it).  Target <= 5%.

Insight (issue 14, ``core.insight``: confusion matrix, probe and misclassified examples with
each unit layer's output, written as ``insight.npz``) is reported beside health: its share of
the trial (``timings["insight"]``: collecting and writing it) and the file's bytes.  run_trial
saves the model here (the insight is written with it); the model's own save time
(``timings["save"]``) is taken off run_trial's time, since the bare side saves nothing.
synthetic_text (the LSTM) is a third case.

Usage: ``python bench/bench_health.py [--repeats 3] [--digits-epochs 10] [--fashion-epochs 3]``.
Prints a table and writes ``bench/out/bench_health.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def bare(data, params: dict, epochs: int, seed: int) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and test accuracy of build + fit + evaluate, nothing else."""
    import keras

    from core.models import build_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    t, c = time.perf_counter(), time.process_time()
    batch = int(params["batch_size"])
    model = build_model(params, data.info, steps_per_epoch=-(-len(data.x_train) // batch), epochs=epochs)
    model.fit(data.x_train, data.y_train, batch_size=batch, epochs=epochs, validation_data=(data.x_val, data.y_val),
              verbose=0)
    model.evaluate(data.x_val, data.y_val, verbose=0)
    _, test_acc = model.evaluate(data.x_test, data.y_test, verbose=0)
    return time.perf_counter() - t, time.process_time() - c, float(test_acc)


def with_health(data, params: dict, epochs: int, seed: int, name: str):
    from core.config import TrialSpec
    from core.training import run_trial

    from core.paths import INSIGHT_FILE

    spec = TrialSpec(dataset=name, params=params, epochs=epochs, seed=seed, save_model=True, study="bench-health")
    t, c = time.perf_counter(), time.process_time()
    result = run_trial(spec, dataset=data)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert result.status == "complete", result.error
    saved = result.timings.get("save", 0.0)  # the model file: not health, not insight, and bare saves none
    result.insight_bytes = Path(result.model_path).parent.joinpath(INSIGHT_FILE).stat().st_size
    return wall - saved, cpu - saved, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--digits-epochs", type=int, default=10)
    ap.add_argument("--fashion-epochs", type=int, default=3)
    ap.add_argument("--text-epochs", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="data sets to run (default: all three)")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HPO_HOME", str(OUT / "home_health"))
    from core.logs import setup_logging

    setup_logging("bench")
    import tensorflow as tf  # noqa: F401 - import cost outside every timing

    from core.datasets import load_dataset
    from core.search_space import defaults

    cases = [("digits", None, args.digits_epochs), ("fashion_mnist", 10_000, args.fashion_epochs),
             ("synthetic_text", None, args.text_epochs)]
    cases = [c for c in cases if not args.only or c[0] in args.only]
    rows = []
    for name, max_samples, epochs in cases:
        data = load_dataset(name, max_samples=max_samples, seed=0)
        params = defaults(data.info.kind)
        small = {"conv_blocks": 1} if data.info.kind == "image" else {"lstm_layers": 1}
        with_health(data, {**params, **small}, 1, 0, name)  # warm-up: first-call costs out of the way
        bare_walls, health_walls, bare_cpus, health_cpus, results, bare_accs = [], [], [], [], [], []
        for r in range(args.repeats):
            wall, cpu, acc = bare(data, params, epochs, seed=r)
            bare_walls.append(wall)
            bare_cpus.append(cpu)
            bare_accs.append(acc)
            wall, cpu, result = with_health(data, params, epochs, r, name)
            health_walls.append(wall)
            health_cpus.append(cpu)
            results.append(result)
            print(f"{name} round {r}: bare {bare_walls[-1]:.1f} s ({bare_cpus[-1]:.1f} CPU-s), run_trial {wall:.1f} s "
                  f"({cpu:.1f} CPU-s) "
                  f"(health {result.timings.get('health', 0):.2f} s, insight {result.timings.get('insight', 0):.2f} s "
                  f"{result.insight_bytes / 1000:.0f} kB; load {os.getloadavg()[0]:.1f})", flush=True)
        b, h = min(bare_walls), min(health_walls)
        bc, hc = min(bare_cpus), min(health_cpus)
        fastest = results[health_walls.index(h)]
        own_total = fastest.timings["total"] - fastest.timings.get("save", 0.0)
        rows.append({
            "dataset": name, "train_samples": len(data.x_train), "val_samples": len(data.x_val),
            "test_samples": len(data.x_test), "epochs": epochs, "param_count": fastest.param_count,
            "bare_s": round(b, 2), "run_trial_s": round(h, 2), "overhead_fraction": round((h - b) / h, 4),
            "bare_cpu_s": round(bc, 2), "run_trial_cpu_s": round(hc, 2), "cpu_overhead_fraction": round((hc - bc) / hc, 4),
            "health_s": fastest.timings.get("health"), "health_fraction_own": round(fastest.timings["health"] / own_total, 4),
            "shifted_s": fastest.timings.get("shifted"),
            "shifted_fraction_own": round((fastest.timings.get("shifted") or 0) / own_total, 4),
            "insight_s": fastest.timings.get("insight"),
            "insight_fraction_own": round((fastest.timings.get("insight") or 0) / own_total, 4),
            "insight_bytes": fastest.insight_bytes,
            "bare_test_accuracy": round(max(bare_accs), 4), "run_trial_test_accuracy": round(fastest.test_accuracy, 4),
            "health_score": round(fastest.health_score, 3), "health": {k: round(v, 3) for k, v in fastest.health.items()},
            "rounds_bare_s": [round(x, 2) for x in bare_walls], "rounds_run_trial_s": [round(x, 2) for x in health_walls],
            "rounds_bare_cpu_s": [round(x, 2) for x in bare_cpus], "rounds_run_trial_cpu_s": [round(x, 2) for x in health_cpus],
        })

    print(f"\n{'dataset':<14} {'train':>6} {'epochs':>6} {'bare s':>7} {'run_trial s':>11} {'wall ovh':>8} "
          f"{'CPU ovh':>8} {'health/total':>12} {'shifted/total':>13} {'insight/total':>13} {'insight kB':>10} "
          f"{'test acc (bare/run_trial)':>26}")
    for r in rows:
        print(f"{r['dataset']:<14} {r['train_samples']:>6} {r['epochs']:>6} {r['bare_s']:>7.1f} {r['run_trial_s']:>11.1f} "
              f"{r['overhead_fraction']:>8.1%} {r['cpu_overhead_fraction']:>8.1%} {r['health_fraction_own']:>12.1%} "
              f"{r['shifted_fraction_own']:>13.1%} {r['insight_fraction_own']:>13.1%} {r['insight_bytes'] / 1000:>10.0f} "
              f"{r['bare_test_accuracy']:>12.4f} / {r['run_trial_test_accuracy']:.4f}")
    print("target: health <= 5% of wall time "
          f"(cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}: other work on the machine adds noise)")
    res = {"cases": rows, "target": 0.05, "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    (OUT / "bench_health.json").write_text(json.dumps(res, indent=2))
    print(f"\nwritten {OUT / 'bench_health.json'}")


if __name__ == "__main__":
    main()
