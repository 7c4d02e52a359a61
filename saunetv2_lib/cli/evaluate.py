"""Subcommands ``evaluate`` (test-set metrics under a chosen protocol) and ``predict`` (own images).

Examples::

    saunetv2 evaluate --dataset DRIVE --weights drive                 # the paper's protocol
    saunetv2 evaluate --dataset DRIVE --weights drive --fov --pooled  # a variant
    saunetv2 evaluate --dataset DRIVE --weights runs/drive/best.keras --switchboard --out ev/
    saunetv2 predict photo1.jpg photo2.png --out predictions/ --weights drive
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from saunetv2_lib.data.vocabulary import ANCHORS, FOV_SOURCES, LABEL_SETS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="test-set metrics of trained weights (paper protocol by default)",
        description=(
            "Pad each test image to the model side, predict once, crop back, and report F1, "
            "Jaccard, sensitivity, specificity, accuracy, MCC and AUC. Defaults are the paper's: "
            "whole image, per-image mean, threshold 0.5 (strict), top-left padding, 1st observer."
        ),
    )
    parser.add_argument("--dataset", required=True, help="DRIVE, STARE or CHASE_DB1")
    parser.add_argument(
        "--weights", required=True, help="shipped name (drive, stare) or path to a .keras file"
    )
    parser.add_argument("--split", default="test", help="test (default), train or all")
    parser.add_argument("--root", default=None, help="data root (default: $SAUNETV2_DATA)")
    parser.add_argument("--fov", action="store_true", help="evaluate inside the FOV mask only")
    parser.add_argument("--pooled", action="store_true", help="pool pixels over all images")
    parser.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help="binarisation threshold (default 0.5), or 'train' to choose it on the training set",
    )
    strictness = parser.add_mutually_exclusive_group()
    strictness.add_argument("--inclusive", action="store_true", help="binarise with p >= t")
    strictness.add_argument("--strict", action="store_true", help="binarise with p > t")
    parser.add_argument("--anchor", choices=ANCHORS, default="top_left")
    parser.add_argument("--labels", choices=LABEL_SETS, default="reference")
    parser.add_argument(
        "--fov-source",
        choices=FOV_SOURCES,
        default="official",
        help="FOV masks for --fov: official where shipped (DRIVE), else derived",
    )
    parser.add_argument("--side", type=int, default=None, help="padded side (default: dataset's)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    parser.add_argument(
        "--switchboard",
        action="store_true",
        help="also report every protocol (whole/FOV x per-image/pooled x 0.5/--threshold)",
    )
    parser.add_argument("--out", default=None, help="write CSVs, curves and probability maps here")
    parser.add_argument(
        "--runtime",
        choices=("fast", "keras"),
        default="fast",
        help="inference path: the measured-fastest CPU path (default) or Keras' predict (reference)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary (f1, jaccard, sensitivity, specificity, accuracy, mcc, auc as "
        "fractions) as JSON; with --switchboard, the list of rows",
    )
    parser.set_defaults(func=_evaluate)

    parser = subparsers.add_parser(
        "predict",
        help="segment your own fundus images (any size; tif, png, jpg, ppm, gif)",
        description=(
            "Writes <stem>_prob.png (8-bit probability), <stem>_mask.png (0/255) and "
            "<stem>_overlay.png per image. Probabilities outside the derived field of view are "
            "set to 0 unless --no-fov. Files that fail are reported one line each on stderr; "
            "the others are still processed; the exit code is 2 if any failed."
        ),
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--weights", default="drive", help="shipped name (drive, stare) or a .keras path"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="mask threshold (p > t), default 0.5"
    )
    parser.add_argument(
        "--no-fov", action="store_true", help="keep probabilities outside the derived FOV"
    )
    parser.add_argument("--anchor", choices=ANCHORS, default="top_left")
    parser.set_defaults(func=_predict)


def _threshold(text: str) -> float | str:
    if text == "train":
        return text
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"threshold must be a number in [0, 1] or 'train', got {text!r}"
        ) from error
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold must be in [0, 1], got {value}")
    return value


def _evaluate(args: argparse.Namespace) -> int:
    from saunetv2_lib import evaluation
    from saunetv2_lib.data.datasets import ENV_DATA, is_synthetic
    from saunetv2_lib.weights import load_weights

    inclusive = True if args.inclusive else (False if args.strict else None)
    protocol = evaluation.Protocol(
        anchor=args.anchor,
        threshold=0.5,
        inclusive=inclusive,
        region="fov" if args.fov else "whole",
        aggregate="pooled" if args.pooled else "per_image",
        labels=args.labels,
        fov_source=args.fov_source,
        side=args.side,
    )
    run = evaluation.run_evaluation(
        load_weights(args.weights),
        args.dataset,
        args.split,
        protocol,
        args.root,
        threshold=args.threshold,
        switchboard=args.switchboard,
        out_dir=args.out,
        batch_size=args.batch_size,
        runtime=args.runtime,
    )
    result, rows = run.result, run.switchboard
    # Without a root, data_root() has already warned when it fell back to the synthetic stand-in.
    root = args.root or os.environ.get(ENV_DATA)
    if args.json:
        payload = (
            rows if rows is not None else {k: result.summary[k] for k in evaluation.METRIC_NAMES}
        )
        print(json.dumps(payload, indent=2))
        return 0
    if root and is_synthetic(root):
        print(
            f"note: {root} holds SYNTHETIC data; set SAUNETV2_DATA to the real datasets for "
            "numbers comparable to the paper.",
            file=sys.stderr,
        )
    print(f"{result.dataset} {args.split}, {len(result.names)} images, weights {args.weights}")
    print(evaluation.format_rows(rows if rows is not None else [result.as_row()]))
    if rows is not None:
        print("(* = the paper's protocol; metrics in percent)")
    if args.out:
        print(f"wrote {args.out}/per_image.csv, summary.csv, roc.csv, pr.csv, prob/")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from saunetv2_lib.inference import predict_files
    from saunetv2_lib.weights import load_weights

    model = load_weights(args.weights)
    results = predict_files(
        model,
        args.images,
        args.out,
        threshold=args.threshold,
        use_fov=not args.no_fov,
        anchor=args.anchor,
    )
    failed = 0
    for result in results:
        if result.ok:
            print(f"{result.path}: " + ", ".join(str(p) for p in result.outputs.values()))
        else:
            failed += 1
            print(f"saunetv2 predict: error: {result.error}", file=sys.stderr)
    if failed:
        print(f"saunetv2 predict: {failed} of {len(results)} file(s) failed", file=sys.stderr)
        return 2
    return 0
