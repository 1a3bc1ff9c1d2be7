"""Throughput of RunPodExecutor with 1, 2, 4 and 6 concurrent RunPod workers (target: >= 0.9 x N).

A fake RunPod endpoint on loopback (``tests/fake_runpod.py``) runs fixed-duration jobs
(1 s each by default, spread over 3 epochs with a progress update per epoch) on N
simulated workers; RunPodExecutor keeps N jobs in flight.  Each N is measured twice:

* ``executor``: a bare loop over ``submit`` / ``events`` (the executor's own overhead:
  submission, polling, progress, result decoding);
* ``runner``: a real ``StudyRunner`` (Optuna ask/tell in SQLite, artifacts, keep-best-k) on top,
  timed from the end of ``start()`` (study creation is not throughput).

Efficiency is ``throughput(N) / (N x throughput(1))`` within the same mode.  Results go to
``bench/out/runpod.json``.

Usage::

    python bench/bench_runpod.py [--trials 24] [--job-seconds 1.0] [--workers 1 2 4 6] [--no-runner]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import StudyConfig, TrialSpec  # noqa: E402
from core.executors.base import DoneEvent  # noqa: E402
from core.executors.runpod import RunPodExecutor  # noqa: E402
from tests.fake_runpod import FakeRunPod, fake_body  # noqa: E402

KEY = "bench-key"
# Polling tuned to the job length: real trials take minutes and the 1 s default costs nothing
# there, but against 1 s jobs it would be the whole story.
POLL = dict(poll_interval=0.05, max_poll_interval=0.25)


def run_executor(n: int, trials: int, job_s: float, home: Path) -> dict:
    with FakeRunPod(fake_body(job_s, model_bytes=20_000), workers=n, api_key=KEY) as fake:
        ex = RunPodExecutor(fake.base_url, workers=n, api_key=KEY, **POLL)
        todo = [TrialSpec(dataset="digits", params={}, epochs=3, trial_number=i, study=f"bench-ex-{n}",
                          artifacts_dir=str(home / f"ex-{n}" / f"trial-{i:04d}")) for i in range(trials)]
        done = 0
        t0 = time.perf_counter()
        while done < trials:
            while todo and ex.free_slots:
                ex.submit(todo.pop(0))
            done += sum(isinstance(e, DoneEvent) and e.result.ok for e in ex.events(0.5))
        wall = time.perf_counter() - t0
        http = dict(ex.client.stats)
        ex.shutdown()
        return {"wall_s": wall, "max_running": fake.max_running, "http": http}


def run_runner(n: int, trials: int, job_s: float, home: Path, sampler: str = "tpe") -> dict:
    from core.study import StudyRunner

    os.environ["HPO_HOME"] = str(home)
    with FakeRunPod(fake_body(job_s, model_bytes=20_000), workers=n, api_key=KEY) as fake:
        ex = RunPodExecutor(fake.base_url, workers=n, api_key=KEY, **POLL)
        config = StudyConfig(name=f"bench-runner-{n}-{sampler}", dataset="digits", n_trials=trials, epochs=3,
                             pruner="none", sampler=sampler, executor="runpod", workers=n, runpod_endpoint=fake.base_url)
        runner = StudyRunner(config, executor=ex)
        runner.start()  # creating the study (and first-time imports) is not throughput: time the loop only
        t0 = time.perf_counter()
        while not runner.join(0.02):
            pass
        wall = time.perf_counter() - t0
        status = runner.status
        ex.shutdown()
        assert status == "finished", status
        assert runner.counts.complete == trials, runner.counts
        return {"wall_s": wall, "max_running": fake.max_running}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--job-seconds", type=float, default=1.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 6])
    ap.add_argument("--no-runner", action="store_true", help="only the bare executor loop")
    ap.add_argument("--sampler", default="tpe", choices=("tpe", "random"),
                    help="the runner's sampler (TPE costs ~0.15 s a trial)")
    args = ap.parse_args()

    import logging

    logging.getLogger("hpo").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-runpod-") as tmp:
        def runner(n: int, trials: int, job_s: float, home: Path) -> dict:
            return run_runner(n, trials, job_s, home, args.sampler)

        modes = [("executor", run_executor)] + ([] if args.no_runner else [("runner", runner)])
        for mode, fn in modes:
            base = None
            for n in args.workers:
                r = fn(n, args.trials, args.job_seconds, Path(tmp) / mode)
                thr = args.trials / r["wall_s"]
                base = base if base is not None else thr / n  # per-worker throughput of the first (smallest) N
                row = {"mode": mode, "workers": n, "trials": args.trials, "job_s": args.job_seconds,
                       "wall_s": round(r["wall_s"], 3), "trials_per_s": round(thr, 3),
                       "ideal_s": round(args.trials * args.job_seconds / n, 3),
                       "efficiency": round(thr / (n * base), 3), "max_running": r["max_running"]}
                if "http" in r:
                    row["http"] = r["http"]
                rows.append(row)
                print(f"{mode:9s} N={n}: {row['wall_s']:6.2f} s (ideal {row['ideal_s']:5.1f}), "
                      f"{thr:5.2f} trials/s, efficiency {row['efficiency']:.2f}", flush=True)

    print()
    print(f"{'mode':9s} {'N':>2s} {'wall s':>7s} {'ideal s':>7s} {'trials/s':>8s} {'vs N x 1':>8s} {'peak':>4s}")
    for r in rows:
        print(f"{r['mode']:9s} {r['workers']:2d} {r['wall_s']:7.2f} {r['ideal_s']:7.1f} {r['trials_per_s']:8.2f} "
              f"{r['efficiency']:8.2f} {r['max_running']:4d}")
    verdict = {m: all(r["efficiency"] >= 0.9 for r in rows if r["mode"] == m) for m in dict.fromkeys(r["mode"] for r in rows)}
    ok = all(verdict.values())
    print("\ntarget >= 0.9 x N: " + ", ".join(f"{m} {'met' if v else 'NOT met'}" for m, v in verdict.items()))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    report = {"target": 0.9, "met": ok, "met_by_mode": verdict, "sampler": args.sampler, "rows": rows}
    (out / "runpod.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'runpod.json'}")


if __name__ == "__main__":
    main()
