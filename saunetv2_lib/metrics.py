"""Evaluation metrics of retinal vessel segmentation (spec section 5), in numpy and scikit-learn.

This runs outside the graph on probability maps that were already predicted and cropped back.

Inputs: ``probabilities`` float in [0, 1], ``labels`` in {0, 1} and optional FOV masks in {0, 1}.
Each may be one ``(H, W)`` map, an ``(N, H, W)`` or ``(N, H, W, 1)`` array, or a list of
``(H, W)`` maps. A list may mix image sizes. Only pixels with ``fov == 1`` are evaluated.

Protocol choices and how they map to the paper:

* Binarisation: ``p > threshold`` when ``strict=True`` (the default, and the paper's whole-image
  evaluation, cv2.threshold), or ``p >= threshold`` when ``strict=False`` (the paper's FOV
  evaluation). The two differ only for pixels exactly at the threshold.
* ``aggregate="per_image"`` (the paper) computes every metric per image, then takes the mean over
  images. ``aggregate="pooled"`` (SA-UNet v1's evaluation) counts all pixels of all images
  together.
* AUC is the ROC AUC of the raw probabilities (``sklearn.metrics.roc_auc_score``). The other
  metrics come from the confusion counts, in float64. MCC agrees with
  ``sklearn.metrics.matthews_corrcoef``.

Edge cases. These are defined so that no metric is ever NaN and no warning is raised:

* When a ratio's numerator and denominator are both 0, the metric is 1.0. This covers
  sensitivity with no vessel pixels, specificity with no background pixels, and F1 and Jaccard
  when there are no vessels in either the label or the prediction. Nothing was missed and
  nothing was wrongly found.
* MCC is 0.0 when any marginal ``TP+FP, TP+FN, TN+FP, TN+FN`` is 0, the same as scikit-learn.
  This includes a perfect prediction of an all-background image.
* AUC is 0.5 (chance) when the evaluated pixels hold only one class. It is still counted in
  the per-image mean.
* An image with no pixel inside its FOV raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.metrics import roc_curve as _sk_roc_curve

from saunetv2_lib.paper import METRICS

METRIC_NAMES = METRICS  # the paper's seven, in its column order
CRITERIA = ("f1", "mcc", "youden", "accuracy")
# The fractions of :func:`saturation`, in its order.
SATURATION_FIELDS = (
    "saturated",
    "vessel_high",
    "vessel_low",
    "background_low",
    "background_high",
)


class ConfusionCounts(NamedTuple):
    """Pixel counts of one image, or of several images pooled together."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other):  # element-wise, so that sum() pools counts
        return ConfusionCounts(*(a + b for a, b in zip(self, other, strict=True)))


def _image_list(x, name: str) -> list[np.ndarray]:
    """Split the accepted input forms into a list of 2-D arrays."""
    if isinstance(x, np.ndarray) or not isinstance(x, Sequence):
        x = np.asarray(x)
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim == 2:
            return [x]
        if x.ndim == 3:
            return list(x)
        raise ValueError(
            f"{name} must be an (H, W) map, an (N, H, W) or (N, H, W, 1) array or a list of "
            f"(H, W) maps; got an array of shape {x.shape}."
        )
    images = []
    for i, item in enumerate(x):
        item = np.asarray(item)
        if item.ndim == 3 and item.shape[-1] == 1:
            item = item[..., 0]
        if item.ndim != 2:
            raise ValueError(f"{name}[{i}] must be an (H, W) map; got shape {item.shape}.")
        images.append(item)
    return images


def _binary(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype != bool and not np.all((x == 0) | (x == 1)):
        raise ValueError(f"{name} must contain only 0 and 1; found values {np.unique(x)[:5]}.")
    return x.astype(bool)


def _prepare(probabilities, labels, fov=None):
    """Validated lists of (float probabilities, bool labels, bool FOV) per image."""
    probs = _image_list(probabilities, "probabilities")
    labs = _image_list(labels, "labels")
    fovs = _image_list(fov, "fov") if fov is not None else [None] * len(probs)
    if not len(probs) == len(labs) == len(fovs):
        raise ValueError(
            f"got {len(probs)} probability maps, {len(labs)} labels and {len(fovs)} FOV masks; "
            "they must match one to one."
        )
    if not probs:
        raise ValueError("no images to evaluate.")
    out = []
    for i, (p, y, m) in enumerate(zip(probs, labs, fovs, strict=True)):
        m = np.ones(p.shape, bool) if m is None else _binary(m, f"fov[{i}]")
        if not p.shape == y.shape == m.shape:
            raise ValueError(
                f"image {i}: probabilities {p.shape}, label {y.shape} and FOV {m.shape} "
                "must have the same shape."
            )
        p = p.astype(np.float64) if p.dtype.kind != "f" else p
        if not np.all((p >= 0) & (p <= 1)):
            raise ValueError(f"probabilities[{i}] must lie in [0, 1] (and not be NaN).")
        if not m.any():
            raise ValueError(f"image {i} has no pixel inside its FOV mask; nothing to evaluate.")
        out.append((p, _binary(y, f"labels[{i}]"), m))
    return out


def binarize(probabilities: np.ndarray, threshold: float = 0.5, strict: bool = True) -> np.ndarray:
    """Boolean vessel map: ``p > threshold`` if ``strict`` (default) else ``p >= threshold``."""
    p = np.asarray(probabilities)
    return p > threshold if strict else p >= threshold


def confusion_counts(pred_binary, label, fov=None) -> ConfusionCounts:
    """``(tp, fp, fn, tn)`` pixel counts of one binary prediction inside ``fov`` (all if None)."""
    pred = _binary(np.asarray(pred_binary), "pred_binary")
    lab = _binary(np.asarray(label), "label")
    mask = np.ones(lab.shape, bool) if fov is None else _binary(np.asarray(fov), "fov")
    if not pred.shape == lab.shape == mask.shape:
        raise ValueError(
            f"pred_binary {pred.shape}, label {lab.shape} and fov {mask.shape} must have the "
            "same shape."
        )
    pred, lab = pred[mask], lab[mask]
    tp = int(np.count_nonzero(pred & lab))
    fp = int(np.count_nonzero(pred & ~lab))
    fn = int(np.count_nonzero(~pred & lab))
    return ConfusionCounts(tp, fp, fn, lab.size - tp - fp - fn)


def _ratio(numerator: float, denominator: float) -> float:
    # 0/0 means there was nothing to find and nothing was found: a perfect score.
    return 1.0 if denominator == 0 else numerator / denominator


def metrics_from_counts(counts: ConfusionCounts) -> dict[str, float]:
    """F1, Jaccard, sensitivity, specificity, accuracy and MCC (fractions) from pixel counts."""
    tp, fp, fn, tn = (float(c) for c in counts)
    marginals = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return {
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "jaccard": _ratio(tp, tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
        "mcc": 0.0 if marginals == 0 else float((tp * tn - fp * fn) / np.sqrt(marginals)),
    }


def _auc(label: np.ndarray, prob: np.ndarray) -> float:
    if label.all() or not label.any():
        return 0.5  # ROC AUC is undefined with one class; chance level by convention
    return float(roc_auc_score(label, prob))


def per_image_metrics(
    probabilities, labels, fov=None, threshold: float = 0.5, strict: bool = True
) -> list[dict[str, float]]:
    """One dict of the seven metrics (fractions, keys ``METRIC_NAMES``) per image."""
    results = []
    for p, y, m in _prepare(probabilities, labels, fov):
        counts = confusion_counts(binarize(p, threshold, strict), y, m)
        results.append({**metrics_from_counts(counts), "auc": _auc(y[m], p[m])})
    return results


def segmentation_metrics(
    probabilities,
    labels,
    fov=None,
    threshold: float = 0.5,
    aggregate: str = "per_image",
    strict: bool = True,
) -> dict[str, float]:
    """The seven metrics (fractions) over a test set.

    Args:
        probabilities: vessel probabilities in [0, 1] (see the module docstring for the forms).
        labels: reference labels in {0, 1}, matching ``probabilities``.
        fov: optional FOV masks in {0, 1}; only pixels inside are evaluated.
        threshold: binarisation threshold of the count-based metrics (AUC uses raw values).
        aggregate: ``"per_image"`` (mean over images, the paper) or ``"pooled"`` (all pixels of
            all images counted together).
        strict: ``True`` binarises with ``p > threshold`` (paper, whole image), ``False`` with
            ``p >= threshold`` (paper, FOV evaluation).

    Returns:
        dict with keys ``f1, jaccard, sensitivity, specificity, accuracy, mcc, auc``.
    """
    if aggregate == "per_image":
        rows = per_image_metrics(probabilities, labels, fov, threshold, strict)
        return {k: float(np.mean([row[k] for row in rows])) for k in METRIC_NAMES}
    if aggregate != "pooled":
        raise ValueError(f"aggregate must be 'per_image' or 'pooled', got {aggregate!r}.")
    images = _prepare(probabilities, labels, fov)
    counts = sum(
        (confusion_counts(binarize(p, threshold, strict), y, m) for p, y, m in images),
        ConfusionCounts(0, 0, 0, 0),
    )
    y_all, p_all = _pooled_pixels(images)
    return {**metrics_from_counts(counts), "auc": _auc(y_all, p_all)}


def _pooled_pixels(images) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of every in-FOV pixel of every image, concatenated."""
    y_all = np.concatenate([y[m] for _, y, m in images])
    p_all = np.concatenate([p[m] for p, _, m in images])
    return y_all, p_all


def _both_classes(y: np.ndarray, what: str) -> None:
    if y.all() or not y.any():
        raise ValueError(f"{what} needs both vessel and background pixels inside the FOV.")


def roc_curve_data(probabilities, labels, fov=None) -> dict[str, np.ndarray | float]:
    """ROC curve pooled over all in-FOV pixels of all images, for plotting.

    Returns a dict with ``fpr``, ``tpr`` and ``thresholds`` (arrays, decreasing thresholds; a
    pixel is positive when ``p >= threshold``) and the pooled ``auc``.
    """
    y, p = _pooled_pixels(_prepare(probabilities, labels, fov))
    _both_classes(y, "a ROC curve")
    fpr, tpr, thresholds = _sk_roc_curve(y, p)
    return {"fpr": fpr, "tpr": tpr, "thresholds": thresholds, "auc": float(roc_auc_score(y, p))}


def pr_curve_data(probabilities, labels, fov=None) -> dict[str, np.ndarray | float]:
    """Precision-recall curve pooled over all in-FOV pixels of all images, for plotting.

    Returns a dict with ``precision``, ``recall``, ``thresholds`` (arrays, as
    ``sklearn.metrics.precision_recall_curve``) and ``average_precision``.
    """
    y, p = _pooled_pixels(_prepare(probabilities, labels, fov))
    _both_classes(y, "a precision-recall curve")
    precision, recall, thresholds = precision_recall_curve(y, p)
    return {
        "precision": precision,
        "recall": recall,
        "thresholds": thresholds,
        "average_precision": float(average_precision_score(y, p)),
    }


def saturation(probabilities, labels, fov=None, margin: float = 0.01) -> dict[str, float]:
    """How far the probabilities are pushed to 0 and 1, pooled over every in-FOV pixel.

    A loss that drives every pixel to an end drives its mistakes there too: a vessel pixel
    below ``margin`` ranks among the background, however the rest is ordered, so AUC falls while
    the metrics thresholded at 0.5 see the same miss as a milder one (soft MCC alone, notebook 3).

    Args:
        probabilities, labels, fov: as :func:`segmentation_metrics`.
        margin: a pixel is saturated when ``p < margin`` or ``p > 1 - margin``.

    Returns:
        fractions in [0, 1]: ``saturated`` (of all pixels), ``vessel_high`` and ``vessel_low``
        (of vessel pixels: ``p > 1 - margin``, ``p < margin``), ``background_low`` and
        ``background_high`` (of background pixels), and ``margin``.
    """
    if not 0 < margin < 0.5:
        raise ValueError(f"margin must lie in (0, 0.5), got {margin}.")
    y, p = _pooled_pixels(_prepare(probabilities, labels, fov))
    low, high = p < margin, p > 1 - margin
    vessel = y.astype(bool)

    def share(mask: np.ndarray, among: np.ndarray) -> float:
        return float(np.mean(mask[among])) if among.any() else float("nan")

    return {
        "saturated": float(np.mean(low | high)),
        "vessel_high": share(high, vessel),
        "vessel_low": share(low, vessel),
        "background_low": share(low, ~vessel),
        "background_high": share(high, ~vessel),
        "margin": float(margin),
    }


def best_threshold(probabilities, labels, fov=None, criterion: str = "f1") -> float:
    """Threshold that maximises a pooled criterion over all in-FOV pixels (e.g. the train set).

    Args:
        criterion: ``"f1"``, ``"mcc"``, ``"youden"`` (sensitivity + specificity - 1) or
            ``"accuracy"``.

    Returns:
        A threshold halfway between two consecutive distinct probabilities in the data, so that
        ``p > t`` and ``p >= t`` binarise these pixels in the same way.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    y, p = _pooled_pixels(_prepare(probabilities, labels, fov))
    _both_classes(y, "best_threshold")
    # Every distinct score as a cut (p >= thresholds[i]); index 0 is +inf (nothing positive).
    fpr, tpr, thresholds = _sk_roc_curve(y, p, drop_intermediate=False)
    positives, negatives = float(np.count_nonzero(y)), float(y.size - np.count_nonzero(y))
    tp, fp = tpr * positives, fpr * negatives
    fn, tn = positives - tp, negatives - fp
    if criterion == "f1":
        score = 2 * tp / (2 * tp + fp + fn)
    elif criterion == "mcc":
        marginals = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        score = np.divide(
            tp * tn - fp * fn, np.sqrt(marginals), out=np.zeros_like(tp), where=marginals > 0
        )
    elif criterion == "youden":
        score = tpr - fpr
    else:
        score = (tp + tn) / (positives + negatives)
    best = int(np.argmax(score[1:])) + 1
    if best + 1 == thresholds.size:  # every pixel positive: just below the lowest score
        return float(np.nextafter(thresholds[best], -np.inf))
    return float((thresholds[best] + thresholds[best + 1]) / 2)
