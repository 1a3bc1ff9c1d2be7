"""The per-study folder on disk, and exports of a study as tables, JSON and model files.

Layout (``Settings.study_dir(name)`` = ``<HPO_HOME>/runs/<slug>-<hash>/``, unique per exact name)::

    runs/<slug>-<hash>/
        trial-0000/model.keras     the trained model (kept for the best k trials only)
        trial-0000/result.json     the TrialResult (always kept)
        trial-0000/insight.npz     what the model does with test inputs (core.insight; always kept)
        ...

:func:`save_result` is the one writer of ``result.json``: ``run_trial``, the RunPod client and the
runner (for trials that ended without one: failed, stopped) all call it; the runner keeps only
the best k models.  Names and paths (folders, files, download names) come from ``core.paths``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from core.config import ConfigError, StudyConfig, TrialResult, check_study_name, safe_name, to_json
from core.paths import (  # noqa: F401
    INSIGHT_FILE,
    MODEL_FILE,
    RESULT_FILE,
    download_name,
    model_download_name,
    trial_number_of,
)
from core.health import METRICS as HEALTH_KEYS

if TYPE_CHECKING:
    import pandas as pd

    from core.study import TrialRecord

log = logging.getLogger("hpo.artifacts")

# Names and paths are owned by core.paths; artifacts re-exports download_name for its callers.

# --------------------------------------------------------------------------- trial files


def save_result(result: TrialResult, folder: Path) -> Path:
    """Write ``result.json`` into a trial folder (creating it) and point ``result.result_path`` at it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RESULT_FILE
    result.result_path = str(path)
    path.write_text(result.to_json(indent=2))
    return path


def load_result(folder: Path) -> TrialResult | None:
    """The ``result.json`` of a trial folder, or None when absent or unreadable."""
    path = Path(folder) / RESULT_FILE
    try:
        return TrialResult.from_json(path.read_text())
    except (OSError, ValueError):
        return None


def model_path(result: TrialResult | None) -> Path | None:
    """The trial's model file if it still exists (keep-best-k may have removed it)."""
    if result is None or not result.model_path:
        return None
    path = Path(result.model_path)
    return path if path.is_file() else None


def prune_models(study_dir: Path, keep: Iterable[int], *, only: Iterable[int] | None = None) -> list[Path]:
    """Delete the ``model.keras`` of every trial folder whose number is not in ``keep``.

    ``result.json`` and everything else stay, so a trial's record and reproduction
    config survive; only the large model files go.

    Args:
        study_dir: ``runs/<study>/``.
        keep: trial numbers whose models stay (the best k, plus trials still running).
        only: when given, only these trial numbers may lose their model (the runner passes
            the finished trials, so a trial it has not seen finish is never touched).

    Returns:
        The model files deleted.
    """
    keep = set(keep)
    allowed = None if only is None else set(only)
    removed: list[Path] = []
    folder = Path(study_dir)
    if not folder.is_dir():
        return removed
    for sub in sorted(folder.iterdir()):
        number = trial_number_of(sub)
        if number is None or number in keep or not sub.is_dir() or (allowed is not None and number not in allowed):
            continue
        model = sub / MODEL_FILE
        if model.exists():
            try:
                model.unlink()
                removed.append(model)
            except OSError as exc:  # a file held open elsewhere (Windows) is tried again next time
                log.warning("could not remove %s: %s", model, exc)
    if removed:
        log.info("keep-best-k: removed %d model file(s) from %s", len(removed), folder)
    return removed


def insight_path(result: TrialResult | None) -> Path | None:
    """The trial's ``insight.npz`` (beside its result.json) if it exists; older and failed trials have none."""
    if result is None or not (result.result_path or result.model_path):
        return None
    path = Path(result.result_path or result.model_path).parent / INSIGHT_FILE
    return path if path.is_file() else None


def insight_report(study: str, result: TrialResult | None) -> dict[str, Any] | None:
    """Where a trial's model goes wrong, as a JSON-able dict; None without an insight file.

    The test split's confusion matrix (rows true class, columns predicted), per-class test
    accuracy with sample counts, and the misclassified examples kept (most confident first),
    with the study, trial and headline accuracies.
    """
    from core import insight as I

    path = insight_path(result)
    got = I.load(path) if path is not None else None
    if got is None or result is None:
        return None
    return {"study": study, "trial": result.trial_number, "dataset": result.dataset,
            "val_accuracy": result.val_accuracy, "test_accuracy_reported": result.test_accuracy,
            "exported_at": dt.datetime.now().isoformat(timespec="seconds"), **I.class_report(got)}


def insight_json(study: str, result: TrialResult | None) -> tuple[str, bytes] | None:
    """``(file name, bytes)`` of :func:`insight_report` for a download button; None without insight."""
    report = insight_report(study, result)
    if report is None or result is None:
        return None
    name = download_name(study, "errors", "json", trial=result.trial_number, metric="val_accuracy",
                         value=result.val_accuracy)
    return name, json.dumps(report, indent=2).encode("utf-8")


def insight_csv(study: str, result: TrialResult | None) -> tuple[str, bytes] | None:
    """``(file name, bytes)``: per-class test accuracy and the confusion matrix row of each class, as CSV."""
    report = insight_report(study, result)
    if report is None or result is None:
        return None
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    names = report["class_names"]
    w.writerow(["class", "name", "test_samples", "correct", "accuracy", *[f"predicted {n}" for n in names]])
    for row, counts in zip(report["per_class"], report["confusion"]):
        acc = "" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        w.writerow([row["class"], row["name"], row["test_samples"], row["correct"], acc, *counts])
    name = download_name(study, "per-class", "csv", trial=result.trial_number, metric="val_accuracy",
                         value=result.val_accuracy)
    return name, buf.getvalue().encode("utf-8")


# --------------------------------------------------------------------------- exports


def reproduce_config(record: "TrialRecord") -> dict[str, Any]:
    """The TrialSpec (as a dict) that retrains this trial: ``python -m core trial --spec FILE``.

    It is the spec the trial ran with, seeds included, with the artifacts folder cleared
    and the study renamed ``<study>-reproduce`` so a rerun never overwrites the original.
    """
    from core.config import TrialSpec

    if record.spec:
        data = dict(record.spec)
        try:
            check_study_name(data.get("study"))
        except ConfigError:  # a study named before names were checked ("a/b"): its copy gets a safe one
            data["study"] = safe_name(str(data.get("study")))
        spec = TrialSpec.from_dict(data)
    else:  # a trial recorded without its spec (foreign or very old): rebuild from what is known
        dataset = record.result.dataset if record.result else ""
        spec = TrialSpec(dataset=dataset, params=dict(record.params), trial_number=record.number)
    spec.artifacts_dir = None
    spec.study = f"{spec.study}-reproduce"
    return spec.to_dict()


def study_table(records: Sequence["TrialRecord"], config: StudyConfig | None = None) -> "pd.DataFrame":
    """One row per trial, for the UI's table, the CLI's summary and CSV export.

    Columns: number, state, objective (under the study's mode), val_accuracy,
    test_accuracy, shifted_accuracy, health_score, the six health metrics, param_count, epochs_run,
    duration_s, executor, host, error, model_path, then one ``param_<name>`` column
    per hyperparameter.
    """
    import pandas as pd

    rows = []
    hp_columns: set[str] = set()
    for r in records:
        res = r.result
        row: dict[str, Any] = {
            "number": r.number,
            "state": r.state,
            "objective": r.objective(config) if config is not None else (r.values[0] if r.values else None),
            "val_accuracy": r.val_accuracy,
            "test_accuracy": r.test_accuracy,
            "shifted_accuracy": r.shifted_accuracy,
            "health_score": r.health_score,
        }
        for key in HEALTH_KEYS:
            row[key] = (res.health or {}).get(key) if res else None
        row.update(
            {
                "param_count": r.param_count,
                "epochs_run": res.epochs_run if res else (max(r.intermediate) if r.intermediate else None),
                "duration_s": round(r.duration_s, 2) if r.duration_s is not None else None,
                "executor": r.executor or (res.executor if res else ""),
                "host": r.host or (res.host if res else ""),
                "error": r.error or (res.error if res else None),
                "model_path": str(model_path(res)) if model_path(res) else None,
            }
        )
        for name, value in sorted(r.params.items()):
            row[f"param_{name}"] = value  # full precision: a learning rate of 2.3e-4 stays 2.3e-4
            hp_columns.add(f"param_{name}")
        rows.append(row)
    columns = ["number", "state", "objective", "val_accuracy", "test_accuracy", "shifted_accuracy", "health_score",
               *HEALTH_KEYS,
               "param_count", "epochs_run", "duration_s", "executor", "host", "error", "model_path"]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=columns)
    # the hyperparameters' own columns only: "param_count" is a result field, not a hyperparameter
    return df[columns + sorted(hp_columns - set(columns))]


def study_csv(records: Sequence["TrialRecord"], config: StudyConfig | None = None) -> str:
    """:func:`study_table` as CSV, every float in its shortest exact form (``repr``): read back, it is
    the same number (pandas' default writes 15 digits, so 0.0015984601931991705 came back changed)."""
    return study_table(records, config).to_csv(index=False, float_format=lambda x: repr(float(x)))


def study_json(name: str, records: Sequence["TrialRecord"], config: StudyConfig | None, extra: dict[str, Any] | None = None) -> str:
    """The whole study as one JSON document: config, and every trial's params, values, result and spec."""
    doc = {
        "study": name,
        "exported": dt.datetime.now().isoformat(timespec="seconds"),
        "config": config.to_dict() if config else None,
        **(extra or {}),
        "trials": [
            {
                "number": r.number,
                "state": r.state,
                "params": r.params,
                "values": r.values,
                "start": r.start.isoformat() if r.start else None,
                "complete": r.complete.isoformat() if r.complete else None,
                "intermediate": {str(k): v for k, v in sorted(r.intermediate.items())},
                "error": r.error,
                "result": r.result.to_dict() if r.result else None,
                "spec": r.spec,
            }
            for r in records
        ],
    }
    return to_json(doc, indent=2)


def export_study(
    name: str,
    out_dir: Path,
    *,
    storage_url: str | None = None,
    when: dt.datetime | None = None,
) -> dict[str, Path]:
    """Write a study's CSV table, JSON document, best model and its reproduction spec into ``out_dir``.

    Returns:
        ``{"csv": ..., "json": ..., "model": ..., "config": ..., "errors": ...}`` (model/config only
        when a best trial with a kept model exists; errors, :func:`insight_json`, when it has an insight).
    """
    from core.study import best_record, config_of, load_records, load_study

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    when = when or dt.datetime.now()
    study = load_study(name, storage_url)
    config = config_of(study)
    records = load_records(name, storage_url)
    written: dict[str, Path] = {}

    csv_path = out / download_name(name, "trials", "csv", when=when)
    csv_path.write_text(study_csv(records, config), encoding="utf-8")
    written["csv"] = csv_path

    json_path = out / download_name(name, "study", "json", when=when)
    json_path.write_text(study_json(name, records, config, {"user_attrs": study.user_attrs}))
    written["json"] = json_path

    best = best_record(records, config) if config else None
    if best is not None:
        cfg_path = out / download_name(name, "config", "json", trial=best.number, when=when)
        cfg_path.write_text(json.dumps(reproduce_config(best), indent=2))
        written["config"] = cfg_path
        errors = insight_json(name, best.result)
        if errors is not None:
            err_path = out / errors[0]
            err_path.write_bytes(errors[1])
            written["errors"] = err_path
        src = model_path(best.result)
        if src is not None:
            dst = out / model_download_name(name, best.number, best.val_accuracy, when=when)
            shutil.copy2(src, dst)
            written["model"] = dst
    log.info("exported study %s to %s: %s", name, out, ", ".join(p.name for p in written.values()))
    return written
