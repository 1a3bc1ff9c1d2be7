"""Every hyperparameter, defined once: range, default and what it does.

The Configure screen, the Learn screen, the CLI and :func:`suggest` all read
:data:`HYPERPARAMETERS`, so a range or an explanation changes in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from core.errors import ConfigError, as_number, brief

MAX_EPOCHS = 500  # per trial, from any entry point: beyond this a typo, not a plan

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "swish", "tanh")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "plateau")


@dataclass(frozen=True)
class Hyperparameter:
    """One tunable knob.

    Attributes:
        name: key in a trial's params.
        kind: "int", "float", "categorical" or "bool".
        applies_to: "image", "text" or "both".
        group: "architecture", "regularisation" or "optimisation" (for grouping in the UI).
        default: value used when the knob is not tuned.
        low, high, log: numeric range; ``log`` samples on a log scale.
        choices: options of a categorical knob.
        explanation: one line a learner can read.
        effect: what too little / too much looks like in a study (Learn screen).
    """

    name: str
    kind: str
    applies_to: str
    group: str
    default: Any
    explanation: str
    effect: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = field(default_factory=tuple)
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def applies(self, kind: str) -> bool:
        return self.applies_to in ("both", kind)

    def describe_range(self, override: Mapping[str, Any] | None = None) -> str:
        r = {**self.range_dict(), **(override or {})}
        if self.kind in ("categorical", "bool"):
            return " | ".join(str(c) for c in r["choices"])
        scale = " (log)" if self.log else ""
        return f"{r['low']} – {r['high']}{scale}"

    def range_dict(self) -> dict[str, Any]:
        if self.kind == "bool":
            return {"choices": [False, True]}
        if self.kind == "categorical":
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high}


def _hp(**kw: Any) -> Hyperparameter:
    return Hyperparameter(**kw)


HYPERPARAMETERS: dict[str, Hyperparameter] = {
    h.name: h
    for h in [
        # ---- CNN architecture
        _hp(name="conv_blocks", kind="int", applies_to="image", group="architecture", default=2, low=1, high=4,
            explanation="How many convolution blocks are stacked; each block sees larger patterns than the one before.",
            effect="Too few: the network only sees small strokes and edges. Too many: slow, and pooling shrinks small images to nothing."),
        _hp(name="filters", kind="int", applies_to="image", group="architecture", default=32, low=8, high=128, log=True,
            explanation="Feature detectors in the first block; each later block doubles them (capped at 512).",
            effect="Too few: underfits. Too many: parameters balloon and parameter efficiency drops."),
        _hp(name="kernel_size", kind="categorical", applies_to="image", group="architecture", default=3, choices=(3, 5),
            explanation="Width of each convolution window in pixels.",
            effect="Larger kernels see more context per layer but cost ~2.8x the parameters of 3x3."),
        _hp(name="pooling", kind="categorical", applies_to="image", group="architecture", default="max",
            choices=("max", "avg", "none"),
            explanation="How each block shrinks its feature maps: keep the strongest response (max), the average, or none.",
            effect="No pooling keeps detail but makes the dense head huge; pooling buys invariance to small shifts."),
        _hp(name="head", kind="categorical", applies_to="image", group="architecture", default="flatten",
            choices=("flatten", "global_avg"),
            explanation="How feature maps become a vector: flatten every position, or average each channel over the image.",
            effect="Global averaging has far fewer parameters and overfits less; flatten keeps where a feature was."),
        _hp(name="batch_norm", kind="bool", applies_to="image", group="regularisation", default=True,
            explanation="Normalise each layer's outputs per batch so the next layer sees a stable scale.",
            effect="Usually faster, steadier training and healthier gradients; adds a little cost per layer."),
        # ---- LSTM architecture
        _hp(name="embedding_dim", kind="int", applies_to="text", group="architecture", default=64, low=8, high=256, log=True,
            explanation="Length of the vector that represents each word.",
            effect="Too small: words blur together. Too large: many parameters learned from few examples."),
        _hp(name="lstm_layers", kind="int", applies_to="text", group="architecture", default=1, low=1, high=3,
            explanation="How many LSTM layers read the sequence, each reading the one below.",
            effect="Deeper stacks model longer structure but train slower and suffer more from vanishing gradients."),
        _hp(name="lstm_units", kind="int", applies_to="text", group="architecture", default=64, low=8, high=256, log=True,
            explanation="Memory cells per LSTM layer: how much it can remember while reading.",
            effect="Too few forget context; too many overfit and cost parameter efficiency."),
        _hp(name="bidirectional", kind="bool", applies_to="text", group="architecture", default=False,
            explanation="Read the text both forwards and backwards and combine what both directions saw.",
            effect="Often more accurate on classification; doubles the LSTM's parameters and time."),
        _hp(name="recurrent_dropout", kind="float", applies_to="text", group="regularisation", default=0.0, low=0.0, high=0.5,
            explanation="Share of the LSTM's memory connections dropped at each training step.",
            effect="Regularises the recurrence; slows training because fast fused kernels cannot be used."),
        # ---- shared head / regularisation
        _hp(name="dense_layers", kind="int", applies_to="both", group="architecture", default=1, low=0, high=3,
            explanation="Fully connected layers between the feature extractor and the output.",
            effect="Zero is often enough; more layers add capacity and parameters."),
        _hp(name="dense_units", kind="int", applies_to="both", group="architecture", default=128, low=16, high=512, log=True,
            explanation="Neurons in each fully connected layer.",
            effect="Large layers are where dead neurons and wasted parameters usually hide."),
        _hp(name="activation", kind="categorical", applies_to="both", group="architecture", default="relu",
            choices=ACTIVATIONS,
            explanation="The non-linearity each neuron applies to its input.",
            effect="relu is fast but its neurons can die; leaky_relu, elu, gelu and swish keep a gradient for negative inputs; tanh saturates."),
        _hp(name="dropout", kind="float", applies_to="both", group="regularisation", default=0.25, low=0.0, high=0.6,
            explanation="Share of a layer's outputs randomly zeroed during training.",
            effect="Fights overfitting (a smaller train/validation gap); too much slows learning and underfits."),
        _hp(name="weight_decay", kind="float", applies_to="both", group="regularisation", default=0.0, low=1e-6, high=1e-2,
            log=True,
            explanation="Pulls every weight a little toward zero at each step (decoupled, as in AdamW).",
            effect="Small values regularise; large values shrink the model into underfitting."),
        # ---- optimisation
        _hp(name="optimizer", kind="categorical", applies_to="both", group="optimisation", default="adam",
            choices=OPTIMIZERS,
            explanation="The rule that turns gradients into weight updates (sgd uses momentum 0.9).",
            effect="adam/adamw are forgiving; sgd often needs a larger learning rate and more epochs; rmsprop suits recurrent nets."),
        _hp(name="learning_rate", kind="float", applies_to="both", group="optimisation", default=1e-3, low=1e-4, high=3e-2,
            log=True,
            explanation="Step size of each update.",
            effect="Too high: the loss jumps or turns NaN (low training stability). Too low: slow convergence."),
        _hp(name="lr_schedule", kind="categorical", applies_to="both", group="optimisation", default="constant",
            choices=SCHEDULES,
            explanation="How the learning rate changes over training: constant, cosine decay, halved in steps, or cut when validation stalls.",
            effect="Decaying schedules let the loss settle at the end (better convergence quality)."),
        _hp(name="batch_size", kind="categorical", applies_to="both", group="optimisation", default=64,
            choices=(16, 32, 64, 128, 256),
            explanation="Examples per weight update.",
            effect="Small batches give noisy but regularising updates; large batches are faster per epoch but may generalise worse."),
        _hp(name="epochs", kind="int", applies_to="both", group="optimisation", default=10, low=1, high=50,
            explanation="Passes over the training data (when tuned, it overrides the study's epochs per trial).",
            effect="Too few underfits; too many overfits unless validation loss is watched."),
    ]
}

# Tuned by default when a study does not say: the knobs that matter most, kept few so a
# short study still learns something.
DEFAULT_TUNED: dict[str, tuple[str, ...]] = {
    "image": ("conv_blocks", "filters", "dense_units", "dropout", "activation", "learning_rate", "batch_size"),
    "text": ("embedding_dim", "lstm_units", "bidirectional", "dropout", "learning_rate", "batch_size"),
}


def hyperparameters_for(kind: str) -> list[Hyperparameter]:
    """The knobs that apply to a data kind ("image" or "text"), in definition order."""
    if kind not in ("image", "text"):
        raise ConfigError(f"data kind must be 'image' or 'text' (got {kind!r})")
    return [h for h in HYPERPARAMETERS.values() if h.applies(kind)]


def defaults(kind: str) -> dict[str, Any]:
    """Default params for a data kind: a sensible model without any tuning."""
    return {h.name: h.default for h in hyperparameters_for(kind)}


def validate_space(kind: str, tune: Iterable[str], ranges: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Refuse unknown knobs and ranges that cannot be sampled, naming the knob."""
    known = {h.name for h in hyperparameters_for(kind)}
    for name in tune:
        if not isinstance(name, str) or name not in HYPERPARAMETERS:
            raise ConfigError(f"unknown hyperparameter {brief(name)}; known: {', '.join(sorted(HYPERPARAMETERS))}")
        if name not in known:
            raise ConfigError(f"hyperparameter '{name}' does not apply to {kind} data; choose from {', '.join(sorted(known))}")
    if ranges is None:
        return
    if not isinstance(ranges, Mapping):
        raise ConfigError(f"ranges: must map hyperparameter names to ranges (got {brief(ranges)})")
    for name, r in ranges.items():
        hp = HYPERPARAMETERS.get(name) if isinstance(name, str) else None
        if hp is None:
            raise ConfigError(f"range given for unknown hyperparameter {brief(name)}; known: {', '.join(sorted(HYPERPARAMETERS))}")
        if not isinstance(r, Mapping):
            raise ConfigError(f"'{name}': a range is low/high or a list of choices (got {brief(r)})")
        _check_range(hp, r)


def _check_range(hp: Hyperparameter, r: Mapping[str, Any]) -> None:
    if hp.kind in ("categorical", "bool"):
        extra = set(r) - {"choices"}
        if extra:
            raise ConfigError(f"'{hp.name}': a choice knob takes only 'choices' (got {brief(sorted(map(str, extra)))})")
        choices = r.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"'{hp.name}': choose at least one option from {hp.describe_range()}")
        allowed = hp.range_dict()["choices"]
        bad = [c for c in choices if not _is_choice(c, allowed)]
        if bad:
            raise ConfigError(f"'{hp.name}': {brief(bad)} not allowed; options are {hp.describe_range()}")
        return
    extra = set(r) - {"low", "high"}
    if extra:
        raise ConfigError(f"'{hp.name}': a numeric knob takes 'low' and 'high' (got {brief(sorted(map(str, extra)))})")
    low, high = r.get("low", hp.low), r.get("high", hp.high)
    if low is None or high is None:
        raise ConfigError(f"'{hp.name}': give both a low and a high value")
    integer = hp.kind == "int"
    low = as_number(low, f"'{hp.name}' low", integer=integer)
    high = as_number(high, f"'{hp.name}' high", integer=integer)
    if low > high:
        raise ConfigError(f"'{hp.name}': low ({low}) is above high ({high})")
    if low < hp.low or high > hp.high:
        raise ConfigError(f"'{hp.name}': range {low}–{high} is outside the allowed {hp.low}–{hp.high}")
    if hp.log and low <= 0:
        raise ConfigError(f"'{hp.name}' is sampled on a log scale: low must be above 0")


def _is_choice(value: Any, allowed: Iterable[Any]) -> bool:
    # True == 1 and 3.0 == 3 in Python: a bool is only a bool's choice, and a number only a number's.
    return any(value == a and isinstance(value, bool) == isinstance(a, bool)
               and isinstance(value, str) == isinstance(a, str) for a in allowed)


def value_limits(hp: Hyperparameter) -> tuple[float, float]:
    """The values a knob may take when fixed (not searched): its range, and up to MAX_EPOCHS for epochs."""
    assert hp.low is not None and hp.high is not None
    return (hp.low, MAX_EPOCHS) if hp.name == "epochs" else (hp.low, hp.high)


def validate_value(hp: Hyperparameter, value: Any, what: str = "params") -> Any:
    """One hyperparameter value checked against its knob (type, finite, range or choices); returns it normalised.

    Raises:
        ConfigError: a one-line message naming the knob and what it accepts.
    """
    label = f"{what}: '{hp.name}'"
    if hp.kind in ("categorical", "bool"):
        if not _is_choice(value, hp.range_dict()["choices"]):
            raise ConfigError(f"{label} must be one of {hp.describe_range()} (got {brief(value)})")
        return value
    number = as_number(value, label, integer=hp.kind == "int")
    low, high = value_limits(hp)
    if number == hp.default:  # a default outside the search range (weight_decay 0 = off) is still valid
        return number
    if not low <= number <= high:
        raise ConfigError(f"{label} must be from {low} to {high} (got {number})")
    return number


def validate_params(params: Mapping[str, Any], kind: str | None = None, *, what: str = "params") -> dict[str, Any]:
    """Every hyperparameter value from every entry point (form, CLI, spec file, RunPod job) is checked here.

    Args:
        params: name -> value; knobs not given keep their defaults later.
        kind: "image" or "text" to refuse knobs of the other kind; None accepts any known knob.
        what: the setting's name for messages ("params", "fixed", "--param").

    Returns:
        A copy with numbers normalised (3.0 -> 3 for whole-number knobs).

    Raises:
        ConfigError: an unknown name, a wrong type, NaN/inf, or a value out of range.
    """
    if not isinstance(params, Mapping):
        raise ConfigError(f"{what}: must map hyperparameter names to values (got {brief(params)})")
    known = {h.name for h in hyperparameters_for(kind)} if kind is not None else set(HYPERPARAMETERS)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(name, str) or name not in known:
            where = f" for {kind} data" if kind else ""
            raise ConfigError(f"{what}: unknown hyperparameter {brief(name)}{where}; known: {', '.join(sorted(known))}")
        out[name] = validate_value(HYPERPARAMETERS[name], value, what)
    return out


def suggest(
    trial: Any,
    kind: str,
    tune: Iterable[str] | None = None,
    ranges: Mapping[str, Mapping[str, Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Draw a full params dict for one trial.

    Args:
        trial: an ``optuna.Trial`` (anything with suggest_int/float/categorical).
        kind: "image" (CNN) or "text" (LSTM).
        tune: knobs to search; the rest take their defaults. None = DEFAULT_TUNED[kind].
        ranges: per-knob overrides, ``{"filters": {"low": 16, "high": 64}}`` or ``{"pooling": {"choices": [...]}}``.
        fixed: values for untuned knobs that replace the defaults.

    Returns:
        Every knob that applies to ``kind``, tuned or not, so a result always records the
        full configuration that reproduces it.
    """
    tune = tuple(DEFAULT_TUNED[kind] if tune is None else tune)
    ranges = ranges or {}
    validate_space(kind, tune, ranges)
    params = defaults(kind)
    params.update({k: v for k, v in (fixed or {}).items() if k in params})
    for hp in hyperparameters_for(kind):
        if hp.name not in tune:
            continue
        r = {**hp.range_dict(), **ranges.get(hp.name, {})}
        if hp.kind == "int":
            params[hp.name] = trial.suggest_int(hp.name, int(r["low"]), int(r["high"]), log=hp.log)
        elif hp.kind == "float":
            params[hp.name] = trial.suggest_float(hp.name, float(r["low"]), float(r["high"]), log=hp.log)
        else:
            params[hp.name] = trial.suggest_categorical(hp.name, list(r["choices"]))
    return params

