"""A first study with every default: how fast it reaches a good model, and what pruning saves.

The study a newcomer starts by pressing "Start study" on the Configure screen without changing
anything (``StudyConfig``'s defaults: digits, the default trials and epochs, TPE, successive
halving, one local worker) is run through the product's own runner (``StudyRunner`` -> local
worker process -> ``run_trial``), and beside it, in the same run, the same study with pruning
off.  For each it reports:

* seconds from pressing start to the first finished trial at >= ``--target`` validation
  accuracy (the clock includes starting the worker process and TensorFlow), and to the end;
* the best validation accuracy;
* epochs trained against the epochs the same trials would have trained unpruned
  (``core.study.epochs_spent``, the figure the Trials screen shows): the saving factor.

Targets (issue 15): >= 97 % best validation accuracy within 90 s on this 2-core machine, and
pruning saving >= 1.5x epochs.

Usage: ``python bench/bench_default_study.py [--trials N] [--epochs E] [--seed S] [--target 0.97] [--write] [--collate]``.
Prints a table, writes ``bench/out/bench_default_study_t<N>_e<E>_s<S>.json``; ``--write`` puts the table of every
setting and seed run so far (all those JSON files) into bench/README.md; ``--collate`` only
rebuilds that table from them, running nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
README = ROOT / "bench" / "README.md"
sys.path.insert(0, str(ROOT))


def run_study(config, target: float) -> dict:
    from core.study import StudyRunner, epochs_spent, load_records

    t0 = time.perf_counter()
    wall0 = time.time()
    runner = StudyRunner(config).start()
    runner.join()
    total = time.perf_counter() - t0
    records = load_records(config.name, config.storage)
    done = [r for r in records if r.state == "COMPLETE" and r.val_accuracy is not None and r.complete]
    done.sort(key=lambda r: r.complete)
    hit = next((r for r in done if r.val_accuracy >= target), None)
    to_target = None if hit is None else hit.complete.timestamp() - wall0
    trained, unpruned = epochs_spent(records)
    best = max((r.val_accuracy for r in done), default=None)
    return {
        "pruner": config.pruner, "trials": len(records), "complete": len(done),
        "pruned": sum(r.state == "PRUNED" for r in records), "failed": sum(r.state == "FAIL" for r in records),
        "best_val_accuracy": best, "seconds_to_target": None if to_target is None else round(to_target, 1),
        "trial_reaching_target": None if hit is None else hit.number,
        "seconds_total": round(total, 1), "epochs_trained": trained, "epochs_unpruned": unpruned,
        "saving": round(unpruned / trained, 2) if trained else None, "status": runner.status,
    }


def table(rows: list[dict], target: float, meta: dict) -> str:
    lines = [
        f"| study (digits, {meta['trials']} trials x {meta['epochs']} epochs, 1 worker) | best val accuracy | "
        f"seconds to >= {target:.0%} | seconds to the end | epochs trained / unpruned | saving | trials complete / pruned |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = "defaults (successive halving)" if r["pruner"] != "none" else "same, pruning off"
        to_t = "not reached" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.0f} s (trial #{r['trial_reaching_target']})"
        lines.append(f"| {name} | {r['best_val_accuracy']:.1%} | {to_t} | {r['seconds_total']:.0f} s | "
                     f"{r['epochs_trained']} / {r['epochs_unpruned']} | {r['saving']:.2f}x | {r['complete']} / {r['pruned']} |")
    return "\n".join(lines)


def collated() -> str:
    """One row per setting and seed run so far (every ``bench/out/bench_default_study_*.json``):
    the pruned study beside the same study with pruning off."""
    runs = []
    for path in OUT.glob("bench_default_study_t*_e*_s*.json"):
        data = json.loads(path.read_text())
        by = {r["pruner"]: r for r in data["rows"]}
        if "none" in by and len(by) == 2:
            runs.append(data)
    runs.sort(key=lambda d: (d["epochs"], d["trials"], d["seed"]))
    target = runs[0]["target"] if runs else 0.97

    def to_t(r: dict) -> str:
        return "not reached" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.0f} s (#{r['trial_reaching_target']})"

    lines = [
        f"| trials x epochs | seed | load start → end | pruned: best val acc | pruned: to >= {target:.0%} | "
        "pruned: whole study | epochs trained / unpruned (**saving**) | off: best val acc | "
        f"off: to >= {target:.0%} | off: whole study |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in runs:
        pr = next(r for r in d["rows"] if r["pruner"] != "none")
        off = next(r for r in d["rows"] if r["pruner"] == "none")
        lines.append(
            f"| {d['trials']} x {d['epochs']} | {d['seed']} | {d['load_avg_1m_start']} → {d['load_avg_1m_end']} | "
            f"{pr['best_val_accuracy']:.1%} | {to_t(pr)} | {pr['seconds_total']:.0f} s | "
            f"{pr['epochs_trained']} / {pr['epochs_unpruned']} (**{pr['saving']:.2f}x**) | "
            f"{off['best_val_accuracy']:.1%} | {to_t(off)} | {off['seconds_total']:.0f} s |")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = README.read_text()
    block = f"<!-- default-study:start -->\n\n{text}\n\n<!-- default-study:end -->"
    if "<!-- default-study:start -->" in readme:
        readme = re.sub(r"<!-- default-study:start -->.*?<!-- default-study:end -->", lambda _: block, readme, flags=re.S)
    else:
        readme += "\n## A first study with every default — `bench_default_study.py` (issue 15)\n\n" + block + "\n"
    README.write_text(readme)
    print(f"written into {README}")


def main() -> None:
    from core.config import StudyConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=StudyConfig.n_trials)
    ap.add_argument("--epochs", type=int, default=StudyConfig.epochs)
    ap.add_argument("--seed", type=int, default=StudyConfig.seed, help="the study's seed (sampler, data split)")
    ap.add_argument("--max-samples", type=int, default=StudyConfig.max_samples)
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--only-default", action="store_true", help="skip the unpruned comparison")
    ap.add_argument("--write", action="store_true",
                    help="put the table of every setting run so far (bench/out) into bench/README.md")
    ap.add_argument("--collate", action="store_true", help="only print (and with --write, write) that table; run nothing")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    if args.collate:
        print(collated())
        if args.write:
            write_readme(collated())
        return
    home = tempfile.mkdtemp(prefix="bench_default_study_", dir=OUT)
    os.environ["HPO_HOME"] = home
    from core.logs import setup_logging

    setup_logging("bench")
    load0 = os.getloadavg()[0]
    rows = []
    for pruner in (["successive_halving"] if args.only_default else ["successive_halving", "none"]):
        base = StudyConfig(name="first-study")
        config = StudyConfig(name=f"first-study-{pruner}", n_trials=args.trials, epochs=args.epochs,
                             seed=args.seed, max_samples=args.max_samples,
                             pruner=pruner if pruner == "none" else base.pruner)
        config.validate()
        row = run_study(config, args.target)
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta = {"trials": args.trials, "epochs": args.epochs, "seed": args.seed, "max_samples": args.max_samples, "cores": os.cpu_count(),
            "load_avg_1m_start": round(load0, 2), "load_avg_1m_end": round(os.getloadavg()[0], 2)}
    text = table(rows, args.target, meta)
    print("\n" + text)
    print(f"load average {meta['load_avg_1m_start']} -> {meta['load_avg_1m_end']} on {meta['cores']} cores")
    (OUT / f"bench_default_study_t{args.trials}_e{args.epochs}_s{args.seed}.json").write_text(json.dumps({"rows": rows, **meta, "target": args.target}, indent=2))
    if args.write:
        write_readme(collated())


if __name__ == "__main__":
    main()
