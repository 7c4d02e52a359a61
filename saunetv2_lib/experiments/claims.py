"""Is a difference between two configurations a finding, or noise? Intervals over seeds and images.

A configuration trained from several seeds and scored on the same test images gives a
``(seeds, images)`` matrix of per-image scores (F1, say). Two sources of noise move its mean:
the training run (seed) and the choice of test images. This module reports both:

* :func:`seed_interval`: the mean over seeds of the per-seed means, with a Student-t interval
  (the training noise; ``n - 1`` degrees of freedom);
* :func:`image_bootstrap_interval`: a bootstrap interval that resamples test images (the
  test-set noise), with ``scipy.stats.bootstrap``;
* :func:`paired_difference`: configuration B minus A on the same seeds and images, with both
  intervals of the difference and a Wilcoxon signed-rank test over the (seed, image) pairs;
* :func:`verdict`: whether a claimed improvement "holds beyond the noise" (both intervals of the
  difference exclude zero on the claimed side), is "reversed" (both exclude it on the other
  side), or is "within the noise".

Seeds pair across configurations because a seed fixes the data order and augmentation draws
(``training.train``); images pair because every configuration is scored on the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

VERDICTS = ("holds beyond the noise", "within the noise", "reversed")


def _matrix(scores: Any) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or min(values.shape) < 1:
        raise ValueError(f"scores must be a (seeds, images) matrix, got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite.")
    return values


def seed_interval(scores: Any, confidence: float = 0.95) -> dict[str, float]:
    """Mean over seeds of the per-seed mean score, with a Student-t interval over seeds.

    Args:
        scores: ``(seeds, images)`` per-image scores; each row is one training seed.
        confidence: interval coverage.

    Returns:
        ``{"mean", "low", "high", "sd", "seeds"}``; with one seed the interval is ``nan``.
    """
    from scipy import stats

    per_seed = _matrix(scores).mean(axis=1)
    n = len(per_seed)
    mean = float(per_seed.mean())
    if n < 2:
        return {
            "mean": mean,
            "low": float("nan"),
            "high": float("nan"),
            "sd": float("nan"),
            "seeds": n,
        }
    sd = float(per_seed.std(ddof=1))
    if sd == 0:
        low = high = mean
    else:
        low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / np.sqrt(n))
    return {"mean": mean, "low": float(low), "high": float(high), "sd": sd, "seeds": n}


def image_bootstrap_interval(
    scores: Any, confidence: float = 0.95, resamples: int = 9999, seed: int = 0
) -> dict[str, float]:
    """Bootstrap interval of the mean score that resamples test images (seeds averaged first).

    Uses ``scipy.stats.bootstrap`` (BCa, falling back to percentile when the sample is
    degenerate) on the per-image means over seeds. Returns ``{"mean", "low", "high", "images"}``.
    """
    from scipy import stats

    per_image = _matrix(scores).mean(axis=0)
    mean = float(per_image.mean())
    if len(per_image) < 2 or np.all(per_image == per_image[0]):
        return {"mean": mean, "low": mean, "high": mean, "images": len(per_image)}

    def interval(method: str) -> tuple[float, float]:
        result = stats.bootstrap(
            (per_image,),
            np.mean,
            confidence_level=confidence,
            n_resamples=resamples,
            method=method,
            rng=np.random.default_rng(seed),
        )
        return result.confidence_interval

    low, high = interval("BCa")
    if not (np.isfinite(low) and np.isfinite(high)):
        low, high = interval("percentile")
    return {"mean": mean, "low": float(low), "high": float(high), "images": len(per_image)}


def summarize(scores: Any, confidence: float = 0.95) -> dict[str, Any]:
    """:func:`seed_interval` and :func:`image_bootstrap_interval` of one configuration."""
    seeds = seed_interval(scores, confidence)
    images = image_bootstrap_interval(scores, confidence)
    return {
        "mean": seeds["mean"],
        "seed_low": seeds["low"],
        "seed_high": seeds["high"],
        "seed_sd": seeds["sd"],
        "image_low": images["low"],
        "image_high": images["high"],
        "seeds": seeds["seeds"],
        "images": images["images"],
    }


def paired_difference(a: Any, b: Any, confidence: float = 0.95) -> dict[str, Any]:
    """B minus A on the same seeds (rows) and test images (columns).

    Returns ``{"mean", "seed_low", "seed_high", "image_low", "image_high", "wilcoxon_p",
    "better", "pairs"}``: the mean difference, its t-interval over seeds and bootstrap interval
    over images, the two-sided Wilcoxon signed-rank p-value over every (seed, image) pair
    (``None`` when all differences are zero), and how many pairs B wins.
    """
    from scipy import stats

    a, b = _matrix(a), _matrix(b)
    if a.shape != b.shape:
        raise ValueError(
            f"paired scores need the same (seeds, images) shape: {a.shape} vs {b.shape}."
        )
    difference = b - a
    seeds = seed_interval(difference, confidence)
    images = image_bootstrap_interval(difference, confidence)
    flat = difference.ravel()
    p_value = None if np.all(flat == 0) else float(stats.wilcoxon(flat).pvalue)
    return {
        "mean": seeds["mean"],
        "seed_low": seeds["low"],
        "seed_high": seeds["high"],
        "image_low": images["low"],
        "image_high": images["high"],
        "wilcoxon_p": p_value,
        "better": int(np.sum(flat > 0)),
        "pairs": int(flat.size),
    }


def verdict(difference: Mapping[str, Any], claimed: int = +1) -> str:
    """The verdict on a claim that B improves on A (``claimed=+1``) or is lower (``-1``).

    "holds beyond the noise" when both the seed and the image interval of the difference lie
    strictly on the claimed side of zero, "reversed" when both lie strictly on the other side,
    otherwise "within the noise" (also with one seed, whose interval is undefined).
    """
    if claimed not in (-1, 1):
        raise ValueError(f"claimed must be +1 or -1, got {claimed}.")
    bounds = [difference[k] for k in ("seed_low", "seed_high", "image_low", "image_high")]
    if any(not np.isfinite(v) for v in bounds):
        return VERDICTS[1]
    seed_low, seed_high, image_low, image_high = (claimed * v for v in bounds)
    # Multiplying by -1 swaps the ends of each interval.
    seed_low, seed_high = min(seed_low, seed_high), max(seed_low, seed_high)
    image_low, image_high = min(image_low, image_high), max(image_low, image_high)
    if seed_low > 0 and image_low > 0:
        return VERDICTS[0]
    if seed_high < 0 and image_high < 0:
        return VERDICTS[2]
    return VERDICTS[1]


def claims_table(
    configurations: Sequence[str],
    scores: Mapping[str, Any],
    claimed: Sequence[int] | None = None,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """Each configuration against the one before it, as an ablation table reads.

    Args:
        configurations: names in the table's order (each row claims to improve on the last).
        scores: ``{name: (seeds, images) matrix}``; every matrix pairs with its neighbours.
        claimed: per configuration after the first, +1 (claims an improvement, default) or -1.

    Returns:
        One row per configuration: its :func:`summarize` and, from the second on, the
        :func:`paired_difference` against its predecessor (keys prefixed ``diff_``) and the
        :func:`verdict`.
    """
    claimed = list(claimed) if claimed is not None else [1] * (len(configurations) - 1)
    if len(claimed) != len(configurations) - 1:
        raise ValueError("claimed needs one sign per configuration after the first.")
    rows = []
    for index, name in enumerate(configurations):
        row: dict[str, Any] = {"configuration": name, **summarize(scores[name], confidence)}
        if index:
            previous = configurations[index - 1]
            difference = paired_difference(scores[previous], scores[name], confidence)
            row.update({f"diff_{key}": value for key, value in difference.items()})
            row["against"] = previous
            row["verdict"] = verdict(difference, claimed[index - 1])
        rows.append(row)
    return rows
