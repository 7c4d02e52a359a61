"""Shared pytest setup: quiet TensorFlow, a fixed seed, and the real-data root."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def real_data_root() -> Path:
    """The real datasets' root (``SAUNETV2_DATA``); skips the test when it is not set."""
    root = os.environ.get("SAUNETV2_DATA")
    if not root:
        pytest.skip(
            "SAUNETV2_DATA is not set: the real DRIVE/STARE/CHASE_DB1 files are not available"
        )
    return Path(root)
