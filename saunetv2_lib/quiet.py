"""Keep TensorFlow's C++ start-up lines off the terminal (used by the CLI and the notebooks)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence the process's standard error (file descriptor 2) inside the block.

    TensorFlow's C++ runtime writes start-up lines (absl, oneDNN) straight to the descriptor
    while it is imported, which ``TF_CPP_MIN_LOG_LEVEL`` does not stop. Python-level errors
    still raise, and are printed after the block.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
