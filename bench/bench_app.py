"""How long a screen takes to rerun with a big study in the storage.

Writes a fake 200-trial study (tests/fakes.py: complete, pruned, failed and running trials,
with full results) into a temporary HPO_HOME, then runs each screen through Streamlit's
AppTest (the router, as a browser session would) and times its reruns: the first run (cold
caches: storage opened, finished trials read once) and the next ``--repeats`` reruns, which
is what a live screen costs every ``LIVE_INTERVAL_S`` seconds and on every click.
Target: a warm rerun under 1 s for every screen.

Also times the storage read itself, uncached (``core.study.load_records``) and through the
UI's per-study handle (``app.state.read_records``), since that choice is what keeps reruns fast.

Usage: ``python bench/bench_app.py [--trials 200] [--repeats 5]``. Prints a table and writes
``bench/out/bench_app.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

TARGET_S = 1.0
SCREENS = [
    ("Configure", "app/views/configure.py", {}),
    ("Trials (gallery)", "app/views/trials.py", {}),
    ("Health: this trial", "app/views/health.py", {}),
    ("Health: whole study", "app/views/health.py", {"health-tab": "Whole study"}),
    ("Health: compare", "app/views/health.py", {"health-tab": "Compare two"}),
    ("Learn (3 entries open)", "app/views/learn.py",
     {"learn-hp-learning_rate": True, "learn-hp-dropout": True, "learn-metric-neuron_utilization": True}),
]


def _time_screen(page: str, session: dict, repeats: int) -> dict:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    if page != "app/views/configure.py":
        at.switch_page(page)
    for k, v in session.items():
        at.session_state[k] = v
    t = time.perf_counter()
    at.run()
    first = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(f"{page}: {[e.value for e in at.exception]}")
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
    return {"first_s": round(first, 3), "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
            "runs": [round(x, 3) for x in times]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench_app_"))
    os.environ["HPO_HOME"] = str(home)
    os.environ.pop("HPO_STORAGE", None)
    from core.config import Settings
    from core.storage import resolve_url
    from tests.fakes import make_fake_study

    n_running, n_failed, n_pruned = 2, 3, max(1, args.trials // 20)
    n_complete = args.trials - n_running - n_failed - n_pruned
    url = resolve_url(None, Settings(home=home))
    t = time.perf_counter()
    make_fake_study(url, "bench-200", n_complete=n_complete, n_pruned=n_pruned, n_failed=n_failed, n_running=n_running,
                    epochs=10, settings=Settings(home=home))
    write_s = time.perf_counter() - t

    # the storage read on its own: uncached vs the UI's per-study handle
    from app import state
    from core.study import load_records

    t = time.perf_counter()
    load_records("bench-200", url)
    uncached = time.perf_counter() - t
    state.read_records("bench-200", url)
    t = time.perf_counter()
    for _ in range(5):
        state.read_records("bench-200", url)
    handle = (time.perf_counter() - t) / 5

    rows = []
    for label, page, session in SCREENS:
        r = _time_screen(page, session, args.repeats)
        r.update(screen=label, ok=r["median_s"] < TARGET_S)
        rows.append(r)

    print(f"\nHPO Studio screen rerun times, {args.trials}-trial study ({n_complete} complete, {n_pruned} pruned, "
          f"{n_failed} failed, {n_running} running); {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.2f}")
    print(f"(fake study written in {write_s:.1f} s; storage read: uncached {uncached * 1000:.0f} ms, "
          f"through the UI's study handle {handle * 1000:.0f} ms)\n")
    print(f"{'screen':<26} {'first run':>10} {'median rerun':>13} {'max rerun':>10}  target < {TARGET_S:.0f} s")
    for r in rows:
        print(f"{r['screen']:<26} {r['first_s']:>9.2f}s {r['median_s']:>12.2f}s {r['max_s']:>9.2f}s  "
              f"{'ok' if r['ok'] else 'SLOW'}")
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"trials": args.trials, "repeats": args.repeats, "write_s": round(write_s, 2),
           "storage_read_uncached_s": round(uncached, 3), "storage_read_handle_s": round(handle, 4),
           "machine": {"cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                       "python": platform.python_version()},
           "screens": rows}
    (OUT / "bench_app.json").write_text(json.dumps(doc, indent=2))
    print(f"\nwritten: {OUT / 'bench_app.json'}")


if __name__ == "__main__":
    main()
