"""Test-set evaluation under the paper's protocol and its common variants (spec section 5).

The paper's protocol (the defaults of :class:`Protocol`): zero-pad each test image top-left to the
model side (DRIVE 592, STARE 704), predict once with no test-time augmentation, crop the top-left
``H x W`` block back, binarise at 0.5 with a strict ``p > 0.5``, compute the seven metrics on the
whole image per image against the first observer, and average over the test images.

The variants that move published numbers (anchors B.9) are all available: FOV-only evaluation
(``region="fov"``; the official notebook then binarises with ``p >= 0.5``), pooled pixels
(``aggregate="pooled"``, SA-UNet v1), a threshold chosen on the training set, a centred anchor and
the second observer's labels. Every test image is predicted once; :func:`protocol_switchboard`
reuses those probabilities for every combination.

Typical use::

    result = evaluate(load_weights("drive"), "DRIVE")
    result.summary["f1"]             # fraction
    result.write("runs/eval_drive")  # per_image.csv, summary.csv, roc.csv, pr.csv, prob/*.png
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saunetv2_lib import metrics as _metrics
from saunetv2_lib.data.vocabulary import ANCHORS, FOV_SOURCES, LABEL_SETS
from saunetv2_lib.metrics import METRIC_NAMES

REGIONS = ("whole", "fov")
AGGREGATES = ("per_image", "pooled")


@dataclass(frozen=True)
class Protocol:
    """How predictions are turned into numbers. The defaults are the paper's choices.

    Attributes:
        anchor: where the image sits in the padded square, ``"top_left"`` (paper) or ``"center"``.
        threshold: binarisation threshold of the count-based metrics (AUC uses raw probabilities).
        inclusive: ``True`` binarises with ``p >= threshold``, ``False`` with ``p > threshold``;
            ``None`` (default) follows the official notebook: strict for the whole image,
            inclusive inside the FOV.
        region: ``"whole"`` (every pixel of the original image; paper headline) or ``"fov"``.
        aggregate: ``"per_image"`` (mean over images; paper) or ``"pooled"`` (all pixels counted
            together).
        labels: ``"reference"`` (first observer; DRIVE 1st_manual, STARE ``.ah``) or ``"second"``.
        fov_source: FOV masks for ``region="fov"``: ``"official"`` where the dataset has them
            (DRIVE, CHASE_DB1; the data module derives STARE's) or ``"derived"`` from the image.
        side: padded side in pixels; ``None`` uses the dataset's model side (592/704/1008).
    """

    anchor: str = "top_left"
    threshold: float = 0.5
    inclusive: bool | None = None
    region: str = "whole"
    aggregate: str = "per_image"
    labels: str = "reference"
    fov_source: str = "official"
    side: int | None = None

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("anchor", self.anchor, ANCHORS),
            ("region", self.region, REGIONS),
            ("aggregate", self.aggregate, AGGREGATES),
            ("labels", self.labels, LABEL_SETS),
            ("fov_source", self.fov_source, FOV_SOURCES),
        ):
            if value not in allowed:
                raise ValueError(f"Protocol.{name} must be one of {allowed}, got {value!r}.")
        if not 0.0 <= float(self.threshold) <= 1.0 or math.isnan(float(self.threshold)):
            raise ValueError(f"Protocol.threshold must be in [0, 1], got {self.threshold}.")
        if self.side is not None and int(self.side) < 1:
            raise ValueError(f"Protocol.side must be a positive number of pixels, got {self.side}.")

    @property
    def strict(self) -> bool:
        """Whether binarisation is ``p > threshold`` (resolving ``inclusive=None`` by region)."""
        if self.inclusive is None:
            return self.region == "whole"
        return not self.inclusive

    @property
    def is_paper(self) -> bool:
        """True for the paper's headline cell: whole image, per image, strict 0.5, top-left, 1st observer."""
        return (
            self.anchor == "top_left"
            and self.threshold == 0.5
            and self.strict
            and self.region == "whole"
            and self.aggregate == "per_image"
            and self.labels == "reference"
        )

    def describe(self) -> str:
        """A short label such as ``whole/per_image/>0.5/top_left``."""
        operator = ">" if self.strict else ">="
        text = f"{self.region}/{self.aggregate}/{operator}{self.threshold:g}/{self.anchor}"
        return text if self.labels == "reference" else f"{text}/{self.labels}-observer"

    def as_dict(self) -> dict[str, Any]:
        """Protocol fields (``inclusive`` resolved) plus ``paper`` and ``protocol`` label."""
        fields = dataclasses.asdict(self)
        fields["inclusive"] = not self.strict
        return {**fields, "paper": self.is_paper, "protocol": self.describe()}


@dataclass
class EvalResult:
    """Metrics of one model on one split under one :class:`Protocol`, with the maps behind them.

    Attributes:
        dataset, split: what was evaluated.
        protocol: how.
        summary: the seven metrics (fractions): ``f1, jaccard, sensitivity, specificity,
            accuracy, mcc, auc``.
        per_image: one dict per image: ``name`` plus the seven metrics.
        names: image names, in order.
        probabilities: cropped probability maps ``(H, W)`` float32, one per image.
        labels: the labels used, ``(H, W)`` uint8 {0, 1}.
        regions: the evaluated region per image (FOV mask, or ``None`` for the whole image).
        samples: the ``Sample`` objects scored (image, label, FOV), for reuse with
            :func:`protocol_switchboard`.
    """

    dataset: str
    split: str
    protocol: Protocol
    summary: dict[str, float]
    per_image: list[dict[str, Any]]
    names: list[str]
    probabilities: list[np.ndarray] = field(repr=False)
    labels: list[np.ndarray] = field(repr=False)
    regions: list[np.ndarray | None] = field(repr=False)
    samples: list[Any] = field(default_factory=list, repr=False)

    def as_row(self) -> dict[str, Any]:
        """One JSON-ready row: dataset, split, protocol fields and the summary metrics."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            **self.protocol.as_dict(),
            **{k: float(self.summary[k]) for k in METRIC_NAMES},
        }

    def _region_masks(self) -> list[np.ndarray] | None:
        return None if all(r is None for r in self.regions) else list(self.regions)

    def write(self, out_dir: str | Path, maps: bool = True) -> dict[str, Path]:
        """Write ``per_image.csv``, ``summary.csv``, ``roc.csv``, ``pr.csv`` and ``prob/<name>.png``.

        The curves are pooled over the evaluated pixels of all images; points closer than 1e-4 in
        both coordinates are merged to keep the files small. Probability PNGs are 8-bit
        (``round(p * 255)``). Returns the written paths by kind.
        """
        from PIL import Image

        from saunetv2_lib.inference import to_uint8

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {
            "per_image": out / "per_image.csv",
            "summary": out / "summary.csv",
            "roc": out / "roc.csv",
            "pr": out / "pr.csv",
        }
        _write_csv(written["per_image"], self.per_image, ["name", *METRIC_NAMES])
        row = self.as_row()
        _write_csv(written["summary"], [row], list(row))
        masks = self._region_masks()
        roc = _metrics.roc_curve_data(self.probabilities, self.labels, masks)
        _write_curve(
            written["roc"], ("fpr", "tpr", "threshold"), roc["fpr"], roc["tpr"], roc["thresholds"]
        )
        pr = _metrics.pr_curve_data(self.probabilities, self.labels, masks)
        # sklearn's PR arrays have one more point than thresholds (recall 0, precision 1).
        pr_thresholds = np.append(pr["thresholds"], np.nan)
        _write_curve(
            written["pr"],
            ("recall", "precision", "threshold"),
            pr["recall"],
            pr["precision"],
            pr_thresholds,
        )
        if maps:
            prob_dir = out / "prob"
            prob_dir.mkdir(exist_ok=True)
            for name, probability in zip(self.names, self.probabilities, strict=True):
                Image.fromarray(to_uint8(probability)).save(prob_dir / f"{name}.png")
            written["prob"] = prob_dir
        return written


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def _write_curve(path: Path, header: Sequence[str], x, y, thresholds) -> None:
    x, y, thresholds = (np.asarray(a, dtype=np.float64) for a in (x, y, thresholds))
    # Merge points that coincide at 1e-4 resolution (full pixel-level curves have ~10^5 points).
    _, keep = np.unique(np.round(np.stack([x, y], axis=1), 4), axis=0, return_index=True)
    keep = np.sort(np.union1d(keep, [0, x.size - 1]))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in keep:
            writer.writerow([f"{x[i]:.6g}", f"{y[i]:.6g}", f"{thresholds[i]:.8g}"])


# --------------------------------------------------------------------------------- predicting
def model_side_for(dataset: str) -> int:
    """The paper's padded side for ``dataset`` (DRIVE 592, STARE 704, CHASE_DB1 1008)."""
    from saunetv2_lib.data.datasets import dataset_info

    return int(dataset_info(dataset).model_side)


def _dataset_key(dataset: str) -> str:
    from saunetv2_lib.data.datasets import dataset_info

    return dataset_info(dataset).name


def _load_samples(dataset: str, split: str, protocol: Protocol, root):
    from saunetv2_lib.data.datasets import load_split

    return load_split(
        _dataset_key(dataset), split, root=root, labels=protocol.labels, fov=protocol.fov_source
    )


def evaluate_probabilities(
    probabilities: Sequence[np.ndarray],
    samples: Sequence[Any],
    protocol: Protocol = Protocol(),
    dataset: str = "",
    split: str = "test",
) -> EvalResult:
    """Score already-predicted, cropped maps against ``samples`` (``Sample`` objects) under ``protocol``.

    Only ``protocol.region``, ``threshold``, ``inclusive`` and ``aggregate`` matter here; the
    caller is responsible for the maps having been predicted with ``protocol.anchor``.
    """
    if len(probabilities) != len(samples):
        raise ValueError(f"{len(probabilities)} probability maps for {len(samples)} samples.")
    labels = [np.asarray(s.label, dtype=np.uint8) for s in samples]
    if protocol.region == "fov":
        missing = [s.name for s in samples if s.fov is None]
        if missing:
            raise ValueError(f"region='fov' needs FOV masks; missing for {', '.join(missing)}.")
        regions: list[np.ndarray | None] = [np.asarray(s.fov, dtype=np.uint8) for s in samples]
        fov = regions
    else:
        regions, fov = [None] * len(samples), None
    probabilities = [np.asarray(p, dtype=np.float32) for p in probabilities]
    rows = _metrics.per_image_metrics(
        probabilities, labels, fov, threshold=protocol.threshold, strict=protocol.strict
    )
    if protocol.aggregate == "per_image":
        summary = {k: float(np.mean([row[k] for row in rows])) for k in METRIC_NAMES}
    else:
        summary = _metrics.segmentation_metrics(
            probabilities,
            labels,
            fov,
            threshold=protocol.threshold,
            aggregate="pooled",
            strict=protocol.strict,
        )
    per_image = [{"name": s.name, **row} for s, row in zip(samples, rows, strict=True)]
    return EvalResult(
        dataset=dataset,
        split=split,
        protocol=protocol,
        summary=summary,
        per_image=per_image,
        names=[s.name for s in samples],
        probabilities=probabilities,
        labels=labels,
        regions=regions,
        samples=list(samples),
    )


def evaluate(
    model,
    dataset: str,
    split: str = "test",
    protocol: Protocol = Protocol(),
    root: str | Path | None = None,
    batch_size: int = 4,
    runtime: str = "fast",
    max_images: int | None = None,
) -> EvalResult:
    """Predict every image of ``dataset``/``split`` once and score it under ``protocol``.

    Args:
        model: a Keras model mapping ``(B, S, S, 3)`` images in [0, 1] to ``(B, S, S, 1)``
            probabilities (fixed side or ``None`` sides).
        dataset: ``"DRIVE"``, ``"STARE"`` or ``"CHASE_DB1"`` (case-insensitive).
        split: ``"test"`` (default), ``"train"`` or ``"all"``.
        protocol: see :class:`Protocol`; the default is the paper's.
        root: data root (default: ``saunetv2_lib.data.data_root()``).
        batch_size: images per forward pass.
        runtime: ``"fast"`` (default) or ``"keras"`` (reference); see
            :func:`saunetv2_lib.inference.predict_batch`.
        max_images: score only the first N images of the split (quick runs; say so where the
            numbers appear); ``None`` scores all of them.

    Returns:
        An :class:`EvalResult`.
    """
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1 or None, got {max_images}.")
    samples = _load_samples(dataset, split, protocol, root)[:max_images]
    side = protocol.side or model_side_for(dataset)
    from saunetv2_lib.inference import predict_maps

    probabilities = predict_maps(
        model, [s.image for s in samples], side, protocol.anchor, batch_size, runtime
    )
    return evaluate_probabilities(probabilities, samples, protocol, _dataset_key(dataset), split)


def protocol_switchboard(
    probabilities: Sequence[np.ndarray],
    samples: Sequence[Any],
    chosen_threshold: float | None = None,
    base: Protocol = Protocol(),
    dataset: str = "",
    split: str = "test",
) -> list[dict[str, Any]]:
    """Every protocol combination on the same predictions, as JSON-ready rows.

    Rows cover region (whole, plus FOV when every sample has a mask) x aggregate (per image,
    pooled) x threshold (0.5 and, if given, ``chosen_threshold``, e.g. from
    :func:`train_threshold`). ``inclusive`` follows ``base`` (default: the notebook's rule, strict
    for whole images and ``>=`` in the FOV). Each row holds the protocol fields, ``paper`` (true
    for the paper's headline cell), ``threshold_source`` (``"fixed"`` or ``"train"``) and the
    seven metrics.
    """
    regions = ["whole"] + (["fov"] if all(s.fov is not None for s in samples) else [])
    thresholds = [("fixed", 0.5)]
    if chosen_threshold is not None:
        thresholds.append(("train", float(chosen_threshold)))
    rows = []
    for region in regions:
        for aggregate in AGGREGATES:
            for source, threshold in thresholds:
                protocol = dataclasses.replace(
                    base, region=region, aggregate=aggregate, threshold=threshold
                )
                result = evaluate_probabilities(probabilities, samples, protocol, dataset, split)
                rows.append({**result.as_row(), "threshold_source": source})
    return rows


def train_threshold(
    model,
    dataset: str,
    protocol: Protocol = Protocol(),
    root: str | Path | None = None,
    criterion: str = "f1",
    batch_size: int = 4,
) -> float:
    """The threshold maximising pooled ``criterion`` on the *training* split (never the test set).

    Uses the protocol's region (whole image or FOV) and anchor.
    """
    result = evaluate(model, dataset, "train", protocol, root, batch_size)
    return _metrics.best_threshold(
        result.probabilities, result.labels, result._region_masks(), criterion=criterion
    )


def score_every_protocol(
    model,
    dataset: str,
    root: str | Path | None = None,
    anchor: str = "top_left",
    side: int | None = None,
) -> dict[str, Any]:
    """Score ``model`` on the test split under every protocol, as a model card records it.

    Predicts the test images once and scores them whole image / FOV x per-image / pooled x the
    paper's 0.5 and a threshold chosen on the *training* split (:func:`train_threshold`).

    Returns:
        ``{"metrics": rows of protocol_switchboard, "train_threshold": float,
        "per_image": per-image rows under the paper's protocol, "saturation":
        :func:`~saunetv2_lib.metrics.saturation` of the test pixels under the paper's protocol}``.
    """
    base = Protocol(anchor=anchor, side=side)
    chosen = train_threshold(model, dataset, base, root)
    result = evaluate(model, dataset, "test", base, root)
    rows = protocol_switchboard(
        result.probabilities,
        result.samples,
        chosen_threshold=chosen,
        base=base,
        dataset=result.dataset,
        split="test",
    )
    return {
        "metrics": rows,
        "train_threshold": chosen,
        "per_image": result.per_image,
        "saturation": probability_saturation(result),
    }


def probability_saturation(result: EvalResult, margin: float = 0.01) -> dict[str, float]:
    """:func:`~saunetv2_lib.metrics.saturation` of ``result``'s maps in its evaluated region."""
    from saunetv2_lib.metrics import saturation

    regions = None if all(r is None for r in result.regions) else result.regions
    return saturation(result.probabilities, result.labels, regions, margin)


def format_rows(rows: Sequence[dict[str, Any]], percent: bool = True) -> str:
    """A fixed-width text table of switchboard rows (metrics in percent by default)."""
    header = ["protocol", "thr", *METRIC_NAMES]
    lines = ["  ".join(f"{h:>11}" if i else f"{h:<32}" for i, h in enumerate(header))]
    for row in rows:
        scale = 100.0 if percent else 1.0
        cells = [
            f"{row['protocol'] + (' *' if row.get('paper') else ''):<28}",
            f"{row['threshold']:>11.4g}",
        ]
        cells += [
            f"{row[k] * scale:>11.2f}" if percent else f"{row[k]:>11.4f}" for k in METRIC_NAMES
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def inter_observer_row(
    dataset: str,
    protocol: Protocol = Protocol(),
    root: str | Path | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """The second human observer scored against the reference labels under ``protocol``.

    The second observer's binary map is used as the "probability" (0 or 1), so the thresholded
    metrics are exact for any threshold in (0, 1) and AUC is that of a single operating point,
    ``(sensitivity + specificity) / 2``. DRIVE has the second observer for the test split only.
    Returns an :meth:`EvalResult.as_row`-style dict with ``method`` = ``"2nd observer"``.
    """
    reference = _load_samples(
        dataset, split, dataclasses.replace(protocol, labels="reference"), root
    )
    second = _load_samples(dataset, split, dataclasses.replace(protocol, labels="second"), root)
    maps = [s.label.astype(np.float32) for s in second]
    result = evaluate_probabilities(maps, reference, protocol, _dataset_key(dataset), split)
    return {"method": "2nd observer", **result.as_row()}


@dataclass
class EvaluationRun:
    """What :func:`run_evaluation` returns: the result, the chosen threshold, the switchboard rows."""

    result: EvalResult
    threshold: float | None  # None: the protocol's 0.5
    switchboard: list[dict[str, Any]] | None


def run_evaluation(
    model,
    dataset: str,
    split: str = "test",
    protocol: Protocol | None = None,
    root: str | Path | None = None,
    threshold: float | str | None = None,
    switchboard: bool = False,
    out_dir: str | Path | None = None,
    batch_size: int = 4,
    runtime: str = "fast",
) -> EvaluationRun:
    """One evaluation as ``saunetv2 evaluate`` runs it: choose the threshold, score, tabulate, write.

    ``threshold``: ``None`` keeps ``protocol.threshold``; a number replaces it; ``"train"``
    chooses it on the *training* split (:func:`train_threshold`). With ``switchboard`` the same
    probabilities are also scored under every protocol (:func:`protocol_switchboard`); with
    ``out_dir`` the result is written (:meth:`EvalResult.write`) and the switchboard beside it
    as ``switchboard.csv``.
    """
    protocol = protocol or Protocol()
    chosen = None
    if threshold == "train":
        chosen = train_threshold(model, dataset, protocol, root, batch_size=batch_size)
    elif threshold is not None:
        chosen = float(threshold)
    if chosen is not None:
        protocol = dataclasses.replace(protocol, threshold=chosen)
    result = evaluate(model, dataset, split, protocol, root, batch_size=batch_size, runtime=runtime)
    rows = None
    if switchboard:
        rows = protocol_switchboard(
            result.probabilities,
            result.samples,
            chosen_threshold=chosen if chosen not in (None, 0.5) else None,
            base=dataclasses.replace(protocol, threshold=0.5),
            dataset=result.dataset,
            split=split,
        )
    if out_dir is not None:
        written = result.write(out_dir)
        if rows is not None:
            _write_csv(written["summary"].parent / "switchboard.csv", rows, list(rows[0]))
    return EvaluationRun(result, chosen, rows)
