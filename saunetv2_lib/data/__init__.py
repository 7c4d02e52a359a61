"""The data protocol: readers, checksums, splits, FOV masks, padding, statistics.

Public API (docs/CONTRACTS.md)::

    data_root, is_synthetic, DATASETS, DatasetInfo, Sample, load_split, load_samples,
    read_image, read_label, pad_to_side, crop_back, side_for, PadInfo, derive_fov

Submodules: ``datasets`` (readers), ``integrity`` (SHA-256 checks), ``splits``, ``fov``,
``padding``, ``stats``, ``augment``, ``pipeline``, ``synthetic``, ``cli``. The heavy ones
(``pipeline`` needs Keras) are not imported here.
"""

from saunetv2_lib.data.datasets import (
    DATASETS,
    DatasetInfo,
    Sample,
    data_root,
    dataset_info,
    is_synthetic,
    load_samples,
    load_split,
    read_image,
    read_label,
    read_mask,
)
from saunetv2_lib.data.fov import derive_fov
from saunetv2_lib.data.padding import PadInfo, crop_back, pad_to_side, side_for

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "PadInfo",
    "Sample",
    "crop_back",
    "data_root",
    "dataset_info",
    "derive_fov",
    "is_synthetic",
    "load_samples",
    "load_split",
    "pad_to_side",
    "read_image",
    "read_label",
    "read_mask",
    "side_for",
]
