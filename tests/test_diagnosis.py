"""core.diagnosis: each rule fires on the evidence it names, and stays quiet on a healthy trial."""

from __future__ import annotations

from core.config import LayerHealth, TrialResult
from core.diagnosis import SEVERITIES, Finding, diagnose, diagnose_many


def _healthy(**overrides) -> TrialResult:
    """A complete, healthy trial: falling losses, small gap, live units, gradients in band."""
    base = dict(
        status="complete",
        trial_number=3,
        dataset="digits",
        val_accuracy=0.95,
        test_accuracy=0.94,
        history={
            "loss": [1.2, 0.6, 0.35, 0.25],
            "accuracy": [0.7, 0.85, 0.93, 0.96],
            "val_loss": [0.9, 0.5, 0.33, 0.325],
            "val_accuracy": [0.75, 0.88, 0.93, 0.95],
        },
        epochs_run=4,
        health={
            "neuron_utilization": 0.95,
            "parameter_efficiency": 0.6,
            "training_stability": 1.0,
            "gradient_health": 0.98,
            "convergence_quality": 0.85,
            "accuracy_consistency": 0.95,
        },
        health_score=0.88,
        layers=[
            LayerHealth("conv_1", "conv2d", 32, dead_fraction=0.02, grad_norm=0.05, update_ratio=5e-3, gradient_score=1.0),
            LayerHealth("conv_2", "conv2d", 64, dead_fraction=0.05, grad_norm=0.08, update_ratio=4e-3, gradient_score=1.0),
            LayerHealth("dense_1", "dense", 128, dead_fraction=0.08, grad_norm=0.1, update_ratio=6e-3, gradient_score=1.0),
            LayerHealth("output", "dense", 0, grad_norm=0.3, update_ratio=8e-3, gradient_score=1.0),
        ],
        param_count=40_000,
        params={"learning_rate": 0.001, "activation": "relu", "dropout": 0.2, "optimizer": "adam"},
    )
    base.update(overrides)
    return TrialResult(**base)


def _titles(findings: list[Finding]) -> str:
    return " | ".join(f.title for f in findings)


def test_healthy_trial_gets_one_good_finding():
    findings = diagnose(_healthy(), num_classes=10)
    assert [f.severity for f in findings] == ["good"]
    assert "0.88" in findings[0].detail


def test_none_and_running_give_nothing():
    assert diagnose(None) == []


def test_nan_loss_names_the_epoch_and_the_learning_rate():
    r = _healthy(
        status="failed",
        error="loss became NaN/Inf at epoch 3 (learning rate 0.03, optimizer sgd): lower the learning rate",
        history={"loss": [2.1, 5.3, None], "accuracy": [0.2, 0.1, None]},
        params={"learning_rate": 0.03, "optimizer": "sgd"},
        val_accuracy=None,
    )
    findings = diagnose(r)
    assert findings[0].severity == "critical"
    assert findings[0].title == "Loss diverged at epoch 3: lower the learning rate"
    assert "0.03" in findings[0].detail and "sgd" in findings[0].detail
    assert "learning_rate" in findings[0].suggestion


def test_nan_from_error_message_when_history_is_empty():
    r = _healthy(status="failed", error="loss became NaN/Inf at epoch 1", history={}, val_accuracy=None)
    assert diagnose(r)[0].title.startswith("Loss diverged at epoch 1")


def test_other_failure_reports_its_error():
    r = _healthy(status="failed", error="out of memory: lower batch_size", history={}, val_accuracy=None)
    f = diagnose(r)
    assert f[0].severity == "critical" and "out of memory" in f[0].detail


def test_rising_loss_is_critical():
    r = _healthy(history={"loss": [1.0, 1.4, 1.9], "val_loss": [1.0, 1.3, 1.8]})
    assert any(f.title == "Training loss rose instead of falling" for f in diagnose(r))


def test_dead_relu_units_suggest_leaky_relu():
    r = _healthy(layers=[LayerHealth("dense_1", "dense", 128, dead_fraction=0.38, grad_norm=0.1)],
                 params={**_healthy().params, "batch_norm": False})
    findings = diagnose(r)
    dead = [f for f in findings if f.metric == "neuron_utilization"]
    assert len(dead) == 1
    assert dead[0].title == "38% of dense_1 never fires"
    assert dead[0].severity == "warning"
    assert "leaky_relu" in dead[0].suggestion and "learning_rate" in dead[0].suggestion
    assert "batch_norm" not in dead[0].suggestion  # dense layers never get batch norm in this product
    assert "49 of 128" in dead[0].detail and "never fire" in dead[0].detail
    assert dead[0].layer == "dense_1"  # the finding names its layer


def test_batch_norm_is_suggested_only_for_conv_layers_without_it():
    layer = LayerHealth("conv_1", "conv2d", 32, dead_fraction=0.4)
    without = [f for f in diagnose(_healthy(layers=[layer], params={"activation": "relu", "batch_norm": False}))
               if f.metric == "neuron_utilization"]
    with_bn = [f for f in diagnose(_healthy(layers=[layer], params={"activation": "relu", "batch_norm": True}))
               if f.metric == "neuron_utilization"]
    assert "batch_norm" in without[0].suggestion
    assert "batch_norm" not in with_bn[0].suggestion


def test_leaky_relu_units_are_called_constant_never_zero():
    """A leaky-ReLU unit that never goes positive still outputs a signal: only constant units are dead."""
    r = _healthy(layers=[LayerHealth("dense_1", "dense", 64, dead_fraction=0.3)], params={"activation": "leaky_relu"})
    f = [x for x in diagnose(r) if x.metric == "neuron_utilization"][0]
    assert f.title == "30% of dense_1 gives a constant output"
    assert "zero" not in f.detail and "never fire" not in f.detail
    assert "constant" in f.detail


def test_mostly_dead_layer_is_critical_and_few_dead_is_fine():
    r = _healthy(
        layers=[
            LayerHealth("conv_1", "conv2d", 32, dead_fraction=0.1),
            LayerHealth("dense_1", "dense", 64, dead_fraction=0.6),
        ]
    )
    dead = [f for f in diagnose(r) if f.metric == "neuron_utilization"]
    assert [(f.layer, f.severity) for f in dead] == [("dense_1", "critical")]


def test_saturated_lstm_units_are_called_saturated():
    r = _healthy(layers=[LayerHealth("lstm_1", "lstm", 64, dead_fraction=0.3)], params={"activation": "relu"})
    f = [x for x in diagnose(r) if x.layer == "lstm_1"][0]
    assert "saturated" in f.title


def test_overfitting_gap_and_val_loss_turning_up():
    r = _healthy(
        history={
            "loss": [1.0, 0.4, 0.1, 0.03],
            "accuracy": [0.7, 0.9, 0.98, 0.995],
            "val_loss": [0.8, 0.55, 0.6, 0.75],
            "val_accuracy": [0.72, 0.8, 0.8, 0.78],
        },
        val_accuracy=0.78,
    )
    findings = diagnose(r)
    gap = [f for f in findings if f.title.startswith("Overfitting")]
    assert gap and gap[0].severity == "critical"  # 21.5 points >= GAP_CRITICAL
    assert "21-point" in gap[0].title  # 0.995 - 0.78
    assert "dropout" in gap[0].suggestion
    assert any("bottomed out at epoch 2" in f.title for f in findings)


def test_measured_train_accuracy_is_the_gap_convergence_scores():
    """The gap is the one core.health scores: train accuracy measured without dropout, not the epoch's running mean."""
    r = _healthy(history={**_healthy().history, "accuracy": [0.7, 0.8, 0.85, 0.86]}, train_accuracy=1.0, val_accuracy=0.9)
    gap = [f for f in diagnose(r) if f.title.startswith("Overfitting")]
    assert gap and "10-point" in gap[0].title and gap[0].severity == "warning"


def test_moderate_gap_is_a_warning():
    r = _healthy(history={"accuracy": [0.8, 0.99], "val_accuracy": [0.8, 0.87], "loss": [1, 0.5], "val_loss": [1, 0.9]},
                 val_accuracy=0.87)
    gap = [f for f in diagnose(r) if f.title.startswith("Overfitting")]
    assert gap[0].severity == "warning"


def test_stalled_layers_from_their_update_rate():
    r = _healthy(
        layers=[
            LayerHealth("conv_1", "conv2d", 32, update_ratio=2e-7, gradient_score=0.0),
            LayerHealth("conv_2", "conv2d", 64, update_ratio=3e-5, gradient_score=0.35),
            LayerHealth("dense_1", "dense", 128, update_ratio=5e-3, gradient_score=1.0),
            LayerHealth("output", "dense", 0, update_ratio=8e-3, gradient_score=1.0),
        ]
    )
    van = [f for f in diagnose(r) if f.metric == "gradient_health"]
    assert len(van) == 1 and van[0].layer == "conv_1"
    assert van[0].title == "Weights barely move in conv_1, conv_2"
    assert "3e-4" in van[0].detail and "learning_rate" in van[0].suggestion


def test_exploding_updates():
    r = _healthy(layers=[LayerHealth("dense_1", "dense", 64, update_ratio=5.0, gradient_score=0.0),
                         LayerHealth("output", "dense", 0, update_ratio=0.05, gradient_score=1.0)])
    ex = [f for f in diagnose(r) if f.title.startswith("Exploding")]
    assert ex and ex[0].severity == "critical" and "learning_rate" in ex[0].suggestion


def test_oversized_model():
    r = _healthy(param_count=2_100_000, health={**_healthy().health, "parameter_efficiency": 0.21}, val_accuracy=0.91)
    f = [x for x in diagnose(r, num_classes=10) if x.metric == "parameter_efficiency"]
    assert f and "2,100,000 parameters for 91%" in f[0].detail and "4.3x the parameter budget" in f[0].detail
    # a big model with low efficiency because it learned little is not called oversized
    stuck = _healthy(param_count=2_100_000, health={**_healthy().health, "parameter_efficiency": 0.05}, val_accuracy=0.2)
    assert not [x for x in diagnose(stuck, num_classes=10) if x.metric == "parameter_efficiency"]
    # a small model with low efficiency is not called oversized
    small = _healthy(param_count=5_000, health={**_healthy().health, "parameter_efficiency": 0.21})
    assert not [x for x in diagnose(small, num_classes=10) if x.metric == "parameter_efficiency"]


def test_unstable_and_inconsistent_and_still_improving():
    h = {**_healthy().health, "training_stability": 0.3, "accuracy_consistency": 0.5}
    r = _healthy(health=h, history={**_healthy().history, "val_loss": [0.9, 0.6, 0.5, 0.4]},
                 class_accuracy=[0.99, 0.98, 0.0, 0.97, 0.96, 0.99, 0.98, 0.4, 0.97, 0.99])
    findings = diagnose(r)
    titles = _titles(findings)
    assert "Training loss jumps around" in titles
    assert "Some classes are served much worse than others" in titles
    assert "Still improving at the last epoch" in titles
    cons = [f for f in findings if f.metric == "accuracy_consistency"][0]
    assert "'2' 0%" in cons.detail and "'7' 40%" in cons.detail  # digits' class names are the digits
    assert "never gets '2' right" in cons.detail


def test_chance_level_needs_num_classes():
    r = _healthy(val_accuracy=0.12)
    assert "Barely better than guessing" in _titles(diagnose(r, num_classes=10))
    assert "Barely better than guessing" not in _titles(diagnose(r))


def test_pruned_trial_is_explained_not_blamed():
    r = TrialResult(status="stopped", trial_number=2, epochs_run=2, history={"loss": [1.0, 0.8]})
    f = diagnose(r)
    assert f[0].severity == "info" and "Stopped early after 2" in f[0].title


def test_sorted_by_severity_and_json_none_tolerated():
    r = _healthy(
        layers=[LayerHealth("dense_1", "dense", 64, dead_fraction=None, grad_norm=None)],
        health={"training_stability": None, "accuracy_consistency": 0.5},
        history={"loss": [1.0, 0.5], "accuracy": [0.9, 1.0], "val_accuracy": [0.6, 0.7], "val_loss": [1, 1]},
        val_accuracy=0.7,
    )
    findings = diagnose(r)
    ranks = [SEVERITIES.index(f.severity) for f in findings]
    assert ranks == sorted(ranks)
    assert findings[0].severity == "critical"


def test_diagnose_many_keys_by_trial_number():
    out = diagnose_many([_healthy(trial_number=1), None, _healthy(trial_number=4)])
    assert set(out) == {1, 4}


def test_core_diagnosis_imports_no_ui_or_tensorflow():
    import subprocess
    import sys

    code = "import sys, core.diagnosis; bad=[m for m in ('streamlit','tensorflow','keras') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
