"""Shared pytest setup: quiet TensorFlow, a fixed seed, and the real-data root."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
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
def kill_inside_second_epoch() -> Callable[[str, Sequence[str], Path], int]:
    """Run ``python -c code *args`` (a training child) and SIGKILL it inside its second epoch.

    The child is killed shortly after its resume state (``state_path``) first appears, i.e.
    after one completed epoch; returns the completed epochs the state then records.
    """

    def kill(code: str, args: Sequence[str], state_path: Path, timeout_s: float = 120.0) -> int:
        from saunetv2_lib.paths import REPO_ROOT

        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT))
        child = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while not state_path.exists():
                if child.poll() is not None:
                    pytest.fail(f"child exited early: {child.stderr.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no epoch completed within {timeout_s:.0f} s")
                time.sleep(0.05)
            time.sleep(0.3)  # somewhere inside the next epoch
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        return json.loads(state_path.read_text())["completed_epochs"]

    return kill


@pytest.fixture
def real_data_root() -> Path:
    """The real datasets' root (``SAUNETV2_DATA``); skips the test when it is not set."""
    root = os.environ.get("SAUNETV2_DATA")
    if not root:
        pytest.skip(
            "SAUNETV2_DATA is not set: the real DRIVE/STARE/CHASE_DB1 files are not available"
        )
    return Path(root)
