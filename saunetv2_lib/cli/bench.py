"""Subcommands ``bench`` (CPU inference benchmark) and ``export`` (Keras, SavedModel, TFLite, ONNX)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from saunetv2_lib.efficiency import DEFAULT_MODELS, DEFAULT_PATHS
    from saunetv2_lib.export import EXPORT_FORMATS, PATHS

    parser = subparsers.add_parser(
        "bench",
        help="CPU inference time per image for models x inference paths (warm-up, min/median/max)",
        description=(
            "Times each model on each inference path in one process, batch 1 by default: warm-up "
            "calls, then interleaved timed runs; reports seconds per image (min/median/max), "
            "images/s, peak-RSS growth, the ratio to SA-UNetv2 in the same rounds and the host. "
            f"Paths: {', '.join(PATHS)}."
        ),
    )
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated registry names (default: the paper's four)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(DEFAULT_PATHS),
        help=f"comma-separated inference paths (default: {','.join(DEFAULT_PATHS)})",
    )
    parser.add_argument("--size", type=int, default=592, help="square input side (default 592)")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per model and path")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per call (default 1)")
    parser.add_argument(
        "--threads", type=int, default=None, help="LiteRT/ONNX Runtime threads (default: cores)"
    )
    parser.add_argument(
        "--memory",
        choices=("isolated", "inline", "none"),
        default="isolated",
        help="peak memory: a fresh process per model and path (default, exact), around the "
        "warm-up calls in this process (fast, order-dependent lower bound), or not at all",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--save",
        metavar="DIR",
        help="also keep the report as DIR/<UTC time>_<cpu>_<cores>c_<size>_<models>.json",
    )
    parser.set_defaults(func=_bench)

    parser = subparsers.add_parser(
        "export",
        help="write a model as .keras, SavedModel, TFLite (fp32/fp16/int8) and ONNX",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="shipped weights name (drive, stare) or a .keras path")
    source.add_argument("--model", help="registry name, exported with random weights (demo)")
    parser.add_argument("--size", type=int, default=592, help="input side for --model")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--formats",
        default=",".join(EXPORT_FORMATS),
        help=f"comma-separated (default: {','.join(EXPORT_FORMATS)})",
    )
    parser.set_defaults(func=_export)


def _bench(args: argparse.Namespace) -> int:
    from saunetv2_lib.efficiency import benchmark, format_report

    report = benchmark(
        models=args.models,
        size=args.size,
        runs=args.runs,
        warmup=args.warmup,
        paths=args.paths,
        batch_size=args.batch_size,
        threads=args.threads,
        memory=args.memory,
        log=None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True)),
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.save is not None:
        from saunetv2_lib.efficiency import save_report

        print(f"wrote {save_report(report, args.save)}", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from saunetv2_lib.cli import CommandError
    from saunetv2_lib.export import EXPORT_FILES, export_model

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.weights:
        from saunetv2_lib.weights import load_weights

        model = load_weights(args.weights)
    elif args.model:
        from saunetv2_lib.models import get_model

        model = get_model(args.model, (args.size, args.size, 3))
        print(
            f"note: exporting {args.model} with random (untrained) weights; pass --weights for a "
            "trained model",
            file=sys.stderr,
        )
    else:
        raise CommandError("give --weights NAME|PATH (a trained model) or --model NAME.")
    written = export_model(model, args.out, formats)
    for fmt, path in written.items():
        print(f"{fmt:<12} {path}")
    print(
        f"{'manifest':<12} {args.out}/export.json  ({len(written)} of {len(EXPORT_FILES)} formats)"
    )
    return 0
