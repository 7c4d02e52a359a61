"""Tests of the SA-UNet augmentation recipe and its on-the-fly form."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, stats

from saunetv2_lib.data import augment


def _smooth_pair(shape=(48, 64), seed=0):
    """An RGB image whose label is exactly its thresholded green channel (smooth blobs)."""
    rng = np.random.default_rng(seed)
    fields = ndimage.gaussian_filter(rng.standard_normal((*shape, 3)), sigma=(4, 4, 0))
    fields = (fields - fields.min()) / (fields.max() - fields.min())
    image = fields.astype(np.float32)
    label = (image[..., 1] > 0.5).astype(np.uint8)
    return image, label


def _check_pair(image, label):
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[-1] == 3
    assert label.dtype == np.uint8 and label.shape == image.shape[:2]
    assert set(np.unique(label).tolist()) <= {0, 1}
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_offline_recipe_names_shapes_and_ranges():
    image, label = _smooth_pair()
    drive = augment.offline_recipe(image, label, seed=1)
    names = [name for name, _, _ in drive]
    assert names == [
        "original",
        "rotation_1",
        "rotation_2",
        "rotation_3",
        "color_1",
        "color_2",
        "color_3",
        "noise_1",
        "noise_2",
        "noise_3",
        "flip_h",
        "flip_v",
        "flip_hv",
    ]
    for _, aug_image, aug_label in drive:
        _check_pair(aug_image, aug_label)
        assert aug_image.shape == image.shape
    stare = augment.offline_recipe(image, label, seed=1, flips="stare")
    assert [name for name, _, _ in stare][-3:] == ["flip_h", "flip_v", "transpose"]
    _, t_image, t_label = stare[-1]
    assert t_image.shape == (64, 48, 3) and t_label.shape == (64, 48)
    np.testing.assert_array_equal(t_image, image.transpose(1, 0, 2))
    np.testing.assert_array_equal(t_label, label.T)


def test_same_seed_identical_other_seed_different():
    image, label = _smooth_pair()
    first = augment.offline_recipe(image, label, seed=3)
    again = augment.offline_recipe(image, label, seed=3)
    other = augment.offline_recipe(image, label, seed=4)
    for (_, a, la), (_, b, lb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    differing = [
        name
        for (name, a, _), (_, b, _) in zip(first, other, strict=True)
        if not np.array_equal(a, b)
    ]
    # Every random branch changes with the seed; original and flips do not.
    assert set(differing) == {f"{k}_{i}" for k in ("rotation", "color", "noise") for i in (1, 2, 3)}


def test_flips_against_numpy():
    image, label = _smooth_pair()
    for mode, axes in (("h", (1,)), ("v", (0,)), ("hv", (0, 1))):
        flipped, flipped_label = augment.flip(image, label, mode=mode)
        np.testing.assert_array_equal(flipped, np.flip(image, axis=axes))
        np.testing.assert_array_equal(flipped_label, np.flip(label, axis=axes))
    drawn = augment.flip(image, label, rng=np.random.default_rng(0))
    assert any(np.array_equal(drawn[0], np.flip(image, axis=a)) for a in ((1,), (0,), (0, 1)))
    with pytest.raises(ValueError, match="flip mode"):
        augment.flip(image, label, mode="diagonal")


def test_rotation_matches_scipy_and_keeps_alignment():
    image, label = _smooth_pair(shape=(60, 60), seed=2)
    rotated, rotated_label = augment.rotate(image, label, 37.0)
    # Independent computation: scipy rotates the label the same way (counter-clockwise, about
    # the image centre, canvas kept) up to rounding at a few boundary pixels.
    reference = ndimage.rotate(label, 37.0, reshape=False, order=0, mode="constant", cval=0)
    mismatch = rotated_label != reference
    reference_edges = ndimage.morphological_gradient(reference, size=3) > 0
    assert mismatch.mean() < 0.02 and not (mismatch & ~reference_edges).any()
    # Image and label stay aligned: the rotated label is still the thresholded rotated green
    # channel, except at a few pixels on blob edges (bicubic vs nearest interpolation).
    disagree = rotated_label != (rotated[..., 1] > 0.5)
    label_edges = ndimage.morphological_gradient(rotated_label, size=3) > 0
    assert disagree.mean() < 0.04 and not (disagree & ~label_edges).any()


def test_random_rotation_draws_integer_angle_in_1_359():
    image, label = _smooth_pair()
    for seed in range(3):
        expected_angle = float(np.random.default_rng(seed).integers(1, 360))
        got = augment.random_rotation(image, label, np.random.default_rng(seed))
        want = augment.rotate(image, label, expected_angle)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # Corners of a rotated all-white image are black for any angle that is not a multiple of 90.
    white = np.ones((40, 40, 3), np.float32)
    rotated, _ = augment.rotate(white, np.ones((40, 40), np.uint8), 45.0)
    assert rotated[0, 0].max() == 0.0 and rotated[20, 20].min() > 0.99


def test_color_jitter_never_touches_label_and_matches_pil_definitions():
    image, label = _smooth_pair()
    for seed in range(5):
        jittered, same_label = augment.color_jitter(image, label, np.random.default_rng(seed))
        np.testing.assert_array_equal(same_label, label)
        _check_pair(jittered, same_label)
    # Brightness multiplies (then saturates); Color 0 is greyscale.
    uint8 = np.rint(image * 255)
    brighter = augment.enhance(image, brightness=1.5)
    np.testing.assert_allclose(brighter * 255, np.clip(np.rint(uint8 * 1.5), 0, 255), atol=1.01)
    grey = augment.enhance(image, color=0.0)
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=1 / 255)
    np.testing.assert_allclose(grey[..., 1], grey[..., 2], atol=1 / 255)
    luminance = uint8 @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(grey[..., 0] * 255, luminance, atol=1.01)
    factors = augment.draw_color_factors(np.random.default_rng(0))
    assert 0.0 <= factors["color"] <= 3.0 and 1.0 <= factors["brightness"] <= 2.0
    assert 1.0 <= factors["contrast"] <= 2.0 and 0.0 <= factors["sharpness"] <= 3.0
    assert all(abs(v * 10 - round(v * 10)) < 1e-9 for v in factors.values())


def test_faithful_noise_statistics():
    # Interior values (1..254) change by floor(N(0.2, 0.3)) levels after truncation.
    rng = np.random.default_rng(0)
    image = (rng.integers(1, 255, (200, 200, 3)) / 255.0).astype(np.float32)
    label = np.zeros((200, 200), np.uint8)
    noisy, same_label = augment.gaussian_noise(image, label, np.random.default_rng(1))
    np.testing.assert_array_equal(same_label, label)
    change = np.rint(noisy * 255) - np.rint(image * 255)
    normal = stats.norm(augment.PAPER_NOISE_MEAN, augment.PAPER_NOISE_SIGMA)
    n = change.size
    for level, probability in (
        (-1, normal.cdf(0) - normal.cdf(-1)),
        (1, normal.cdf(2) - normal.cdf(1)),
    ):
        observed = (change == level).mean()
        tolerance = 5 * np.sqrt(probability * (1 - probability) / n)
        assert abs(observed - probability) < tolerance, (level, observed, probability)
    assert np.abs(change).max() <= 2
    # The sigma option is ordinary zero-mean noise in [0, 1] units.
    mid = np.full((100, 100, 3), 0.5, np.float32)
    noisy, _ = augment.gaussian_noise(mid, label[:100, :100], np.random.default_rng(2), sigma=0.05)
    assert abs((noisy - mid).std() - 0.05) < 0.002 and abs((noisy - mid).mean()) < 0.002
    saturated, _ = augment.gaussian_noise(
        np.ones((20, 20, 3), np.float32), label[:20, :20], np.random.default_rng(3), sigma=0.5
    )
    assert saturated.max() <= 1.0 and saturated.min() >= 0.0


def test_paper_augment_draws_every_branch_uniformly():
    image, label = _smooth_pair(shape=(24, 32))
    recipe = augment.offline_recipe(image, label, seed=0)
    flips = {name: aug for name, aug, _ in recipe if name.startswith("flip")}
    counts = {"identity": 0, "flip_h": 0, "flip_v": 0, "flip_hv": 0, "other": 0}
    rng = np.random.default_rng(0)
    draws = 1300
    for _ in range(draws):
        out, out_label = augment.paper_augment(image, label, rng)
        _check_pair(out, out_label)
        if out is image:
            counts["identity"] += 1
            continue
        name = next((n for n, f in flips.items() if np.array_equal(out, f)), "other")
        counts[name] += 1
    for key in ("identity", "flip_h", "flip_v", "flip_hv"):
        assert 60 <= counts[key] <= 140, counts  # expected 100 = 1300 / 13
    stare = functools.partial(augment.paper_augment, flips="stare")
    shapes = {stare(image, label, np.random.default_rng(s))[0].shape for s in range(60)}
    assert shapes == {(24, 32, 3), (32, 24, 3)}


def test_write_augmented_cache(tmp_path):
    image, label = _smooth_pair(shape=(20, 30))
    samples = [
        SimpleNamespace(name="21_training", image=image, label=label),
        SimpleNamespace(name="22_training", image=image[::-1].copy(), label=label[::-1].copy()),
    ]
    written = augment.write_augmented_cache(samples, tmp_path / "cache", seed=7)
    assert len(written) == 26
    assert written[0] == tmp_path / "cache/images/21_training_original.png"
    for path in written:
        label_path = path.parent.parent / "labels" / path.name
        with Image.open(path) as png, Image.open(label_path) as label_png:
            assert png.mode == "RGB" and png.size == (30, 20)
            assert label_png.mode == "L"
            assert set(np.unique(np.asarray(label_png)).tolist()) <= {0, 255}
    original = np.asarray(Image.open(written[0]))
    np.testing.assert_array_equal(original, np.rint(image * 255).astype(np.uint8))
    # A sample's variants depend on the seed and its name only, not on the other samples.
    alone = augment.write_augmented_cache(samples[1:], tmp_path / "alone", seed=7)
    assert Image.open(alone[1]).tobytes() == Image.open(written[14]).tobytes()
    with pytest.raises(ValueError, match=".image and .label"):
        augment.write_augmented_cache([object()], tmp_path / "bad")


def test_random_patches_inside_bounds_and_fov():
    image, label = _smooth_pair(shape=(40, 50))
    # Encode positions in the image so each patch can be located.
    rows, cols = np.mgrid[0:40, 0:50]
    image[..., 0], image[..., 2] = rows / 40.0, cols / 50.0
    patches, patch_labels = augment.random_patches(image, label, 16, 30, np.random.default_rng(0))
    assert patches.shape == (30, 16, 16, 3) and patch_labels.shape == (30, 16, 16)
    for patch, patch_label in zip(patches, patch_labels, strict=True):
        top, left = int(round(patch[0, 0, 0] * 40)), int(round(patch[0, 0, 2] * 50))
        assert 0 <= top <= 24 and 0 <= left <= 34
        np.testing.assert_array_equal(patch, image[top : top + 16, left : left + 16])
        np.testing.assert_array_equal(patch_label, label[top : top + 16, left : left + 16])
    fov = np.zeros((40, 50), np.uint8)
    fov[30:34, 5:9] = 1
    patches, _ = augment.random_patches(image, label, 8, 20, np.random.default_rng(1), fov=fov)
    centres_r = np.rint(patches[:, 4, 4, 0] * 40).astype(int)
    centres_c = np.rint(patches[:, 4, 4, 2] * 50).astype(int)
    assert fov[centres_r, centres_c].all()
    with pytest.raises(ValueError, match="patch_size"):
        augment.random_patches(image, label, 41, 1, np.random.default_rng(0))


def test_preview_grid_and_plot():
    image, label = _smooth_pair()
    grid = augment.preview_grid(image, label, seed=0)
    assert [name for name, _, _ in grid][0] == "original" and len(grid) == 9
    for _, aug_image, aug_label in grid:
        _check_pair(aug_image, aug_label)
    import matplotlib

    matplotlib.use("Agg")
    figure = augment.plot_preview(grid)
    assert len([a for a in figure.axes if a.images]) == 9


def test_bad_shapes_raise():
    image, label = _smooth_pair()
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        augment.color_jitter(image[..., 0], label, np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not match"):
        augment.random_rotation(image, label[:10], np.random.default_rng(0))
    with pytest.raises(ValueError, match="flip set"):
        augment.offline_recipe(image, label, 0, flips="chase")
