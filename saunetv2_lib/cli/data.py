"""``saunetv2 data verify`` (SHA-256 of every dataset file) and ``saunetv2 data stats``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from saunetv2_lib.data.vocabulary import DATASET_NAMES

    parser = subparsers.add_parser(
        "data", help="dataset checks: verify checksums, print statistics"
    )
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])
    root_help = "data root holding DRIVE/, STARE/, CHASE_DB1/ (default: $SAUNETV2_DATA)"

    verify = commands.add_parser(
        "verify",
        help="check every dataset file against the shipped SHA-256 table",
        description=(
            "Check the SHA-256 of every expected file. Exit 0 when all match, 1 naming each "
            "missing or corrupt file. A .ppm.gz is checked by its decompressed content."
        ),
    )
    verify.add_argument("--root", help=root_help)
    verify.add_argument(
        "--dataset",
        type=_dataset_name,
        choices=list(DATASET_NAMES),
        help="check one dataset, case-insensitive (default: all present)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=_verify)

    stats = commands.add_parser(
        "stats",
        help="vessel fractions, FOV coverage, intensities, widths, inter-observer agreement",
    )
    stats.add_argument(
        "--dataset",
        required=True,
        type=_dataset_name,
        choices=list(DATASET_NAMES),
        help="e.g. drive",
    )
    stats.add_argument("--root", help=root_help)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=_stats)


def _root(args: argparse.Namespace) -> Path:
    from saunetv2_lib.data.datasets import data_root

    return Path(args.root) if args.root else data_root()


def _verify(args: argparse.Namespace) -> int:
    from saunetv2_lib.data.integrity import verify

    report = verify(_root(args), datasets=[args.dataset] if args.dataset else None)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _stats(args: argparse.Namespace) -> int:
    from saunetv2_lib.data.stats import dataset_stats, format_stats

    stats = dataset_stats(args.dataset, _root(args))
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _dataset_name(value: str) -> str:
    """Canonical dataset name (``drive`` -> ``DRIVE``, ``chase`` -> ``CHASE_DB1``)."""
    from saunetv2_lib.data.datasets import dataset_info

    try:
        return dataset_info(value).name
    except ValueError:
        return value  # argparse's choices check then names the valid ones
