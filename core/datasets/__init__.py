"""Data sets: a registry of what HPO Studio can train on, and loaders that turn files into arrays.

Every loader ends in the same :class:`Dataset`: images as float32 in [0, 1], channels-last;
text as int32 token ids, pre-padded with 0 to a fixed length (1 is the out-of-vocabulary
token); labels as int64 class indices; a validation split carved from the training data (the
study optimises on it) and a test split kept apart (reported, never optimised).

Where the data comes from, in order:

1. embedded sets (``digits`` ships with scikit-learn, ``synthetic_text`` is generated here);
2. local files in the data folder (``Settings.from_env().datasets_dir``): the npz files Keras
   uses, MNIST-style IDX files, CIFAR's pickled batches, the official GTSRB archive layout;
   for Fashion-MNIST also ``/usr/share/datasets/fashion-mnist`` (Debian's package);
3. only when nothing local exists: a download through ``keras.datasets`` (cached under
   ``<data folder>/keras``) or, for GTSRB, from the official archive.

Offline, step 3 fails fast and becomes :class:`DatasetUnavailable`, whose message says which
files to put where and where they come from.  ``HPO_OFFLINE=1`` skips step 3 altogether.

This package imports only numpy and the standard library at import time: the UI reads the
registry without paying for TensorFlow (about 4 s and 700 MB, DESIGN.md).

One module per job, all private; this file re-exports the public names:

- ``_registry``: DatasetInfo, Dataset, DatasetUnavailable, the registry and lookups by name;
- ``_files``: where files go and come from, and the messages that say so;
- ``_readers``: one reader per file format, and the checks on what they read;
- ``_gtsrb``: GTSRB's archive layout, decoded and cached;
- ``_embedded``: digits and the generated synthetic_text;
- ``_local``: finding and reading a local copy;
- ``_download``: downloads and the in-process cache of raw arrays;
- ``_splits``: stratified subsets and train/validation splits;
- ``_load``: load_dataset, is_available, check_available, preview.
"""

from core.datasets._load import check_available, is_available, load_dataset, preview
from core.datasets._registry import (
    DEFAULT_DATASET,
    REGISTRY,
    Dataset,
    DatasetInfo,
    DatasetUnavailable,
    get_info,
    list_datasets,
)

__all__ = [
    "DEFAULT_DATASET",
    "Dataset",
    "DatasetInfo",
    "DatasetUnavailable",
    "REGISTRY",
    "check_available",
    "get_info",
    "is_available",
    "list_datasets",
    "load_dataset",
    "preview",
]
