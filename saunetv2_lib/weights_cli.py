"""``saunetv2 weights``: list, verify and ship trained weights with their model cards.

Shipping is one reproducible step: evaluate the run's best checkpoint on the test split under
every protocol (whole image / FOV x per-image / pooled x 0.5 / a threshold chosen on the
*training* split), then install an optimizer-free copy in ``saunetv2_lib/weights/NAME.keras``
with a card holding the configuration, the training summary and history, and every metric.

    saunetv2 weights ship --run runs/drive_full --name drive
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """The run's ``history.csv`` as rows of floats (empty when there is none)."""
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def ship_run(
    run_dir: str | Path,
    name: str,
    dataset: str | None = None,
    root: str | Path | None = None,
    directory: str | Path | None = None,
    extra: dict | None = None,
) -> dict:
    """Evaluate ``run_dir/best.keras`` under every protocol and ship it as ``name``; returns the card.

    ``directory`` defaults to the package's ``weights/`` folder; ``extra`` adds card entries.
    """
    from saunetv2_lib import evaluation
    from saunetv2_lib.training import as_float32
    from saunetv2_lib.weights import load_weights, read_model_card, ship_weights

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a training run folder (no config.json); "
            "runs are made by `saunetv2 train --out DIR`."
        )
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    dataset = dataset or config["dataset"]
    root = root or config.get("data_root")
    model = load_weights(run_dir / "best.keras", verify=False)
    scores = evaluation.score_every_protocol(
        as_float32(model), dataset, root, anchor=config.get("anchor", "top_left")
    )
    extra = {
        "history": read_history(run_dir),
        "train_threshold": scores["train_threshold"],
        "evaluation_runtime": "fast",
        "per_image": scores["per_image"],
        **(extra or {}),
    }
    rows = scores["metrics"]
    shipped = ship_weights(run_dir, name, rows, directory=directory, extra=extra)
    return read_model_card(shipped)


def _ship(args: argparse.Namespace) -> int:
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
