"""The ``compare`` subcommand: train and score the sibling designs beside SA-UNetv2 (notebook 7).

Examples::

    saunetv2 compare --out runs/siblings_drive                       # the committed comparison
    saunetv2 compare --out runs/siblings_drive --models sa_umamba    # one model, same table
    saunetv2 compare --out runs/siblings_drive --time --bundle       # then time and bundle
    saunetv2 compare --out runs/siblings_drive --models sa_umamba --as-is   # score, unfinished

Every call resumes the runs already in ``--out`` and adds its rows to ``comparison.json``.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="train and score the sibling designs beside SA-UNetv2 under one budget (notebook 7)",
    )
    parser.add_argument("--out", required=True, help="folder of the runs and comparison.json")
    parser.add_argument("--profile", default="drive/siblings", help="the shared budget")
    parser.add_argument("--models", help="comma-separated registry names (default: all seven)")
    parser.add_argument("--data-root", help="dataset root (default: $SAUNETV2_DATA)")
    parser.add_argument("--max-test-images", type=int, help="score only the first N test images")
    parser.add_argument("--eval-batch-size", type=int, default=2, help="images per forward pass")
    parser.add_argument(
        "--as-is", action="store_true", help="score the runs as they stand, without training on"
    )
    parser.add_argument("--skip-training", action="store_true", help="only --time / --bundle")
    parser.add_argument("--time", action="store_true", help="time every trained model, interleaved")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (with --time)")
    parser.add_argument("--bundle", action="store_true", help="write the rows+histories bundle")
    parser.add_argument(
        "--bundle-path",
        help="where --bundle writes (default: saunetv2_lib/results/siblings_drive.json)",
    )
    parser.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from saunetv2_lib.experiments.compare import (
        DESIGNS,
        REFERENCES,
        bundle_comparison,
        compare_designs,
        measure_cpu_time,
    )

    models = list(REFERENCES + DESIGNS) if args.models is None else args.models.split(",")
    overrides = {} if args.data_root is None else {"data_root": args.data_root}
    if not args.skip_training:
        for row in compare_designs(
            args.out,
            models=models,
            profile=args.profile,
            overrides=overrides,
            max_test_images=args.max_test_images,
            eval_batch_size=args.eval_batch_size,
            train_runs=not args.as_is,
            verbose=2,
        ):
            print(f"{row['model']:<18} F1 {row['f1']:.4f}  AUC {row['auc']:.4f}  "
                  f"trained {row['train_wall_s']:.0f} s, {row['epochs_run']} epochs "
                  f"{'' if row['budget_complete'] else '(unfinished)'}")  # fmt: skip
    if args.time:
        for row in measure_cpu_time(args.out, repeats=args.repeats):
            print(f"{row['model']:<18} {row['cpu_s_per_image']:.3f} s per image "
                  f"(load {row['cpu_time_load']})")  # fmt: skip
    if args.bundle:
        where = {} if args.bundle_path is None else {"path": args.bundle_path}
        print(f"bundle: {bundle_comparison(args.out, **where)}")
    return 0
