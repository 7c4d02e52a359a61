"""The paper's ablation claims, trained with seeds: each table row, its interval and its verdict.

The ``ablation`` campaign (``configs/campaigns.json``) trains every configuration of Table 3
(architecture), Table 4 (loss) and the SA-UNet baseline of Table 1A from 3 seeds under one
budget (profile ``drive/ablation``), and names the paper rows each configuration reproduces
(``paper_rows``). This module turns the campaign's bundle into those rows:

* :func:`configuration_scores`: per configuration, the ``(seeds, images)`` matrix of per-image
  scores of its finished runs (paper protocol);
* :func:`ablation_rows`: per paper row, our mean with its seed and image intervals, and the
  paired difference against the row it claims to improve on, with the verdict of
  :func:`saunetv2_lib.experiments.claims.verdict`;
* :func:`budget_gap`: how far the ablation budget's score lies below the paper-scale run's, on
  the paper-scale run's own curve (its checkpoint at the budget's step count).

Which row a row is compared with: Table 3 adds one change per row, so each row against the one
above it; Table 4 compares losses, so each loss against the paper's loss; Table 1A compares
models, so each baseline against SA-UNetv2. The ``baselines`` campaign trains U-Net and
Attention U-Net (too costly for the ablation budget on CPU) beside SA-UNetv2 at a smaller
budget; its rows compare the models at that budget. The claimed direction of each comparison is the sign of the paper's own
difference, so a verdict says whether the paper's ordering survives the seed and image noise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from saunetv2_lib.experiments import claims
from saunetv2_lib.experiments.campaign import Campaign, load_campaign

ABLATION_CAMPAIGN = "ablation"
# The paper tables the campaign reproduces, with the metrics each reports.
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "architecture_ablation": ("f1", "jaccard", "mcc", "accuracy"),
    "loss_ablation": ("f1", "jaccard", "sensitivity", "specificity", "accuracy", "mcc", "auc"),
    "drive_without_fov": ("f1", "jaccard", "sensitivity", "specificity", "accuracy", "mcc", "auc"),
}
# Rows compared with one fixed row rather than with the row above them: Table 4 with the
# paper's loss, Table 1A with SA-UNetv2 (the paper's claims: its loss, and its model, are best).
REFERENCE_ROW: dict[str, str] = {
    "loss_ablation": "BCE+MCC (0.5, 0.5)",
    "drive_without_fov": "SA-UNetv2",
}
PAPER_SCALE_RUN = "drive_paper"  # the paper campaign's DRIVE run: the budget gap's yardstick


def configuration_scores(
    bundle: Mapping[str, Any], campaign: Campaign, metric: str = "f1"
) -> dict[str, dict[str, Any]]:
    """Per-image ``metric`` of every finished run, grouped by configuration.

    Returns:
        ``{configuration: {"seeds": [seed, ...], "images": [name, ...], "scores": (seeds,
        images) array}}`` in fractions (not percent), seeds ascending, images by name. A
        configuration without a finished run is absent.

    Raises:
        ValueError: two runs of one configuration were scored on different test images.
    """
    grouped: dict[str, dict[int, dict[str, float]]] = {}
    for spec in campaign.runs:
        result = bundle.get("runs", {}).get(spec.name, {}).get("result")
        if result is None:
            continue
        seed = int(spec.config().seed)
        per_image = {row["name"]: float(row[metric]) for row in result["per_image"]}
        grouped.setdefault(spec.configuration or spec.name, {})[seed] = per_image
    scores: dict[str, dict[str, Any]] = {}
    for configuration, by_seed in grouped.items():
        seeds = sorted(by_seed)
        images = sorted(by_seed[seeds[0]])
        for seed in seeds[1:]:
            if sorted(by_seed[seed]) != images:
                raise ValueError(
                    f"{configuration}: seed {seed} was scored on other test images than seed "
                    f"{seeds[0]}."
                )
        matrix = np.array([[by_seed[seed][name] for name in images] for seed in seeds])
        scores[configuration] = {"seeds": seeds, "images": images, "scores": matrix}
    return scores


def table_configurations(campaign: Campaign, table: str) -> dict[str, str]:
    """``{paper row: configuration}`` of the campaign's runs that reproduce rows of ``table``."""
    rows: dict[str, str] = {}
    for spec in campaign.runs:
        row = spec.paper_rows.get(table)
        if row is not None:
            rows[row] = spec.configuration or spec.name
    return rows


def _paired(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The two score matrices restricted to the seeds both configurations have finished."""
    if a["images"] != b["images"]:
        raise ValueError("paired configurations were scored on different test images.")
    shared = sorted(set(a["seeds"]) & set(b["seeds"]))

    def rows_of(scores: Mapping[str, Any]) -> np.ndarray:
        return scores["scores"][[scores["seeds"].index(seed) for seed in shared]]

    return rows_of(a), rows_of(b)


def ablation_rows(
    table: str,
    bundle: Mapping[str, Any],
    campaign: Campaign | None = None,
    metric: str = "f1",
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """Our trained rows of a paper table beside the paper's, in the paper's row order.

    Args:
        table: a key of :data:`TABLE_METRICS` (``saunetv2_lib.paper`` table key).
        bundle: the ablation campaign's bundle (:func:`~.campaign.load_campaign_bundle`).
        campaign: the declared campaign (default: :data:`ABLATION_CAMPAIGN`).
        metric: one of the table's metrics.

    Returns:
        One dict per paper row the campaign reproduces: ``row``, ``configuration``, ``paper``
        (percent), ``seeds`` (finished), and with at least one seed ``mean``, ``seed_low``,
        ``seed_high``, ``image_low``, ``image_high`` and ``seed_means`` (percent; a seed
        interval needs two seeds). Rows after the first also get ``against`` (the row compared with),
        ``claimed`` (+1/-1: the sign of the paper's difference), and with two paired seeds
        ``diff_mean``, ``diff_seed_low``, ``diff_seed_high``, ``diff_image_low``,
        ``diff_image_high`` (percent points), ``wilcoxon_p`` and ``verdict``.
    """
    from saunetv2_lib import paper

    if table not in TABLE_METRICS:
        raise ValueError(f"table must be one of {sorted(TABLE_METRICS)}, got {table!r}.")
    if metric not in TABLE_METRICS[table]:
        raise ValueError(f"{table} reports {TABLE_METRICS[table]}, not {metric!r}.")
    campaign = campaign or load_campaign(ABLATION_CAMPAIGN)
    configurations = table_configurations(campaign, table)
    scores = configuration_scores(bundle, campaign, metric)
    printed = paper.table(table)
    order = [r["model"] for r in printed.rows if r["model"] in configurations]
    rows: list[dict[str, Any]] = []
    for index, name in enumerate(order):
        configuration = configurations[name]
        ours = scores.get(configuration)
        row: dict[str, Any] = {
            "row": name,
            "configuration": configuration,
            "paper": printed.row(name)[metric],
            "seeds": 0 if ours is None else len(ours["seeds"]),
        }
        if ours is not None:
            summary = claims.summarize(100.0 * ours["scores"], confidence)
            row.update({key: summary[key] for key in
                        ("mean", "seed_low", "seed_high", "image_low", "image_high")})  # fmt: skip
            row["seed_means"] = (100.0 * ours["scores"].mean(axis=1)).tolist()
        against = REFERENCE_ROW.get(table, order[index - 1] if index else None)
        if against is not None and against != name and against in configurations:
            row["against"] = against
            row["claimed"] = 1 if row["paper"] >= printed.row(against)[metric] else -1
            theirs = scores.get(configurations[against])
            if ours is not None and theirs is not None:
                base, mine = _paired(theirs, ours)
                if len(base) >= 2:
                    difference = claims.paired_difference(100.0 * base, 100.0 * mine, confidence)
                    row.update({f"diff_{key}": difference[key] for key in
                                ("mean", "seed_low", "seed_high", "image_low", "image_high")})  # fmt: skip
                    row["wilcoxon_p"] = difference["wilcoxon_p"]
                    row["verdict"] = claims.verdict(difference, row["claimed"])
        rows.append(row)
    return rows


def saturation_rows(
    bundle: Mapping[str, Any], campaign: Campaign | None = None, table: str = "loss_ablation"
) -> list[dict[str, Any]]:
    """How far each configuration's test probabilities sit at 0 and 1, beside its AUC.

    Reads each finished run's ``saturation`` (:func:`saunetv2_lib.metrics.saturation`, paper
    protocol) and its per-image AUC from the bundle.

    Returns:
        One dict per paper row of ``table`` with at least one finished run that carries
        ``saturation``, in the paper's row order: ``row``, ``configuration``, ``seeds`` (list),
        ``margin``, per-run lists of each of
        :data:`~saunetv2_lib.metrics.SATURATION_FIELDS` and ``auc`` (percent, in seed order), and
        their means ``<field>_mean``.
    """
    from saunetv2_lib import paper
    from saunetv2_lib.metrics import SATURATION_FIELDS

    campaign = campaign or load_campaign(ABLATION_CAMPAIGN)
    configurations = table_configurations(campaign, table)
    by_configuration: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for spec in campaign.runs:
        result = bundle.get("runs", {}).get(spec.name, {}).get("result") or {}
        if set(SATURATION_FIELDS) <= set(result.get("saturation", {})):
            by_configuration.setdefault(spec.configuration or spec.name, []).append(
                (int(spec.config().seed), result)
            )
    rows = []
    for printed in paper.table(table).rows:
        configuration = configurations.get(printed["model"])
        runs = sorted(by_configuration.get(configuration, []), key=lambda run: run[0])
        if not runs:
            continue
        row: dict[str, Any] = {
            "row": printed["model"],
            "configuration": configuration,
            "seeds": [seed for seed, _ in runs],
            "margin": runs[0][1]["saturation"]["margin"],
        }
        for field in SATURATION_FIELDS:
            row[field] = [100.0 * result["saturation"][field] for _, result in runs]
        row["auc"] = [
            100.0 * float(np.mean([image["auc"] for image in result["per_image"]]))
            for _, result in runs
        ]
        for field in (*SATURATION_FIELDS, "auc"):
            row[f"{field}_mean"] = float(np.mean(row[field]))
        rows.append(row)
    return rows


def budget_gap(
    paper_bundle: Mapping[str, Any],
    budget_steps: int,
    metrics: Sequence[str] = TABLE_METRICS["loss_ablation"],
    run: str = PAPER_SCALE_RUN,
) -> dict[str, Any] | None:
    """What the ablation budget costs, measured on the paper-scale run's own curve.

    The paper-scale run's best checkpoint at ``budget_steps`` (a scored milestone) against its
    final result, or, while it trains, its latest scored milestone.

    Returns:
        ``{"budget_steps", "against_steps", "final": bool, "gap": {metric: percent points}}``
        (positive: the longer run scores higher), or ``None`` while the run has no milestone
        at ``budget_steps`` and none after it.
    """
    entry = paper_bundle.get("runs", {}).get(run)
    if entry is None:
        return None
    best = [m for m in entry.get("milestones", []) if m["kind"] == "best"]
    at_budget = next((m for m in best if m["steps"] == budget_steps), None)
    if at_budget is None:
        return None
    result = entry.get("result")
    if result is not None:
        from saunetv2_lib.weights import paper_row

        longer, steps, final = paper_row(result), result["optimizer_steps"], True
    else:
        latest = max(best, key=lambda m: m["steps"])
        if latest["steps"] <= budget_steps:
            return None
        longer, steps, final = latest, latest["steps"], False
    gap = {m: 100.0 * (float(longer[m]) - float(at_budget[m])) for m in metrics}
    return {"budget_steps": budget_steps, "against_steps": steps, "final": final, "gap": gap}


def declared_seeds(campaign: Campaign) -> dict[str, int]:
    """``{configuration: number of declared runs (seeds)}`` of ``campaign``."""
    return dict(Counter(spec.configuration or spec.name for spec in campaign.runs))


def budget_steps(campaign: Campaign | None = None) -> int:
    """The optimizer steps of the ablation budget (every run of the campaign shares it)."""
    campaign = campaign or load_campaign(ABLATION_CAMPAIGN)
    steps = {spec.steps_per_epoch() * spec.config().epochs for spec in campaign.runs}
    if len(steps) != 1:
        raise ValueError(f"the ablation runs do not share one budget: {sorted(steps)} steps.")
    return steps.pop()
