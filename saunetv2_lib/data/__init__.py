"""The data protocol: readers, checksums, splits, FOV masks, padding, statistics.

Public API (docs/CONTRACTS.md)::

    data_root, is_synthetic, DATASETS, DatasetInfo, Sample, load_split, load_samples,
    read_image, read_label, pad_to_side, crop_back, side_for, PadInfo, derive_fov

Submodules: ``vocabulary`` (the protocol's words), ``datasets`` (readers), ``integrity``
(SHA-256 checks), ``splits``, ``fov``, ``padding``, ``stats``, ``augment``, ``pipeline``,
``synthetic``. The names above load on first use, so importing a light submodule (the
vocabulary, for the command line's choices) does not load the readers.
"""

from __future__ import annotations

from saunetv2_lib.lazy import lazy_exports

_PUBLIC = {
    "DATASETS": "datasets",
    "DatasetInfo": "datasets",
    "Sample": "datasets",
    "data_root": "datasets",
    "dataset_info": "datasets",
    "is_synthetic": "datasets",
    "load_samples": "datasets",
    "load_split": "datasets",
    "read_image": "datasets",
    "read_label": "datasets",
    "read_mask": "datasets",
    "derive_fov": "fov",
    "PadInfo": "padding",
    "crop_back": "padding",
    "pad_to_side": "padding",
    "side_for": "padding",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, globals())
