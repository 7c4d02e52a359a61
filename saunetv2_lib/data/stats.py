"""Dataset statistics: vessel fractions, FOV coverage, intensities, vessel widths, observers.

All fractions are in [0, 1]; widths are in pixels. Per-image quantities are averaged over the
images (every image of a dataset has the same size, so for whole-image fractions this equals
pooling the pixels). Inter-observer agreement is computed with exactly the model metrics
(:func:`saunetv2_lib.metrics.segmentation_metrics`, per-image mean, threshold 0.5), treating the
second observer's binary label as the "prediction" and the reference label as the truth, so the
numbers are directly comparable with a model's scores (whose AUC on a binary map is the balanced
accuracy, (sensitivity + specificity) / 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from saunetv2_lib.data.datasets import (
    Sample,
    data_root,
    dataset_info,
    is_synthetic,
    load_split,
    split_sample_names,
)
from saunetv2_lib.data.fov import derive_fov, fov_iou

WIDTH_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def vessel_fraction(labels: list[np.ndarray], fovs: list[np.ndarray] | None = None) -> float:
    """Mean over images of the vessel-pixel fraction, of the whole image or inside each FOV."""
    if not labels:
        raise ValueError("vessel_fraction needs at least one label.")
    if fovs is None:
        return float(np.mean([np.mean(label > 0) for label in labels]))
    return float(
        np.mean([np.mean(label[fov > 0] > 0) for label, fov in zip(labels, fovs, strict=True)])
    )


def fov_coverage(fovs: list[np.ndarray]) -> float:
    """Mean over images of the fraction of pixels inside the FOV."""
    if not fovs:
        raise ValueError("fov_coverage needs at least one mask.")
    return float(np.mean([np.mean(fov > 0) for fov in fovs]))


def channel_stats(
    images: list[np.ndarray], fovs: list[np.ndarray]
) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the pixels inside the FOVs, pooled over images.

    Returns:
        ``(mean, std)``, each a list of C floats on the image scale ([0, 1] for our images).
    """
    pixels = np.concatenate(
        [img[fov > 0].astype(np.float64) for img, fov in zip(images, fovs, strict=True)]
    )
    return pixels.mean(axis=0).tolist(), pixels.std(axis=0).tolist()


def vessel_widths(label: np.ndarray) -> np.ndarray:
    """Local vessel widths in pixels, one per centre-line (skeleton) pixel.

    The width at a skeleton pixel is ``2 * d - 1``, where ``d`` is the Euclidean distance from
    that pixel's centre to the nearest background pixel's centre
    (``scipy.ndimage.distance_transform_edt``). The ``- 1`` corrects for measuring between pixel
    centres: a straight vessel ``w`` pixels wide (odd ``w``) has ``d = (w + 1) / 2`` on its
    centre line, so ``2 * d`` would overstate every width by one pixel.
    """
    mask = np.asarray(label) > 0
    skeleton = skeletonize(mask)
    distance = ndimage.distance_transform_edt(mask)
    return 2.0 * distance[skeleton] - 1.0


def width_summary(labels: list[np.ndarray]) -> dict[str, float]:
    """Quantiles (``p05, p25, p50, p75, p95``), mean and max of the vessel widths in pixels."""
    widths = np.concatenate([vessel_widths(label) for label in labels])
    if widths.size == 0:
        raise ValueError("width_summary: the labels contain no vessel pixels.")
    summary = {f"p{round(q * 100):02d}": float(np.quantile(widths, q)) for q in WIDTH_QUANTILES}
    summary.update(mean=float(widths.mean()), max=float(widths.max()))
    return summary


def observer_agreement(
    second: list[np.ndarray], reference: list[np.ndarray], fovs: list[np.ndarray] | None = None
) -> dict[str, float]:
    """The model metrics of the second observer against the reference (fractions)."""
    from saunetv2_lib.metrics import segmentation_metrics

    return segmentation_metrics(
        [s.astype(np.float32) for s in second],
        reference,
        fov=fovs,
        threshold=0.5,
        aggregate="per_image",
    )


def _labels(samples: list[Sample]) -> list[np.ndarray]:
    return [s.label for s in samples]


def dataset_stats(dataset: str, root: Path | str | None = None) -> dict:
    """Statistics of one dataset under ``root`` (default :func:`data_root`).

    Keys: ``dataset, root, synthetic, n_train, n_test, image_size``;
    ``train_vessel_fraction`` and ``test_vessel_fraction`` (whole image, reference labels);
    ``fov_vessel_fraction`` (test split inside the FOV: official for DRIVE, derived otherwise);
    ``fov_source``; ``fov_coverage`` (all images); ``channel_mean`` / ``channel_std`` (RGB in
    [0, 1] inside the FOV, training split); ``vessel_width_px`` (:func:`width_summary` over all
    reference labels); ``second_vessel_fraction`` (whole image); ``inter_observer`` (whole image)
    and ``inter_observer_fov`` (inside the FOV), each a metrics dict, over
    ``inter_observer_images`` (DRIVE: the test split, the only one with a 2nd manual; STARE and
    CHASE_DB1: all images), plus ``inter_observer_test`` (whole image, test split); for DRIVE
    also ``derived_fov_iou`` (mean and min IoU of :func:`derive_fov` against the official masks
    over all 40 images).
    """
    info = dataset_info(dataset)
    root = data_root() if root is None else Path(root)
    train = load_split(info.name, "train", root)
    test = load_split(info.name, "test", root)
    everything = train + test
    observer_split = "test" if "all" not in info.second_label_splits else "all"
    second = load_split(info.name, observer_split, root, labels="second")
    by_name = {s.name: s for s in everything}
    reference = [by_name[s.name] for s in second]
    test_names = set(split_sample_names(info.name, "test", root))

    mean, std = channel_stats([s.image for s in train], [s.fov for s in train])
    stats = {
        "dataset": info.name,
        "root": str(root),
        "synthetic": is_synthetic(root),
        "n_train": len(train),
        "n_test": len(test),
        "image_size": list(everything[0].image.shape[:2]),
        "train_vessel_fraction": vessel_fraction(_labels(train)),
        "test_vessel_fraction": vessel_fraction(_labels(test)),
        "fov_vessel_fraction": vessel_fraction(_labels(test), [s.fov for s in test]),
        "fov_source": "official" if info.has_official_fov else "derived",
        "fov_coverage": fov_coverage([s.fov for s in everything]),
        "channel_mean": mean,
        "channel_std": std,
        "vessel_width_px": width_summary(_labels(everything)),
        "second_vessel_fraction": vessel_fraction(_labels(second)),
        "inter_observer_images": observer_split,
        "inter_observer": observer_agreement(_labels(second), _labels(reference)),
        "inter_observer_fov": observer_agreement(
            _labels(second), _labels(reference), [s.fov for s in reference]
        ),
        "inter_observer_test": observer_agreement(
            [s.label for s in second if s.name in test_names],
            [s.label for s in reference if s.name in test_names],
        ),
    }
    if info.has_official_fov:
        ious = [fov_iou(derive_fov(s.image), s.fov) for s in everything]
        stats["derived_fov_iou"] = {"mean": float(np.mean(ious)), "min": float(np.min(ious))}
    return stats


def format_stats(stats: dict) -> str:
    """A readable multi-line rendering of :func:`dataset_stats` (percentages for fractions)."""

    def pct(x: float) -> str:
        return f"{100 * x:.2f} %"

    def metrics(m: dict) -> str:
        return ", ".join(f"{k} {100 * v:.2f}" for k, v in m.items())

    lines = [
        f"{stats['dataset']} at {stats['root']}" + (" (SYNTHETIC)" if stats["synthetic"] else ""),
        f"  images: {stats['n_train']} train, {stats['n_test']} test, size {stats['image_size']}",
        f"  vessel fraction (whole image): train {pct(stats['train_vessel_fraction'])}, "
        f"test {pct(stats['test_vessel_fraction'])}, second observer "
        f"{pct(stats['second_vessel_fraction'])}",
        f"  vessel fraction inside the {stats['fov_source']} FOV (test): "
        f"{pct(stats['fov_vessel_fraction'])}",
        f"  FOV coverage: {pct(stats['fov_coverage'])}",
        "  channel mean / std in FOV (train, RGB): "
        + " / ".join(
            ", ".join(f"{v:.4f}" for v in stats[k]) for k in ("channel_mean", "channel_std")
        ),
        "  vessel width (px): "
        + ", ".join(f"{k} {v:.2f}" for k, v in stats["vessel_width_px"].items()),
        f"  inter-observer ({stats['inter_observer_images']}, whole image, %): "
        + metrics(stats["inter_observer"]),
        f"  inter-observer ({stats['inter_observer_images']}, inside FOV, %): "
        + metrics(stats["inter_observer_fov"]),
        "  inter-observer (test split, whole image, %): " + metrics(stats["inter_observer_test"]),
    ]
    if "derived_fov_iou" in stats:
        iou = stats["derived_fov_iou"]
        lines.append(f"  derived FOV vs official: IoU mean {iou['mean']:.4f}, min {iou['min']:.4f}")
    return "\n".join(lines)
