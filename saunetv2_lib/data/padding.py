"""Zero padding to the square network side and cropping back (spec 4.1, 4.2, 5).

The official code pads DRIVE top-left to 592 (train and test) and STARE centred to 704 for
training but top-left for testing; SA-UNet v1 pads centred. ``anchor`` selects either.
A centred pad puts the odd pixel at the bottom/right (``top = (side - H) // 2``), as the
official STARE notebook and SA-UNet v1 do.

An image larger than ``side`` is an error rather than a silent crop, because the crop could not
be undone by :func:`crop_back`; use :func:`side_for` to choose a side that fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from saunetv2_lib.data.vocabulary import ANCHORS


@dataclass(frozen=True)
class PadInfo:
    """Where the original ``(height, width)`` block sits inside the padded ``side x side`` array."""

    height: int
    width: int
    side: int
    top: int
    left: int

    @property
    def original_shape(self) -> tuple[int, int]:
        return (self.height, self.width)


def side_for(shape: tuple[int, ...], multiple: int = 8) -> int:
    """Smallest multiple of ``multiple`` that is >= max(H, W) of ``shape`` ((H, W) or (H, W, C)).

    A U-Net with three 2x poolings needs sides divisible by 8 (584 x 565 -> 584,
    605 x 700 -> 704). The paper's fixed sides (DRIVE 592, STARE 704, CHASE_DB1 1008, in
    ``DATASETS[...].model_side``) are the smallest multiples of **16**: ``side_for(shape, 16)``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}.")
    if len(shape) < 2 or min(shape[:2]) < 1:
        raise ValueError(f"side_for needs an (H, W[, C]) shape with H, W >= 1, got {tuple(shape)}.")
    return int(math.ceil(max(shape[0], shape[1]) / multiple) * multiple)


def pad_to_side(
    array: np.ndarray, side: int, anchor: str = "top_left"
) -> tuple[np.ndarray, PadInfo]:
    """Zero-pad an ``(H, W)`` or ``(H, W, C)`` array to ``(side, side[, C])``.

    Args:
        array: image, label or mask; the dtype is kept.
        side: target side in pixels, >= H and >= W.
        anchor: ``"top_left"`` (pad bottom/right) or ``"center"`` (split the padding, the odd
            pixel going to the bottom/right).

    Returns:
        ``(padded, info)``; ``crop_back(padded, info)`` returns the original array.

    Raises:
        ValueError: bad rank or anchor, or an array larger than ``side``.
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"pad_to_side needs an (H, W) or (H, W, C) array, got shape {array.shape}."
        )
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}.")
    height, width = array.shape[:2]
    if height > side or width > side:
        raise ValueError(
            f"Image of {height} x {width} pixels does not fit the side {side}; use a side of at "
            f"least {side_for(array.shape)} (saunetv2_lib.data.padding.side_for) or resize it."
        )
    if anchor == "top_left":
        top = left = 0
    else:
        top, left = (side - height) // 2, (side - width) // 2
    pad = [(top, side - height - top), (left, side - width - left)] + [(0, 0)] * (array.ndim - 2)
    info = PadInfo(height=height, width=width, side=side, top=top, left=left)
    return np.pad(array, pad, mode="constant", constant_values=0), info


def crop_back(array: np.ndarray, info: PadInfo) -> np.ndarray:
    """Cut the original block out of a padded array (or a prediction made on it).

    Accepts ``(side, side)``, ``(side, side, C)`` or a batch ``(B, side, side, C)``.
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3, 4):
        raise ValueError(f"crop_back needs a 2-D, 3-D or 4-D array, got shape {array.shape}.")
    spatial = array.shape[1:3] if array.ndim == 4 else array.shape[:2]
    if spatial != (info.side, info.side):
        raise ValueError(
            f"crop_back expected a {info.side} x {info.side} array (from pad_to_side), got "
            f"spatial shape {spatial}."
        )
    rows = slice(info.top, info.top + info.height)
    cols = slice(info.left, info.left + info.width)
    return array[:, rows, cols] if array.ndim == 4 else array[rows, cols]
