"""Formatters and small pure rules the screens share: how a number, a trial or a state is written.

No Streamlit here: everything is a function of its arguments, testable without a browser.
``plain`` makes outside text safe to embed in Markdown.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import statistics
from typing import Any, Iterable, Sequence

from core.config import ConfigError, StudyConfig
from core.health import METRIC_INFO
from core.noise import accuracy_margin, difference_is_noise  # noqa: F401  (the rule lives in core)
from core.study import FINISHED, RunnerInfo, TrialRecord, budget_count

# Live screens poll the storage this often while a study runs (and not at all when idle).
# Every character Markdown, GitHub's autolinks, KaTeX ($) or Streamlit's directives (:red[..],
# :material/..:, emoji :codes:) give a meaning to; all are ASCII punctuation, which CommonMark
# lets a backslash turn back into a literal character.
# '-' and '_' between two letters or digits mean nothing ("fake-study", "successive_halving") and stay.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*{}\[\]()<>#+.!|~$:&@]|(?<![A-Za-z0-9])[-_]|[-_](?![A-Za-z0-9]))")


def plain(text: Any, limit: int | None = None) -> str:
    """Text that came from outside, safe to embed in Markdown: shown exactly as typed.

    Study names, notes, hosts, executors, error messages and data samples can come from
    other users of a shared storage or from a remote worker.  ``[x](https://evil.example)``
    would render as a link and ``![t](https://evil.example/t.png)`` would load a remote image;
    here every Markdown character is backslash-escaped (Streamlit's documented way to show
    one literally) and line breaks become spaces.  Use it for st.markdown, st.caption,
    st.info/warning/error/success, st.toast and widget labels; option lists of a selectbox
    are plain text already.

    Args:
        text: anything; ``str(text)`` is shown.
        limit: cut the text to this many characters first (with an ellipsis).
    """
    s = " ".join(str(text).split())
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 1)] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", s)


LIVE_INTERVAL_S = 2.0


CARDS_PER_PAGE = 12  # a page of cards renders in well under a second even for 200-trial studies


STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")



STATE_COLOR = {"RUNNING": "blue", "COMPLETE": "green", "PRUNED": "orange", "FAIL": "red", "WAITING": "gray"}


STATE_LABEL = {"RUNNING": "running", "COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "WAITING": "waiting"}


SEVERITY_ICON = {"critical": ":material/error:", "warning": ":material/warning:", "info": ":material/info:",
                 "good": ":material/check_circle:"}


# Plot colours per state, readable on light and dark themes.
PLOT_COLOR = {"COMPLETE": "#1c7ed6", "PRUNED": "#f59f00", "FAIL": "#e03131", "RUNNING": "#2f9e44", "WAITING": "#868e96"}


BEST_COLOR = "#f08c00"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def noise_text(acc: float | None, n: int | None) -> str:
    """'± 1.8 points (95 %, 216 samples; one sample is 0.46 points)', or '' when unknown."""
    m = accuracy_margin(acc, n)
    if m is None:
        return ""
    return f"± {m:.1f} points (95 %, {n:,} samples; one sample is {100 / n:.2f} points)"


def fmt_score(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.2f}"


def fmt_count(n: int | None) -> str:
    """12, 3.4 k, 253 k, 1.23 M: parameter counts at a glance (three significant digits)."""
    if not n:
        return "–"
    for div, unit in ((1e3, "k"), (1e6, "M")):
        v = float(f"{n / div:.3g}")  # rounded first: 999,999 is "1 M", not "1e+03 k"
        if 1 <= v < 1000 or unit == "M" and v >= 1:
            return f"{v:g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"
    return str(n)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def fmt_value(v: Any) -> str:
    """A hyperparameter value, short: 0.0012 -> 1.2e-03, 0.25 -> 0.25, True -> yes."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.1e}" if v != 0 and abs(v) < 0.01 else f"{v:.3g}"
    return str(v)


def trial_label(rec: TrialRecord, best: TrialRecord | None = None) -> str:
    """'#7 · complete · val 95.1% · health 0.82 ★' for pickers."""
    parts = [f"#{rec.number}", STATE_LABEL.get(rec.state, rec.state.lower())]
    if rec.val_accuracy is not None:
        parts.append(f"val {fmt_pct(rec.val_accuracy)}")
    if rec.health_score is not None:
        parts.append(f"health {fmt_score(rec.health_score)}")
    label = " · ".join(parts)
    return f"{label} ★ best" if best is not None and rec.number == best.number else label


def objective_name(config: StudyConfig | None) -> str:
    if config is None or config.mode == "simple":
        return "validation accuracy"
    if config.mode == "health-aware":
        return f"blend: {1 - config.health_weight:.0%} accuracy + {config.health_weight:.0%} health"
    return "accuracy and health (Pareto)"


def state_badge(state_name: str) -> str:
    """Markdown badge for a trial state (Streamlit's :color-badge[...] syntax)."""
    return f":{STATE_COLOR.get(state_name, 'gray')}-badge[{STATE_LABEL.get(state_name, state_name.lower())}]"


def machines(runners: Sequence[RunnerInfo], records: Sequence[TrialRecord]) -> list[tuple[RunnerInfo, int, bool]]:
    """The rows of the Machines panel: (runner, trials it ran, alive), one per process.

    A process that ran the study several times (stopped, then resumed in the same app) left one
    record per run: they are one row, with the newest run's status and every run's trials.  A
    runner that is gone and never asked a trial is left out (it did nothing to show).
    """
    by_runner: dict[str, int] = {}
    for r in records:
        if r.runner_id:
            by_runner[r.runner_id] = by_runner.get(r.runner_id, 0) + 1
    groups: dict[tuple, list[RunnerInfo]] = {}
    for r in runners:
        ident = (r.host, r.pid) if r.pid is not None else (r.runner_id,)
        groups.setdefault(ident, []).append(r)
    rows = []
    for group in groups.values():
        newest = max(group, key=lambda r: (r.joined or 0, r.beat or 0))
        alive = any(r.alive for r in group)
        trials = sum(by_runner.get(r.runner_id, 0) for r in group)
        if not alive and trials == 0 and not any(r.asked for r in group):
            continue
        if any(r.owner for r in group) and not newest.owner:
            newest = max((r for r in group if r.owner), key=lambda r: (r.joined or 0, r.beat or 0))
        rows.append((newest, trials, alive))
    rows.sort(key=lambda row: (not row[0].owner, row[0].joined or 0))
    return rows


def finished_count(records: Sequence[TrialRecord]) -> int:
    return sum(1 for r in records if r.state in FINISHED)


def elapsed_seconds(records: Sequence[TrialRecord], created: float | None, running: bool) -> float | None:
    """Wall time of the study so far: from its first trial (or creation) to now or its last trial."""
    starts = [r.start for r in records if r.start]
    if not starts and created is None:
        return None
    begin = min(starts) if starts else dt.datetime.fromtimestamp(created)  # type: ignore[arg-type]
    if running:
        end = dt.datetime.now()
    else:
        ends = [r.complete for r in records if r.complete]
        end = max(ends) if ends else dt.datetime.now()
    return max(0.0, (end - begin).total_seconds())


def eta_seconds(records: Sequence[TrialRecord], config: StudyConfig | None, elapsed: float | None) -> float | None:
    """Time left: mean finished-trial duration x trials left / workers, capped by the time budget.

    Trials left are counted against the budget as the runner counts them (interrupted and
    cancelled trials do not use it up), and never less than what the running trials still need.
    """
    if config is None:
        return None
    finished = [r for r in records if r.state in FINISHED]
    durations = [r.duration_s for r in finished if r.duration_s]
    eta = None
    if config.n_trials and durations:
        mean = statistics.mean(durations)
        left = max(0, config.n_trials - budget_count(records))
        running = [r for r in records if r.state == "RUNNING"]
        eta = mean * max(0.0, left - len(running) / 2) / max(1, config.workers)
        # a running trial is not done before it has run about as long as the others did
        eta = max([eta] + [mean - (r.duration_s or 0.0) for r in running])
    if config.timeout_s and elapsed is not None:
        budget_left = max(0.0, config.timeout_s - elapsed)
        eta = budget_left if eta is None else min(eta, budget_left)
    return eta


def curve_of(rec: TrialRecord) -> list[float]:
    """Validation accuracy per epoch: the finished history, or what a running trial reported so far."""
    if rec.result and rec.result.history.get("val_accuracy"):
        return [v for v in rec.result.history["val_accuracy"] if v is not None]
    return [v for _, v in sorted(rec.intermediate.items()) if v is not None]


def tuned_names(config: StudyConfig | None, records: Sequence[TrialRecord] = ()) -> list[str]:
    """The hyperparameters the study searches (for a foreign study: whatever its trials vary)."""
    if config is not None:
        try:
            return config.tuned
        except ConfigError:  # a data set this version no longer knows: fall back to the trials
            pass
    names: set[str] = set()
    for r in records:
        names.update(r.params)
    return sorted(names)


def key_params(rec: TrialRecord, tuned: Iterable[str] | None) -> str:
    """'lr 1.2e-03 · filters 32 · dropout 0.21': the tuned params, short, escaped for Markdown (st.caption)."""
    names = list(tuned) if tuned else sorted(rec.params)
    short = {"learning_rate": "lr", "batch_size": "batch", "dense_units": "dense", "conv_blocks": "blocks"}
    return " · ".join(f"{plain(short.get(n, n))} {plain(fmt_value(rec.params[n]))}" for n in names if n in rec.params)


def metric_medians(records: Sequence[TrialRecord]) -> dict[str, float]:
    out = {}
    for k in METRIC_INFO:
        vals = [r.result.health.get(k) for r in records if r.state == "COMPLETE" and r.result and r.result.health]
        vals = [v for v in vals if v is not None]
        if vals:
            out[k] = statistics.median(vals)
    return out


# --------------------------------------------------------------------------- comparing trials

# Rows of the comparison table: (label, getter, formatter, higher is better?)
def _health(key: str):
    return lambda r: (r.result.health or {}).get(key) if r.result else None


def compare_rows(recs: Sequence[TrialRecord], config: StudyConfig | None) -> list[dict[str, Any]]:
    """The comparison table of several trials: one row per field, one column per trial (``#n``),
    every value in the unit of its kind (accuracies in %, scores 0–1, parameters as "253 k"),
    plus ``differs``: whether the trials disagree on the field, and ``best``: the leading trial's
    column where higher or lower is better."""
    fields: list[tuple[str, Any, Any, int]] = []  # +1 higher is better, -1 lower is better, 0 neither
    if config is not None and config.mode != "simple":
        fields.append((f"objective ({objective_name(config)})", lambda r: r.objective(config), fmt_score, 1))
    fields += [
        ("validation accuracy", lambda r: r.val_accuracy, fmt_pct, 1),
        ("test accuracy", lambda r: r.test_accuracy, fmt_pct, 1),
        ("shifted accuracy", lambda r: r.shifted_accuracy, fmt_pct, 1),
        ("health score", lambda r: r.health_score, fmt_score, 1),
    ]
    fields += [(info["title"], _health(k), fmt_score, 1) for k, info in METRIC_INFO.items()]
    fields += [
        ("parameters", lambda r: r.param_count, fmt_count, -1),
        ("epochs trained", lambda r: r.result.epochs_run if r.result else None, lambda v: "–" if v is None else str(v), 0),
        ("duration", lambda r: r.duration_s, fmt_duration, -1),
    ]
    names = sorted({p for r in recs for p in r.params})
    fields += [(p, (lambda name: lambda r: r.params.get(name))(p), lambda v: "–" if v is None else fmt_value(v), 0)
               for p in names]
    rows = []
    for label, get, fmt, better in fields:
        values = [get(r) for r in recs]
        shown = [fmt(v) for v in values]
        row: dict[str, Any] = {"": label, **{f"#{r.number}": t for r, t in zip(recs, shown)}}
        row["differs"] = len(set(shown)) > 1
        nums = [(v, r.number) for v, r in zip(values, recs) if isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v)]
        row["best"] = ""
        if better and row["differs"] and nums:
            lead = (max if better > 0 else min)(nums, key=lambda vn: vn[0])
            row["best"] = f"#{lead[1]}"
            sizes = _SAMPLES.get(label)
            if sizes is not None and len(nums) > 1:  # an accuracy: is the lead more than sampling noise?
                by_number = {r.number: r for r in recs}
                second = sorted(nums, key=lambda vn: vn[0], reverse=True)[1]
                if difference_is_noise(lead[0], sizes(by_number[lead[1]]), second[0], sizes(by_number[second[1]])):
                    row["best"] = f"#{lead[1]} (tie with #{second[1]}: within noise)"
        rows.append(row)
    return rows


# The sample count behind each accuracy row of compare_rows (for telling a lead from noise).
_SAMPLES = {
    "validation accuracy": lambda r: r.result.val_samples if r.result else 0,
    "test accuracy": lambda r: r.result.test_samples if r.result else 0,
    "shifted accuracy": lambda r: r.result.test_samples if r.result else 0,  # the test split, damaged
}


def top_trials(records: Sequence[TrialRecord], config: StudyConfig | None, n: int) -> list[int]:
    """The ``n`` best complete trials, best first, by core.study's one ranking rule (the rule behind
    "best" everywhere; validation accuracy for a study without a config); earliest first on a tie."""
    ranked = [(r.rank_key(config), r) for r in records]
    ranked = [(k, r) for k, r in ranked if k is not None]
    ranked.sort(key=lambda kr: (kr[0], -kr[1].number), reverse=True)
    return [r.number for _, r in ranked[: max(0, int(n))]]
