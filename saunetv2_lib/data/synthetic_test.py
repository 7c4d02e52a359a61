"""Tests of the synthetic fundus generator and the synthetic DRIVE writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from saunetv2_lib.data import synthetic

SMALL = (96, 96)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_layout_and_formats_match_real_drive(tmp_path):
    size = (100, 90)  # (H, W), not square, so an axis swap would show
    root = synthetic.write_synthetic_drive(tmp_path, n_train=2, n_test=2, size=size, seed=3)
    assert root == tmp_path
    expected = {
        "SYNTHETIC",
        "DRIVE/training/images/21_training.tif",
        "DRIVE/training/images/22_training.tif",
        "DRIVE/training/1st_manual/21_manual1.gif",
        "DRIVE/training/1st_manual/22_manual1.gif",
        "DRIVE/training/mask/21_training_mask.gif",
        "DRIVE/training/mask/22_training_mask.gif",
        "DRIVE/test/images/01_test.tif",
        "DRIVE/test/images/02_test.tif",
        "DRIVE/test/1st_manual/01_manual1.gif",
        "DRIVE/test/1st_manual/02_manual1.gif",
        "DRIVE/test/2nd_manual/01_manual2.gif",
        "DRIVE/test/2nd_manual/02_manual2.gif",
        "DRIVE/test/mask/01_test_mask.gif",
        "DRIVE/test/mask/02_test_mask.gif",
    }
    assert set(_files(tmp_path)) == expected
    marker = (tmp_path / "SYNTHETIC").read_text()
    assert marker.count("\n") == 1 and "synthetic" in marker.lower()

    drive = tmp_path / "DRIVE"
    for split, number in (("training", "21"), ("test", "01")):
        with Image.open(drive / split / "images" / f"{number}_{split}.tif") as image:
            assert (image.format, image.mode, image.size) == ("TIFF", "RGB", (90, 100))
            assert image.info["compression"] == "tiff_lzw"
        for path in (
            drive / split / "1st_manual" / f"{number}_manual1.gif",
            drive / split / "mask" / f"{number}_{split}_mask.gif",
        ):
            with Image.open(path) as gif:
                # Real DRIVE manuals and masks read back as greyscale GIFs with values {0, 255}.
                assert (gif.format, gif.mode, gif.size) == ("GIF", "L", (90, 100))
                assert set(np.unique(np.asarray(gif)).tolist()) == {0, 255}
    with Image.open(drive / "test/2nd_manual/01_manual2.gif") as second:
        assert (second.format, second.mode, second.size) == ("GIF", "P", (90, 100))
        assert set(np.unique(np.asarray(second)).tolist()) == {0, 1}
        assert second.getpalette()[:6] == list(synthetic.SECOND_MANUAL_PALETTE)
    # Vessels are drawn inside the FOV only.
    manual = np.asarray(Image.open(drive / "test/1st_manual/01_manual1.gif")) > 0
    mask = np.asarray(Image.open(drive / "test/mask/01_test_mask.gif")) > 0
    assert manual.any() and not (manual & ~mask).any()


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    kwargs = {"n_train": 1, "n_test": 1, "size": SMALL}
    first = _files(synthetic.write_synthetic_drive(tmp_path / "a", seed=5, **kwargs))
    again = _files(synthetic.write_synthetic_drive(tmp_path / "b", seed=5, **kwargs))
    other = _files(synthetic.write_synthetic_drive(tmp_path / "c", seed=6, **kwargs))
    assert first == again
    image = "DRIVE/training/images/21_training.tif"
    assert first[image] != other[image]
    # Training and test images come from different streams even with equal indices.
    assert first[image] != first["DRIVE/test/images/01_test.tif"]


@pytest.mark.parametrize("size", [synthetic.DRIVE_SIZE, SMALL])
def test_fundus_arrays_vessel_fraction_and_fov(size):
    for seed in (0, 1):
        image, label, fov = synthetic.synthetic_fundus(size, seed)
        assert image.shape == (*size, 3) and image.dtype == np.float32
        assert label.shape == size and fov.shape == size
        assert label.dtype == np.uint8 and fov.dtype == np.uint8
        assert set(np.unique(label).tolist()) == {0, 1}
        assert set(np.unique(fov).tolist()) == {0, 1}
        assert 0.0 <= image.min() and image.max() <= 1.0
        # DRIVE: 8.7 % vessels over the whole image (6-12 % per image), FOV 68.8 %.
        assert 0.06 <= label.mean() <= 0.125, label.mean()
        assert 0.60 <= fov.mean() <= 0.75, fov.mean()
        # The FOV is a disc: compare with the ideal disc of the same area at its centroid.
        rows, cols = np.nonzero(fov)
        radius = np.sqrt(fov.sum() / np.pi)
        grid_r, grid_c = np.mgrid[0 : size[0], 0 : size[1]]
        disc = np.hypot(grid_r - rows.mean(), grid_c - cols.mean()) <= radius
        iou = (disc & (fov > 0)).sum() / (disc | (fov > 0)).sum()
        assert iou > 0.97, iou
        # Outside the FOV the image is near black.
        assert image[fov == 0].mean() < 0.02


@pytest.mark.parametrize("size", [synthetic.DRIVE_SIZE, SMALL])
def test_vessels_are_darker_than_their_surroundings_in_green(size):
    image, label, fov = synthetic.synthetic_fundus(size, seed=2)
    vessel = (label > 0) & (fov > 0)
    # Local comparison: a 3 px ring around the vessels, inside the FOV (the optic disc is bright,
    # so a global mean would mix illumination with vessel contrast).
    ring = ndimage.binary_dilation(vessel, iterations=3) & ~vessel & (fov > 0)
    green = image[..., 1]
    assert green[vessel].mean() < green[ring].mean() - 0.02
    # Green carries more vessel contrast than red (relative to the local background).
    red = image[..., 0]
    green_contrast = 1 - green[vessel].mean() / green[ring].mean()
    red_contrast = 1 - red[vessel].mean() / red[ring].mean()
    assert green_contrast > red_contrast


def test_second_observer_is_a_small_perturbation(tmp_path):
    synthetic.write_synthetic_drive(tmp_path, n_train=0, n_test=2, size=(200, 190), seed=1)
    for number in ("01", "02"):
        first = np.asarray(Image.open(tmp_path / f"DRIVE/test/1st_manual/{number}_manual1.gif")) > 0
        second = np.asarray(Image.open(tmp_path / f"DRIVE/test/2nd_manual/{number}_manual2.gif"))
        second = second == 1
        disagreement = (first != second).mean()
        assert 0.001 < disagreement < 0.05, disagreement
        assert abs(second.mean() - first.mean()) < 0.25 * first.mean()


def test_deterministic_arrays_and_generator_seed():
    a = synthetic.synthetic_fundus(SMALL, seed=11)
    b = synthetic.synthetic_fundus(SMALL, seed=np.random.default_rng(11))
    c = synthetic.synthetic_fundus(SMALL, seed=12)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 16x16"):
        synthetic.synthetic_fundus((8, 200))
    with pytest.raises(ValueError, match="n_train"):
        synthetic.write_synthetic_drive(tmp_path, n_train=80)


@pytest.mark.slow
def test_the_full_size_set_has_40_images_with_drive_like_vessel_fractions(tmp_path):
    synthetic.write_synthetic_drive(tmp_path, seed=0)
    labels = [
        np.asarray(Image.open(p)) > 0 for p in sorted(tmp_path.glob("DRIVE/*/1st_manual/*.gif"))
    ]
    fractions = np.array([label.mean() for label in labels])
    assert len(labels) == 40 and 0.07 < fractions.mean() < 0.11
