"""Shared fixtures of the model tests: a random image batch with sparse vessel labels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


@pytest.fixture
def vessel_batch() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``make(n, side=64, seed=2)``: uniform images ``(n, side, side, 3)`` and labels
    ``(n, side, side, 1)`` with about 10 % vessel pixels, both float32."""

    def make(n: int, side: int = 64, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        images = rng.uniform(size=(n, side, side, 3)).astype("float32")
        labels = (rng.uniform(size=(n, side, side, 1)) < 0.1).astype("float32")
        return images, labels

    return make
