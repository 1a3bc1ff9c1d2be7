"""AppTests of the Health screen's "Where the model goes wrong" on real trained trials (issue 14).

A digits CNN and a synthetic_text LSTM are trained (tiny, seconds) through ``run_trial``; their
``insight.npz`` files go into the trial folders of a fake study, so the screen renders what
training really wrote.  The UI process itself never imports TensorFlow for this.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import insight as I
from core import storage as S
from core.config import Settings
from core.paths import INSIGHT_FILE
from tests.fakes import make_fake_study

pytestmark = pytest.mark.tf  # the fixtures train real Keras models

ROOT = Path(__file__).resolve().parent.parent
ROUTER = str(ROOT / "streamlit_app.py")
HEALTH = "app/views/health.py"
TIMEOUT = 30
CNN = {"conv_blocks": 2, "filters": 8, "dense_units": 16, "batch_norm": False, "learning_rate": 0.01,
       "batch_size": 32, "dropout": 0.0}
LSTM = {"lstm_units": 8, "embedding_dim": 8, "dense_layers": 0, "batch_size": 32, "bidirectional": False,
        "lstm_layers": 1, "learning_rate": 0.01, "dropout": 0.0, "recurrent_dropout": 0.0}


def _train(folder: Path, dataset: str, params: dict, epochs: int) -> Path:
    import keras

    from core.config import TrialSpec
    from core.datasets import load_dataset
    from core.training import run_trial

    keras.backend.clear_session()
    data = load_dataset(dataset, max_samples=300, seed=0)
    spec = TrialSpec(dataset=dataset, params=params, epochs=epochs, max_samples=300, study="src", artifacts_dir=str(folder))
    result = run_trial(spec, dataset=data)
    assert result.status == "complete", result.error
    keras.backend.clear_session()
    return folder / INSIGHT_FILE


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.getbasetemp()  # inside the session's HPO_HOME (conftest)
    return {"cnn": _train(tmp / "src-cnn", "digits", CNN, 3), "lstm": _train(tmp / "src-lstm", "synthetic_text", LSTM, 2)}


@pytest.fixture(scope="module")
def study(tmp_path_factory, trained):
    """A fake digits study whose best trial carries the CNN's insight, a second one the LSTM's, a third none."""
    home = tmp_path_factory.mktemp("insight_home")
    settings = Settings(home=home)
    fake = make_fake_study(S.resolve_url(None, settings), "insight-study", n_complete=4, n_pruned=0, n_failed=1,
                           settings=settings)
    others = [n for n in fake.results if n != fake.best_number]
    folder = lambda n: settings.study_dir(fake.name) / f"trial-{n:04d}"  # noqa: E731
    shutil.copy(trained["cnn"], folder(fake.best_number) / INSIGHT_FILE)
    shutil.copy(trained["lstm"], folder(others[0]) / INSIGHT_FILE)
    return home, fake, others[0], others[1]


@pytest.fixture
def home(study, monkeypatch):
    home, *_ = study
    monkeypatch.setenv("HPO_HOME", str(home))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    return home


def _health(trial: int | None = None, fake=None) -> AppTest:
    at = AppTest.from_file(ROUTER, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(HEALTH).run()
    if trial is not None:
        at.selectbox(key=f"health-trial-{fake.name}").set_value(trial).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def _heatmap(at: AppTest) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Confusion matrix"))


def test_cnn_trial_shows_its_confusion_classes_and_mistakes(home, study, trained):
    _, fake, _, _ = study
    ins = I.load(trained["cnn"])
    at = _health()
    assert at.selectbox(key=f"health-trial-{fake.name}").value == fake.best_number
    assert "Where the model goes wrong" in [h.value for h in at.subheader]
    assert {"Confusion matrix (test split)", "Accuracy per class (test split, 95 % margins)"} <= set(_titles(at))
    heat = _heatmap(at)["data"][0]
    assert np.array_equal(np.array(heat["customdata"]), ins.confusion)  # the counts training wrote
    table = next(d.value for d in at.dataframe if "test samples" in d.value.columns)
    assert list(table["test samples"]) == list(ins.confusion.sum(axis=1))
    assert table["± (95 %)"].notna().all() and (table["± (95 %)"] > 0).all()
    wrong = [e for e in ins.examples if e.role == "misclassified"]
    assert wrong
    images = at.get("image")
    assert len(images) == len(wrong)
    shown = [img.captions[0] for img in images]
    assert shown[0] == f"{ins.class_names[wrong[0].true]} → {ins.class_names[wrong[0].predicted]} ({100 * wrong[0].confidence:.0f} %)"
    assert "Misclassified test images" in " ".join(m.value for m in at.markdown)
    labels = [d.label for d in at.get("download_button")]
    assert "Errors (JSON)" in labels and "Per-class accuracy (CSV)" in labels


def test_look_inside_opens_the_viewer_on_that_example(home, study, trained):
    _, fake, _, _ = study
    first = next(e for e in I.load(trained["cnn"]).examples if e.role == "misclassified")
    at = _health()
    at.button(key=f"inside-{fake.best_number}-{first.index}").click().run()
    assert at.session_state["inside"] == {"study": fake.name, "trial": fake.best_number, "example": first.index}
    assert "Where the model goes wrong" not in [h.value for h in at.subheader]  # we left the Health page


def test_lstm_trial_shows_words_not_images(home, study, trained):
    _, fake, lstm_trial, _ = study
    ins = I.load(trained["lstm"])
    at = _health(lstm_trial, fake)
    heat = _heatmap(at)
    assert heat["data"][0]["x"] == ins.class_names and np.array(heat["data"][0]["customdata"]).sum() == ins.confusion.sum()
    assert not at.get("image")
    text = " ".join(m.value for m in at.markdown)
    assert "Misclassified test texts" in text and "image" not in text.lower()
    wrong = [e for e in ins.examples if e.role == "misclassified"]
    assert wrong and " ".join(wrong[0].words[:10]) in text  # decoded words, padding dropped
    captions = " ".join(c.value for c in at.caption)
    assert f"{ins.class_names[wrong[0].true]} → {ins.class_names[wrong[0].predicted]}" in captions


def test_a_trial_without_insight_says_so_in_one_line(home, study):
    _, fake, _, bare = study
    at = _health(bare, fake)
    assert not any(t.startswith("Confusion matrix") for t in _titles(at))
    assert any(c.value.startswith(f"No confusion matrix or misclassified examples for trial #{bare}") for c in at.caption)


def test_compare_shows_per_class_accuracy_side_by_side(home, study, trained):
    _, fake, _, bare = study
    at = _health()
    at.session_state["health-tab"] = "Compare"
    at.session_state[f"cmp-pick-{fake.name}"] = [fake.best_number, bare]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # the fake results predate per-class validation accuracy: said, not drawn as zeros
    assert any(c.value.startswith("No validation-split per-class figures for") and f"#{bare}" in c.value for c in at.caption)
    at.radio(key="cmp-class-split").set_value("test").run()
    assert "Accuracy per class (test split)" in _titles(at)
    table = next(d.value for d in at.dataframe if "class" in d.value.columns and f"#{fake.best_number}" in d.value.columns)
    want = [round(100 * a, 1) for a in I.load(trained["cnn"]).class_accuracy]
    assert list(table[f"#{fake.best_number}"]) == want and list(table["class"]) == [str(d) for d in range(10)]
    assert any(f"#{bare} (no insight file)" in c.value for c in at.caption)
