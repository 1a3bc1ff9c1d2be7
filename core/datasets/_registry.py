"""What each data set is, without loading it: :class:`DatasetInfo`, the registry of every set
HPO Studio trains on, and lookups by name; also :class:`Dataset` (what a loader returns) and
:class:`DatasetUnavailable` (why it could not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError

DEFAULT_DATASET = "digits"  # embedded, real, and small enough that a trial takes seconds on a CPU


class DatasetUnavailable(ConfigError):
    """A data set's files are missing or unreadable; the message says what to put where."""


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set is, without loading it (cheap: the UI lists these).

    Attributes:
        name: registry key, e.g. ``"digits"``.
        kind: ``"image"`` (a CNN is built) or ``"text"`` (an LSTM is built).
        input_shape: one sample's shape: images ``(H, W, C)`` channels-last, text ``(seq_len,)``.
        num_classes: number of classes; labels are ``0 .. num_classes - 1``.
        class_names: a readable name per class index.
        description: two or three sentences for a learner.
        source: who made it and where it comes from.
        license: the terms it is shared under, as far as its authors state them.
        embedded: True when it needs no download and no local file.
        vocab_size: text only: token ids are ``< vocab_size``; 0 is padding, 1 out-of-vocabulary.
        seq_len: text only: every sequence is padded or truncated to this length.
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    description: str
    source: str
    license: str
    embedded: bool
    vocab_size: int | None = None
    seq_len: int | None = None


@dataclass
class Dataset:
    """Arrays ready for Keras: train (fit), val (the objective), test (reported once)."""

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

# --------------------------------------------------------------------------- registry

_DIGITS = tuple(str(d) for d in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# CIFAR-100 fine labels in index order (alphabetical, as in the archive's `meta` file).
_CIFAR100 = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
    camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
    dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
    leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid
    otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road
    rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower
    sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
    willow_tree wolf woman worm""".split()
)
# Reuters newswire topics in index order (keras.datasets.reuters.get_label_names()).
_REUTERS = tuple(
    """cocoa grain veg-oil earn acq wheat copper housing money-supply coffee sugar trade reserves ship
    cotton carcass crude nat-gas cpi money-fx interest gnp meal-feed alum oilseed gold tin strat-metal
    livestock retail ipi iron-steel rubber heat jobs lei bop zinc orange pet-chem dlr gas silver wpi hog
    lead""".split()
)
_GTSRB = (
    "Speed limit (20km/h)",
    "Speed limit (30km/h)",
    "Speed limit (50km/h)",
    "Speed limit (60km/h)",
    "Speed limit (70km/h)",
    "Speed limit (80km/h)",
    "End of speed limit (80km/h)",
    "Speed limit (100km/h)",
    "Speed limit (120km/h)",
    "No passing",
    "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection",
    "Priority road",
    "Yield",
    "Stop",
    "No vehicles",
    "Vehicles over 3.5 metric tons prohibited",
    "No entry",
    "General caution",
    "Dangerous curve to the left",
    "Dangerous curve to the right",
    "Double curve",
    "Bumpy road",
    "Slippery road",
    "Road narrows on the right",
    "Road work",
    "Traffic signals",
    "Pedestrians",
    "Children crossing",
    "Bicycles crossing",
    "Beware of ice/snow",
    "Wild animals crossing",
    "End of all speed and passing limits",
    "Turn right ahead",
    "Turn left ahead",
    "Ahead only",
    "Go straight or right",
    "Go straight or left",
    "Keep right",
    "Keep left",
    "Roundabout mandatory",
    "End of no passing",
    "End of no passing by vehicles over 3.5 metric tons",
)
_TOPICS = ("sport", "science", "food", "travel")

REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="digits",
            kind="image",
            input_shape=(8, 8, 1),
            num_classes=10,
            class_names=_DIGITS,
            description=(
                "1,797 real handwritten digits scanned at 8x8 pixels with 17 grey levels. "
                "It ships with scikit-learn, so it works offline, and a small CNN reaches about 95% "
                "in seconds: the quickest way to watch a search unfold."
            ),
            source="UCI ML Optical Recognition of Handwritten Digits (Alpaydin & Kaynak, 1998), via scikit-learn",
            license="CC BY 4.0",
            embedded=True,
        ),
        DatasetInfo(
            name="mnist",
            kind="image",
            input_shape=(28, 28, 1),
            num_classes=10,
            class_names=_DIGITS,
            description=(
                "70,000 handwritten digits, 28x28 grey-scale: the classic first image benchmark. "
                "Most reasonable CNNs pass 98%, so differences between trials are small and health "
                "metrics often tell models apart better than accuracy does."
            ),
            source="Yann LeCun, Corinna Cortes, Christopher Burges; file from Keras (tf-keras-datasets/mnist.npz)",
            license="CC BY-SA 3.0",
            embedded=False,
        ),
        DatasetInfo(
            name="fashion_mnist",
            kind="image",
            input_shape=(28, 28, 1),
            num_classes=10,
            class_names=_FASHION,
            description=(
                "70,000 28x28 grey-scale photos of clothing in 10 categories, a drop-in but harder "
                "replacement for MNIST. Shirts, pullovers and coats look alike, so good models "
                "land around 90-93% and hyperparameters matter."
            ),
            source="Zalando Research (Xiao, Rasul & Vollgraf, 2017), github.com/zalandoresearch/fashion-mnist",
            license="MIT",
            embedded=False,
        ),
        DatasetInfo(
            name="cifar10",
            kind="image",
            input_shape=(32, 32, 3),
            num_classes=10,
            class_names=_CIFAR10,
            description=(
                "60,000 tiny 32x32 colour photos of 10 everyday classes (planes, cars, birds, cats...). "
                "Objects vary in pose, colour and background, so depth, regularisation and learning "
                "rate all change the result; expect 70-85% from a small CNN."
            ),
            source="Alex Krizhevsky, Vinod Nair, Geoffrey Hinton (2009), cs.toronto.edu/~kriz/cifar.html",
            license="No formal license; the authors ask that you cite Krizhevsky (2009)",
            embedded=False,
        ),
        DatasetInfo(
            name="cifar100",
            kind="image",
            input_shape=(32, 32, 3),
            num_classes=100,
            class_names=_CIFAR100,
            description=(
                "The same kind of 32x32 colour photos as CIFAR-10 but in 100 classes with only 500 "
                "training images each. It is hard: small CNNs reach 40-55%, and overfitting shows "
                "up quickly in the health metrics."
            ),
            source="Alex Krizhevsky, Vinod Nair, Geoffrey Hinton (2009), cs.toronto.edu/~kriz/cifar.html",
            license="No formal license; the authors ask that you cite Krizhevsky (2009)",
            embedded=False,
        ),
        DatasetInfo(
            name="gtsrb",
            kind="image",
            input_shape=(32, 32, 3),
            num_classes=43,
            class_names=_GTSRB,
            description=(
                "More than 50,000 photos of 43 kinds of German traffic signs taken from a moving car, "
                "cropped to the sign and resized to 32x32 colour. Lighting, blur and very unequal "
                "class sizes make it a realistic test of robustness."
            ),
            source="German Traffic Sign Recognition Benchmark, Stallkamp et al. (2012), INI Ruhr-Universitaet Bochum",
            license="No formal license stated by the authors; cite Stallkamp et al. (2012)",
            embedded=False,
        ),
        DatasetInfo(
            name="synthetic_text",
            kind="text",
            input_shape=(40,),
            num_classes=4,
            class_names=_TOPICS,
            description=(
                "SYNTHETIC data generated by HPO Studio, not real text: 3,000 word sequences about four "
                "topics (sport, science, food, travel), each mixing topic words with shared filler "
                "and a few words borrowed from a neighbouring topic. It works offline and lets an "
                "LSTM learn in seconds; accuracy on it says nothing about real language."
            ),
            source="Generated deterministically by core/datasets/_embedded.py (HPO Studio)",
            license="Same as HPO Studio",
            embedded=True,
            vocab_size=500,
            seq_len=40,
        ),
        DatasetInfo(
            name="imdb",
            kind="text",
            input_shape=(200,),
            num_classes=2,
            class_names=("negative", "positive"),
            description=(
                "50,000 movie reviews from IMDB labelled positive or negative, as sequences of the "
                "10,000 most frequent words (last 200 words kept). Sentiment hides in word order and "
                "negation, which is what an LSTM is for; good models reach 85-90%."
            ),
            source="Maas et al. (2011), Large Movie Review Dataset; file from Keras (tf-keras-datasets/imdb.npz)",
            license="No formal license; the authors ask that you cite Maas et al. (2011)",
            embedded=False,
            vocab_size=10_000,
            seq_len=200,
        ),
        DatasetInfo(
            name="reuters",
            kind="text",
            input_shape=(150,),
            num_classes=46,
            class_names=_REUTERS,
            description=(
                "11,228 Reuters newswires from 1987 sorted into 46 topics (earnings, acquisitions, "
                "crude oil...), as sequences of the 10,000 most frequent words. A few topics dominate, "
                "so compare against always guessing 'earn' (about 35%)."
            ),
            source="Reuters-21578 (David D. Lewis); file from Keras (tf-keras-datasets/reuters.npz)",
            license="Free for research use (Reuters-21578 Distribution 1.0 terms)",
            embedded=False,
            vocab_size=10_000,
            seq_len=150,
        ),
    )
}


def _normalise_name(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def get_info(name: str) -> DatasetInfo:
    """The registry entry for ``name`` (case and ``-``/``_`` are forgiven).

    Raises:
        ConfigError: the name is unknown; the message lists the valid names.
    """
    info = REGISTRY.get(_normalise_name(name))
    if info is None:
        raise ConfigError(f"dataset: unknown data set {name!r}; choose one of {', '.join(REGISTRY)}")
    return info


def list_datasets() -> list[DatasetInfo]:
    """Every registered data set, images first, then text (the UI's order)."""
    return list(REGISTRY.values())
