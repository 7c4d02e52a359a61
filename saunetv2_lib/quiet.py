"""File descriptor 2 elsewhere inside a block: TensorFlow's C++ start-up lines off the terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def stderr_redirected(target: str | Path) -> Iterator[None]:
    """Send the process's standard error (file descriptor 2) to the file ``target`` in the block.

    Child processes started inside the block (e.g. notebook kernels) inherit it. Python-level
    errors still raise, and are printed after the block.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(target, "w", encoding="utf-8") as handle:
            os.dup2(handle.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def native_stderr_silenced() -> contextlib.AbstractContextManager[None]:
    """Silence file descriptor 2 inside the block.

    TensorFlow's C++ runtime writes start-up lines (absl, oneDNN) straight to the descriptor
    while it is imported, which ``TF_CPP_MIN_LOG_LEVEL`` does not stop.
    """
    return stderr_redirected(os.devnull)
