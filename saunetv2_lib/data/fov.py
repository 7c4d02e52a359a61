"""Field-of-view (FOV) masks derived from a fundus image (STARE, CHASE_DB1, own images).

A fundus photograph is a bright, roughly circular disc on a dark border. :func:`derive_fov`
thresholds the red channel (the brightest channel of a fundus, so the dark rim of the disc stays
above the border) between the border level and the fundus level, keeps the largest connected
component, fills its holes and smooths it with a small morphological opening.

Validated against DRIVE's official masks (40 images, :func:`fov_iou`): mean IoU 0.996 with the
defaults (``saunetv2 data stats --dataset DRIVE`` reports it as ``derived_fov_iou``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CHANNELS = ("red", "luminance")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def derive_fov(
    image: np.ndarray,
    channel: str = "red",
    threshold: float | None = None,
    relative: float = 0.15,
    border: float = 0.02,
    opening_radius: int = 3,
) -> np.ndarray:
    """Estimate the FOV mask of a fundus image.

    Args:
        image: ``(H, W, 3)`` RGB float in [0, 1] (or ``(H, W)`` grey).
        channel: ``"red"`` (default) or ``"luminance"`` (BT.601), ignored for grey input.
        threshold: absolute threshold in [0, 1]; ``None`` picks
            ``background + relative * (fundus - background)`` where ``background`` is the
            median of a frame of width ``border * min(H, W)`` along the image edges and
            ``fundus`` the 90th percentile of the channel. Adaptive, because STARE's border is
            not black (up to 0.12 in red) while CHASE_DB1's is 0.
        relative: see ``threshold``.
        border: width of the edge frame, as a fraction of ``min(H, W)``. The estimate assumes
            the image edges are mostly outside the FOV; pass ``threshold`` for images whose
            fundus fills the frame.
        opening_radius: radius in pixels of the disk used for the final binary opening
            (removes thin bright spurs such as text or camera marks attached to the disc).

    Returns:
        ``(H, W)`` uint8 in {0, 1}.

    Raises:
        ValueError: wrong shape or arguments, or nothing above the threshold (a uniform image).
    """
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] == 3:
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}.")
        values = array[..., 0] if channel == "red" else array @ _LUMA
    elif array.ndim == 2:
        values = array
    else:
        raise ValueError(f"derive_fov needs an (H, W, 3) or (H, W) image, got shape {array.shape}.")
    if threshold is None:
        height, width = values.shape
        b = max(1, int(round(border * min(height, width))))
        frame = np.concatenate(
            [values[:b].ravel(), values[-b:].ravel(), values[:, :b].ravel(), values[:, -b:].ravel()]
        )
        background = float(np.median(frame))
        fundus = float(np.percentile(values, 90))
        threshold = background + relative * (fundus - background)
    mask = values > threshold
    labels, count = ndimage.label(mask)
    if count == 0:
        raise ValueError(
            f"derive_fov found no pixel above the threshold {threshold:.3f}: the image looks "
            "uniform; pass a FOV mask or an explicit threshold."
        )
    if count > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    if opening_radius > 0:
        opened = ndimage.binary_opening(mask, structure=_disk(opening_radius))
        mask = opened if opened.any() else mask  # never erase a tiny FOV completely
    return mask.astype(np.uint8)


def fov_iou(derived: np.ndarray, reference: np.ndarray) -> float:
    """Intersection over union of two binary masks (1.0 when both are empty)."""
    a = np.asarray(derived).astype(bool)
    b = np.asarray(reference).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"fov_iou needs equal shapes, got {a.shape} and {b.shape}.")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
