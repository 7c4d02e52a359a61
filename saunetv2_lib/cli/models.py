"""Core subcommands: ``models`` (the registry) and ``complexity`` (parameters, FLOPs, size)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the registered models")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_models)

    parser = subparsers.add_parser(
        "complexity", help="parameters, GFLOPs (TF-profiler convention), GMACs and weights MB"
    )
    parser.add_argument(
        "--models",
        default="sa_unet_v2,sa_unet,unet,attention_unet",
        help="comma-separated registry names (default: the paper's four)",
    )
    parser.add_argument("--size", type=int, default=592, help="square input side in pixels")
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows")
    parser.set_defaults(func=_complexity)


def _models(args: argparse.Namespace) -> int:
    from saunetv2_lib.models import MODELS

    if args.json:
        print(
            json.dumps(
                [{"model": name, "description": spec.description} for name, spec in MODELS.items()]
            )
        )
        return 0
    width = max(len(name) for name in MODELS)
    for name, spec in MODELS.items():
        print(f"{name:<{width}}  {spec.description}")
    return 0


def _complexity(args: argparse.Namespace) -> int:
    from saunetv2_lib.complexity import format_table
    from saunetv2_lib.models import complexity_table

    names = [name.strip() for name in args.models.split(",") if name.strip()]
    rows = complexity_table(names, size=args.size)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
