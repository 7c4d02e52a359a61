"""Train/test splits as data, cross-validation generators and a source-level validation split.

The split definitions live in ``splits.json`` (package data), not in code:

* **DRIVE**: the official split, ``training/`` (21-40) and ``test/`` (01-20), 20/20.
* **STARE**: the paper's 16 train / 4 test. The count is inferred from the official notebook's
  208 augmented training images = 16 sources x 13 versions (spec 4.2). The paper and the official
  code do not name the four test images. The evidence for the choice here
  (``im0255, im0291, im0319, im0324``, the last four in sorted order):

  - a third-party fork of the official repository (locdacknownothing/SA-UNetv2,
    ``prepare_stare.ipynb``) used exactly these four;
  - the official notebook's test cell is commented "fold4 val set": with 5 contiguous folds of 4
    over the sorted names, fold index 4 is these four (``k_fold(names, 5)[4]``);
  - the official notebook lists im0001-im0005 among the training images.

  This remains an assumption; :func:`leave_one_out` and :func:`k_fold` give the other common
  STARE protocols.
* **CHASE_DB1**: the first 20 images in name order (children 01-10, both eyes) train, the last
  8 (children 11-14) test.

Validation splits must be drawn over *source* images, before any offline augmentation, so that
augmented copies of one source never land on both sides (the official STARE notebook split its
augmented set at random, which leaks). :func:`train_val_split` does that.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources

import numpy as np
from sklearn.model_selection import KFold

SPLITS_FILE = "splits.json"


@cache
def _splits() -> dict[str, dict]:
    return json.loads(resources.files("saunetv2_lib.data").joinpath(SPLITS_FILE).read_text())


def _entry(dataset: str) -> dict:
    # Canonical names only (case-insensitive): aliases such as "chase" are resolved by
    # saunetv2_lib.data.datasets.dataset_info, which builds on this module, not the other way.
    entries = {name.upper(): entry for name, entry in _splits().items()}
    if str(dataset).upper() not in entries:
        raise ValueError(
            f"No split for dataset {dataset!r}; splits exist for {', '.join(_splits())}."
        )
    return entries[str(dataset).upper()]


def split_names(dataset: str, split: str) -> list[str]:
    """Sample names of ``split`` (``"train"``, ``"test"``, or ``"all"`` = both, sorted)."""
    entry = _entry(dataset)
    if split == "all":
        return sorted(entry["train"] + entry["test"])
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    return list(entry[split])


def split_source(dataset: str) -> str:
    """Where the split of ``dataset`` comes from (one sentence, from ``splits.json``)."""
    return _entry(dataset)["source"]


def leave_one_out(names: list[str]) -> list[tuple[list[str], list[str]]]:
    """``(train, test)`` pairs with each name held out once, in sorted name order."""
    ordered = sorted(names)
    return [(ordered[:i] + ordered[i + 1 :], [name]) for i, name in enumerate(ordered)]


def k_fold(
    names: list[str], k: int, shuffle: bool = False, seed: int = 0
) -> list[tuple[list[str], list[str]]]:
    """``(train, test)`` pairs of k-fold cross-validation over sorted ``names``.

    Without ``shuffle`` the folds are contiguous blocks of the sorted names (the first
    ``len % k`` folds get one extra), as ``sklearn.model_selection.KFold`` makes them; with
    ``shuffle`` the assignment is permuted with ``seed``.
    """
    ordered = np.array(sorted(names))
    if not 2 <= k <= len(ordered):
        raise ValueError(f"k must be between 2 and the number of names ({len(ordered)}), got {k}.")
    folds = KFold(n_splits=k, shuffle=shuffle, random_state=seed if shuffle else None)
    return [
        (ordered[train].tolist(), ordered[test].tolist()) for train, test in folds.split(ordered)
    ]


def train_val_split(
    names: list[str],
    val_fraction: float | None = None,
    n_val: int | None = None,
    seed: int = 0,
) -> tuple[list[str], list[str]]:
    """Split SOURCE image names into ``(train, val)``, both sorted, reproducibly from ``seed``.

    Give exactly one of ``val_fraction`` (``n_val = ceil(fraction * len(names))``, as
    scikit-learn rounds) or ``n_val``. Augment after splitting, so that copies of a source
    image stay on its side.

    Raises:
        ValueError: both or neither size given, or a size that leaves either side empty.
    """
    unique = sorted(set(names))
    if len(unique) != len(names):
        raise ValueError("train_val_split needs distinct source names (augment after splitting).")
    if (val_fraction is None) == (n_val is None):
        raise ValueError("Give exactly one of val_fraction or n_val.")
    if val_fraction is not None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
        n_val = math.ceil(val_fraction * len(unique))
    if not 1 <= n_val < len(unique):
        raise ValueError(
            f"n_val must leave at least one image on each side of {len(unique)} sources, got {n_val}."
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    val = sorted(unique[i] for i in order[:n_val])
    train = sorted(unique[i] for i in order[n_val:])
    return train, val
