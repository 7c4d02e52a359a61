"""Procedural retinal-like fundus images with an exact vessel label, and a synthetic DRIVE tree.

The generator is a stand-in for the real datasets when ``SAUNETV2_DATA`` is not set (CI, docs,
quick demos): the images are *not* real retinas, but they have the statistics a segmentation model
needs to learn something meaningful: a circular field of view (FOV) on black, an orange-red fundus
with low-frequency texture and vignetting, a bright optic disc, a darker macula, and a branching
vessel tree that leaves the optic disc, thins at every bifurcation and is darker than the background,
mostly in the green channel (as in real fundus photographs). The label is exactly the set of pixels
within a vessel's radius of its centre line, so it is consistent with the image by construction.

Everything is deterministic from the seed (numpy ``Generator`` seeded from ``SeedSequence``).
Sizes are ``(height, width)`` in pixels; the real DRIVE size is ``(584, 565)``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage, signal

DRIVE_SIZE = (584, 565)
"""(height, width) of a real DRIVE image."""

MARKER_NAME = "SYNTHETIC"
MARKER_TEXT = (
    "This data root holds SYNTHETIC procedural fundus images written by "
    "saunetv2_lib.data.synthetic.write_synthetic_drive; they are not the real DRIVE dataset and "
    "no number computed on them is comparable to the paper.\n"
)

# Palette of the real DRIVE 2nd_manual GIFs (index 0 = background, 1 = vessel), see MANIFEST.md.
SECOND_MANUAL_PALETTE = (4, 2, 4, 252, 254, 252)

_REFERENCE_WIDTH = 565.0  # lengths below are tuned for DRIVE and scaled by min(H, W) / 565
_MIN_RADIUS = 0.6  # px; thinner would vanish from the label (d <= r keeps the centre pixel)
_STEP = 0.5  # px between centre-line samples, so rounded centre lines stay 4-connected


@dataclass
class _Path:
    """One vessel segment: centre-line samples (rows, cols) and the radius at each, in pixels."""

    rows: np.ndarray
    cols: np.ndarray
    radii: np.ndarray
    terminal: bool = True


@dataclass
class _Geometry:
    height: int
    width: int
    center: tuple[float, float]  # FOV centre (row, col)
    radius: float  # FOV radius, px
    disc: tuple[float, float]  # optic disc centre (row, col)
    disc_radius: float
    macula: tuple[float, float]
    scale: float


def _geometry(size: tuple[int, int], rng: np.random.Generator) -> _Geometry:
    height, width = size
    scale = min(height, width) / _REFERENCE_WIDTH
    # Real DRIVE's FOV covers 68.8 % of the image (MANIFEST.md); draw the disc area around that.
    fraction = rng.uniform(0.66, 0.71)
    radius = min(np.sqrt(fraction * height * width / np.pi), 0.5 * min(height, width) - 1.0)
    center = (
        height / 2 + rng.uniform(-0.01, 0.01) * height,
        width / 2 + rng.uniform(-0.01, 0.01) * width,
    )
    side = rng.choice([-1.0, 1.0])  # left or right eye: optic disc on either side
    disc = (center[0] + rng.uniform(-0.1, 0.1) * radius, center[1] + side * 0.55 * radius)
    macula = (center[0] + rng.uniform(-0.05, 0.05) * radius, center[1] - side * 0.2 * radius)
    return _Geometry(
        height, width, center, radius, disc, rng.uniform(0.11, 0.14) * radius, macula, scale
    )


def _walk(
    start: tuple[float, float],
    angle: float,
    radius: float,
    bend: float,
    geometry: _Geometry,
    rng: np.random.Generator,
) -> _Path:
    """A smooth random walk from ``start`` with tapering radius, cut where it leaves the FOV."""
    scale = max(geometry.scale, 0.1)
    n = max(int(2.2 * geometry.radius / _STEP), 2)
    # Curvature (rad/px) is an AR(1) process: standard deviation ~1/(300 px) with a correlation
    # length of ~60 px at DRIVE scale, plus a constant bend; vessels are gently curved, not curly.
    keep_corr = np.exp(-_STEP / (60.0 * scale))
    noise = rng.normal(0.0, np.sqrt(1.0 - keep_corr**2) / (300.0 * scale), n)
    curvature = signal.lfilter([1.0], [1.0, -keep_corr], noise) + bend
    theta = angle + np.cumsum(curvature) * _STEP
    rows = start[0] + np.cumsum(np.sin(theta)) * _STEP
    cols = start[1] + np.cumsum(np.cos(theta)) * _STEP
    taper_length = geometry.radius * rng.uniform(0.8, 1.6)
    tapered = radius * np.exp(-np.arange(n) * _STEP / taper_length)
    # The thinnest vessels keep the minimum width for a while before they end.
    radii = np.maximum(tapered, _MIN_RADIUS)
    inside = np.hypot(rows - geometry.center[0], cols - geometry.center[1]) < geometry.radius - 2
    keep = inside & (tapered >= 0.7 * _MIN_RADIUS)
    stop = n if keep.all() else int(np.argmin(keep))
    return _Path(rows[:stop], cols[:stop], radii[:stop])


class _TreeGrower:
    """Grows a vessel tree from the optic disc, largest branches first, in resumable rounds.

    Buds wait in a max-heap on radius, so the arcades always exist and smaller vessels fill in
    until the requested area; when no bud is left, a side branch sprouts from a random point of an
    existing vessel. ``grow`` can be called again with a larger area to add more vessels.
    """

    def __init__(self, geometry: _Geometry, rng: np.random.Generator):
        self.geometry, self.rng = geometry, rng
        self.heap: list[tuple[float, int, tuple[float, float], float, float, float]] = []
        self.counter = 0
        self.paths: list[_Path] = []
        self.area = 0.0  # estimated vessel area, px^2 (overlaps counted twice)
        temporal = np.arctan2(
            geometry.macula[0] - geometry.disc[0], geometry.macula[1] - geometry.disc[1]
        )
        # Four directions (superior/inferior temporal arcades, superior/inferior nasal), each with
        # an artery and a (wider) vein; the temporal arcades bend around the macula.
        for offset, bend_sign in ((-0.9, 1.0), (0.9, -1.0), (np.pi - 0.7, 0.0), (np.pi + 0.7, 0.0)):
            for width_factor in (0.75, 1.0):
                angle = temporal + offset + rng.normal(0.0, 0.15)
                bend = bend_sign * rng.uniform(0.7, 1.1) / geometry.radius
                trunk = rng.uniform(2.8, 3.6) * width_factor * max(geometry.scale, 0.3)
                self._bud(geometry.disc, angle, trunk, bend)

    def _bud(self, start: tuple[float, float], angle: float, radius: float, bend: float) -> None:
        heapq.heappush(self.heap, (-radius, self.counter, start, angle, radius, bend))
        self.counter += 1

    def _sprout(self) -> None:
        parent = self.paths[int(self.rng.integers(len(self.paths)))]
        index = int(self.rng.integers(len(parent.radii) - 1))
        heading = np.arctan2(
            parent.rows[index + 1] - parent.rows[index], parent.cols[index + 1] - parent.cols[index]
        )
        self._bud(
            (float(parent.rows[index]), float(parent.cols[index])),
            heading + self.rng.choice([-1.0, 1.0]) * self.rng.uniform(0.5, 1.3),
            max(parent.radii[index] * self.rng.uniform(0.45, 0.8), _MIN_RADIUS * 1.05),
            0.0,
        )
        parent.terminal = False

    def grow(self, area: float) -> None:
        geometry, rng = self.geometry, self.rng
        for _ in range(10_000):  # a hard cap; the area target ends the loop long before
            if self.area >= area:
                break
            if not self.heap:
                if not self.paths:
                    break
                self._sprout()
            _, _, start, angle, radius, bend = heapq.heappop(self.heap)
            path = _walk(start, angle, radius, bend, geometry, rng)
            if len(path.radii) < 4:
                continue
            self.paths.append(path)
            self.area += float(np.sum(2.0 * np.maximum(path.radii, 0.5))) * _STEP
            # Bifurcations at exponentially spaced distances, none on the optic disc itself.
            on_disc = (
                np.hypot(path.rows - geometry.disc[0], path.cols - geometry.disc[1])
                < 1.5 * geometry.disc_radius
            )
            spacing = rng.uniform(18.0, 40.0) * max(geometry.scale, 0.2)
            position = rng.exponential(spacing)
            while position / _STEP < len(path.radii) - 1:
                index = int(position / _STEP)
                child = path.radii[index] * rng.uniform(0.45, 0.8)
                if child >= _MIN_RADIUS and not on_disc[index]:
                    heading = np.arctan2(
                        path.rows[index + 1] - path.rows[index],
                        path.cols[index + 1] - path.cols[index],
                    )
                    side = rng.choice([-1.0, 1.0])
                    self._bud(
                        (float(path.rows[index]), float(path.cols[index])),
                        heading + side * rng.uniform(0.5, 1.2),
                        child,
                        side * rng.uniform(0.0, 0.5) / geometry.radius,
                    )
                    path.terminal = False
                position += rng.exponential(spacing)


def _vessel_tree(
    geometry: _Geometry, rng: np.random.Generator
) -> tuple[list[_Path], np.ndarray, np.ndarray]:
    """Grow a tree until its *rasterised* whole-image vessel fraction is DRIVE-like.

    The target fraction is drawn in [8.5 %, 11 %] (real DRIVE: 8.7 % on average, 6-12 %); the
    estimated area overcounts overlaps and thin vessels, so growth resumes (at most 5 rounds) until
    the measured fraction reaches 90 % of the target. Returns ``(paths, mask, darkness)``.
    """
    shape = (geometry.height, geometry.width)
    target = rng.uniform(0.085, 0.11) * geometry.height * geometry.width
    grower = _TreeGrower(geometry, rng)
    estimate = target
    for _ in range(5):
        grower.grow(estimate)
        mask, darkness = _rasterise(grower.paths, shape)
        measured = float(mask.sum())
        if measured >= 0.9 * target:
            break
        estimate = grower.area + 1.2 * (target - measured)
    return grower.paths, mask, darkness


def _rasterise(
    paths: list[_Path], shape: tuple[int, int], with_darkness: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Vessel mask (distance to centre line <= radius) and an anti-aliased darkness map in [0, 1].

    Radii are bucketed to 0.25 px; for each bucket one Euclidean distance transform (cropped to the
    bucket's bounding box) gives the distance ``d`` to its nearest centre-line pixel, the coverage is
    ``clip(r + 0.5 - d, 0, 1)`` (so the mask is exactly coverage >= 0.5), and buckets combine by max.
    """
    height, width = shape
    label = np.zeros(shape, dtype=bool)
    darkness = np.zeros(shape, dtype=np.float32) if with_darkness else None
    if not paths:
        return label, darkness
    rows = np.rint(np.concatenate([p.rows for p in paths])).astype(np.int64)
    cols = np.rint(np.concatenate([p.cols for p in paths])).astype(np.int64)
    buckets = np.round(np.concatenate([p.radii for p in paths]) * 4.0) / 4.0
    valid = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    rows, cols, buckets = rows[valid], cols[valid], buckets[valid]
    for radius in np.unique(buckets):
        chosen = buckets == radius
        margin = int(np.ceil(radius)) + 2
        r0, r1 = max(rows[chosen].min() - margin, 0), min(rows[chosen].max() + margin + 1, height)
        c0, c1 = max(cols[chosen].min() - margin, 0), min(cols[chosen].max() + margin + 1, width)
        seeds = np.ones((r1 - r0, c1 - c0), dtype=bool)
        seeds[rows[chosen] - r0, cols[chosen] - c0] = False
        distance = ndimage.distance_transform_edt(seeds)
        label[r0:r1, c0:c1] |= distance <= radius
        if darkness is not None:
            coverage = np.clip(radius + 0.5 - distance, 0.0, 1.0)
            # Thin vessels are fainter in real images (partial-volume blur): scale their contrast.
            strength = 0.55 + 0.45 * min(radius / 2.0, 1.0)
            np.maximum(darkness[r0:r1, c0:c1], coverage * strength, out=darkness[r0:r1, c0:c1])
    return label, darkness


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian-filtered white noise; wide filters run on a coarser grid (speed)."""
    factor = max(int(sigma / 3.0), 1)
    coarse = (-(-shape[0] // factor) + 1, -(-shape[1] // factor) + 1) if factor > 1 else shape
    field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma / factor)
    if factor > 1:
        field = ndimage.zoom(field, factor, order=1)[: shape[0], : shape[1]]
    field = field - field.mean()
    return field / max(float(field.std()), 1e-6)


def _render(
    geometry: _Geometry, darkness: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Paint the fundus (float32 RGB in [0, 1]) and return it with the soft FOV weight."""
    shape = (geometry.height, geometry.width)
    rows, cols = np.mgrid[0 : geometry.height, 0 : geometry.width].astype(np.float32)
    rho = np.hypot(rows - geometry.center[0], cols - geometry.center[1]) / geometry.radius
    scale = geometry.scale
    base = np.array([0.92, 0.54, 0.32], dtype=np.float32) * rng.uniform(0.85, 1.1, 3)
    illumination = 1.0 - 0.3 * rho**2 + 0.04 * _smooth_noise(shape, 60.0 * scale + 1.0, rng)
    texture = 0.025 * _smooth_noise(shape, 8.0 * scale + 0.5, rng)
    texture += 0.012 * _smooth_noise(shape, 1.5 * scale + 0.3, rng)
    disc_d = np.hypot(rows - geometry.disc[0], cols - geometry.disc[1]) / geometry.disc_radius
    macula_d = np.hypot(rows - geometry.macula[0], cols - geometry.macula[1]) / geometry.radius
    # Brighter surroundings of the optic disc, darker macula.
    illumination += 0.3 * np.exp(-((disc_d / 3.0) ** 2))
    illumination *= 1.0 - 0.3 * np.exp(-((macula_d / 0.22) ** 2))
    image = base * (illumination * (1.0 + texture))[..., None]
    disc_weight = np.clip(2.0 * (1.1 - disc_d), 0.0, 1.0)[..., None]
    image = image * (1.0 - disc_weight) + np.array([1.0, 0.86, 0.6], np.float32) * disc_weight
    # Vessels absorb most in green, then blue, little in red (as in real fundus photographs).
    contrast = np.array([0.12, 0.42, 0.32], dtype=np.float32) * rng.uniform(0.85, 1.15, 3)
    image = image * (1.0 - contrast * darkness[..., None])
    image = ndimage.gaussian_filter(image, sigma=(0.6, 0.6, 0.0))
    image += rng.normal(0.0, 0.012, image.shape).astype(np.float32)
    fov_weight = np.clip((1.0 - rho) * geometry.radius + 0.5, 0.0, 1.0)
    image = image * fov_weight[..., None]
    # Outside the FOV real cameras record near-black, slightly noisy values.
    image += np.abs(rng.normal(0.0, 0.006, image.shape)).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32), fov_weight


def _generate(
    size: tuple[int, int], rng: np.random.Generator, second_observer: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    height, width = (int(v) for v in size)
    if height < 16 or width < 16:
        raise ValueError(f"Synthetic fundus size must be at least 16x16 pixels, got {size}.")
    geometry = _geometry((height, width), rng)
    paths, vessels, darkness = _vessel_tree(geometry, rng)
    image, fov_weight = _render(geometry, darkness, rng)
    fov = fov_weight >= 0.5
    label = (vessels & fov).astype(np.uint8)
    second = None
    if second_observer:
        # A second observer draws the same tree with slightly different widths and misses some of
        # the faintest terminal branches (real DRIVE: 2nd manual 8.43 % vs 1st 8.76 %).
        perturbed = []
        for path in paths:
            if path.terminal and path.radii[0] < 1.0 and rng.random() < 0.3:
                continue
            factor = rng.uniform(0.85, 1.1)
            perturbed.append(_Path(path.rows, path.cols, np.maximum(path.radii * factor, 0.5)))
        other, _ = _rasterise(perturbed, (height, width), with_darkness=False)
        second = (other & fov).astype(np.uint8)
    return image, label, fov.astype(np.uint8), second


def synthetic_fundus(
    size: tuple[int, int] = DRIVE_SIZE, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One procedural fundus image with its vessel label and FOV mask.

    Args:
        size: ``(height, width)`` in pixels, at least 16x16 (e.g. ``(96, 96)`` for fast tests).
        seed: integer seed or a numpy ``Generator``; equal seeds give identical arrays.

    Returns:
        ``(image, label, fov)``: image float32 RGB in [0, 1] of shape (H, W, 3); label and fov
        uint8 in {0, 1} of shape (H, W). Vessels cover about 8-11 % of the whole image and the FOV
        disc about 66-71 % (DRIVE: 8.7 % and 68.8 %).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    image, label, fov, _ = _generate(size, rng, second_observer=False)
    return image, label, fov


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(array, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def _save_binary_gif(mask: np.ndarray, path: Path) -> None:
    # optimize=False keeps the full grey palette, so Pillow reads it back as mode "L" like DRIVE's.
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(path, format="GIF", optimize=False)


def _save_second_manual(mask: np.ndarray, path: Path) -> None:
    indices = np.ascontiguousarray(mask > 0, dtype=np.uint8)
    image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
    image.putpalette(list(SECOND_MANUAL_PALETTE))
    image.save(path, format="GIF", optimize=False)


def write_synthetic_drive(
    root: Path | str,
    n_train: int = 20,
    n_test: int = 20,
    size: tuple[int, int] = DRIVE_SIZE,
    seed: int = 0,
) -> Path:
    """Write a synthetic dataset in exactly the real DRIVE layout and file formats.

    Layout under ``root`` (numbers as in DRIVE: training 21, 22, ..., test 01, 02, ...)::

        DRIVE/training/images/21_training.tif        RGB TIFF (LZW)
        DRIVE/training/1st_manual/21_manual1.gif     GIF, grey {0, 255}
        DRIVE/training/mask/21_training_mask.gif     GIF, grey {0, 255}
        DRIVE/test/images/01_test.tif
        DRIVE/test/1st_manual/01_manual1.gif
        DRIVE/test/2nd_manual/01_manual2.gif         GIF, palette indices {0, 1}
        DRIVE/test/mask/01_test_mask.gif
        SYNTHETIC                                    one-line explanation (marker file)

    Args:
        root: data root to write into (created if missing); existing files are overwritten.
        n_train, n_test: number of training (<= 79) and test (<= 99) images, so names keep 2 digits.
        size: ``(height, width)`` of every image; the real DRIVE size by default.
        seed: all content derives from it; equal seeds give byte-identical files.

    Returns:
        ``root`` as a ``Path`` (the folder that contains ``DRIVE/``, usable as ``SAUNETV2_DATA``).
    """
    root = Path(root)
    if not (0 <= n_train <= 79 and 0 <= n_test <= 99):
        raise ValueError(
            "write_synthetic_drive needs 0 <= n_train <= 79 and 0 <= n_test <= 99 so file numbers "
            f"keep DRIVE's two digits (got n_train={n_train}, n_test={n_test})."
        )
    drive = root / "DRIVE"
    folders = {
        name: drive / name
        for name in (
            "training/images",
            "training/1st_manual",
            "training/mask",
            "test/images",
            "test/1st_manual",
            "test/2nd_manual",
            "test/mask",
        )
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    splits = (("training", n_train, 21), ("test", n_test, 1))  # (folder, count, first number)
    for split_id, (split, count, first) in enumerate(splits):
        for k in range(count):
            number = f"{first + k:02d}"
            rng = np.random.default_rng(np.random.SeedSequence([seed, split_id, k]))
            image, label, fov, second = _generate(size, rng, second_observer=split == "test")
            Image.fromarray(_to_uint8(image)).save(
                folders[f"{split}/images"] / f"{number}_{split}.tif", compression="tiff_lzw"
            )
            _save_binary_gif(label, folders[f"{split}/1st_manual"] / f"{number}_manual1.gif")
            _save_binary_gif(fov, folders[f"{split}/mask"] / f"{number}_{split}_mask.gif")
            if second is not None:
                _save_second_manual(second, folders["test/2nd_manual"] / f"{number}_manual2.gif")
    (root / MARKER_NAME).write_text(MARKER_TEXT)
    return root
