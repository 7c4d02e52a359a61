"""Run the CPU inference benchmark and keep its JSON report, named by date and host.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_inference.py --models sa_unet_v2,sa_unet --runs 7
    .venv/bin/python benchmarks/bench_inference.py --runs 3 --warmup 1   # the paper's four

Each report (``benchmarks/results/<UTC date>_<cpu>_<cores>c_<models>.json``) holds every row of
:func:`saunetv2_lib.efficiency.benchmark` plus the host (CPU, cores, load average at the start and
the end, library versions), so a notebook can show the numbers beside the paper's with the
machine they ran on. The table is printed too. Run nothing else heavy meanwhile: the load average
is recorded, but a loaded machine inflates every time (the same-round ratios are robust to it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from saunetv2_lib.efficiency import DEFAULT_MODELS, DEFAULT_PATHS, benchmark, format_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--paths", default=",".join(DEFAULT_PATHS))
    parser.add_argument("--size", type=int, default=592)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--memory", default="isolated", choices=("isolated", "inline", "none"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON report")
    args = parser.parse_args(argv)

    try:
        report = benchmark(
            models=args.models,
            size=args.size,
            runs=args.runs,
            warmup=args.warmup,
            paths=args.paths,
            memory=args.memory,
            log=lambda message: print(message, file=sys.stderr, flush=True),
        )
    except (ValueError, KeyError) as error:
        print(f"bench_inference: error: {error}", file=sys.stderr)
        return 2
    host = report["host"]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%MZ")
    cpu = re.sub(r"[^a-z0-9]+", "-", host["cpu"].lower()).strip("-")
    models = "-".join(dict.fromkeys(row["model"] for row in report["results"]))
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{stamp}_{cpu}_{host['usable_cores']}c_{args.size}_{models}.json"
    target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(format_report(report))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
