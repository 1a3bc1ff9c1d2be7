"""app/inside.py's pictures and figures, and the guided first study (app/guide.py).

The drawing rules are checked on hand-made arrays here (fast, no TensorFlow); the screens that
show them on real trained CNN and LSTM trials are tested in tests/test_app_viewer.py.
"""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from app import inside as INSIDE
from core import insight as INS

PROBS = np.array([0.05, 0.7, 0.25])


def example(**kw) -> INS.Example:
    base = dict(index=3, role="misclassified", true=2, predicted=1, probs=PROBS)
    return INS.Example(**{**base, **kw})


def layer(name="conv", layer_type="conv2d", units=4, dead=(True, False, False, False), sat=(False, False, True, False)):
    return INS.LayerInsight(name=name, layer_type=layer_type, activation="relu", units=units, dead=np.array(dead),
                            saturated=np.array(sat), dead_label="never fire (output 0) on held-out inputs")


def insight(**kw) -> INS.Insight:
    base = dict(kind="image", class_names=["zero", "one", "two"], confusion=np.array([[5, 0, 0], [0, 4, 1], [1, 2, 3]]),
                examples=[example()], layers=[layer()])
    return INS.Insight(**{**base, **kw})


def test_tile_grid_frames_dead_maps_red_and_saturated_orange_and_keeps_weak_maps_dark():
    maps = np.zeros((5, 5, 4))
    maps[..., 1] = 1.0  # strong
    maps[..., 3] = 0.1  # weak: darker than the strong one on the layer's shared scale
    pic = INSIDE.tile_grid(maps, dead=[True, False, False, False], saturated=[False, False, True, False], tile=20)
    assert pic.shape == (20, 4 * 20 + 3 * 4, 3) and pic.dtype == np.uint8
    tile = lambda i: pic[:, i * 24: i * 24 + 20]  # noqa: E731
    assert tuple(tile(0)[0, 10]) == INSIDE.DEAD_RGB and tuple(tile(0)[10, 10]) != INSIDE.DEAD_RGB
    assert tuple(tile(2)[0, 10]) == INSIDE.SATURATED_RGB
    assert tuple(tile(1)[0, 10]) not in (INSIDE.DEAD_RGB, INSIDE.SATURATED_RGB)
    assert tile(3)[10, 10].astype(int).sum() < tile(1)[10, 10].astype(int).sum()
    # each map on its own scale, the weak one is stretched as bright as the strong one
    own = INSIDE.tile_grid(maps, tile=20, shared_scale=False)
    assert own[10, 3 * 24 + 10].tolist() == own[10, 24 + 10].tolist()


def test_input_picture_scales_an_8x8_digit_with_square_pixels():
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    pic = INSIDE.input_picture(example(image=img))
    assert pic.shape == (168, 168, 3)
    assert (pic[:21, :21] == img[0, 0]).all() and (pic[-21:, -21:] == img[7, 7]).all()  # nearest, not blurred
    assert INSIDE.input_picture(example(words=["a", "b"])) is None


def test_probs_figure_marks_the_true_class_green_and_the_wrong_prediction_red():
    fig = INSIDE.probs_figure(insight(), example())
    bar = fig.data[0]
    colours = dict(zip(bar.y, bar.marker.color))
    assert colours["two"] == INSIDE.TRUE_RGB and colours["one"] == INSIDE.WRONG_RGB and colours["zero"] == "#adb5bd"
    assert list(bar.y) == ["one", "two", "zero"]  # most probable first
    # many classes: the top ones, and the true class even when it is not among them
    probs = np.linspace(1, 0, 100)
    probs /= probs.sum()
    ins = insight(class_names=[f"c{i}" for i in range(100)])
    fig = INSIDE.probs_figure(ins, example(probs=probs, true=99, predicted=0), top=5)
    assert list(fig.data[0].y) == ["c0", "c1", "c2", "c3", "c99"]


def test_dense_and_sequence_figures_mark_dead_units():
    fig = INSIDE.dense_figure(np.array([0.0, 1.0, 0.5]), [True, False, False], [False, False, True], "dense_1")
    assert list(fig.data[0].marker.color) == ["#e03131", "#1c7ed6", "#f59f00"]
    states = np.random.default_rng(0).uniform(-1, 1, size=(4, 3))
    fig = INSIDE.sequence_figure(states, ["the", "film", "was", "good"], [False, True, False], "lstm")
    assert list(fig.data[0].y) == ["1. the", "2. film", "3. was", "4. good"]  # one row per word
    assert np.asarray(fig.data[1].z).tolist() == [[0.0, 1.0, 0.0]]


def test_layer_caption_counts_and_says_what_dead_means_for_the_activation():
    text = INSIDE.layer_caption(layer())
    assert "1 of 4 channels dead" in text and "never fire (output 0) on held-out inputs" in text
    assert "1 more saturated" in text
    dense = layer(layer_type="dense", dead=(False,) * 4, sat=(False,) * 4)
    assert "0 of 4 units dead" in INSIDE.layer_caption(dense) and "saturated" not in INSIDE.layer_caption(dense)


def test_example_label_and_class_accuracy():
    ins = insight()
    assert INSIDE.example_label(ins, example()) == "misclassified #3: two, predicted one (70%)"
    right = example(role="probe", true=1)
    assert INSIDE.example_label(ins, right) == "probe #3: one, predicted one (70%)"
    assert ins.class_accuracy == [1.0, 0.8, 0.5]


def test_filter_grid_shows_rgb_kernels_in_colour():
    f = np.zeros((3, 3, 3, 2))
    f[..., 0, 0] = 1.0  # a red-only kernel
    pic = INSIDE.filter_grid(f, tile=12)
    assert pic.shape == (12, 27, 3)
    r, g, b = pic[6, 6].astype(int)
    assert r > 200 and g < 50 and b < 50


# --------------------------------------------------------------------------- the guide


def _guide_script():
    from app import guide

    guide.render()


def test_guide_opens_for_a_first_visitor_quotes_the_defaults_and_hides(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    from core.config import StudyConfig

    at = AppTest.from_function(_guide_script).run()
    assert not at.exception
    assert at.expander[0].label.startswith("Guided first study · 0 of 5")
    d = StudyConfig.defaults()
    text = "\n".join(m.value for m in at.markdown)
    assert f"{d['n_trials']} trials of {d['epochs']} epochs" in text
    assert "8×8 images" in text  # digits' real shape, from the registry
    at.button(key="guide-hide").click().run()
    assert not at.expander


def test_guide_ticks_the_steps_the_app_sees_done(tmp_path, monkeypatch):
    from tests.fakes import make_fake_study

    monkeypatch.setenv("HPO_HOME", str(tmp_path))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    from core.config import Settings

    from core import storage as S

    settings = Settings(home=tmp_path)
    make_fake_study(S.resolve_url(None, settings), "g", n_complete=2, settings=settings)
    at = AppTest.from_function(_guide_script).run()
    assert not at.exception
    assert at.expander[0].label.startswith("Guided first study · 2 of 5")
