"""Configure: pick a data set, a mode, a budget and a search space, then start a study.

Every setting is turned into one ``StudyConfig``; ``app.state.start`` validates it (the same
``StudyConfig.validate`` the CLI uses, plus a duplicate-name check) before anything starts,
and a refusal is shown here with the ConfigError's message, which names the setting.
Below the form: the studies in the storage, each with open / resume / stop / cancel.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any, Callable

import numpy as np
import streamlit as st

from app import guide
from app import PAGE_TRIALS
from app import format as FMT
from app import widgets as W
from app import state
from core import demo, manage
from core.config import (MAX_EPOCHS, MODE_HELP, MODES, PRUNER_HELP, PRUNERS, PRUNING_MEASURED,
                         PRUNING_PAYS_FROM_EPOCHS, SAMPLER_HELP, ConfigError, StudyConfig, check_study_name, safe_name)
from core.datasets import DatasetInfo, check_available, get_info, is_available, list_datasets, preview
from core.search_space import DEFAULT_TUNED, HYPERPARAMETERS, Hyperparameter, hyperparameters_for
from core.storage import redact

log = logging.getLogger("hpo.ui")

# A newcomer's first study starts from StudyConfig's own defaults (the CLI and
# bench/bench_default_study.py use the same ones): one owner for the numbers.
_STUDY_DEFAULTS = StudyConfig.defaults()
DEFAULT_TRIALS = _STUDY_DEFAULTS["n_trials"]
DEFAULT_EPOCHS = _STUDY_DEFAULTS["epochs"]
DEFAULT_DATASET = _STUDY_DEFAULTS["dataset"]
PREVIEW_N = 8
PREVIEW_PX = 64  # preview images are upscaled (nearest neighbour) to this many pixels: 8x8 digits stay crisp


# --------------------------------------------------------------------------- executors


def available_executors() -> dict[str, str]:
    """Executors offered in the form, id -> label.

    RunPod is always offered: without a key or a healthy endpoint the study falls back to
    local workers and says so (``core.executors.select.build_executor``). The hosted demo
    offers local execution only.
    """
    if demo.demo_enabled():
        return {"local": "Local worker processes"}
    return {"local": "Local worker processes", "runpod": "RunPod serverless GPUs"}


def _render_local_settings() -> dict[str, Any]:
    cores = os.cpu_count() or 1
    workers = st.number_input(  # no min/max: the browser would keep the old value of a typed bad one
        "Parallel workers", value=1, step=1, key="cfg_workers",
        help=f"Trials trained at the same time, each in its own process with its own TensorFlow (~700 MB). "
             f"This machine has {cores} CPU core(s).",
    )
    return {"workers": int(workers)}


def _render_runpod_settings() -> dict[str, Any]:
    # The key never enters the form or the StudyConfig: it comes from secrets or the environment.
    endpoint = st.text_input("RunPod endpoint id", value=state.runpod_setting("RUNPOD_ENDPOINT_ID") or "",
                             key="cfg_runpod_endpoint",
                             help="The id in https://api.runpod.ai/v2/<id> (see docs/runpod.md).")
    workers = st.slider("Concurrent RunPod workers", 2, 6, 2, key="cfg_runpod_workers",
                        help="Trials in flight at once; RunPod queues what its endpoint cannot take.")
    if state.runpod_setting("RUNPOD_API_KEY"):
        st.caption(":material/key: API key found in secrets/environment.")
    else:
        st.caption(":material/warning: No RUNPOD_API_KEY in `.streamlit/secrets.toml` or the environment: "
                   "trials will run locally, and the study will say so.")
    return {"workers": int(workers), "runpod_endpoint": endpoint.strip() or None}


# Per-executor settings renderers, each returning StudyConfig fields.
EXECUTOR_SETTINGS: dict[str, Callable[[], dict[str, Any]]] = {
    "local": _render_local_settings,
    "runpod": _render_runpod_settings,
}


# --------------------------------------------------------------------------- data set


@st.cache_data(show_spinner=False, max_entries=16)
def _preview(name: str, n: int, data_dir: str) -> tuple[list[Any], list[int]] | str:
    """Preview samples (cached: reading a data set is slow), or the reason there are none."""
    from pathlib import Path

    try:
        samples, labels = preview(name, n, data_dir=Path(data_dir))
    except ConfigError as exc:  # DatasetUnavailable is a ConfigError with how-to-get-it instructions
        return str(exc)
    return list(samples), [int(v) for v in labels]


def _to_pixels(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] HxWxC -> uint8, upscaled by pixel repetition so tiny images stay sharp."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    scale = max(1, PREVIEW_PX // max(a.shape[0], 1))
    a = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    return (np.clip(a, 0, 1) * 255).astype(np.uint8)


def render_dataset(info: DatasetInfo) -> None:
    """What the data set is, its shape and classes, and a few samples."""
    shape = "×".join(str(d) for d in info.input_shape)
    st.markdown(f"{info.description}")
    st.caption(f"{info.kind} · input {shape} · {info.num_classes} classes · source: {info.source} · license: {info.license}")
    classes = ", ".join(info.class_names[:12]) + (" …" if len(info.class_names) > 12 else "")
    st.caption(f"Classes: {classes}")
    available = is_available(info.name)
    if not available:
        try:
            check_available(info.name, state.settings().datasets_dir)
        except ConfigError as exc:  # offline and no local copy: no trial could load it
            W.render_config_error(exc)
            return
        st.warning(f"{info.name} is not on this machine yet: the first trial will try to download it "
                   "(this needs internet access).", icon=":material/cloud_download:")
        return
    got = _preview(info.name, PREVIEW_N, str(state.settings().datasets_dir))
    if isinstance(got, str):
        st.warning(FMT.plain(got))
        return
    samples, labels = got
    names = [info.class_names[i] if i < len(info.class_names) else str(i) for i in labels]
    if info.kind == "image":
        st.image([_to_pixels(s) for s in samples], caption=names, width=PREVIEW_PX)
    else:
        for text, label in zip(samples[:4], names[:4]):
            body = text if isinstance(text, str) else " ".join(str(int(t)) for t in np.asarray(text) if int(t) != 0)
            st.markdown(f":blue-badge[{FMT.plain(label)}] {FMT.plain(body, 241)}")


# --------------------------------------------------------------------------- search space


def _number(label: str, value: float, key: str, hp: Hyperparameter) -> float:
    if hp.kind == "int":
        return int(st.number_input(label, value=int(value), step=1, key=key))
    if hp.log:
        return float(st.number_input(label, value=float(value), step=float(value) / 2 or 1e-6, format="%.1e", key=key))
    return float(st.number_input(label, value=float(value), step=0.05, format="%.2f", key=key))


def render_search_space(kind: str) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """A checkbox per hyperparameter (with its one-line explanation) and the range to search.

    Returns:
        (tuned names, ranges) for StudyConfig.tune / .ranges. Ranges are passed as entered:
        validation, not the widgets, decides what is allowed, so the message is the same as the CLI's.
    """
    tuned: list[str] = []
    ranges: dict[str, dict[str, Any]] = {}
    default_tuned = set(DEFAULT_TUNED[kind])
    groups: dict[str, list[Hyperparameter]] = {}
    for hp in hyperparameters_for(kind):
        groups.setdefault(hp.group, []).append(hp)
    for group, hps in groups.items():
        # A fixed label: an expander whose label changes is a new element and would collapse.
        with st.expander(f"{group.capitalize()} ({len(hps)})", expanded=group == "optimisation"):
            for hp in hps:
                on = st.checkbox(hp.title, value=hp.name in default_tuned, key=f"cfg_tune_{kind}_{hp.name}",
                                 help=hp.effect)
                st.caption(hp.explanation)
                if not on:
                    st.caption(f"Fixed at **{FMT.fmt_value(hp.default)}** (its default).")
                    continue
                tuned.append(hp.name)
                if hp.kind in ("categorical", "bool"):
                    choices = hp.range_dict()["choices"]
                    picked = st.multiselect(f"{hp.title}: options to try", choices, default=choices,
                                            format_func=FMT.fmt_value, key=f"cfg_choices_{kind}_{hp.name}")
                    ranges[hp.name] = {"choices": list(picked)}
                else:
                    lo_col, hi_col = st.columns(2)
                    with lo_col:
                        low = _number(f"{hp.title}: low", hp.low, f"cfg_low_{kind}_{hp.name}", hp)  # type: ignore[arg-type]
                    with hi_col:
                        high = _number(f"{hp.title}: high", hp.high, f"cfg_high_{kind}_{hp.name}", hp)  # type: ignore[arg-type]
                    if hp.log:
                        st.caption("Sampled on a log scale: every decade is equally likely.")
                    ranges[hp.name] = {"low": low, "high": high}
    return tuned, ranges


# --------------------------------------------------------------------------- form


def _auto_name(dataset: str) -> str:
    return f"{dataset}-{dt.datetime.now():%m%d-%H%M%S}"


def _on_dataset_change() -> None:
    # Rename the study with the new data set, unless the user typed a name of their own.
    if st.session_state.get("cfg_name") == st.session_state.get("cfg_auto_name"):
        name = _auto_name(st.session_state["cfg_dataset"])
        st.session_state["cfg_name"] = st.session_state["cfg_auto_name"] = name


# The form's values outlive a visit to another screen: Streamlit drops a widget's state when its
# page is left, so every cfg_* value is copied here (a key no widget uses) and put back on return.
_FORM = "hpo.configure_form"
_NOT_KEPT = ("cfg_start", "cfg_share_ok")  # buttons cannot be set; going ahead is asked again each time


def form_values(config: StudyConfig) -> dict[str, Any]:
    """The form's widget values (``cfg_*`` keys) that reproduce ``config``: what Duplicate puts in the form."""
    kind = get_info(config.dataset).kind
    tuned = set(config.tuned)
    values: dict[str, Any] = {
        "cfg_dataset": config.dataset, "cfg_mode": config.mode, "cfg_health_weight": float(config.health_weight),
        "cfg_trials": int(config.n_trials or 0), "cfg_minutes": float(config.timeout_s or 0) / 60,
        "cfg_epochs": int(config.epochs), "cfg_max_samples": int(config.max_samples or 0),
        f"cfg_sampler_{config.mode}": config.sampler, f"cfg_pruner_{config.mode}": config.pruner,
        "cfg_seed": int(config.seed), "cfg_name": config.name, "cfg_auto_name": None,
    }
    executors = available_executors()
    executor = config.executor if config.executor in executors else "local"
    values["cfg_executor"] = executor
    if executor == "local":
        values["cfg_workers"] = int(config.workers)
    else:
        values["cfg_runpod_workers"] = min(6, max(2, int(config.workers)))
        values["cfg_runpod_endpoint"] = config.runpod_endpoint or ""
    for hp in hyperparameters_for(kind):
        values[f"cfg_tune_{kind}_{hp.name}"] = hp.name in tuned
        if hp.name not in tuned:
            continue
        rng = {**hp.range_dict(), **(config.ranges.get(hp.name) or {})}
        if hp.kind in ("categorical", "bool"):
            values[f"cfg_choices_{kind}_{hp.name}"] = list(rng["choices"])
        else:
            cast = int if hp.kind == "int" else float
            values[f"cfg_low_{kind}_{hp.name}"] = cast(rng["low"])
            values[f"cfg_high_{kind}_{hp.name}"] = cast(rng["high"])
    return values


def load_into_form(config: StudyConfig) -> None:
    """Put ``config`` into the form (a widget callback: it runs before the form is drawn)."""
    values = form_values(config)
    for key, value in values.items():
        st.session_state[key] = value
    st.session_state[_FORM] = {**(st.session_state.get(_FORM) or {}), **values}


def _restore_form() -> None:
    for key, value in (st.session_state.get(_FORM) or {}).items():
        if key not in st.session_state:
            st.session_state[key] = value


def _remember_form() -> None:
    kept = dict(st.session_state.get(_FORM) or {})
    kept.update({k: st.session_state[k] for k in list(st.session_state)
                 if isinstance(k, str) and k.startswith("cfg_") and k not in _NOT_KEPT})
    st.session_state[_FORM] = kept


def _forget_in_form(key: str) -> None:
    st.session_state.pop(key, None)
    (st.session_state.get(_FORM) or {}).pop(key, None)


class FormProblems(ConfigError):
    """Every invalid field of the form, each in the form's own words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _num(x: float) -> str:
    return f"{x:g}"


def form_problems(*, name: str, n_trials: Any, minutes: Any, epochs: Any, max_samples: Any, seed: Any,
                  tuned: list[str], ranges: dict[str, dict[str, Any]], workers: Any = None) -> list[str]:
    """Everything wrong with the form at once, each named by its label on the form.

    The same limits as ``StudyConfig.validate`` (which still checks the config the form makes),
    said the way the form shows them: "Trials: must be at least 1", not "n_trials: ...".
    """
    out: list[str] = []
    try:
        check_study_name(name.strip(), "Study name")
    except ConfigError as exc:
        out.append(str(exc))
    if n_trials is not None and n_trials < 0:
        out.append(f"Trials: must be at least 1, or 0 for no limit with a time budget (got {_num(n_trials)})")
    elif n_trials is not None and n_trials > 1_000_000:
        out.append(f"Trials: at most 1000000 (got {_num(n_trials)})")
    if minutes is not None and minutes < 0:
        out.append(f"Time budget (min): must be 0 (no limit) or more (got {_num(minutes)})")
    if not n_trials and not minutes:  # 0 and 0 (a negative one is reported above)
        out.append("Trials / Time budget (min): give a number of trials, a time budget, or both")
    if epochs is None or not 1 <= epochs <= MAX_EPOCHS:
        out.append(f"Epochs per trial: must be from 1 to {MAX_EPOCHS} (got {_num(epochs or 0)})")
    if max_samples is not None and max_samples != 0 and max_samples < 20:
        out.append(f"Max training samples: 0 for all of them, or at least 20 (got {_num(max_samples)})")
    if workers is not None:
        top = demo.LIMITS["workers"] if demo.demo_enabled() else 16
        if not 1 <= workers <= top:
            out.append(f"Parallel workers: must be from 1 to {top} (got {_num(workers)})")
    if seed is None or not 0 <= seed < 2**31:
        out.append(f"Seed: must be from 0 to {2**31 - 1} (got {_num(seed or 0)})")
    if not tuned:
        out.append("Search space: tick at least one hyperparameter to tune")
    for hp_name, r in ranges.items():
        hp = HYPERPARAMETERS[hp_name]
        what = f"{hp.title} range"
        if "choices" in r:
            if not r["choices"]:
                out.append(f"{hp.title}: choose at least one option to try")
            continue
        low, high = r.get("low"), r.get("high")
        if low is None or high is None:
            out.append(f"{what}: give both a low and a high end")
        elif low > high:
            out.append(f"{what}: the low end {_num(low)} is above the high end {_num(high)}")
        elif low < hp.low or high > hp.high:  # type: ignore[operator]
            out.append(f"{what}: {_num(low)} to {_num(high)} is outside what can be searched, "
                       f"{_num(hp.low)} to {_num(hp.high)}")  # type: ignore[arg-type]
        elif hp.log and low <= 0:
            out.append(f"{what}: searched on a log scale, so the low end must be above 0")
    return out


# What StudyConfig.validate and the demo limits call a field, and what the form calls it.
_LABELS = {"n_trials / timeout_s": "Trials / Time budget", "n_trials": "Trials", "timeout_s": "Time budget",
           "epochs": "Epochs per trial", "max_samples": "Max training samples", "workers": "Parallel workers",
           "seed": "Seed", "name": "Study name", "health_weight": "Health weight", "dataset": "Data set",
           "executor": "Run trials on", "sampler": "Sampler", "pruner": "Pruner", "tune": "Search space",
           "mode": "Mode"}


def in_user_words(message: str) -> str:
    """A ConfigError from core, with the internal field name replaced by the form's label."""
    head, sep, rest = message.partition(": ")
    if sep and head in _LABELS:
        return f"{_LABELS[head]}: {rest}"
    for hp in HYPERPARAMETERS.values():
        if message.startswith(f"'{hp.name}':"):
            return f"{hp.title} range:{message[len(hp.name) + 3:]}"
    return message


def render_form() -> StudyConfig | None:
    """Draw the form; return the StudyConfig to start when Start was pressed (None otherwise).

    Raises:
        FormProblems: Start was pressed with invalid fields (all of them listed); nothing starts.
    """
    _restore_form()
    infos = list_datasets()
    limits = demo.LIMITS if demo.demo_enabled() else None
    if limits:
        infos = [i for i in infos if i.embedded]
        st.info(f"Hosted demo: up to {limits['n_trials']} trials of {limits['epochs']} epochs on "
                f"{limits['max_samples']} samples, embedded data sets only. Run HPO Studio locally "
                "(`make run`) for the real thing.", icon=":material/science:")
    names = [i.name for i in infos]
    if "cfg_dataset" not in st.session_state:
        st.session_state["cfg_dataset"] = DEFAULT_DATASET if DEFAULT_DATASET in names else names[0]
    if "cfg_name" not in st.session_state:
        st.session_state["cfg_name"] = st.session_state["cfg_auto_name"] = _auto_name(st.session_state["cfg_dataset"])

    st.subheader("1 · Data")
    dataset = st.selectbox(
        "Data set", names, key="cfg_dataset", on_change=_on_dataset_change,
        format_func=lambda n: f"{n} · {get_info(n).kind}{'' if is_available(n) else ' · not downloaded'}",
    )
    info = get_info(dataset)
    render_dataset(info)

    st.subheader("2 · Goal")
    mode = st.radio("Mode", MODES, key="cfg_mode", horizontal=True, captions=[MODE_HELP[m] for m in MODES])
    health_weight = _STUDY_DEFAULTS["health_weight"]
    if mode == "health-aware":
        health_weight = st.slider("Health weight", 0.0, 1.0, _STUDY_DEFAULTS["health_weight"], 0.05, key="cfg_health_weight",
                                  help="objective = (1 − w) × validation accuracy + w × health score")

    st.subheader("3 · Budget")
    c1, c2, c3, c4 = st.columns(4)
    # No min_value/max_value: the browser would keep the previous value of a typed bad one (a red
    # field, and Start would use a number the user no longer sees); form_problems reports it instead.
    # The hosted demo starts from its own limits where the defaults exceed them (Start would refuse them).
    n_trials = c1.number_input("Trials", value=min(DEFAULT_TRIALS, limits["n_trials"]) if limits else DEFAULT_TRIALS, step=1, key="cfg_trials",
                               help="How many models to train. 0 = no limit (then set a time budget).")
    minutes = c2.number_input("Time budget (min)", value=limits["timeout_s"] / 60 if limits else 0.0,
                              step=5.0, key="cfg_minutes",
                              help="Stop starting trials after this long. 0 = no time limit.")
    epochs = c3.number_input("Epochs per trial", value=min(DEFAULT_EPOCHS, limits["epochs"]) if limits else DEFAULT_EPOCHS, step=1, key="cfg_epochs",
                             help="Passes over the training data for each model.")
    max_samples = c4.number_input("Max training samples", value=limits["max_samples"] if limits else 0,
                                  step=100, key="cfg_max_samples",
                                  help="Cap on training examples, for quick studies. 0 = all of them.")

    st.subheader("4 · Search space")
    st.caption("Tick what to tune; the rest keeps its default. Open a group to change ranges.")
    tuned, ranges = render_search_space(info.kind)

    st.subheader("5 · Search and where to run")
    s1, s2 = st.columns(2)
    # Only samplers that fit the mode: validation would refuse the others anyway.
    samplers = ["nsga2", "motpe", "random"] if mode == "pareto" else ["tpe", "random"]
    sampler = s1.selectbox("Sampler", samplers, key=f"cfg_sampler_{mode}", help="\n\n".join(SAMPLER_HELP[s] for s in samplers))
    pruners = ["none"] if mode == "pareto" else list(PRUNERS)
    pruner = s2.selectbox("Pruner", pruners, index=pruners.index(_STUDY_DEFAULTS["pruner"]) if _STUDY_DEFAULTS["pruner"] in pruners else 0,
                          key=f"cfg_pruner_{mode}", help="\n\n".join(PRUNER_HELP[p] for p in pruners))
    if mode == "pareto":
        st.caption("Optuna cannot prune two-objective studies, so every trial runs all its epochs.")
    elif pruner != "none" and 0 < int(epochs) < PRUNING_PAYS_FROM_EPOCHS:
        st.caption(f"Pruning saves little with {int(epochs)} epochs per trial: it needs a few epochs to judge a "
                   f"trial and then has few left to save ({PRUNING_MEASURED}).")
    executors = available_executors()
    e1, e2, e3 = st.columns(3)
    with e1:
        executor = st.selectbox("Run trials on", list(executors), format_func=executors.get, key="cfg_executor")
    with e2:
        extra = EXECUTOR_SETTINGS[executor]()
    seed = e3.number_input("Seed", value=_STUDY_DEFAULTS["seed"], step=1, key="cfg_seed",
                           help="Seeds the sampler, the data split and each trial's weights: same seed, same study.")

    name = st.text_input("Study name", key="cfg_name", max_chars=80)
    _remember_form()
    go_ahead = True
    busy = state.running_on_this_machine() if executor == "local" else []
    if busy:
        cores = os.cpu_count() or 1
        st.warning(f"{FMT.plain(', '.join(busy))} {'is' if len(busy) == 1 else 'are'} already training on this "
                   f"machine ({cores} CPU core{'s' if cores != 1 else ''}). A second study shares the cores: "
                   "both run about half as fast. Wait for it to finish, stop it in the list below, or go ahead.",
                   icon=":material/speed:")
        go_ahead = st.checkbox("Start anyway, sharing this machine", key="cfg_share_ok")
    if not st.button("Start study", type="primary", icon=":material/play_arrow:", key="cfg_start", disabled=not go_ahead):
        return None
    problems = form_problems(name=name, n_trials=n_trials, minutes=minutes, epochs=epochs,
                             max_samples=max_samples, seed=seed, tuned=tuned, ranges=ranges,
                             workers=extra.get("workers") if executor == "local" else None)
    if problems:
        raise FormProblems(problems)
    return StudyConfig(
        name=name.strip(),
        dataset=dataset,
        mode=mode,
        health_weight=float(health_weight),
        n_trials=int(n_trials) or None,
        timeout_s=float(minutes) * 60 or None,
        epochs=int(epochs),
        max_samples=int(max_samples) or None,
        tune=tuned,
        ranges=ranges,
        sampler=sampler,
        pruner=pruner,
        seed=int(seed),
        executor=executor,
        storage=None,
        **extra,
    )


def render_problems(problems: list[str]) -> None:
    """Why the study did not start: every problem at once, each on its own line."""
    lines = [FMT.plain(p) for text in problems for p in str(text).splitlines() if p.strip()]
    st.error("**The study was not started.**  \n" + "  \n".join(lines), icon=":material/error:")


def start_study(config: StudyConfig) -> None:
    """Start it, or say exactly which setting to fix."""
    try:
        if demo.demo_enabled():
            demo.check_limits(config)
        state.start(config)
    except ConfigError as exc:
        render_problems([in_user_words(str(exc))])
        return
    except Exception as exc:  # noqa: BLE001 - the runner could not start; say so, keep the form
        log.exception("starting study %s failed", config.name)
        st.error(f"Could not start the study: {type(exc).__name__}: {FMT.plain(exc, 500)}", icon=":material/error:")
        return
    _forget_in_form("cfg_name")  # a fresh name for the next study
    W.go_to(PAGE_TRIALS)
    st.success(f"Started {FMT.plain(config.name)}.")  # shown when the view runs without the router


# --------------------------------------------------------------------------- studies in the storage


def render_studies(was_running: bool) -> None:
    """Every study in the storage, newest first, with what can be done to it now."""
    summaries = state.list_studies(with_counts=True)
    running = set(state.running_studies(summaries))
    if was_running and not running:
        st.rerun()  # a full rerun turns this list's auto-refresh off
    if not summaries:
        st.caption("No studies in this storage yet.")
        return
    st.caption(f"Storage: `{redact(state.storage_url())}`")
    labels = W.study_labels()
    for i, s in enumerate(summaries[:25]):
        is_live = s.name in running
        with st.container(border=True, key=f"study-{i}-{safe_name(s.name)}"):
            status = "running" if is_live else s.display_status
            color = "blue" if is_live else {"finished": "green", "interrupted": "red", "crashed": "red",
                                            "cancelled": "orange"}.get(status, "gray")
            desc = f" · {FMT.plain(s.config.dataset)} · {FMT.plain(s.config.mode)}" if s.config else ""
            counts = " · ".join(f"{n} {FMT.STATE_LABEL.get(k, k.lower())}" for k, n in sorted(s.counts.items()))
            shown, user_note = labels.get(s.name, (s.name, ""))
            title = f"**{FMT.plain(shown)}**" + (f" :small[({FMT.plain(s.name)})]" if shown != s.name else "")
            st.markdown(f"{title} :{color}-badge[{FMT.plain(status)}]{desc}  \n{counts or 'no trials yet'}")
            if user_note:
                st.caption(f":material/sticky_note_2: {FMT.plain(user_note)}")
            if s.note:
                st.caption(FMT.plain(s.note))
            if not is_live and s.interrupted:
                st.caption("Its runner ended without finishing (app restarted, process killed or crashed): "
                           "Resume continues it; unfinished trials run again.")
            err = state.runner_error(s.name)
            if err:
                st.error(f"The runner stopped with an error: {FMT.plain(err, 500)}")
            cols = st.columns(4)
            if cols[0].button("Open", key=f"open-study-{i}", icon=":material/grid_view:", width="stretch"):
                state.select_study(s.name)
                W.go_to(PAGE_TRIALS)
            can_resume = not is_live and s.config is not None and s.status != "finished"
            if cols[1].button("Resume", key=f"resume-{i}", icon=":material/play_arrow:", width="stretch",
                              disabled=not can_resume, help="Continue with the stored configuration."):
                try:
                    state.resume(s.name)
                except ConfigError as exc:
                    W.render_config_error(exc)
                else:
                    W.go_to(PAGE_TRIALS)
            if cols[2].button("Stop", key=f"stop-{i}", icon=":material/stop_circle:", width="stretch",
                              disabled=not is_live, help="Running trials finish; no new ones start (on every machine of the study)."):
                state.stop(s.name)
                st.toast(f"Stopping {FMT.plain(s.name)}")
            if cols[3].button("Cancel", key=f"cancel-{i}", icon=":material/cancel:", width="stretch",
                              disabled=not is_live, help="Running trials are abandoned now (on every machine of the study)."):
                state.cancel(s.name)
                st.toast(f"Cancelling {FMT.plain(s.name)}")
            render_manage(s, i, is_live, labels.get(s.name, (s.name, "")))


_DELETING = "hpo.confirm_delete"  # the study whose deletion waits for a confirmation


_DUPLICATE = "hpo.duplicate"  # the study whose configuration goes into the form on the next full run


def apply_duplicate() -> None:
    """Before the form is drawn: put a study's configuration (Duplicate) into it, and say so."""
    name = st.session_state.pop(_DUPLICATE, None)
    if name is None:
        return
    try:
        config = manage.duplicate_config(name, state.storage_url())
        load_into_form(config)
    except ConfigError as exc:
        W.render_config_error(exc)
    else:
        st.success(f"The configuration of {FMT.plain(name)} is in the form below as {FMT.plain(config.name)}: "
                   "change what you like and press **Start study**.", icon=":material/content_copy:")


def render_manage(s, i: int, is_live: bool, label: tuple[str, str]) -> None:
    """Rename, note, duplicate into the form, delete (after a confirmation) for one study."""
    url = state.storage_url()
    shown, note = label
    done = st.session_state.pop(f"cfg_manage_done-{i}", None)
    if done:
        st.success(FMT.plain(done), icon=":material/check:")
    with st.expander("Manage", icon=":material/edit:", key=f"manage-{i}"):
        new = st.text_input("Name shown in the app", value=shown, key=f"rename-{i}", max_chars=manage.MAX_DISPLAY_NAME,
                            help=f"The storage keeps the name {s.name!r} (the CLI and joined workers use it).")
        text = st.text_area("Note", value=note, key=f"note-{i}", max_chars=manage.MAX_NOTE,
                            placeholder="What you tried, what you learned…")
        c1, c2, c3 = st.columns(3)
        if c1.button("Save", key=f"save-{i}", icon=":material/save:", width="stretch"):
            try:
                if new.strip() != shown:
                    manage.rename_study(s.name, new, url)
                if text.strip() != note:
                    manage.set_note(s.name, text, url)
            except ConfigError as exc:
                W.render_config_error(exc)
            else:
                st.session_state[f"cfg_manage_done-{i}"] = "Saved."
                st.rerun(scope="app")  # the name shows in every picker
        if c2.button("Duplicate", key=f"dup-{i}", icon=":material/content_copy:", width="stretch",
                     disabled=s.config is None, help="Copy this study's configuration into the form above, under a new name."):
            st.session_state[_DUPLICATE] = s.name
            st.rerun(scope="app")  # the form is outside this list's fragment
        if c3.button("Delete", key=f"delete-{i}", icon=":material/delete:", width="stretch", disabled=is_live,
                     help="Stop the study first." if is_live else "Delete its trials, models and folder (asks first)."):
            st.session_state[_DELETING] = s.name
        if st.session_state.get(_DELETING) == s.name:
            try:
                what = manage.delete_preview(s.name, url, state.settings())
            except ConfigError as exc:
                W.render_config_error(exc)
                return
            where = f" and its folder {what.folder} ({what.files} file{'s' if what.files != 1 else ''}: models, results)" \
                if what.folder else ""
            st.warning(f"Delete **{FMT.plain(shown)}** for good? Its {what.trials} trial{'s' if what.trials != 1 else ''} "
                       f"leave the storage{FMT.plain(where)}. This cannot be undone.", icon=":material/warning:")
            y, n = st.columns(2)
            if y.button("Delete for good", key=f"delete-yes-{i}", type="primary", icon=":material/delete_forever:",
                        width="stretch"):
                try:
                    gone = manage.delete_study(s.name, url, state.settings())
                except ConfigError as exc:
                    W.render_config_error(exc)
                else:
                    st.session_state.pop(_DELETING, None)
                    state.forget_study(s.name, url)
                    W.queue_notice(f"Deleted {FMT.plain(shown)}: {gone.trials} trials and {gone.files} files.",
                                   ":material/delete:")
                    st.rerun(scope="app")
            if n.button("Keep it", key=f"delete-no-{i}", width="stretch"):
                st.session_state.pop(_DELETING, None)
                st.rerun()


def main() -> None:
    st.title("Configure a study")
    st.caption("Choose data, a goal and a budget; HPO Studio trains the models and judges each on accuracy *and* health.")
    guide.render()  # a first-time visitor's five steps (open while there is no study yet)
    top = st.container()  # why a study did not start is said here, once, where the page begins
    with top:
        apply_duplicate()
    try:
        config = render_form()
    except FormProblems as exc:
        config = None
        with top:
            render_problems(exc.problems)
        st.toast("Not started: the problems are listed at the top of the page.", icon=":material/error:")
    if config is not None:
        with top:
            start_study(config)
    st.divider()
    st.subheader("Studies")
    running = state.any_running()
    st.fragment(render_studies, run_every=FMT.LIVE_INTERVAL_S if running else None)(running)


main()
