"""The lines of ``logs/hpo.log`` that belong to one trial.

core.logs writes one record per line (a traceback continues on the lines after it) as
``<asctime> <LEVEL> [<entry>:<pid>] <logger>: <message>``.  Records about a trial say
``trial <n>`` (the runner's "trial 3 failed: ...", the worker's "trial 3 failed:\\n<traceback>").
The log is shared by every study of this home, so a record belongs to trial ``n`` of a study
when it names ``trial <n>`` *and* was written while that trial ran (from its start to a few
seconds after it ended).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from core.config import Settings
from core.logs import BACKUP_COUNT, LOG_FILE

_HEAD = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ")
SLACK_S = 5.0  # the runner logs a trial's end a moment after Optuna stamps it complete
MAX_RECORDS = 40


def _records(path: Path) -> list[tuple[dt.datetime, str]]:
    """(time, text) per record of one log file; continuation lines join the record before them."""
    out: list[tuple[dt.datetime, str]] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        m = _HEAD.match(line)
        if m:
            when = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(microsecond=int(m.group(2)) * 1000)
            out.append((when, line))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
    return out


def trial_log(number: int, start: dt.datetime | None, end: dt.datetime | None,
              settings: Settings | None = None, limit: int = MAX_RECORDS) -> list[str]:
    """The records (oldest first, tracebacks whole) of ``hpo.log`` and its rotated files about trial
    ``number`` written between ``start`` and ``end`` (+ SLACK_S); at most the last ``limit``.

    Times are local and naive, as Optuna stores a trial's start and end and as logging writes them.
    """
    if start is None:
        return []
    settings = settings or Settings.from_env()
    stop = (end or dt.datetime.now()) + dt.timedelta(seconds=SLACK_S)
    begin = start - dt.timedelta(seconds=1)
    named = re.compile(rf"\btrial {int(number)}\b")
    base = settings.logs_dir / LOG_FILE
    files = [base.with_name(f"{LOG_FILE}.{i}") for i in range(BACKUP_COUNT, 0, -1)] + [base]
    hits = []
    for path in files:
        for when, text in _records(path):
            first = text.split("\n", 1)[0]
            if begin <= when <= stop and named.search(first[first.find("]") + 1:]):
                hits.append(text)
    return hits[-limit:]
