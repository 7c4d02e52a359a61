"""Padding: crop_back inverts pad_to_side (property test), anchors, sides, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saunetv2_lib.data.datasets import DATASETS
from saunetv2_lib.data.padding import crop_back, pad_to_side, side_for


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    extra=st.integers(0, 9),
    channels=st.sampled_from([None, 1, 3]),
    anchor=st.sampled_from(["top_left", "center"]),
    seed=st.integers(0, 2**16),
)
def test_crop_back_inverts_pad(height, width, extra, channels, anchor, seed):
    shape = (height, width) if channels is None else (height, width, channels)
    x = np.random.default_rng(seed).random(shape).astype(np.float32) + 1.0  # never 0
    side = max(height, width) + extra
    padded, info = pad_to_side(x, side, anchor=anchor)
    assert padded.shape == (side, side) + shape[2:] and padded.dtype == x.dtype
    np.testing.assert_array_equal(crop_back(padded, info), x)
    # Everything outside the original block is zero padding.
    assert (padded != 0).sum() == x.size


def test_anchor_offsets():
    x = np.ones((584, 565), np.uint8)
    padded, info = pad_to_side(x, 592)
    assert (info.top, info.left) == (0, 0) and padded[:584, :565].all() and not padded[584:].any()
    padded, info = pad_to_side(np.ones((605, 700, 3)), 704, anchor="center")
    assert (info.top, info.left) == (49, 2)  # (704-605)//2, (704-700)//2: odd pixel bottom/right
    assert info.original_shape == (605, 700)
    batch = np.stack([padded, padded])
    assert crop_back(batch, info).shape == (2, 605, 700, 3)


def test_side_for():
    assert side_for((584, 565)) == 584  # 584 = 8 * 73 already
    assert side_for((605, 700, 3)) == 704
    assert side_for((960, 999)) == 1000
    # The paper's sides are the smallest multiples of 16, not of 8.
    for info in DATASETS.values():
        assert side_for(info.image_size, multiple=16) == info.model_side
    assert side_for((64, 64)) == 64 and side_for((65, 3), multiple=16) == 80
    with pytest.raises(ValueError):
        side_for((0, 5))


def test_errors():
    with pytest.raises(ValueError, match="does not fit the side 592; use a side of at least 600"):
        pad_to_side(np.zeros((600, 10)), 592)
    with pytest.raises(ValueError, match="anchor"):
        pad_to_side(np.zeros((4, 4)), 8, anchor="bottom")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        pad_to_side(np.zeros(4), 8)
    _, info = pad_to_side(np.zeros((4, 4)), 8)
    with pytest.raises(ValueError, match="expected a 8 x 8"):
        crop_back(np.zeros((9, 9)), info)
