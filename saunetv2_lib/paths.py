"""Where the package and its checkout keep things: one place, so that moving a module moves nothing.

``REPO_ROOT`` is the checkout holding the package (``runs/``, ``campaigns/``, ``benchmarks/``
live there); the package's own data (shipped weights, result bundles, configurations) lives
under ``PACKAGE_DIR``.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
RESULTS_DIR = PACKAGE_DIR / "results"  # committed bundles of finished experiments
WEIGHTS_DIR = PACKAGE_DIR / "weights"  # shipped .keras files and their model cards
BENCHMARK_RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
