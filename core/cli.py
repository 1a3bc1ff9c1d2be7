"""Command line: ``python -m core trial | optimize | experiment | resume | worker | list | show | export``.

Every command sets up logging first.  A setting the user can fix (ConfigError) ends the
command with one line on stderr and exit code 2, never a traceback; a study that
crashed or a trial that failed exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from core.config import MODES, PRUNERS, SAMPLERS, ConfigError, Settings, StudyConfig, TrialResult, TrialSpec
from core.health import METRICS as HEALTH_KEYS
from core.health import UPDATE_HIGH, UPDATE_LOW, fmt_sci
from core.shift import short_description

log = logging.getLogger("hpo.cli")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


# --------------------------------------------------------------------------- parsing helpers


def parse_value(text: str) -> Any:
    """A command-line value as JSON when it is JSON (3, 0.01, true, [1,2]), else the string."""
    lowered = {"True": "true", "False": "false", "None": "null"}.get(text, text)
    try:
        return json.loads(lowered)
    except json.JSONDecodeError:
        return text
    except RecursionError:
        raise ConfigError(f"value {text[:40]!r}... is nested too deeply") from None


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``["filters=8", "activation=elu"]`` -> ``{"filters": 8, "activation": "elu"}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param: expected name=value (got {item!r})")
        out[key.strip()] = parse_value(value.strip())
    return out


def parse_ranges(items: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``["filters=8:32", "pooling=max|avg"]`` -> ``{"filters": {"low": 8, "high": 32}, "pooling": {"choices": [...]}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--range: expected name=low:high or name=a|b|c (got {item!r})")
        if "|" in value or ":" not in value:
            out[key.strip()] = {"choices": [parse_value(v) for v in value.split("|")]}
        else:
            low, _, high = value.partition(":")
            out[key.strip()] = {"low": parse_value(low), "high": parse_value(high)}
    return out


def _bar(value: float | None, width: int = 20) -> str:
    if value is None:
        return "-".ljust(width)
    filled = int(round(max(0.0, min(1.0, value)) * width))
    return "#" * filled + "." * (width - filled)


def _f(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- commands


def format_result(result: TrialResult) -> str:
    """A trial's result as a readable block: accuracies, health table, params, model path."""
    lines = [
        f"Trial {result.trial_number} on {result.dataset}: {result.status.upper()} "
        f"({result.epochs_run} epochs, {result.timings.get('total', 0.0):.1f} s, {result.param_count:,} parameters)",
    ]
    if result.error:
        lines.append(f"  reason: {result.error}")
    lines += [
        f"  validation accuracy  {_f(result.val_accuracy)}   (the objective)",
        f"  test accuracy        {_f(result.test_accuracy)}   (reported, never optimised)",
        f"  shifted accuracy     {_f(result.shifted_accuracy)}   (the test split damaged: {short_description(result.dataset)})",
        f"  health score         {_f(result.health_score)}",
        "",
        "  Health metric           value   (higher is healthier)",
    ]
    for key in HEALTH_KEYS:
        v = (result.health or {}).get(key)
        lines.append(f"  {key:<22}  {_f(v, 3):>5}   {_bar(v)}")
    if result.layers:
        lines += ["", "  Layer                type                units  dead %  update/step  grad health"]
        for layer in result.layers:
            dead = "-" if layer.dead_fraction is None else f"{100 * layer.dead_fraction:5.1f}"
            update = "-" if layer.update_ratio is None else f"{layer.update_ratio:.1e}"
            score = "-" if layer.gradient_score is None else f"{layer.gradient_score:.2f}"
            units = str(layer.units) if layer.units else "-"
            lines.append(f"  {layer.name:<20} {layer.layer_type[:18]:<18} {units:>6}  {dead:>6}  {update:>11}  {score:>11}")
        lines.append(f"  (update/step: how far a layer's weights move in one step, relative to their size; "
                     f"healthy {fmt_sci(UPDATE_LOW)} to {fmt_sci(UPDATE_HIGH)})")
    lines += ["", "  Params: " + ", ".join(f"{k}={v}" for k, v in sorted(result.params.items()))]
    if result.model_path:
        lines.append(f"  Model:  {result.model_path}")
    if result.result_path:
        lines.append(f"  Result: {result.result_path}")
    return "\n".join(lines)


def cmd_trial(args: argparse.Namespace) -> int:
    from core.datasets import get_info
    from core.search_space import defaults, validate_params
    from core.training import run_trial

    if args.spec:
        try:
            text = Path(args.spec).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # missing, a folder, not UTF-8
            raise ConfigError(f"--spec: cannot read {args.spec}: {str(exc)[:200]}") from None
        try:
            spec = TrialSpec.from_json(text)
        except ConfigError as exc:
            raise ConfigError(f"--spec {args.spec}: {exc}") from None
    else:
        kind = get_info(args.dataset).kind
        given = validate_params(parse_params(args.param), kind, what="--param")  # before any data loads
        params = {**defaults(kind), "epochs": args.epochs, **given}
        spec = TrialSpec(dataset=args.dataset, params=params, epochs=params["epochs"], max_samples=args.max_samples,
                         seed=args.seed, data_seed=args.seed, study=args.study, save_model=not args.no_save)
    spec.validate()
    settings = Settings.from_env()
    if args.out:
        # the only way to put artifacts outside HPO_HOME: the user names the folder here
        settings = settings.with_output(args.out)
        spec.artifacts_dir = str(Path(args.out).resolve())
    if spec.save_model:
        settings.trial_dir(spec)  # a spec's artifacts_dir outside HPO_HOME is refused now, not after training
    print(f"Training on {spec.dataset} for {spec.epochs} epoch(s)...", file=sys.stderr)

    def on_epoch(epoch: int, logs: dict[str, float | None]) -> None:
        print(f"  epoch {epoch}/{spec.epochs}: loss {_f(logs.get('loss'))}  val_accuracy {_f(logs.get('val_accuracy'))}"
              f"  ({logs.get('seconds') or 0:.1f} s)", file=sys.stderr)

    result = run_trial(spec, on_epoch, settings=settings)
    print(result.to_json(indent=2) if args.json else format_result(result))
    return EXIT_OK if result.status == "complete" else EXIT_FAILED


def _config_from_args(args: argparse.Namespace) -> StudyConfig:
    from core.datasets import get_info
    from core.search_space import DEFAULT_TUNED

    fixed = parse_params(args.param)
    tune = [t.strip() for t in args.tune.split(",") if t.strip()] if args.tune else None
    if tune is not None:
        both = sorted(set(tune) & set(fixed))
        if both:
            raise ConfigError(f"--param/--tune: {both} cannot be both tuned and fixed")
    elif fixed:
        tune = [t for t in DEFAULT_TUNED[get_info(args.dataset).kind] if t not in fixed]
    name = args.name or f"{args.dataset}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    return StudyConfig(
        name=name,
        dataset=args.dataset,
        mode=args.mode,
        health_weight=args.health_weight,
        n_trials=args.trials,
        timeout_s=args.timeout,
        epochs=args.epochs,
        max_samples=args.max_samples,
        tune=tune,
        ranges=parse_ranges(args.range),
        fixed=fixed,
        sampler=args.sampler or ("nsga2" if args.mode == "pareto" else "tpe"),
        pruner=args.pruner or ("none" if args.mode == "pareto" else "successive_halving"),
        seed=args.seed,
        executor=args.executor,
        workers=args.workers,
        storage=args.storage,
        keep_best_k=args.keep_best,
    ).validate()


def _run_with_progress(runner: Any, total: int | None, show: bool) -> str:
    """Run a StudyRunner to the end with a tqdm bar fed by its on_trial_end callback."""
    from tqdm import tqdm

    from core.logs import is_ours

    bar = tqdm(total=total, unit="trial", desc=runner.study_name, disable=not show, file=sys.stderr, dynamic_ncols=True)
    best: list[float] = []

    def on_end(number: int, state: str, result: TrialResult) -> None:
        if state == "COMPLETE" and result.val_accuracy is not None:
            best.append(result.val_accuracy)
        bar.set_postfix_str(f"#{number} {state.lower()}" + (f", best val acc {max(best):.4f}" if best else ""))
        bar.update(1)

    runner.on_trial_end = on_end
    console = [h for h in logging.getLogger("hpo").handlers
               if type(h) is logging.StreamHandler and is_ours(h)]
    old_streams = [h.setStream(_TqdmStream()) for h in console]  # log lines print above the bar, not through it
    try:
        status = runner.run()
    finally:
        for h, stream in zip(console, old_streams):
            h.setStream(stream)
        bar.close()
    return status


class _TqdmStream:
    """A file-like object that writes through tqdm.write so log lines do not break the progress bar."""

    def write(self, text: str) -> None:
        from tqdm import tqdm

        if text.strip():
            tqdm.write(text.rstrip("\n"), file=sys.stderr)

    def flush(self) -> None:
        sys.stderr.flush()


def summary_table(name: str, storage_url: str | None, top: int = 10) -> str:
    """Top trials by the study's objective: number, state, val acc, test acc, health, tuned params."""
    from core.study import config_of, epochs_spent, load_records, load_study, state_counts

    config = config_of(load_study(name, storage_url))
    records = load_records(name, storage_url)
    counts = state_counts(records)
    head = f"Study {name}: {len(records)} trials (" + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())) + ")"
    trained, full = epochs_spent(records)
    if full and trained < full:
        head += (f"\n  {trained} epochs trained of {full} had every trial run to the end "
                 f"(pruning saved {100 * (full - trained) / full:.0f} %)")
    ranked = sorted((r for r in records if config and r.rank_key(config) is not None),  # the one ranking rule
                    key=lambda r: (tuple(-v for v in r.rank_key(config)), r.number))[:top]
    if not ranked:
        return head + "\n  no complete trials yet"
    tuned = config.tuned if config else sorted(ranked[0].params)
    lines = [head, f"  {'#':>4}  {'objective':>9}  {'val acc':>7}  {'test acc':>8}  {'shifted':>7}  {'health':>6}  params"]
    for r in ranked:
        params = ", ".join(f"{k}={_fmtp(r.params.get(k))}" for k in tuned if k in r.params)
        lines.append(f"  {r.number:>4}  {_f(r.objective(config)):>9}  {_f(r.val_accuracy):>7}  {_f(r.test_accuracy):>8}"
                     f"  {_f(r.shifted_accuracy):>7}  {_f(r.health_score, 3):>6}  {params}")
    return "\n".join(lines)


def _fmtp(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _finish(runner: Any, status: str) -> int:
    print(summary_table(runner.study_name, runner.config.storage))
    print(f"\nStatus: {status}.  Resume: python -m core resume {runner.study_name}"
          + (f" --storage {runner.config.storage}" if runner.config.storage else "")
          + f"   Export: python -m core export {runner.study_name} --out DIR")
    if runner.error is not None:
        print(f"error: the study crashed: {type(runner.error).__name__}: {runner.error} (traceback in logs/hpo.log)",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_optimize(args: argparse.Namespace) -> int:
    from core.study import StudyRunner

    config = _config_from_args(args)
    runner = StudyRunner(config)
    runner.start()
    print(f"Study {config.name}: {config.n_trials or 'unlimited'} trials of {config.epochs} epoch(s) on {config.dataset}, "
          f"{config.mode} mode, {config.sampler}/{config.pruner}, {config.workers} {config.executor} worker(s)", file=sys.stderr)
    status = _run_with_progress(runner, config.n_trials, not args.no_progress)
    return _finish(runner, status)


def cmd_experiment(args: argparse.Namespace) -> int:
    """A one-knob experiment from trial ``--trial`` of ``--study``: the same runner as ``optimize``."""
    from core.experiment import experiment_config, parse_values
    from core.study import list_studies, load_records, load_study, study_config, StudyRunner

    load_study(args.study, args.storage)  # StudyNotFound: a ConfigError naming the storage
    base = study_config(args.study, args.storage)
    if base is None:
        raise ConfigError(f"--study: '{args.study}' has no HPO Studio configuration to copy")
    if args.storage:
        base.storage = args.storage
    record = next((r for r in load_records(args.study, args.storage) if r.number == args.trial), None)
    if record is None:
        raise ConfigError(f"--trial: study '{args.study}' has no trial #{args.trial}")
    values = parse_values(args.values, args.knob)
    taken = [s.name for s in list_studies(args.storage)]
    config = experiment_config(base, record, args.knob, values, args.name, taken=taken)
    if config.name in taken:
        raise ConfigError(f"--name: a study called '{config.name}' already exists; choose another name")
    runner = StudyRunner(config)
    runner.start()
    print(f"Experiment {config.name}: {args.knob} = {', '.join(map(str, config.experiment['values']))} from trial "
          f"#{args.trial} of {args.study} (seed {config.experiment['seed']}, {config.epochs} epoch(s) each)",
          file=sys.stderr)
    status = _run_with_progress(runner, config.n_trials, not args.no_progress)
    code = _finish(runner, status)
    from core.experiment import experiment_table, what_changed_most

    print(what_changed_most(experiment_table(load_records(config.name, config.storage), config), args.knob))
    return code


def cmd_resume(args: argparse.Namespace) -> int:
    from core.study import StudyRunner

    runner = StudyRunner.resume(args.name, args.storage, n_trials=args.trials, timeout_s=args.timeout,
                                workers=args.workers)
    runner.start()
    cfg = runner.config
    left = None if cfg.n_trials is None else max(0, cfg.n_trials - runner.trials_done_at_start)
    print(f"Resuming {cfg.name}: {runner.trials_done_at_start} trials done, {left if left is not None else 'unlimited'} to go",
          file=sys.stderr)
    status = _run_with_progress(runner, left, not args.no_progress)
    return _finish(runner, status)


def cmd_worker(args: argparse.Namespace) -> int:
    from core.study import StudyRunner

    runner = StudyRunner.attach(args.study, args.storage, workers=args.workers, n_trials=args.trials)
    runner.start()
    cfg = runner.config
    print(f"Joined {cfg.name} as {runner.runner_id} with {cfg.workers} {cfg.executor} worker(s); "
          f"{runner.trials_done_at_start} of {cfg.n_trials or 'unlimited'} trials done", file=sys.stderr)
    left = None if cfg.n_trials is None else max(0, cfg.n_trials - runner.trials_done_at_start)
    status = _run_with_progress(runner, left, not args.no_progress)
    print(f"Runner {runner.runner_id}: {status}; this runner asked {runner.counts.asked} trial(s) "
          f"({runner.counts.complete} complete, {runner.counts.pruned} pruned, {runner.counts.failed} failed)")
    if runner.error is not None:
        print(f"error: the runner crashed: {type(runner.error).__name__}: {runner.error} (traceback in logs/hpo.log)",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from core.study import list_studies

    studies = list_studies(args.storage, with_counts=True)
    if not studies:
        print("no studies yet: python -m core optimize --dataset digits --trials 20 --name my-study")
        return EXIT_OK
    print(f"{'name':<32} {'status':<22} {'trials':>6}  {'dataset':<14} {'mode':<12} created")
    for s in studies:
        status = s.display_status  # "interrupted" when its runner is gone (core.study.owner_alive)
        created = dt.datetime.fromtimestamp(s.created).strftime("%Y-%m-%d %H:%M") if s.created else "-"
        cfg = s.config
        print(f"{s.name:<32} {status:<22} {s.n_trials:>6}  {(cfg.dataset if cfg else '-'):<14} "
              f"{(cfg.mode if cfg else '-'):<12} {created}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from core.study import load_study

    load_study(args.name, args.storage)  # ConfigError when missing
    print(summary_table(args.name, args.storage, top=args.top))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from core.artifacts import export_study
    from core.study import load_study

    load_study(args.name, args.storage)
    written = export_study(args.name, Path(args.out), storage_url=args.storage)
    for kind, path in written.items():
        print(f"{kind:<7} {path}")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``error: ... (python -m core COMMAND --help)``, exit 2."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        message = " ".join(str(message).split())[:300]
        self.exit(EXIT_CONFIG, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core", description="HPO Studio engine: train, optimise and export.")
    p.add_argument("-v", "--verbose", action="store_true", help="show INFO log lines on the console")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("trial", help="train one model and print its accuracy and health")
    t.add_argument("--dataset", default="digits")
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--param", action="append", metavar="NAME=VALUE", help="hyperparameter value (repeatable)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-samples", type=int, default=None, help="cap on training samples")
    t.add_argument("--spec", help="a TrialSpec JSON file (e.g. from export) instead of the options above")
    t.add_argument("--study", default="adhoc", help="folder under runs/ for the model (default adhoc)")
    t.add_argument("--no-save", action="store_true", help="do not save the model")
    t.add_argument("--out", help="folder for model.keras and result.json (default runs/<study>/trial-NNNN under HPO_HOME)")
    t.add_argument("--json", action="store_true", help="print the TrialResult as JSON")
    t.set_defaults(func=cmd_trial)

    o = sub.add_parser("optimize", help="run a hyperparameter study")
    d = StudyConfig.defaults()  # one owner for a study's defaults: the Configure form uses them too
    o.add_argument("--dataset", default=d["dataset"])
    o.add_argument("--trials", type=int, default=d["n_trials"])
    o.add_argument("--timeout", type=float, default=None, help="wall-clock budget in seconds")
    o.add_argument("--epochs", type=int, default=d["epochs"])
    o.add_argument("--workers", type=int, default=d["workers"])
    o.add_argument("--name", help="study name (default <dataset>-<timestamp>)")
    o.add_argument("--storage", help="Optuna storage URL (default sqlite under runs/)")
    o.add_argument("--mode", choices=MODES, default="simple")
    o.add_argument("--health-weight", type=float, default=d["health_weight"])
    o.add_argument("--sampler", choices=SAMPLERS, default=None, help="default tpe (nsga2 for pareto)")
    o.add_argument("--pruner", choices=PRUNERS, default=None, help="default successive_halving (none for pareto)")
    o.add_argument("--max-samples", type=int, default=d["max_samples"])
    o.add_argument("--tune", help="comma-separated hyperparameters to search (default: the usual ones)")
    o.add_argument("--param", action="append", metavar="NAME=VALUE", help="fix an untuned hyperparameter (repeatable)")
    o.add_argument("--range", action="append", metavar="NAME=LOW:HIGH|A|B", help="narrow a search range (repeatable)")
    o.add_argument("--seed", type=int, default=d["seed"])
    o.add_argument("--executor", choices=("local", "runpod"), default="local")
    o.add_argument("--keep-best", type=int, default=d["keep_best_k"], help="models kept on disk")
    o.add_argument("--no-progress", action="store_true")
    o.set_defaults(func=cmd_optimize)

    x = sub.add_parser("experiment", help="what does this knob do? train one trial again with a few values of one knob")
    x.add_argument("--study", required=True, help="the study of the base trial")
    x.add_argument("--trial", type=int, required=True, help="the base trial's number")
    x.add_argument("--knob", required=True, help="the hyperparameter to vary (e.g. learning_rate)")
    x.add_argument("--values", required=True, help="2 to 7 comma-separated values, e.g. 0.0003,0.001,0.003")
    x.add_argument("--name", help="experiment study name (default '<study> · <knob> from #<trial>')")
    x.add_argument("--storage", help="Optuna storage URL (default sqlite under runs/)")
    x.add_argument("--no-progress", action="store_true")
    x.set_defaults(func=cmd_experiment)

    r = sub.add_parser("resume", help="continue a study")
    r.add_argument("name")
    r.add_argument("--storage")
    r.add_argument("--trials", type=int, default=None, help="new total number of trials")
    r.add_argument("--timeout", type=float, default=None)
    r.add_argument("--workers", type=int, default=None)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_resume)

    w = sub.add_parser("worker", help="join a running study from this machine (shared storage, e.g. PostgreSQL)")
    w.add_argument("--study", required=True, help="the study to join")
    w.add_argument("--storage", help="the study's storage URL (e.g. postgresql://user:pw@host/db)")
    w.add_argument("--workers", type=int, default=None, help="local trial processes (default: the study's)")
    w.add_argument("--trials", type=int, default=None, help="override the study's total trial budget for this runner")
    w.add_argument("--no-progress", action="store_true")
    w.set_defaults(func=cmd_worker)

    ls = sub.add_parser("list", help="list the studies in a storage")
    ls.add_argument("--storage")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="print a study's best trials")
    sh.add_argument("name")
    sh.add_argument("--storage")
    sh.add_argument("--top", type=int, default=10)
    sh.set_defaults(func=cmd_show)

    e = sub.add_parser("export", help="write a study's CSV, JSON, best model and its config")
    e.add_argument("name")
    e.add_argument("--out", required=True)
    e.add_argument("--storage")
    e.set_defaults(func=cmd_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m core``; returns the exit code."""
    from core.logs import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging("cli", console_level=logging.INFO if args.verbose else logging.WARNING)
    Settings.from_env().ensure()
    log.info("python -m core %s", " ".join(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except ConfigError as exc:
        log.info("refused: %s", exc)
        # one line, whatever the message quotes (a path or value with a newline or \r in it)
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
