"""Readers: file formats, .gz, corrupt files, missing datasets, splits, data root, real data."""

from __future__ import annotations

import gzip
import shutil
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saunetv2_lib.data import datasets
from saunetv2_lib.data.datasets import (
    DATASETS,
    data_root,
    dataset_info,
    is_synthetic,
    load_samples,
    load_split,
    read_image,
    read_label,
)

RNG = np.random.default_rng(0)


def _gzip(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return out


def _random_rgb_file(folder: Path, stem: str, suffix: str, size: tuple[int, int]):
    """Random RGB pixels ``(H, W, 3)`` saved as ``stem + suffix`` (``.gz``: gzipped after)."""
    pixels = RNG.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    path = folder / f"{stem}{suffix.removesuffix('.gz')}"
    Image.fromarray(pixels).save(path)
    return (_gzip(path) if suffix.endswith(".gz") else path), pixels


@pytest.mark.parametrize("suffix", [".tif", ".ppm", ".png", ".ppm.gz"])
def test_read_image_lossless_formats(tmp_path, suffix):
    path, pixels = _random_rgb_file(tmp_path, "x", suffix, (7, 5))
    image = read_image(path)
    assert image.dtype == np.float32 and image.shape == (7, 5, 3)
    np.testing.assert_array_equal(np.rint(image * 255).astype(np.uint8), pixels)


def test_read_label_grey_palette_and_one_bit(tmp_path):
    truth = RNG.random((6, 9)) > 0.5
    Image.fromarray(truth.astype(np.uint8) * 255).save(tmp_path / "grey.gif")
    Image.fromarray(truth).save(tmp_path / "bits.png")  # mode "1", like CHASE_DB1
    # DRIVE 2nd-manual style: palette indices {0, 1} mapped to near-black / near-white.
    palette = Image.frombytes("P", (9, 6), truth.astype(np.uint8).tobytes())
    palette.putpalette([4, 2, 4, 252, 254, 252])
    palette.save(tmp_path / "palette.gif")
    Image.fromarray(truth.astype(np.uint8) * 255).save(tmp_path / "grey.ppm")
    _gzip(tmp_path / "grey.ppm")
    for name in ("grey.gif", "bits.png", "palette.gif", "grey.ppm.gz"):
        label = read_label(tmp_path / name)
        assert label.dtype == np.uint8 and set(np.unique(label)) <= {0, 1}, name
        np.testing.assert_array_equal(label, truth.astype(np.uint8), err_msg=name)


@pytest.mark.parametrize("suffix", [".tif", ".gif", ".png", ".ppm", ".jpg", ".ppm.gz"])
def test_truncated_file_is_a_value_error_naming_it(tmp_path, suffix):
    path, _ = _random_rgb_file(tmp_path, "broken", suffix, (64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=str(path)):
        read_image(path)


def test_missing_file_and_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        read_image(tmp_path / "nope.tif")
    for name, info in DATASETS.items():
        with pytest.raises(FileNotFoundError) as error:
            load_split(name, "test", root=tmp_path)
        message = str(error.value)
        assert str(tmp_path / info.folder) in message and info.obtain in message
        assert "Expected layout" in message and "SAUNETV2_DATA" in message
    drive = str(pytest.raises(FileNotFoundError, load_split, "DRIVE", "train", tmp_path).value)
    assert "drive.grand-challenge.org" in drive and "training/1st_manual/21_manual1.gif" in drive


def test_dataset_info_aliases_and_errors():
    assert dataset_info("chase").name == "CHASE_DB1" and dataset_info("drive").name == "DRIVE"
    with pytest.raises(ValueError, match="Unknown dataset"):
        dataset_info("HRF")
    with pytest.raises(ValueError, match="split must be"):
        load_split("DRIVE", "val", root=Path("."))
    with pytest.raises(ValueError, match="second-observer labels only for the test"):
        load_split("DRIVE", "train", root=Path("."), labels="second")


def _synthetic(root: Path, n_train: int = 2, n_test: int = 2) -> Path:
    synthetic = pytest.importorskip("saunetv2_lib.data.synthetic")
    return synthetic.write_synthetic_drive(root, n_train=n_train, n_test=n_test, size=(48, 44))


def test_load_split_on_synthetic_drive(tmp_path):
    root = _synthetic(tmp_path, n_train=3, n_test=2)
    assert is_synthetic(root)
    train = load_split("DRIVE", "train", root)
    test = load_split("DRIVE", "test", root, labels="second", fov="derived")
    assert [s.name for s in train] == ["21_training", "22_training", "23_training"]
    assert [s.name for s in test] == ["01_test", "02_test"]
    for s in train + test:
        assert s.image.dtype == np.float32 and s.image.shape == (48, 44, 3)
        assert 0.0 <= s.image.min() and s.image.max() <= 1.0
        for mask in (s.label, s.fov):
            assert mask.dtype == np.uint8 and mask.shape == (48, 44)
            assert set(np.unique(mask)) <= {0, 1}
    # Official FOV = the mask file, read independently with Pillow.
    raw = np.asarray(Image.open(root / "DRIVE/training/mask/21_training_mask.gif").convert("L"))
    np.testing.assert_array_equal(train[0].fov, (raw > 127).astype(np.uint8))
    raw2 = np.asarray(Image.open(root / "DRIVE/test/2nd_manual/01_manual2.gif"))  # indices
    np.testing.assert_array_equal(test[0].label, raw2.astype(np.uint8))


def test_incomplete_dataset_names_the_missing_file(tmp_path):
    root = _synthetic(tmp_path)
    (root / "DRIVE/training/1st_manual/22_manual1.gif").unlink()
    with pytest.raises(FileNotFoundError, match="DRIVE/training/1st_manual/22_manual1.gif"):
        load_samples("DRIVE", ["21_training", "22_training"], root)


def test_label_of_wrong_size_is_named(tmp_path):
    root = _synthetic(tmp_path)
    path = root / "DRIVE/training/1st_manual/21_manual1.gif"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(path)
    with pytest.raises(ValueError, match="21_manual1.gif has shape"):
        load_samples("DRIVE", ["21_training"], root)


def test_data_root_env_and_synthetic_fallback(tmp_path, monkeypatch):
    synthetic = pytest.importorskip("saunetv2_lib.data.synthetic")
    assert synthetic.MARKER_NAME == datasets.SYNTHETIC_MARKER
    monkeypatch.setenv("SAUNETV2_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        data_root()
    monkeypatch.setenv("SAUNETV2_DATA", str(tmp_path))
    assert data_root() == tmp_path

    calls = []
    write_small = partial(synthetic.write_synthetic_drive, n_train=1, n_test=1, size=(32, 30))

    def small_writer(root, **kwargs):
        calls.append(root)
        return write_small(root)

    monkeypatch.delenv("SAUNETV2_DATA")
    monkeypatch.setenv("SAUNETV2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synthetic, "write_synthetic_drive", small_writer)
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        root = data_root()
    assert root == tmp_path / "cache" / "synthetic" and is_synthetic(root)
    with pytest.warns(UserWarning, match="SYNTHETIC"):  # root=None -> data_root()
        assert [s.name for s in load_split("DRIVE", "test")] == ["01_test"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert data_root() == root
    assert len(calls) == 1  # written once, then reused


@pytest.mark.real_data
def test_real_drive_split_matches_files(real_data_root):
    test = load_split("DRIVE", "test", real_data_root)
    assert len(test) == 20 and test[0].name == "01_test"
    first = test[0]
    base = real_data_root / "DRIVE/test"
    raw = np.asarray(Image.open(base / "images/01_test.tif"))
    np.testing.assert_array_equal(np.rint(first.image * 255).astype(np.uint8), raw)
    raw_label = np.asarray(Image.open(base / "1st_manual/01_manual1.gif"))
    np.testing.assert_array_equal(first.label, (raw_label == 255).astype(np.uint8))
    second = load_samples("DRIVE", ["01_test"], real_data_root, labels="second")[0]
    raw_second = np.asarray(Image.open(base / "2nd_manual/01_manual2.gif"))  # indices {0, 1}
    np.testing.assert_array_equal(second.label, raw_second)
    assert all(s.image.shape == (584, 565, 3) for s in test)


@pytest.mark.real_data
def test_real_stare_gz_equals_uncompressed(real_data_root, tmp_path):
    names = ["im0001", "im0324"]
    plain = load_samples("STARE", names, real_data_root, labels="second")
    for sub, suffix in (("stare-images", ".ppm"), ("labels-vk", ".vk.ppm")):
        (tmp_path / "STARE" / sub).mkdir(parents=True)
        for name in names:
            source = real_data_root / "STARE" / sub / f"{name}{suffix}"
            target = tmp_path / "STARE" / sub / source.name
            shutil.copyfile(source, target)
            _gzip(target)
    packed = load_samples("STARE", names, tmp_path, labels="second")
    for a, b in zip(plain, packed, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)
        assert a.image.shape == (605, 700, 3)


@pytest.mark.real_data
def test_real_chase_reads_one_bit_labels(real_data_root):
    (sample,) = load_samples("CHASE_DB1", ["Image_01L"], real_data_root)
    raw = np.asarray(Image.open(real_data_root / "CHASE_DB1/Image_01L_1stHO.png"))  # bool
    np.testing.assert_array_equal(sample.label, raw.astype(np.uint8))
    assert sample.image.shape == (960, 999, 3) and 0.6 < sample.fov.mean() < 0.75


def test_the_vocabulary_names_every_registered_dataset():
    from saunetv2_lib.data.datasets import DATASETS
    from saunetv2_lib.data.vocabulary import DATASET_NAMES

    assert DATASET_NAMES == tuple(DATASETS)
