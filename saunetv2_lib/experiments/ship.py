"""Shipping a finished run: evaluate its best checkpoint under every protocol, install it with its card.

Shipping is one reproducible step: evaluate the run's best checkpoint on the test split under
every protocol (whole image / FOV x per-image / pooled x 0.5 / a threshold chosen on the
*training* split), then install an optimizer-free copy in ``saunetv2_lib/weights/NAME.keras``
with a card holding the configuration, the training summary and history, and every metric.
"""

from __future__ import annotations

import json
from pathlib import Path


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
    from saunetv2_lib.training.history import read_history
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
        "history": read_history(run_dir / "history.csv"),
        "train_threshold": scores["train_threshold"],
        "evaluation_runtime": "fast",
        "per_image": scores["per_image"],
        **(extra or {}),
    }
    rows = scores["metrics"]
    shipped = ship_weights(run_dir, name, rows, directory=directory, extra=extra)
    return read_model_card(shipped)
