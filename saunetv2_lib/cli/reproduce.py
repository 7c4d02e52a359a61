"""The ``reproduce`` subcommand: run the notebooks with papermill, compare with the paper, render the site.

Examples::

    saunetv2 reproduce --profile quick              # build/quick/: notebooks, figures, runs, _site
    saunetv2 reproduce --profile full               # notebooks/, figures/, _site/ (trains nothing)
    saunetv2 reproduce --profile quick --only 03 --no-site
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="execute notebooks 01-06 with papermill, compare with the paper, render the site",
        description=(
            "quick: short runs from scratch into build/quick/ (never touches notebooks/ or "
            "figures/); full: present the long runs and shipped weights, writing notebooks/, "
            "figures/ and _site/."
        ),
    )
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NN",
        help="run only these notebooks (numbers or names, comma-separated or repeated)",
    )
    parser.add_argument("--no-site", action="store_true", help="do not render the website")
    parser.add_argument("--dataset", default="drive", help="dataset of training/evaluation")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--data-root", default=None, help="dataset root (default: $SAUNETV2_DATA or synthetic)"
    )
    parser.add_argument(
        "--renderer",
        choices=("auto", "quarto", "smalldocs"),
        default="auto",
        help="site renderer (auto: quarto when on PATH, else smalldocs)",
    )
    parser.set_defaults(func=_reproduce)


def _reproduce(args: argparse.Namespace) -> int:
    from saunetv2_lib.cli import CommandError
    from saunetv2_lib.companion.reproduce import NotebookError, reproduce

    only = [item for chunk in args.only or [] for item in chunk.split(",") if item.strip()]
    try:
        report = reproduce(
            profile=args.profile,
            only=only or None,
            site=not args.no_site,
            dataset=args.dataset,
            seed=args.seed,
            data_root=args.data_root,
            renderer=args.renderer,
        )
    except NotebookError as error:
        raise CommandError(str(error)) from None
    except RuntimeError as error:  # the site renderer's own message
        raise CommandError(str(error)) from None
    counts = report.comparison
    if counts.get("outside"):
        print(
            f"warning: {counts['outside']} paper-vs-reproduced rows are outside their tolerance; "
            f"see {report.layout.figures_dir / 'paper_vs_reproduced.csv'}"
        )
    return 0
