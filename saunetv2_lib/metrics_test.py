"""Tests of saunetv2_lib.metrics against scikit-learn and constructed examples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from saunetv2_lib.metrics import (
    METRIC_NAMES,
    best_threshold,
    binarize,
    confusion_counts,
    per_image_metrics,
    pr_curve_data,
    roc_curve_data,
    saturation,
    segmentation_metrics,
)

SIZES = [(24, 20), (16, 30), (20, 20)]


def random_set(seed=0, sizes=SIZES):
    """Probabilities correlated with labels (some exactly 0.5), labels and disc-shaped FOVs."""
    rng = np.random.default_rng(seed)
    probs, labels, fovs = [], [], []
    for h, w in sizes:
        y = (rng.random((h, w)) < 0.2).astype(np.uint8)
        p = np.clip(0.35 * y + 0.65 * rng.random((h, w)), 0, 1).astype(np.float32)
        p[rng.random((h, w)) < 0.05] = 0.5
        rows, cols = np.mgrid[:h, :w]
        fov = ((rows - h / 2) ** 2 + (cols - w / 2) ** 2 <= (min(h, w) / 2) ** 2).astype(np.uint8)
        probs.append(p), labels.append(y), fovs.append(fov)
    return probs, labels, fovs


def in_fov_pixels(probs, labels, masks):
    """Reference pooling: labels and probabilities of all in-mask pixels, concatenated."""
    pairs = list(zip(probs, labels, masks, strict=True))
    return (
        np.concatenate([y[m > 0] for _, y, m in pairs]),
        np.concatenate([p[m > 0] for p, _, m in pairs]),
    )


def sklearn_metrics(y, p, threshold=0.5, strict=True):
    pred = (p > threshold) if strict else (p >= threshold)
    return {
        "f1": skm.f1_score(y, pred),
        "jaccard": skm.jaccard_score(y, pred),
        "sensitivity": skm.recall_score(y, pred),
        "specificity": skm.recall_score(y, pred, pos_label=0),
        "accuracy": skm.accuracy_score(y, pred),
        "mcc": skm.matthews_corrcoef(y, pred),
        "auc": skm.roc_auc_score(y, p),
    }


def assert_metrics_close(got, expected, tol=1e-6):
    assert set(got) == set(METRIC_NAMES)
    assert all(type(v) is float for v in got.values())  # plain floats, JSON-friendly
    for key in METRIC_NAMES:
        assert got[key] == pytest.approx(expected[key], abs=tol), key


@pytest.mark.parametrize("use_fov", [False, True])
@pytest.mark.parametrize("strict", [True, False])
def test_per_image_and_mean_match_sklearn(use_fov, strict):
    probs, labels, fovs = random_set()
    fov = fovs if use_fov else None
    masks = fovs if use_fov else [np.ones_like(y) for y in labels]
    expected = [
        sklearn_metrics(y[m > 0], p[m > 0], strict=strict)
        for p, y, m in zip(probs, labels, masks, strict=True)
    ]
    rows = per_image_metrics(probs, labels, fov, strict=strict)
    for got, exp in zip(rows, expected, strict=True):
        assert_metrics_close(got, exp)
    mean = {k: np.mean([e[k] for e in expected]) for k in METRIC_NAMES}
    assert_metrics_close(segmentation_metrics(probs, labels, fov, strict=strict), mean)


@pytest.mark.parametrize("use_fov", [False, True])
def test_pooled_matches_sklearn_on_all_pixels(use_fov):
    probs, labels, fovs = random_set(seed=1)
    masks = fovs if use_fov else [np.ones_like(y) for y in labels]
    y_all, p_all = in_fov_pixels(probs, labels, masks)
    got = segmentation_metrics(probs, labels, fovs if use_fov else None, aggregate="pooled")
    assert_metrics_close(got, sklearn_metrics(y_all, p_all))


def test_array_forms_are_equivalent_to_lists():
    probs, labels, fovs = random_set(seed=2, sizes=[(12, 12)] * 3)
    as_list = segmentation_metrics(probs, labels, fovs)
    stacked = segmentation_metrics(np.stack(probs)[..., None], np.stack(labels), np.stack(fovs))
    assert stacked == as_list
    assert per_image_metrics(probs[0], labels[0], fovs[0]) == per_image_metrics(
        probs[:1], labels[:1], fovs[:1]
    )


def test_confusion_counts_match_sklearn():
    probs, labels, fovs = random_set(seed=3)
    p, y, m = probs[0], labels[0], fovs[0] > 0
    tn, fp, fn, tp = skm.confusion_matrix(y[m], p[m] > 0.5, labels=[0, 1]).ravel()
    assert confusion_counts(p > 0.5, y, m) == (tp, fp, fn, tn)


def test_threshold_semantics_at_exactly_one_half():
    assert not binarize(np.float32(0.5)) and binarize(np.float32(0.5), strict=False)
    p = np.array([[0.5, 0.9], [0.1, 0.2]], np.float32)
    y = np.array([[1, 1], [0, 0]], np.uint8)
    assert confusion_counts(binarize(p), y) == (1, 0, 1, 2)  # 0.5 -> background (FN)
    assert confusion_counts(binarize(p, strict=False), y) == (2, 0, 0, 2)  # 0.5 -> vessel
    default, inclusive = per_image_metrics(p, y)[0], per_image_metrics(p, y, strict=False)[0]
    assert default["sensitivity"] == 0.5 and inclusive["sensitivity"] == 1.0


def edge_cases():
    h, w = 6, 5
    zeros, ones = np.zeros((h, w), np.uint8), np.ones((h, w), np.uint8)
    low, high = np.full((h, w), 0.1, np.float32), np.full((h, w), 0.9, np.float32)
    some_fp = low.copy()
    some_fp[0, :2] = 0.8
    return {
        "no_vessels_none_found": (low, zeros),
        "no_vessels_false_positives": (some_fp, zeros),
        "all_vessels_all_found": (high, ones),
        "all_vessels_none_found": (low, ones),
    }


@pytest.mark.parametrize("case", list(edge_cases()))
def test_edge_cases_are_defined_without_nan_or_warnings(case):
    p, y = edge_cases()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = per_image_metrics(p, y)[0]
        for aggregate in ("per_image", "pooled"):
            assert segmentation_metrics(p, y, aggregate=aggregate) == row
    assert all(np.isfinite(v) for v in row.values())
    # The documented conventions equal scikit-learn's with zero_division=1.0 (MCC: 0.0).
    yt, pred = y.ravel(), (p > 0.5).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "f1": skm.f1_score(yt, pred, zero_division=1.0),
            "jaccard": skm.jaccard_score(yt, pred, zero_division=1.0),
            "sensitivity": skm.recall_score(yt, pred, zero_division=1.0),
            "specificity": skm.recall_score(yt, pred, pos_label=0, zero_division=1.0),
            "accuracy": skm.accuracy_score(yt, pred),
            "mcc": skm.matthews_corrcoef(yt, pred),
            "auc": 0.5,  # one class only: chance level by our convention
        }
    assert_metrics_close(row, expected)


def test_one_class_image_gets_auc_one_half_in_the_mean():
    probs, labels, _ = random_set(seed=4, sizes=[(10, 10)])
    p_empty, y_empty = edge_cases()["no_vessels_none_found"]
    mixed = segmentation_metrics([probs[0], p_empty], [labels[0], y_empty])
    alone = segmentation_metrics(probs[0], labels[0])
    assert mixed["auc"] == pytest.approx((alone["auc"] + 0.5) / 2)


def test_per_image_mean_differs_from_pooled_in_expected_direction():
    # Image A: many vessel pixels, all found. Image B: few vessel pixels, all missed.
    y_a, y_b = np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)
    y_a[:5], y_b[0, :4] = 1, 1
    p_a, p_b = y_a.astype(np.float32), np.zeros((20, 20), np.float32)
    n_a, n_b = int(y_a.sum()), int(y_b.sum())
    per_image = segmentation_metrics([p_a, p_b], [y_a, y_b])["sensitivity"]
    pooled = segmentation_metrics([p_a, p_b], [y_a, y_b], aggregate="pooled")["sensitivity"]
    # Pooling weights images by their vessel count, so the vessel-rich good image dominates.
    assert per_image == pytest.approx((1.0 + 0.0) / 2)
    assert pooled == pytest.approx(n_a / (n_a + n_b))
    assert pooled > per_image


def test_curves_match_sklearn_on_pooled_fov_pixels():
    probs, labels, fovs = random_set(seed=5)
    y, p = in_fov_pixels(probs, labels, fovs)
    roc = roc_curve_data(probs, labels, fovs)
    for got, exp in zip(
        (roc["fpr"], roc["tpr"], roc["thresholds"]), skm.roc_curve(y, p), strict=True
    ):
        np.testing.assert_allclose(got, exp)
    assert roc["auc"] == pytest.approx(
        segmentation_metrics(probs, labels, fovs, aggregate="pooled")["auc"]
    )
    pr = pr_curve_data(probs, labels, fovs)
    for got, exp in zip(
        (pr["precision"], pr["recall"], pr["thresholds"]),
        skm.precision_recall_curve(y, p),
        strict=True,
    ):
        np.testing.assert_allclose(got, exp)
    assert pr["average_precision"] == pytest.approx(skm.average_precision_score(y, p))


def brute_force_score(y, pred, criterion):
    if criterion == "f1":
        return skm.f1_score(y, pred)
    if criterion == "mcc":
        return skm.matthews_corrcoef(y, pred)
    if criterion == "youden":
        return skm.recall_score(y, pred) + skm.recall_score(y, pred, pos_label=0) - 1
    return skm.accuracy_score(y, pred)


@pytest.mark.parametrize("criterion", ["f1", "mcc", "youden", "accuracy"])
def test_best_threshold_is_optimal_over_all_cuts(criterion):
    probs, labels, fovs = random_set(seed=6, sizes=[(12, 10), (8, 15)])
    probs = [np.round(p, 2) for p in probs]  # ties between pixels
    y, p = in_fov_pixels(probs, labels, fovs)
    best = max(brute_force_score(y, p >= u, criterion) for u in np.unique(p))
    t = best_threshold(probs, labels, fovs, criterion=criterion)
    assert np.array_equal(p > t, p >= t)
    assert brute_force_score(y, p > t, criterion) == pytest.approx(best)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": np.full((4, 4), 255, np.uint8)}, "only 0 and 1"),
        ({"probabilities": np.full((4, 4), 1.5)}, r"\[0, 1\]"),
        ({"fov": np.zeros((4, 4), np.uint8)}, "no pixel inside its FOV"),
        ({"labels": np.zeros((4, 5), np.uint8)}, "same shape"),
        ({"labels": [np.zeros((4, 4), np.uint8)] * 2}, "one to one"),
        ({"aggregate": "median"}, "aggregate"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    args = {
        "probabilities": np.full((4, 4), 0.3),
        "labels": np.eye(4, dtype=np.uint8),
        "fov": None,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        segmentation_metrics(**args)


def test_curves_need_both_classes():
    p, y = edge_cases()["no_vessels_none_found"]
    for fn in (roc_curve_data, pr_curve_data, best_threshold):
        with pytest.raises(ValueError, match="both vessel and background"):
            fn(p, y)


def test_saturation_counts_pixels_at_either_end_inside_the_fov():
    probabilities = [np.array([[0.001, 0.5, 0.995], [0.2, 0.999, 0.0]])]
    labels = [np.array([[0, 1, 1], [1, 1, 0]])]
    fov = [np.array([[1, 1, 1], [1, 1, 0]])]  # the last pixel (0.0, background) is outside
    got = saturation(probabilities, labels, fov, margin=0.01)
    # inside: 0.001 (bg, low), 0.5 (v), 0.995 (v, high), 0.2 (v), 0.999 (v, high)
    assert got == {"saturated": 3 / 5, "vessel_high": 2 / 4, "vessel_low": 0.0,
                   "background_low": 1.0, "background_high": 0.0, "margin": 0.01}  # fmt: skip
    whole = saturation(probabilities, labels, margin=0.01)  # adds 0.0 (background, low)
    assert (whole["background_low"], whole["vessel_low"]) == (1.0, 0.0)
    flipped = saturation([1 - probabilities[0]], labels, fov, margin=0.01)
    assert (flipped["vessel_low"], flipped["background_high"]) == (2 / 4, 1.0)
    assert saturation(probabilities, labels, margin=0.01)["saturated"] == 4 / 6
    assert saturation(probabilities, labels, fov, margin=0.3)["saturated"] == 4 / 5
    with pytest.raises(ValueError, match="margin"):
        saturation(probabilities, labels, margin=0.5)
