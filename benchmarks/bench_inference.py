"""Run the CPU inference benchmark and keep its JSON report, named by date and host.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_inference.py --models sa_unet_v2,sa_unet --runs 7
    .venv/bin/python benchmarks/bench_inference.py --runs 3 --warmup 1   # the paper's four

It is ``saunetv2 bench --save benchmarks/results`` (every option of ``saunetv2 bench --help``
applies). Each report (``benchmarks/results/<UTC date>_<cpu>_<cores>c_<size>_<models>.json``)
holds every row of :func:`saunetv2_lib.efficiency.benchmark` plus the host (CPU, cores, load
average at the start and the end, library versions), so a notebook can show the numbers beside
the paper's with the machine they ran on. The table is printed too. Run nothing else heavy
meanwhile: the load average is recorded, but a loaded machine inflates every time (the
same-round ratios are robust to it).
"""

from __future__ import annotations

import sys

from saunetv2_lib.cli import main as saunetv2
from saunetv2_lib.paths import BENCHMARK_RESULTS_DIR


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    return saunetv2(["bench", "--save", str(BENCHMARK_RESULTS_DIR), *arguments])


if __name__ == "__main__":
    sys.exit(main())
