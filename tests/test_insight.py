"""core.insight: what a trained model does with test inputs, kept at training time (issue 14).

The tf-marked tests train real (tiny) models through ``run_trial``; the others check the file
format, the exports and keep-best-k on constructed insights, without TensorFlow.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import insight as I
from core.paths import INSIGHT_FILE, MODEL_FILE, RESULT_FILE

ROOT = Path(__file__).resolve().parent.parent
TINY_CNN = {"conv_blocks": 2, "filters": 8, "dense_units": 16, "batch_norm": False, "learning_rate": 0.01,
            "batch_size": 32, "dropout": 0.0, "activation": "relu"}
TINY_LSTM = {"lstm_units": 8, "embedding_dim": 8, "dense_layers": 1, "dense_units": 16, "batch_size": 32,
             "bidirectional": False, "lstm_layers": 1, "learning_rate": 0.01, "dropout": 0.0, "recurrent_dropout": 0.0}


def _made_up(kind: str = "image") -> I.Insight:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=3).astype(np.float32)
    layers = [I.LayerInsight("conv_1", "conv2d", "relu", 4, np.array([1, 0, 0, 0], bool), np.zeros(4, bool), "never fire"),
              I.LayerInsight("lstm_1", "lstm", "tanh", 2, np.array([0, 1], bool), np.array([0, 1], bool), "saturated")]
    examples = []
    for k in range(3):
        acts = {"conv_1": rng.normal(size=(5, 5, 4)).astype(np.float32),
                "lstm_1": np.tanh(rng.normal(size=(k + 2, 2))).astype(np.float32)}
        examples.append(I.Example(index=10 + k, role="probe" if k < 2 else "misclassified", true=k, predicted=(k + 1) % 3,
                                  probs=probs[k], image=rng.integers(0, 256, size=(5, 5), dtype=np.uint8) if kind == "image" else None,
                                  words=[f"w{i}" for i in range(k + 2)] if kind == "text" else None, activations=acts))
    return I.Insight(kind=kind, class_names=["a", "b", "c"], confusion=np.array([[3, 1, 0], [0, 2, 2], [1, 0, 5]]),
                     examples=examples, layers=layers, filters=rng.normal(size=(3, 3, 1, 4)).astype(np.float32),
                     filters_layer="conv_1")


# --------------------------------------------------------------------------- the file, without TensorFlow


@pytest.mark.parametrize("kind", ["image", "text"])
def test_save_and_load_round_trip_within_8_bit_steps(tmp_path, kind):
    made = _made_up(kind)
    got = I.load(I.save(made, tmp_path / INSIGHT_FILE))
    assert got is not None and got.kind == kind and got.class_names == made.class_names
    assert np.array_equal(got.confusion, made.confusion)
    assert [(e.index, e.role, e.true, e.predicted, e.words) for e in got.examples] == \
        [(e.index, e.role, e.true, e.predicted, e.words) for e in made.examples]
    for g, m in zip(got.examples, made.examples):
        assert np.allclose(g.probs, m.probs)
        assert (g.image is None) == (kind == "text") and (g.image is None or np.array_equal(g.image, m.image))
        for name, a in m.activations.items():
            b = g.activations[name]
            assert b.dtype == np.float32 and b.shape == a.shape  # LSTM rows: one per word, padding undone
            step = (a.max() - a.min()) / 255
            assert np.abs(b - a).max() <= step / 2 + 1e-6, name
    assert [list(lay.dead) for lay in got.layers] == [list(lay.dead) for lay in made.layers]
    assert [list(lay.saturated) for lay in got.layers] == [list(lay.saturated) for lay in made.layers]
    assert np.allclose(got.filters, made.filters, atol=1e-2) and got.filters_layer == "conv_1"
    assert got.class_accuracy == [0.75, 0.5, 5 / 6]


def test_missing_truncated_or_foreign_files_load_as_none(tmp_path):
    path = I.save(_made_up(), tmp_path / INSIGHT_FILE)
    assert I.load(tmp_path / "nothing.npz") is None
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    assert I.load(tmp_path / "cut.npz") is None
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    assert I.load(tmp_path / "other.npz") is None
    assert not list(tmp_path.glob(".insight-*"))  # the temp file of the atomic write is gone


def test_probes_and_mistakes_are_chosen_as_documented():
    labels = np.array([2, 0, 0, 1, 2, 1, 3])
    assert I.probe_indices(labels, n=3) == [1, 3, 0]  # first of class 0, 1, 2 (class order), then stop
    assert I.probe_indices(labels) == [1, 3, 0, 6]  # fewer classes than N_PROBES: one per class
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert I.misclassified_indices(np.array([0, 0, 0, 1]), probs) == [0, 2, 3]  # 0.9, 0.7, 0.6 confident


def test_exports_name_and_hold_the_confusion_and_mistakes(tmp_path):
    from core import artifacts
    from core.config import TrialResult

    folder = tmp_path / "trial-0004"
    I.save(_made_up("text"), folder / INSIGHT_FILE)
    res = TrialResult(status="complete", trial_number=4, dataset="synthetic_text", val_accuracy=0.8,
                      result_path=str(folder / RESULT_FILE))
    name, data = artifacts.insight_json("my study", res)
    assert name.startswith("my-study_errors_trial-0004_val-acc-0.8000_") and name.endswith(".json")
    doc = json.loads(data)
    assert doc["split"] == "test" and doc["confusion"] == [[3, 1, 0], [0, 2, 2], [1, 0, 5]]
    assert [r["test_samples"] for r in doc["per_class"]] == [4, 4, 6]
    assert [m["test_index"] for m in doc["misclassified"]] == [12] and doc["misclassified"][0]["text"] == "w0 w1 w2 w3"
    cname, cdata = artifacts.insight_csv("my study", res)
    lines = cdata.decode().splitlines()
    assert cname.endswith(".csv") and lines[0].startswith("class,name,test_samples,correct,accuracy,predicted a")
    assert lines[2] == "1,b,4,2,0.5000,0,2,2"
    (folder / INSIGHT_FILE).unlink()
    assert artifacts.insight_json("my study", res) is None


def test_keep_best_k_deletes_models_and_never_the_insight(tmp_path):
    from core.artifacts import prune_models

    for n in (0, 1, 2):
        d = tmp_path / f"trial-{n:04d}"
        d.mkdir()
        (d / MODEL_FILE).write_bytes(b"m")
        (d / RESULT_FILE).write_text("{}")
        I.save(_made_up(), d / INSIGHT_FILE)
    removed = prune_models(tmp_path, keep=[1])
    assert sorted(p.parent.name for p in removed) == ["trial-0000", "trial-0002"]
    for n in (0, 1, 2):
        assert I.load(tmp_path / f"trial-{n:04d}" / INSIGHT_FILE) is not None
    assert (tmp_path / "trial-0001" / MODEL_FILE).exists() and not (tmp_path / "trial-0000" / MODEL_FILE).exists()


# --------------------------------------------------------------------------- real trained models

def _run(tmp_path, dataset, params, data, name, seed=0, epochs=3):
    from core.config import TrialSpec
    from core.training import run_trial

    spec = TrialSpec(dataset=dataset, params=dict(params), epochs=epochs, max_samples=300, study="insight", seed=seed,
                     artifacts_dir=str(tmp_path / name))
    result = run_trial(spec, dataset=data)
    assert result.status == "complete", result.error
    assert "insight" in result.timings
    return result, I.load(tmp_path / name / INSIGHT_FILE)


@pytest.fixture(scope="module")
def digits():
    from core.datasets import load_dataset

    return load_dataset("digits", max_samples=300, seed=0)


@pytest.fixture(scope="module")
def cnn_trials(tmp_path_factory, digits):
    import keras

    tmp = tmp_path_factory.mktemp("cnn")
    keras.backend.clear_session()
    a = _run(tmp, "digits", TINY_CNN, digits, "a", seed=0)
    b = _run(tmp, "digits", {**TINY_CNN, "filters": 12, "activation": "tanh"}, digits, "b", seed=1, epochs=1)
    keras.backend.clear_session()
    return a, b


@pytest.mark.tf
def test_confusion_matches_the_reported_test_accuracy(cnn_trials, digits):
    for result, got in cnn_trials:
        assert got is not None and got.kind == "image"
        n = len(digits.y_test)
        assert int(got.confusion.sum()) == n == result.test_samples
        assert int(np.trace(got.confusion)) == round(result.test_accuracy * n)
        assert np.array_equal(got.confusion.sum(axis=1), np.bincount(digits.y_test, minlength=10))


@pytest.mark.tf
def test_probes_are_the_same_inputs_in_every_trial(cnn_trials, digits):
    (_, a), (_, b) = cnn_trials
    pa = [e for e in a.examples if e.role == "probe"]
    pb = [e for e in b.examples if e.role == "probe"]
    assert [e.index for e in pa] == [e.index for e in pb] and len(pa) == I.N_PROBES
    assert [e.true for e in pa] == list(range(I.N_PROBES))  # one per class, in class order
    for ea, eb in zip(pa, pb):
        assert np.array_equal(ea.image, eb.image) and ea.image.shape == (8, 8) and ea.image.dtype == np.uint8
        # as the user sees it: the loader's [0, 1] scaled back to 0..255
        assert np.array_equal(ea.image, np.rint(digits.x_test[ea.index][..., 0] * 255).astype(np.uint8))


@pytest.mark.tf
def test_misclassified_are_wrong_and_most_confident_first(cnn_trials, digits):
    for _result, got in cnn_trials:
        wrong = [e for e in got.examples if e.role == "misclassified"]
        n_wrong = int(got.confusion.sum() - np.trace(got.confusion))
        assert len(wrong) == min(I.MAX_MISCLASSIFIED, n_wrong) and wrong
        for e in wrong:
            assert e.true == int(digits.y_test[e.index]) and e.predicted != e.true and not e.correct
            assert e.predicted == int(np.argmax(e.probs))
        conf = [e.confidence for e in wrong]
        assert conf == sorted(conf, reverse=True)


@pytest.mark.tf
def test_layer_outputs_and_dead_share_match_the_health_metric(cnn_trials):
    for result, got in cnn_trials:
        reported = {lay.name: lay.dead_fraction for lay in result.layers if lay.dead_fraction is not None}
        assert set(reported) == {lay.name for lay in got.layers} == {"conv_1", "conv_2", "dense_1"}
        for lay in got.layers:
            assert lay.dead.shape == (lay.units,) and abs(lay.dead.mean() - reported[lay.name]) < 1e-9, lay.name
        ex = got.examples[0]
        assert ex.activations["conv_1"].shape == (8, 8, min(got.layer("conv_1").units, I.MAX_CHANNELS))
        assert ex.activations["dense_1"].shape == (16,)
        assert got.filters is not None and got.filters.shape[-1] == got.layer("conv_1").units
    # the tanh trial marks saturation only where its units are near ±1 almost always
    assert cnn_trials[1][1].layer("dense_1").activation == "tanh"


@pytest.mark.tf
def test_killed_relu_units_show_as_dead(digits, clear_keras):
    import keras

    from core import health as H
    from core.models import build_model, unit_layers
    from core.training import _predict, _predict_with_probe

    keras.utils.set_random_seed(0)
    model = build_model(dict(TINY_CNN), digits.info, steps_per_epoch=10, epochs=2)
    model.fit(digits.x_train, digits.y_train, epochs=2, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("dense_1").get_weights()
    killed = np.arange(16) % 2 == 0
    bias[killed] = -1e4  # these units can never fire again
    model.get_layer("dense_1").set_weights([kernel, bias])
    units = unit_layers(model)
    _, acts = _predict_with_probe(model, units, digits.x_val)
    stats = [{**u, **H.unit_statistics(a)} for u, a in zip(units, acts)]
    got = I.collect(model, units, digits, _predict(model, digits.x_test), stats)
    dense = got.layer("dense_1")
    assert dense.dead[killed].all() and dense.dead_label == H.dead_label("relu")
    assert all(np.all(e.activations["dense_1"][killed] == 0) for e in got.examples)


@pytest.mark.tf
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_states_one_row_per_kept_word(tmp_path, clear_keras, bidirectional):
    from core.datasets import load_dataset
    from core.datasets._embedded import _synthetic_vocabulary

    data = load_dataset("synthetic_text", max_samples=300, seed=0)
    params = {**TINY_LSTM, "bidirectional": bidirectional}
    result, got = _run(tmp_path, "synthetic_text", params, data, "lstm", epochs=2)
    assert got is not None and got.kind == "text"
    assert int(got.confusion.sum()) == result.test_samples
    vocab = _synthetic_vocabulary()
    name = "bilstm_1" if bidirectional else "lstm_1"
    units = 16 if bidirectional else 8
    for e in got.examples:
        tokens = data.x_test[e.index]
        assert e.image is None and e.words == [vocab[t] for t in tokens if t != 0]  # padding dropped
        assert "<pad>" not in e.words
        assert e.activations[name].shape == (len(e.words), units)
        assert np.abs(e.activations[name]).max() <= 1.0 + 1e-2  # tanh of the cell state


@pytest.mark.tf
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_sequence_twin_ends_where_the_layer_ends(clear_keras, bidirectional):
    import keras

    from core.datasets import load_dataset
    from core.models import build_model

    data = load_dataset("synthetic_text", max_samples=200, seed=0)
    keras.utils.set_random_seed(0)
    model = build_model({**TINY_LSTM, "bidirectional": bidirectional}, data.info, steps_per_epoch=7, epochs=1)
    model.fit(data.x_train, data.y_train, epochs=1, batch_size=32, verbose=0)
    name = "bilstm_1" if bidirectional else "lstm_1"
    seq, own = I.lstm_sequence_outputs(model, name, data.x_test[:5])
    assert seq.shape == (5, data.info.seq_len, own.shape[-1]) and own.ndim == 2
    if bidirectional:  # forward half ends at the last token, backward half at the first
        half = own.shape[-1] // 2
        assert np.allclose(seq[:, -1, :half], own[:, :half], atol=1e-5)
        assert np.allclose(seq[:, 0, half:], own[:, half:], atol=1e-5)
    else:
        assert np.allclose(seq[:, -1], own, atol=1e-5)


@pytest.mark.tf
def test_loading_imports_no_tensorflow(cnn_trials, tmp_path):
    path = tmp_path / INSIGHT_FILE
    I.save(cnn_trials[0][1], path)
    code = ("import sys; from core import insight; got = insight.load(sys.argv[1]); "
            "print(got is not None, len(got.examples), any(m in sys.modules for m in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["True", str(len(cnn_trials[0][1].examples)), "False"], out.stderr


@pytest.mark.tf
def test_a_failing_collect_warns_and_keeps_the_trial(tmp_path, digits, monkeypatch, caplog, clear_keras):
    def broken(*_a, **_k):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(I, "collect", broken)
    from core.config import TrialSpec
    from core.training import run_trial

    spec = TrialSpec(dataset="digits", params=dict(TINY_CNN), epochs=1, max_samples=300, study="insight",
                     artifacts_dir=str(tmp_path / "t"))
    # core.logs.setup_logs (run by earlier tests in the same process) stops "hpo" propagating to
    # the root logger, where caplog listens: listen on the logger itself
    logger = logging.getLogger("hpo.training")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("WARNING", logger="hpo.training"):
            result = run_trial(spec, dataset=digits)
    finally:
        logger.removeHandler(caplog.handler)
    assert result.status == "complete" and result.test_accuracy is not None
    assert (tmp_path / "t" / MODEL_FILE).is_file() and (tmp_path / "t" / RESULT_FILE).is_file()
    assert not (tmp_path / "t" / INSIGHT_FILE).exists()
    assert any("could not collect the insight" in r.getMessage() and "probe exploded" in r.getMessage() for r in caplog.records)
