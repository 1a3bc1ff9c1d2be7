"""One-knob experiments: "what does this knob do?", asked of one trial.

An experiment is a small study of its own (the same ``StudyRunner`` and executors as any study)
whose trials copy a base trial exactly (every param, the epochs, the data, the seed) except one
knob, which takes each of a handful of values once.  Its :class:`~core.config.StudyConfig` carries
``experiment = {"study", "trial", "knob", "values", "seed"}``; that is how experiments are found
again (:func:`experiments_of`).  What changed is read back as a table (:func:`experiment_table`)
with the sampling noise of each accuracy, and said in one sentence (:func:`what_changed_most`)
that never calls a difference within noise a real one.

No Streamlit, no TensorFlow: the app, the CLI and the benches use the same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from core.config import MAX_EXPERIMENT_VALUES, ConfigError, StudyConfig, check_knob_values
from core.errors import brief
from core.health import METRIC_INFO
from core.health import METRICS as HEALTH_KEYS
from core.noise import accuracy_margin, difference_is_noise
from core.search_space import HYPERPARAMETERS, Hyperparameter, defaults, hyperparameters_for

NAME_LIMIT = 80  # StudyConfig.validate's limit on a study name

# The accuracies an experiment plots, with the sample count behind each (shifted = the test split, damaged).
ACCURACIES = (("val_accuracy", "Validation accuracy", "val_samples"),
              ("test_accuracy", "Test accuracy", "test_samples"),
              ("shifted_accuracy", "Shifted accuracy", "test_samples"))


# --------------------------------------------------------------------------- making one


def knobs_for(kind: str) -> list[Hyperparameter]:
    """The knobs an experiment may vary on a data kind (every knob of the kind's models)."""
    return hyperparameters_for(kind)


def _round(value: float, integer: bool) -> float | int:
    if integer:
        return int(round(value))
    return float(f"{value:.3g}")


def suggest_values(kind: str, knob: str, current: Any = None, n: int = 3) -> list[Any]:
    """A handful of values of ``knob`` spread over its search range, including ``current`` when it is
    inside the range: log-spaced for log knobs, evenly spaced otherwise, every option for a choice knob
    with few options (else ``current`` and the next options, ``n`` in all).

    Returns:
        2 to ``MAX_EXPERIMENT_VALUES`` distinct values, valid for :func:`core.config.check_knob_values`,
        in increasing order (choice knobs: in the order of their options).
    """
    n = max(2, min(MAX_EXPERIMENT_VALUES, int(n)))
    names = [h.name for h in hyperparameters_for(kind)]
    if knob not in names:
        raise ConfigError(f"experiment: knob must be one of {', '.join(names)} (got {brief(knob)})")
    hp = HYPERPARAMETERS[knob]
    if hp.kind in ("categorical", "bool"):
        options = list(hp.range_dict()["choices"])
        if len(options) <= n:
            return options
        picks = sorted({round(i * (len(options) - 1) / (n - 1)) for i in range(n)})
        here = next((i for i, o in enumerate(options) if o == current and type(o) is type(current)), None)
        if here is not None and here not in picks:
            inner = picks[1:-1] or picks
            picks[picks.index(min(inner, key=lambda i: abs(i - here)))] = here
        return [options[i] for i in sorted(set(picks))]
    low, high = float(hp.low), float(hp.high)
    integer = hp.kind == "int"
    if hp.log:
        points = [math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (n - 1)) for i in range(n)]
    else:
        points = [low + i * (high - low) / (n - 1) for i in range(n)]
    values = [min(max(_round(p, integer), hp.low), hp.high) for p in points]
    if (isinstance(current, (int, float)) and not isinstance(current, bool) and low <= current <= high
            and current not in values):
        # the base trial's own value replaces the nearest inner point (on the knob's scale): the ends stay
        def distance(v: float) -> float:
            return abs(math.log(v) - math.log(current)) if hp.log and current > 0 else abs(v - current)
        inner = list(range(1, len(values) - 1)) or list(range(len(values)))
        nearest = min(inner, key=lambda i: distance(values[i]))
        values[nearest] = int(current) if integer else float(current)
    out = sorted(set(values))
    if len(out) < 2:  # a tiny integer range: all of it
        out = list(range(int(low), int(high) + 1))[:MAX_EXPERIMENT_VALUES]
    return out


def parse_values(text: str, knob: str, current: Any = None) -> list[Any]:
    """Comma-separated values as typed in a form or on the command line, read as the knob's type
    ("0.001, 3e-3" for a float knob; "true, false" for a bool; option names for a choice knob).
    Checking them is :func:`core.config.check_knob_values`' job (wrong types reach it as text).

    ``current``, the base trial's own value: a number that reads the same as it to 3 significant
    digits (as :func:`fmt_knob_value` shows it, e.g. "0.0019" for 0.0018952…) is that value exactly,
    so the form can show short numbers and the experiment still retrains the base trial's value.
    """
    hp = HYPERPARAMETERS.get(knob)
    out: list[Any] = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if hp is not None and hp.kind == "bool":
            out.append({"true": True, "false": False, "1": True, "0": False}.get(item.lower(), item))
            continue
        if hp is not None and hp.kind == "categorical":
            match = next((c for c in hp.choices if str(c) == item), None)
            out.append(item if match is None else match)
            continue
        try:
            number = float(item)
        except ValueError:
            out.append(item)
            continue
        if isinstance(current, float) and number != current \
                and fmt_knob_value(number) == fmt_knob_value(current):
            number = current
        out.append(int(number) if hp is not None and hp.kind == "int" and number.is_integer() else number)
    return out


def base_params(config: StudyConfig, record: Any) -> dict[str, Any]:
    """Every param the base trial trained with: defaults, the study's fixed values, then what the trial
    recorded (its spec, its result, its Optuna params), for the knobs of the study's data kind."""
    kind = config.kind
    known = {h.name for h in hyperparameters_for(kind)}
    params = {**defaults(kind), **(config.fixed or {})}
    spec = getattr(record, "spec", None) or {}
    result = getattr(record, "result", None)
    for source in ((spec.get("params") or {}), (result.params if result is not None else {}), record.params or {}):
        params.update({k: v for k, v in source.items() if k in known})
    return params


def base_seed(config: StudyConfig, record: Any) -> int:
    """The seed the base trial trained with (its spec; else the study's rule, seed + trial number)."""
    spec = getattr(record, "spec", None) or {}
    seed = spec.get("seed")
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else int(config.seed) + int(record.number)


def default_name(study: str, knob: str, trial: int, taken: Iterable[str] = ()) -> str:
    """``"<study> · <knob> from #<n>"``, shortened to fit a study name and made unique among ``taken``."""
    taken = set(taken)
    for i in range(1, 1000):
        tail = f" · {knob} from #{trial}" + (f" ({i})" if i > 1 else "")
        head = study if len(study) + len(tail) <= NAME_LIMIT else study[: max(1, NAME_LIMIT - len(tail) - 1)] + "…"
        name = head + tail
        if name not in taken:
            return name
    raise ConfigError("name: choose a name for the experiment (every default one is taken)")


def experiment_config(base_config: StudyConfig, base_record: Any, knob: str, values: Sequence[Any],
                      name: str | None = None, *, taken: Iterable[str] = ()) -> StudyConfig:
    """The study that runs a one-knob experiment from ``base_record`` (a TrialRecord of ``base_config``'s study).

    Everything but ``knob`` is copied from the base trial (its params are fixed), and so are the data
    set, epochs, sample cap, mode, health weight, executor, storage and the base trial's seed; ``knob``
    takes each of ``values`` once (pruner none, so every value trains to the end).

    Raises:
        ConfigError: a knob that does not apply, bad values, or a bad name (each names the setting).
    """
    kind = base_config.kind
    values = check_knob_values(knob, list(values), kind)
    hp = HYPERPARAMETERS[knob]
    params = base_params(base_config, base_record)
    fixed = {k: v for k, v in params.items() if k != knob}
    if hp.kind in ("categorical", "bool"):
        ranges = {knob: {"choices": list(values)}}
    else:
        ranges = {knob: {"low": min(values), "high": max(values)}}
    config = StudyConfig(
        name=name or default_name(base_config.name, knob, base_record.number, taken),
        dataset=base_config.dataset,
        mode=base_config.mode,
        health_weight=base_config.health_weight,
        n_trials=len(values),
        timeout_s=None,
        epochs=int(params.get("epochs", base_config.epochs)) if knob != "epochs" else base_config.epochs,
        max_samples=base_config.max_samples,
        tune=[knob],
        ranges=ranges,
        fixed=fixed,
        sampler="random",  # not used: make_sampler gives an experiment its own (core.study.make_knob_sampler)
        pruner="none",
        seed=base_config.seed,  # the data split of the base study
        executor=base_config.executor,
        workers=max(1, min(int(base_config.workers or 1), len(values))),
        storage=base_config.storage,
        keep_best_k=len(values),  # every variant's model is worth looking at
        runpod_endpoint=base_config.runpod_endpoint,
        experiment={"study": base_config.name, "trial": int(base_record.number), "knob": knob,
                    "values": list(values), "seed": base_seed(base_config, base_record)},
    )
    return config.validate()


# --------------------------------------------------------------------------- finding them


def experiments_of(summaries: Sequence[Any], *, knob: str | None = None, study: str | None = None,
                   trial: int | None = None) -> list[Any]:
    """The experiment studies among ``summaries`` (``core.study.list_studies``), optionally only those on
    ``knob``, from base study ``study`` and base trial ``trial``; in the order given (newest first)."""
    out = []
    for s in summaries:
        exp = getattr(s.config, "experiment", None) if s.config is not None else None
        if not isinstance(exp, dict):
            continue
        if knob is not None and exp.get("knob") != knob:
            continue
        if study is not None and exp.get("study") != study:
            continue
        if trial is not None and exp.get("trial") != trial:
            continue
        out.append(s)
    return out


# --------------------------------------------------------------------------- reading one back


@dataclass
class ExperimentRow:
    """One value of the knob and what its trial measured (None where not measured or not yet run)."""

    value: Any
    trial: int | None = None
    state: str = "not run"  # a trial state (COMPLETE, RUNNING, ...) or "not run"
    accuracy: dict[str, float | None] = field(default_factory=dict)  # val/test/shifted_accuracy
    margin: dict[str, float | None] = field(default_factory=dict)  # 95 % half-width in points, per accuracy
    samples: dict[str, int] = field(default_factory=dict)  # samples behind each accuracy (0: not recorded)
    health: dict[str, float | None] = field(default_factory=dict)  # the six metrics
    health_score: float | None = None
    param_count: int | None = None

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE"


def _knob_value(record: Any, knob: str) -> Any:
    if knob in (record.params or {}):
        return record.params[knob]
    spec = record.spec or {}
    return (spec.get("params") or {}).get(knob, (record.result.params if record.result else {}).get(knob))


def _same(a: Any, b: Any) -> bool:
    from core.study._factories import _same as same

    return same(a, b)


def experiment_table(records: Sequence[Any], config: StudyConfig) -> list[ExperimentRow]:
    """One row per value of the experiment's knob, in the order of the values (a numeric knob: ascending).

    A value run more than once (a retry after a failure) shows its latest complete trial, else its latest.
    """
    exp = config.experiment or {}
    knob = exp.get("knob")
    values = list(exp.get("values") or [])
    hp = HYPERPARAMETERS.get(knob) if isinstance(knob, str) else None
    if hp is not None and hp.kind in ("int", "float"):
        values = sorted(values)
    rows = []
    for value in values:
        mine = [r for r in records if _same(_knob_value(r, knob), value)]
        mine.sort(key=lambda r: (r.state == "COMPLETE", r.number))
        row = ExperimentRow(value=value)
        if mine:
            rec = mine[-1]
            row.trial, row.state = rec.number, rec.state
            res = rec.result
            if res is not None and rec.state == "COMPLETE":
                for key, _, count in ACCURACIES:
                    acc = getattr(res, key)
                    n = int(getattr(res, count) or 0)
                    row.accuracy[key] = acc
                    row.samples[key] = n
                    row.margin[key] = accuracy_margin(acc, n)
                row.health = {k: (res.health or {}).get(k) for k in HEALTH_KEYS}
                row.health_score = res.health_score
                row.param_count = res.param_count or None
        rows.append(row)
    return rows


def fmt_knob_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _measures(rows: Sequence[ExperimentRow]) -> dict[str, tuple[str, list[tuple[Any, float]]]]:
    """Every measure with a value in at least two complete rows: key -> (title, [(knob value, figure)])."""
    out: dict[str, tuple[str, list[tuple[Any, float]]]] = {}
    done = [r for r in rows if r.complete]
    candidates = [(key, title.lower(), lambda r, k=key: r.accuracy.get(k)) for key, title, _ in ACCURACIES]
    candidates += [(key, METRIC_INFO[key]["title"].lower() if key in METRIC_INFO else key,
                    lambda r, k=key: r.health.get(k)) for key in HEALTH_KEYS]
    candidates.append(("health_score", "health score", lambda r: r.health_score))
    for key, title, get in candidates:
        points = [(r.value, float(get(r))) for r in done if get(r) is not None and math.isfinite(float(get(r)))]
        if len(points) >= 2:
            out[key] = (title, points)
    return out


def what_changed_most(rows: Sequence[ExperimentRow], knob: str) -> str:
    """One true sentence: which measure moved most across the knob's values, and whether the validation
    accuracy of the best and worst value differs by more than sampling noise (the 95 % rule of
    :func:`core.noise.difference_is_noise`; never "beyond noise" when it is within, nor when the sample
    counts were not recorded)."""
    done = [r for r in rows if r.complete]
    if len(done) < 2:
        return (f"Not enough to compare yet: {len(done)} of {len(rows)} values of {knob} "
                "have a complete trial (two are needed).")
    measures = _measures(rows)
    # accuracies and health figures are all fractions from 0 to 1: their spreads compare directly
    key, (title, points) = max(measures.items(), key=lambda kv: (max(p for _, p in kv[1][1]) - min(p for _, p in kv[1][1])))
    lo = min(points, key=lambda p: p[1])
    hi = max(points, key=lambda p: p[1])
    is_acc = key in {k for k, _, _ in ACCURACIES}

    def fig(v: float, acc: bool) -> str:
        return f"{100 * v:.1f} %" if acc else f"{v:.2f}"

    moved = (f"Across {knob} = {', '.join(fmt_knob_value(r.value) for r in done)}, {title} changed most "
             f"({fig(lo[1], is_acc)} at {fmt_knob_value(lo[0])} to {fig(hi[1], is_acc)} at {fmt_knob_value(hi[0])})")
    vals = [r for r in done if r.accuracy.get("val_accuracy") is not None]
    if len(vals) < 2:
        return moved + "; validation accuracy was not measured on two of them."
    best = max(vals, key=lambda r: r.accuracy["val_accuracy"])
    worst = min(vals, key=lambda r: r.accuracy["val_accuracy"])
    a, b = best.accuracy["val_accuracy"], worst.accuracy["val_accuracy"]
    n_a, n_b = best.samples.get("val_accuracy", 0), worst.samples.get("val_accuracy", 0)
    gap = f"{100 * (a - b):.1f} points"
    if not n_a or not n_b:
        noise = (f"; validation accuracy spans {gap} ({fmt_knob_value(best.value)} best), but its sample counts "
                 "were not recorded, so how much of that is noise is unknown.")
    elif difference_is_noise(a, n_a, b, n_b):
        noise = (f"; the validation accuracies differ by at most {gap}, within sampling noise on {n_a:,} samples, "
                 f"so on accuracy these values of {knob} tie.")
    else:
        noise = (f"; validation accuracy is best at {fmt_knob_value(best.value)} and worst at "
                 f"{fmt_knob_value(worst.value)}, {gap} apart, beyond sampling noise on {n_a:,} samples.")
    return moved + noise
