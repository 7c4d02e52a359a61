"""``saunetv2 weights``: list, verify and ship trained weights with their model cards.

Shipping (:func:`saunetv2_lib.experiments.ship.ship_run`) evaluates the run's best checkpoint
under every protocol and installs an optimizer-free copy with its model card.

    saunetv2 weights ship --run runs/drive_full --name drive
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="list and ship trained weights")
    commands = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    listing = commands.add_parser("list", help="the registry and what is shipped")
    listing.set_defaults(func=_list)
    ship = commands.add_parser(
        "ship", help="evaluate a run's best checkpoint and install it with its model card"
    )
    ship.add_argument("--run", required=True, help="training output folder (has best.keras)")
    ship.add_argument("--name", required=True, help="registry name, e.g. drive")
    ship.add_argument("--dataset", default=None, help="default: the run's dataset")
    ship.add_argument("--root", default=None, help="data root (default: the run's)")
    ship.set_defaults(func=_ship)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _ship(args: argparse.Namespace) -> int:
    from saunetv2_lib.experiments.ship import ship_run

    card = ship_run(args.run, args.name, args.dataset, args.root)
    from saunetv2_lib.weights import paper_row

    summary = {"name": card["name"], "sha256": card["sha256"], "paper_protocol": paper_row(card)}
    print(json.dumps(summary, indent=2))
    return 0


def _list(args: argparse.Namespace) -> int:
    from saunetv2_lib.weights import list_weights

    for name, shipped in list_weights().items():
        print(f"{name}: {'shipped' if shipped else 'not shipped'}")
    return 0
