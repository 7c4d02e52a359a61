"""Which checkpoint is the result? Every checkpoint a campaign run kept, scored on the test images.

The paper evaluates the checkpoint with the best validation accuracy (its ModelCheckpoint);
its EarlyStopping restores the best validation loss in memory, which the notebooks never
evaluate (spec, section 4). Both rules rank checkpoints by a few validation images (STARE: 2
held-out sources), and the test score itself rests on a few test images (STARE: 4). This module
measures how much those two choices move the number a run reports:

* :func:`score_checkpoints` scores every checkpoint a run folder kept (the milestones' current
  and best weights, the best validation loss, the best validation accuracy, the last epoch)
  under the paper's protocol, beside the validation scores of its epoch;
* :func:`checkpoint_diagnosis` sets the spread between the late checkpoints, the agreement
  between validation and test ranks, and the test-image interval of the shipped checkpoint
  against the paper's number;
* :func:`diagnosis_markdown` says it in one paragraph (README, notebook 5).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saunetv2_lib.experiments.campaign import CHECKPOINTS_FILE, MILESTONES_FILE

SHIPPED_RULE = "best val_accuracy (shipped)"
VAL_LOSS_RULE = "best val_loss (EarlyStopping)"
LAST_RULE = "last epoch"


def _milestone_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The scored milestones as checkpoint rows, keyed by the epoch whose weights they hold."""
    path = run_dir / MILESTONES_FILE
    rows = []
    for row in json.loads(path.read_text("utf-8")) if path.is_file() else []:
        epoch = row["best_epoch"] if row["kind"] == "best" else row["epoch"]
        rule = (
            f"best val_accuracy at {row['milestone']:,} steps"
            if row["kind"] == "best"
            else f"weights at {row['milestone']:,} steps"
        )
        rows.append({"epoch": int(epoch), "rule": rule, **_scores_of(row)})
    return rows


def _scores_of(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("f1", "jaccard", "sensitivity", "specificity", "accuracy", "mcc", "auc")
    return {**{k: float(row[k]) for k in keys}, "per_image_f1": dict(row["per_image_f1"])}


def score_checkpoints(
    spec, run_dir: Path | str, batch_size: int = 2, max_test_images: int | None = None
) -> list[dict[str, Any]]:
    """Score every checkpoint ``run_dir`` kept; write and return ``checkpoints.json``.

    One row per distinct epoch, sorted by epoch: ``epoch`` (1-based), ``steps``, ``rules`` (the
    rules that select it, e.g. ``"best val_loss (EarlyStopping)"``), ``val_accuracy`` and
    ``val_loss`` of that epoch, the paper-protocol metrics (fractions) and ``per_image_f1``.
    Milestones reuse their scores in ``milestones.json``; the others are scored with
    :func:`~saunetv2_lib.experiments.campaign.score_checkpoint`.

    Args:
        spec: the run's :class:`~saunetv2_lib.experiments.campaign.RunSpec`.
        run_dir: its working folder (``runs/campaign/<run>``) with ``resume/state.json``.
        batch_size: prediction batch.
        max_test_images: score only the first N test images (tests).
    """
    from saunetv2_lib.experiments.campaign import run_state, score_checkpoint
    from saunetv2_lib.training.history import read_history

    run_dir = Path(run_dir)
    state = run_state(run_dir)
    if state is None:
        raise FileNotFoundError(f"{run_dir} has no completed epoch (resume/state.json).")
    by_epoch: dict[int, dict[str, Any]] = {}
    for row in _milestone_rows(run_dir):
        entry = by_epoch.setdefault(row["epoch"], {**row, "rules": []})
        entry["rules"].append(row["rule"])
    early = state.get("early_stopping", {})
    kept = [
        (state["checkpoint"]["best_epoch"] + 1, SHIPPED_RULE, run_dir / "best.keras"),
        (state["completed_epochs"], LAST_RULE, run_dir / "last.keras"),
    ]
    if early.get("weights_file"):
        kept.append(
            (early["best_epoch"] + 1, VAL_LOSS_RULE, run_dir / "resume" / early["weights_file"])
        )
    for epoch, rule, path in kept:
        if epoch in by_epoch:
            by_epoch[epoch]["rules"].append(rule)
            continue
        if path.suffix == ".npz":
            with np.load(path) as stored:
                weights: Any = [stored[f"w{i}"] for i in range(len(stored.files))]
        else:
            weights = path
        scores = score_checkpoint(spec, run_dir, weights, batch_size, max_test_images)
        by_epoch[epoch] = {"epoch": epoch, "rules": [rule], **_scores_of(scores)}
    history = {row["epoch"] + 1: row for row in read_history(run_dir / "history.csv")}
    steps_per_epoch = spec.steps_per_epoch()
    rows = []
    for epoch in sorted(by_epoch):
        row = {k: v for k, v in by_epoch[epoch].items() if k != "rule"}
        epoch_row = history.get(epoch, {})
        row.update(
            steps=epoch * steps_per_epoch,
            val_accuracy=epoch_row.get("val_accuracy"),
            val_loss=epoch_row.get("val_loss"),
        )
        rows.append(row)
    (run_dir / CHECKPOINTS_FILE).write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
    return rows


def checkpoint_diagnosis(
    rows: Sequence[Mapping[str, Any]], paper_f1: float, confidence: float = 0.95
) -> dict[str, Any]:
    """How far checkpoint choice and the test images move the F1 a run reports.

    Args:
        rows: :func:`score_checkpoints` rows (one must carry :data:`SHIPPED_RULE`).
        paper_f1: the paper's F1 as a fraction.
        confidence: coverage of the interval over test images.

    Returns:
        ``shipped`` and ``val_loss`` (the epochs each rule picks, their F1), ``best`` (the
        checkpoint with the highest test F1), ``late`` (the
        checkpoints from the best-val_loss epoch on, where validation loss stops improving:
        ``epochs``, ``f1_min``, ``f1_max``), ``rank`` (Spearman correlation of val_accuracy and
        test F1 over every checkpoint, with its p-value), ``images`` (the shipped checkpoint's
        per-image F1: count, SD, Student-t interval of the mean), ``paper_f1``, ``gap`` (paper
        minus shipped) and ``paper_inside`` (whether the paper's F1 lies in that interval).
        F1 values are fractions.
    """
    from scipy import stats

    def picked(rule: str) -> Mapping[str, Any]:
        matches = [row for row in rows if rule in row["rules"]]
        if not matches:
            raise ValueError(f"no checkpoint row carries the rule {rule!r}.")
        return matches[0]

    shipped = picked(SHIPPED_RULE)
    by_loss = next((row for row in rows if VAL_LOSS_RULE in row["rules"]), shipped)
    late = [row for row in rows if row["epoch"] >= by_loss["epoch"]]
    ranked = [row for row in rows if row.get("val_accuracy") is not None]
    rho, rho_p = stats.spearmanr([r["val_accuracy"] for r in ranked], [r["f1"] for r in ranked])
    per_image = np.array(list(shipped["per_image_f1"].values()), dtype=np.float64)
    sd = float(per_image.std(ddof=1))
    low, high = stats.t.interval(
        confidence, len(per_image) - 1, loc=per_image.mean(), scale=sd / np.sqrt(len(per_image))
    )
    top = max(rows, key=lambda row: row["f1"])
    return {
        "shipped": {"epoch": shipped["epoch"], "f1": shipped["f1"]},
        "best": {"epoch": top["epoch"], "f1": top["f1"]},
        "val_loss": {"epoch": by_loss["epoch"], "f1": by_loss["f1"]},
        "late": {
            "epochs": [row["epoch"] for row in late],
            "f1_min": min(row["f1"] for row in late),
            "f1_max": max(row["f1"] for row in late),
        },
        "rank": {"spearman": float(rho), "p": float(rho_p), "checkpoints": len(ranked)},
        "images": {
            "count": len(per_image),
            "sd": sd,
            "low": float(low),
            "high": float(high),
            "confidence": confidence,
        },
        "paper_f1": float(paper_f1),
        "gap": float(paper_f1 - shipped["f1"]),
        "paper_inside": bool(low <= paper_f1 <= high),
    }


def diagnosis_markdown(diagnosis: Mapping[str, Any], dataset: str) -> str:
    """One paragraph on :func:`checkpoint_diagnosis`, every number from it (F1 in %)."""

    def pct(value: float) -> str:
        return f"{100 * value:.2f}"

    d, images, late, best = diagnosis, diagnosis["images"], diagnosis["late"], diagnosis["best"]
    verdict = (
        "The gap is within the noise of this protocol: telling the two numbers apart needs "
        "more test images (or folds)."
        if d["paper_inside"]
        else "The gap is larger than the test images explain."
    )
    return (
        f"**Why {dataset} is {pct(d['gap'])} points of F1 short.** The shipped checkpoint "
        f"(epoch {d['shipped']['epoch']}, the best validation accuracy: the paper's rule) scores "
        f"{pct(d['shipped']['f1'])}; the paper reports {pct(d['paper_f1'])}. Scoring all "
        f"{d['rank']['checkpoints']} checkpoints the run kept tests two causes. *Checkpoint "
        f"choice moves F1 by up to {pct(late['f1_max'] - late['f1_min'])} points:* from epoch "
        f"{d['val_loss']['epoch']} on, where validation loss stopped improving, the "
        f"{len(late['epochs'])} checkpoints score {pct(late['f1_min'])} to "
        f"{pct(late['f1_max'])} (the weights EarlyStopping restores: "
        f"{pct(d['val_loss']['f1'])}), and validation accuracy ranks the checkpoints only "
        f"loosely against test F1 (Spearman {d['rank']['spearman']:.2f}, p = "
        f"{d['rank']['p']:.2f}); the best of all, {pct(best['f1'])} at epoch {best['epoch']}, "
        f"is {'below' if best['f1'] < d['paper_f1'] else 'at or above'} the paper. *The test images move it more:* F1 differs by an SD of "
        f"{pct(images['sd'])} points between the {images['count']} test images, so the "
        f"shipped F1's {100 * images['confidence']:.0f} % interval over images is "
        f"[{pct(images['low'])}, {pct(images['high'])}], which "
        f"{'holds' if d['paper_inside'] else 'does not hold'} the paper's number. {verdict}"
    )
