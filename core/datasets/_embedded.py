"""The embedded sets, which need no file: ``digits`` (ships with scikit-learn) and
``synthetic_text`` (generated here, the same on every machine).
"""

from __future__ import annotations

import functools

import numpy as np

from core.datasets._readers import _Raw
from core.datasets._registry import _TOPICS, REGISTRY
from core.datasets._splits import _TEST_SEED, _stratified_pick


def _read_digits() -> _Raw:
    from sklearn.datasets import load_digits  # lazy: sklearn costs ~1 s to import

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[..., None]  # values are whole numbers 0..16
    labels = bunch.target.astype(np.int64)
    # No official test split: hold out 20% once, with a fixed seed, so every trial is scored alike.
    test_idx = np.sort(_stratified_pick(labels, round(0.2 * len(labels)), np.random.default_rng(_TEST_SEED)))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return _Raw(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], scale=16.0)


_TOPIC_WORDS = {
    "sport": """goal match team coach player score league season stadium referee penalty striker keeper
        tournament champion trophy defender midfield tackle sprint marathon medal race athlete fans pitch
        court racket serve dribble basket inning wicket umpire halftime overtime transfer captain victory defeat""",
    "science": """atom molecule cell gene protein experiment theory physics chemistry biology laboratory
        microscope telescope galaxy planet orbit energy particle quantum electron neutron reaction hypothesis
        data sample enzyme virus fossil climate carbon oxygen equation gravity research journal professor
        neuron evolution spectrum isotope""",
    "food": """recipe oven flour sugar butter garlic onion tomato pasta noodle soup salad bread cheese pepper
        salt sauce grill roast bake fry simmer dessert chocolate vanilla lemon spice herb kitchen chef menu
        dinner lunch breakfast taste flavor spoon fork plate delicious""",
    "travel": """flight airport passport hotel luggage ticket train station beach island mountain museum tour
        guide map journey visa border cruise harbor hostel backpack suitcase resort booking itinerary
        sightseeing souvenir road bus taxi ferry camping village city capital coast desert trip vacation""",
}
_FUNCTION_WORDS = """the a of and to in is it that was for on with as at by this from they we be or an are
    but not have has had were one all there their what so up out if about who get which go me when make can
    like time just him know take people into year your good some could them see other than then now look
    only come its over think also back after use two how our work first well way even new want because any
    these give day most us very much many said""".split()


@functools.lru_cache(maxsize=1)
def _synthetic_vocabulary() -> tuple[str, ...]:
    """Token id -> word for synthetic_text: pad, unk, topic words, function words, then pseudo-words."""
    vocab_size = int(REGISTRY["synthetic_text"].vocab_size)
    words = ["<pad>", "<unk>"]
    for topic in _TOPICS:
        words += _TOPIC_WORDS[topic].split()
    words += _FUNCTION_WORDS
    # Filler pseudo-words ("bavo", "kemi"...) are neutral noise that belongs to no topic.
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    rng = np.random.default_rng(7)
    taken = set(words)
    while len(words) < vocab_size:
        word = "".join(syllables[i] for i in rng.integers(0, len(syllables), size=2))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return tuple(words)


def _read_synthetic_text() -> _Raw:
    """Generate the synthetic topic set; fixed seed, so every machine builds the same arrays.

    Each sequence has 12-40 words.  A per-sample share (8-35%) of them are topic words, a quarter
    of which come from the *next* topic to blur the boundaries; the rest is shared filler
    (Zipf-distributed function words and neutral pseudo-words).  Short, low-share samples are
    genuinely ambiguous, so accuracy tops out below 100%.
    """
    info = REGISTRY["synthetic_text"]
    vocab = _synthetic_vocabulary()
    seq_len = int(info.seq_len)
    # Token ids are laid out as in _synthetic_vocabulary: each topic's words are one contiguous block.
    sizes = np.array([len(_TOPIC_WORDS[t].split()) for t in _TOPICS])
    starts = 2 + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    first_function = 2 + int(sizes.sum())
    function_ids = np.arange(first_function, first_function + len(_FUNCTION_WORDS))
    filler_ids = np.arange(first_function + len(_FUNCTION_WORDS), len(vocab))
    zipf = 1.0 / np.arange(1, len(function_ids) + 1)  # "the" far more often than "said"
    zipf /= zipf.sum()

    rng = np.random.default_rng(1234)
    n_train, n_test = 2400, 600
    total = n_train + n_test
    labels = rng.permutation(np.arange(total) % len(_TOPICS)).astype(np.int64)
    neighbour = (labels + 1) % len(_TOPICS)
    shape = (total, seq_len)
    lengths = rng.integers(12, seq_len + 1, size=total)
    share = rng.uniform(0.08, 0.35, size=total)
    is_topic = rng.random(shape) < share[:, None]
    borrowed = rng.random(shape) < 0.25
    own = starts[labels][:, None] + (rng.random(shape) * sizes[labels][:, None]).astype(np.int64)
    other = starts[neighbour][:, None] + (rng.random(shape) * sizes[neighbour][:, None]).astype(np.int64)
    filler = np.where(
        rng.random(shape) < 0.75, rng.choice(function_ids, size=shape, p=zipf), rng.choice(filler_ids, size=shape)
    )
    x = np.where(is_topic, np.where(borrowed, other, own), filler).astype(np.int32)
    x[np.arange(seq_len)[None, :] < (seq_len - lengths)[:, None]] = 0  # pre-padding
    return _Raw(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], vocabulary=dict(enumerate(vocab)))
