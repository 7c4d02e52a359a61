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
    "datasets": (
        "DATASETS DatasetInfo Sample data_root dataset_info is_synthetic load_samples"
        " load_split read_image read_label read_mask"
    ),
    "fov": "derive_fov",
    "padding": "PadInfo crop_back pad_to_side side_for",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _PUBLIC, globals())
