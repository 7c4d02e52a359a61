"""The ``train`` subcommand: run a named training profile into a folder, or resume one.

Examples::

    saunetv2 train --dataset drive --profile quick --out runs/drive_quick
    saunetv2 train --dataset drive --profile full --out runs/drive_full
    saunetv2 train --out runs/drive_full --resume            # after an interruption
    saunetv2 train --list-profiles
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from saunetv2_lib.cli import add_malloc_argument

DATASETS = ("drive", "stare", "chase")
PROFILES = ("quick", "full", "paper")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model with a named profile (quick or the paper's full schedule); resumable",
        description="Train with a profile from saunetv2_lib/configs/profiles.json. The run folder "
        "gets config.json, history.csv, best.keras, last.keras, summary.json and resume/.",
    )
    parser.add_argument("--dataset", choices=DATASETS, default="drive")
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument("--out", help="run folder (created)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last epoch"
    )
    parser.add_argument("--epochs", type=int, help="override the maximum number of epochs")
    parser.add_argument("--model", help="registry name (see `saunetv2 models`)")
    parser.add_argument("--batch-size", type=int, help="override the global batch size")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--data-root", help="dataset root (default: $SAUNETV2_DATA or synthetic)")
    parser.add_argument(
        "--max-train-images", type=int, help="use only the first N training images (smoke runs)"
    )
    parser.add_argument(
        "--distribute",
        action="store_true",
        help="TensorFlow: MultiWorkerMirroredStrategy from TF_CONFIG, or MirroredStrategy "
        "over all GPUs",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="1: progress bar, 2: one line per epoch",
    )
    add_malloc_argument(parser)
    parser.add_argument("--list-profiles", action="store_true", help="list profiles and exit")
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from saunetv2_lib.cli import CommandError
    from saunetv2_lib.training import (
        TrainConfig,
        list_profiles,
        load_profile,
        strategy_from_env,
        train,
    )

    if args.list_profiles:
        for name in list_profiles():
            print(f"{name:<12} {load_profile(name).notes}")
        return 0
    if args.out is None:
        raise CommandError("--out DIR is required (the run folder).")
    out = Path(args.out)
    overrides = {
        key: value
        for key, value in {
            "epochs": args.epochs,
            "model": args.model,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "data_root": args.data_root,
            "max_train_images": args.max_train_images,
        }.items()
        if value is not None
    }
    if args.resume:
        config_path = out / "config.json"
        if not config_path.exists():
            raise CommandError(f"cannot resume: {config_path} does not exist.")
        extra = sorted(set(overrides) - {"epochs"})
        if extra:
            raise CommandError(
                f"--resume continues the saved configuration; only --epochs may change (got {extra})."
            )
        config = TrainConfig.from_dict(json.loads(config_path.read_text("utf-8")))
        if "epochs" in overrides:
            config = config.replace(epochs=overrides["epochs"])
    else:
        config = load_profile(f"{args.dataset}/{args.profile}", **overrides)
    strategy = strategy_from_env() if args.distribute else None
    result = train(config, out, resume=args.resume, strategy=strategy, verbose=args.verbose)
    best = "n/a" if result.best_value is None else f"{result.best_value:.5f}"
    print(
        f"done: {result.epochs_run} epochs in {result.wall_time_s:.0f} s; best {result.monitor} "
        f"{best} at epoch {result.best_epoch}; files in {out}"
    )
    return 0
