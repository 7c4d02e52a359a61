"""Data augmentation: the SA-UNet offline recipe (spec section 4.3) and its on-the-fly equivalent.

SA-UNetv2 trains on SA-UNet's *offline* augmented sets: every training image is saved once with
12 variants (3 random rotations, 3 colour jitters, 3 "Gaussian noise" copies and 3 flips), i.e. 13
versions per image, and training never augments on the fly. This module offers both forms:

* :func:`offline_recipe` / :func:`write_augmented_cache` produce exactly that 13x set (as arrays
  or PNG files), for people who want the paper's protocol;
* :func:`paper_augment` is the CPU-friendly training augmentation used by our pipeline: each time
  an image is drawn, one of the 13 recipe branches is picked uniformly (identity included) and
  applied. Over many epochs the model sees the same distribution as the offline set (each branch
  with probability 1/13) but with fresh random angles and factors at every draw, without a 13x
  bigger epoch or a cache folder. We chose it because it keeps an epoch as short as the original
  set; the difference from the paper (fresh draws instead of 13 fixed copies) is documented in
  the docs and can be removed by training on :func:`write_augmented_cache`'s output instead.

In-memory form (``docs/CONTRACTS.md``): images float32 RGB in [0, 1] of shape (H, W, 3), labels
uint8 in {0, 1} of shape (H, W). Every random function takes ``(image, label, rng)`` with a numpy
``Generator`` and is deterministic given it; labels are only ever moved (nearest neighbour,
flips), never blended, so they stay binary.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

Array = np.ndarray
Transform = Callable[[Array, Array, np.random.Generator], tuple[Array, Array]]

# Flip variants of the recipe: SA-UNet's flip.py makes h, v and hv copies (DRIVE); the official
# augmented STARE set has a transpose ("diagonal flip") instead of hv (spec section 4.2).
FLIP_SETS: dict[str, tuple[str, ...]] = {"drive": ("h", "v", "hv"), "stare": ("h", "v", "t")}
FLIP_NAMES = {"h": "flip_h", "v": "flip_v", "hv": "flip_hv", "t": "transpose"}

# Factor grids of the recipe's colour jitter, in steps of 0.1 (PIL ImageEnhance factors).
COLOR_FACTORS = np.round(np.arange(0, 31) / 10.0, 1)  # 0.0 .. 3.0
BRIGHTNESS_FACTORS = np.round(np.arange(10, 21) / 10.0, 1)  # 1.0 .. 2.0
CONTRAST_FACTORS = np.round(np.arange(10, 21) / 10.0, 1)  # 1.0 .. 2.0
SHARPNESS_FACTORS = np.round(np.arange(0, 31) / 10.0, 1)  # 0.0 .. 3.0

# The recipe's noise: N(mean=0.2, sd=0.3) added to uint8 values and truncated back to uint8.
PAPER_NOISE_MEAN = 0.2
PAPER_NOISE_SIGMA = 0.3

N_RECIPE_BRANCHES = 13  # original + 3 rotations + 3 colour jitters + 3 noise + 3 flips


def _check_pair(image: Array, label: Array) -> tuple[Array, Array]:
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image of shape (H, W, 3), got shape {image.shape}.")
    if label.shape != image.shape[:2]:
        raise ValueError(
            f"Label shape {label.shape} does not match the image's (H, W) = {image.shape[:2]}."
        )
    return image.astype(np.float32, copy=False), label.astype(np.uint8, copy=False)


def _to_uint8(image: Array) -> Array:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _to_float(image: Array) -> Array:
    return (image.astype(np.float32) / 255.0).astype(np.float32)


def _as_generator(seed: int | np.random.Generator | np.random.SeedSequence) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


# --- Rotation -------------------------------------------------------------------------------


def rotate(image: Array, label: Array, angle: float) -> tuple[Array, Array]:
    """Rotate by ``angle`` degrees counter-clockwise about the image centre, keeping the canvas.

    The image is resampled bicubically (per channel, in float32, so no uint8 rounding) and
    clipped to [0, 1]; the label is resampled nearest-neighbour. Corners that leave the canvas
    are cut and uncovered corners are filled with 0 (black / background), as PIL ``rotate`` does
    in the original recipe.
    """
    image, label = _check_pair(image, label)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).rotate(
                angle, resample=Image.Resampling.BICUBIC, fillcolor=0.0
            )
        )
        for c in range(3)
    ]
    rotated = np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)
    rotated_label = np.asarray(
        Image.fromarray(label).rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=0)
    ).astype(np.uint8)
    return rotated, rotated_label


def random_rotation(image: Array, label: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    """Recipe rotation: an integer angle drawn uniformly in [1, 359] degrees, see :func:`rotate`."""
    return rotate(image, label, float(rng.integers(1, 360)))


# --- Colour jitter ----------------------------------------------------------------------------


def enhance(
    image: Array,
    color: float = 1.0,
    brightness: float = 1.0,
    contrast: float = 1.0,
    sharpness: float = 1.0,
) -> Array:
    """Apply PIL ``ImageEnhance`` Color, Brightness, Contrast, Sharpness in that order.

    Factor 1.0 leaves the image unchanged; Color 0.0 gives greyscale, Brightness 2.0 doubles the
    values (saturating). PIL works on 8-bit RGB, so the image is rounded to 1/255 steps, exactly
    as in the original recipe which worked on PNG files. Returns float32 (H, W, 3) in [0, 1].
    """
    pil = Image.fromarray(_to_uint8(np.asarray(image, dtype=np.float32)))
    pil = ImageEnhance.Color(pil).enhance(color)
    pil = ImageEnhance.Brightness(pil).enhance(brightness)
    pil = ImageEnhance.Contrast(pil).enhance(contrast)
    pil = ImageEnhance.Sharpness(pil).enhance(sharpness)
    return _to_float(np.asarray(pil))


def draw_color_factors(rng: np.random.Generator) -> dict[str, float]:
    """Draw the recipe's four ImageEnhance factors (uniform on their 0.1-step grids)."""
    return {
        "color": float(rng.choice(COLOR_FACTORS)),
        "brightness": float(rng.choice(BRIGHTNESS_FACTORS)),
        "contrast": float(rng.choice(CONTRAST_FACTORS)),
        "sharpness": float(rng.choice(SHARPNESS_FACTORS)),
    }


def color_jitter(image: Array, label: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    """Recipe colour jitter (Color, Brightness, Contrast, Sharpness); the label is untouched."""
    image, label = _check_pair(image, label)
    return enhance(image, **draw_color_factors(rng)), label


# --- Noise ------------------------------------------------------------------------------------


def gaussian_noise(
    image: Array, label: Array, rng: np.random.Generator, sigma: float | None = None
) -> tuple[Array, Array]:
    """Additive Gaussian noise; the label is untouched.

    ``sigma=None`` (default) is the faithful recipe: the image is taken as uint8, N(0.2, 0.3) is
    added to every value and the result is *truncated* back to uint8. For a value v >= 1 the
    result is v + floor(noise): -1 level with probability P(-1 <= N(0.2, 0.3) < 0) ~ 25 %, +1
    level with P(N >= 1) ~ 0.4 %, unchanged otherwise (0 only ever moves up). So the branch shifts
    a quarter of the values by 1/255 and is visually a no-op, as it was in the original code. The
    original wrote out-of-range results back with uint8 wrap-around (255 + 1 -> 0, probability
    ~0.4 % per saturated value); we clip to [0, 255] instead.

    A float ``sigma`` gives ordinary noise instead: ``clip(image + N(0, sigma), 0, 1)`` in
    [0, 1] units (e.g. ``sigma=0.02`` is visible but mild), without uint8 rounding.
    """
    image, label = _check_pair(image, label)
    if sigma is None:
        values = _to_uint8(image).astype(np.float64)
        noisy = values + rng.normal(PAPER_NOISE_MEAN, PAPER_NOISE_SIGMA, values.shape)
        return _to_float(np.clip(np.trunc(noisy), 0, 255).astype(np.uint8)), label
    if sigma < 0:
        raise ValueError(f"gaussian_noise sigma must be >= 0, got {sigma}.")
    noisy = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32), label


# --- Flips ------------------------------------------------------------------------------------


def flip_with(image: Array, label: Array, mode: str) -> tuple[Array, Array]:
    """Flip by ``mode``: "h" (left-right), "v" (up-down), "hv" (both), "t" (transpose: swaps H, W)."""
    image, label = _check_pair(image, label)
    if mode == "h":
        return image[:, ::-1].copy(), label[:, ::-1].copy()
    if mode == "v":
        return image[::-1].copy(), label[::-1].copy()
    if mode == "hv":
        return image[::-1, ::-1].copy(), label[::-1, ::-1].copy()
    if mode == "t":
        return np.ascontiguousarray(image.transpose(1, 0, 2)), np.ascontiguousarray(label.T)
    raise ValueError(f"Unknown flip mode {mode!r}; use one of 'h', 'v', 'hv', 't'.")


def flip(
    image: Array,
    label: Array,
    rng: np.random.Generator | None = None,
    mode: str | None = None,
) -> tuple[Array, Array]:
    """Horizontal, vertical or both-axes flip; ``mode=None`` draws one of the three from ``rng``."""
    if mode is None:
        if rng is None:
            raise ValueError("flip needs either a mode ('h', 'v', 'hv') or an rng to draw one.")
        mode = str(rng.choice(["h", "v", "hv"]))
    return flip_with(image, label, mode)


def transpose(
    image: Array, label: Array, rng: np.random.Generator | None = None
) -> tuple[Array, Array]:
    """STARE's "diagonal flip": swap rows and columns, (H, W, 3) -> (W, H, 3). ``rng`` is unused."""
    del rng  # same signature as the random transforms
    return flip_with(image, label, "t")


# --- The recipe ---------------------------------------------------------------------------------


def _flip_modes(flips: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(flips, str):
        if flips not in FLIP_SETS:
            raise ValueError(
                f"Unknown flip set {flips!r}; use 'drive', 'stare' or a list of modes."
            )
        return FLIP_SETS[flips]
    modes = tuple(flips)
    unknown = [m for m in modes if m not in FLIP_NAMES]
    if len(modes) != 3 or unknown:
        raise ValueError(f"flips must be 3 of 'h', 'v', 'hv', 't' (got {list(modes)}).")
    return modes


def offline_recipe(
    image: Array,
    label: Array,
    seed: int | np.random.Generator | np.random.SeedSequence,
    flips: str | Sequence[str] = "drive",
) -> list[tuple[str, Array, Array]]:
    """SA-UNet's offline augmentation of one image: the original plus 12 variants.

    Returns 13 ``(name, image, label)`` tuples in this order: ``original``, ``rotation_1..3``,
    ``color_1..3``, ``noise_1..3`` and three flips (``flips="drive"``: ``flip_h``, ``flip_v``,
    ``flip_hv``; ``"stare"``: ``flip_h``, ``flip_v``, ``transpose``). Deterministic given ``seed``.
    """
    image, label = _check_pair(image, label)
    rng = _as_generator(seed)
    out = [("original", image.copy(), label.copy())]
    for name, transform in (
        ("rotation", random_rotation),
        ("color", color_jitter),
        ("noise", gaussian_noise),
    ):
        for k in range(1, 4):
            out.append((f"{name}_{k}", *transform(image, label, rng)))
    for mode in _flip_modes(flips):
        out.append((FLIP_NAMES[mode], *flip_with(image, label, mode)))
    return out


def paper_augment(
    image: Array,
    label: Array,
    rng: np.random.Generator,
    flips: str | Sequence[str] = "drive",
) -> tuple[Array, Array]:
    """On-the-fly form of the recipe: apply one of its 13 branches, drawn uniformly.

    Identity 1/13, random rotation 3/13, colour jitter 3/13, faithful noise 3/13 and each of the
    three flips 1/13, so over many draws the distribution equals that of the offline 13x set (see
    the module docstring for why we use it). For STARE use
    ``functools.partial(paper_augment, flips="stare")`` (transpose instead of hv).
    """
    image, label = _check_pair(image, label)
    branch = int(rng.integers(N_RECIPE_BRANCHES))
    if branch == 0:
        return image, label
    if branch <= 3:
        return random_rotation(image, label, rng)
    if branch <= 6:
        return color_jitter(image, label, rng)
    if branch <= 9:
        return gaussian_noise(image, label, rng)
    return flip_with(image, label, _flip_modes(flips)[branch - 10])


def _sample_fields(sample: Any, index: int) -> tuple[str, Array, Array]:
    if isinstance(sample, tuple) and len(sample) == 3:
        return str(sample[0]), sample[1], sample[2]
    try:
        image, label = sample.image, sample.label
    except AttributeError as error:
        raise ValueError(
            "write_augmented_cache expects samples with .image and .label (and .name), or "
            f"(name, image, label) tuples; got {type(sample).__name__}."
        ) from error
    return str(getattr(sample, "name", f"{index:03d}")), image, label


def write_augmented_cache(
    samples: Iterable[Any],
    folder: Path | str,
    seed: int = 0,
    flips: str | Sequence[str] = "drive",
) -> list[Path]:
    """Write the offline 13x set of every sample as PNG files (the paper's training protocol).

    For a sample named ``21_training`` it writes ``folder/images/21_training_<variant>.png`` (RGB,
    8 bit) and ``folder/labels/21_training_<variant>.png`` (grey, vessel = 255) for the 13
    variants of :func:`offline_recipe`. Each sample's random draws derive from ``seed`` and its
    name only, so a sample's variants do not depend on which other samples are written.

    Args:
        samples: objects with ``.name``, ``.image``, ``.label`` (e.g. ``load_split`` samples) or
            ``(name, image, label)`` tuples, in the in-memory form.
        folder: cache folder, created if missing; existing files are overwritten.
        seed: integer seed of the whole set.
        flips: "drive" (h, v, hv), "stare" (h, v, transpose) or three flip modes.

    Returns:
        The paths of the written image files, in order.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    written = []
    for index, sample in enumerate(samples):
        name, image, label = _sample_fields(sample, index)
        rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))
        for variant, aug_image, aug_label in offline_recipe(image, label, rng, flips=flips):
            path = folder / "images" / f"{name}_{variant}.png"
            Image.fromarray(_to_uint8(aug_image)).save(path)
            Image.fromarray((aug_label > 0).astype(np.uint8) * 255).save(
                folder / "labels" / f"{name}_{variant}.png"
            )
            written.append(path)
    return written


# --- Patches and previews -----------------------------------------------------------------------


def random_patches(
    image: Array,
    label: Array,
    patch_size: int,
    n: int,
    rng: np.random.Generator,
    fov: Array | None = None,
) -> tuple[Array, Array]:
    """Cut ``n`` random square patches (for patch-based CPU training).

    Top-left corners are uniform over all positions where the patch fits; with ``fov`` (uint8
    {0, 1}, (H, W)) only patches whose centre pixel lies inside the FOV are drawn.

    Returns:
        ``(images, labels)``: float32 (n, p, p, 3) and uint8 (n, p, p).
    """
    image, label = _check_pair(image, label)
    height, width = label.shape
    p = int(patch_size)
    if p < 1 or p > height or p > width:
        raise ValueError(
            f"patch_size {patch_size} must be between 1 and the image's smaller side "
            f"({min(height, width)} px for an image of {height}x{width})."
        )
    if fov is None:
        tops = rng.integers(0, height - p + 1, n)
        lefts = rng.integers(0, width - p + 1, n)
    else:
        fov = np.asarray(fov)
        if fov.shape != (height, width):
            raise ValueError(f"FOV shape {fov.shape} does not match the image's {(height, width)}.")
        # A corner (t, l) is valid when the patch fits and its centre (t + p//2, l + p//2) is in
        # the FOV.
        centres = fov[p // 2 : height - p + 1 + p // 2, p // 2 : width - p + 1 + p // 2] > 0
        candidates = np.flatnonzero(centres)
        if candidates.size == 0:
            raise ValueError(f"No {p}x{p} patch fits with its centre inside the FOV mask.")
        chosen = rng.choice(candidates, size=n)
        tops, lefts = np.divmod(chosen, centres.shape[1])
    images = np.stack([image[t : t + p, s : s + p] for t, s in zip(tops, lefts, strict=True)])
    labels = np.stack([label[t : t + p, s : s + p] for t, s in zip(tops, lefts, strict=True)])
    return images.astype(np.float32), labels.astype(np.uint8)


def preview_grid(image: Array, label: Array, seed: int = 0) -> list[tuple[str, Array, Array]]:
    """One example of every transform, for notebooks: ``(name, image, label)`` tuples.

    Order: original, rotation, colour jitter, recipe noise (visually a no-op, see
    :func:`gaussian_noise`), noise with sigma 0.05 (to show what noise looks like), flip h, flip v,
    flip hv and transpose.
    """
    image, label = _check_pair(image, label)
    rng = np.random.default_rng(seed)
    grid = [("original", image, label)]
    grid.append(("rotation", *random_rotation(image, label, rng)))
    grid.append(("color jitter", *color_jitter(image, label, rng)))
    grid.append(("noise (recipe)", *gaussian_noise(image, label, rng)))
    grid.append(("noise (sigma 0.05)", *gaussian_noise(image, label, rng, sigma=0.05)))
    for mode in ("h", "v", "hv", "t"):
        grid.append((FLIP_NAMES[mode].replace("_", " "), *flip_with(image, label, mode)))
    return grid


def plot_preview(grid: Sequence[tuple[str, Array, Array]], columns: int = 5):
    """Matplotlib figure of a :func:`preview_grid`: each image with its label drawn in green."""
    import matplotlib.pyplot as plt

    rows = -(-len(grid) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, (name, image, label) in zip(axes.ravel(), grid, strict=False):
        overlay = image.copy()
        overlay[label > 0] = 0.5 * overlay[label > 0] + 0.5 * np.array([0.0, 1.0, 0.0])
        axis.imshow(overlay)
        axis.set_title(name)
    figure.tight_layout()
    return figure
