"""Statistics: widths of known stripes, fractions, channel stats, observers; real-data numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from saunetv2_lib.cli import main
from saunetv2_lib.data.stats import (
    channel_stats,
    dataset_stats,
    fov_coverage,
    observer_agreement,
    vessel_fraction,
    vessel_widths,
    width_summary,
)


@pytest.mark.parametrize("width", [1, 3, 5, 7])
def test_vessel_widths_of_straight_stripes(width):
    label = np.zeros((40, 60), np.uint8)
    label[20 - width // 2 : 20 + width // 2 + 1, 5:55] = 1
    widths = vessel_widths(label)
    assert widths.size > 0
    # Away from the stripe's ends the centre line measures exactly the stripe width.
    assert np.median(widths) == width


def test_width_summary_keys_and_empty():
    label = np.zeros((30, 30), np.uint8)
    label[10:13, 2:28] = 1
    summary = width_summary([label])
    assert list(summary) == ["p05", "p25", "p50", "p75", "p95", "mean", "max"]
    assert summary["p50"] == 3.0
    with pytest.raises(ValueError, match="no vessel"):
        width_summary([np.zeros((5, 5), np.uint8)])


def test_fractions_and_channel_stats_against_numpy():
    rng = np.random.default_rng(3)
    labels = [(rng.random((10, 12)) < p).astype(np.uint8) for p in (0.1, 0.3)]
    fovs = [np.zeros((10, 12), np.uint8) for _ in labels]
    fovs[0][:5] = 1
    fovs[1][:, :3] = 1
    assert vessel_fraction(labels) == pytest.approx((labels[0].mean() + labels[1].mean()) / 2)
    inside = [labels[0][:5].mean(), labels[1][:, :3].mean()]
    assert vessel_fraction(labels, fovs) == pytest.approx(np.mean(inside))
    assert fov_coverage(fovs) == pytest.approx((60 / 120 + 30 / 120) / 2)
    images = [rng.random((10, 12, 3)) for _ in labels]
    mean, std = channel_stats(images, fovs)
    pooled = np.concatenate([images[0][:5].reshape(-1, 3), images[1][:, :3].reshape(-1, 3)])
    np.testing.assert_allclose(mean, pooled.mean(0))
    np.testing.assert_allclose(std, pooled.std(0))


def test_observer_agreement_uses_the_model_metrics():
    pytest.importorskip("saunetv2_lib.metrics")
    reference = np.zeros((8, 8), np.uint8)
    reference[2:6, 3] = 1
    second = reference.copy()
    second[2, 3] = 0  # one missed vessel pixel
    second[7, 7] = 1  # one false vessel pixel
    m = observer_agreement([second], [reference])
    tp, fp, fn = 3, 1, 1
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["sensitivity"] == pytest.approx(0.75) and m["accuracy"] == pytest.approx(62 / 64)
    assert observer_agreement([reference], [reference])["f1"] == 1.0


def test_stats_cli_on_a_synthetic_root(tmp_path, capsys):
    synthetic = pytest.importorskip("saunetv2_lib.data.synthetic")
    root = synthetic.write_synthetic_drive(tmp_path, n_train=2, n_test=2, size=(64, 60))
    assert main(["data", "stats", "--dataset", "drive", "--root", str(root), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["synthetic"] and stats["n_train"] == 2 and stats["image_size"] == [64, 60]
    for key in ("test_vessel_fraction", "train_vessel_fraction", "fov_vessel_fraction"):
        assert 0.0 < stats[key] < 0.5
    assert 0.0 < stats["inter_observer"]["f1"] <= 1.0 and "derived_fov_iou" in stats
    assert main(["data", "stats", "--dataset", "DRIVE", "--root", str(root)]) == 0
    assert "(SYNTHETIC)" in capsys.readouterr().out
    assert main(["data", "stats", "--dataset", "STARE", "--root", str(root)]) == 2
    assert "STARE was not found" in capsys.readouterr().err


@pytest.mark.real_data
def test_drive_stats_match_the_manifest(real_data_root):
    stats = dataset_stats("DRIVE", real_data_root)
    # MANIFEST.md (measured independently when the data was collected), rounded there.
    assert stats["test_vessel_fraction"] == pytest.approx(0.0876, abs=5e-5)
    assert stats["train_vessel_fraction"] == pytest.approx(0.0863, abs=5e-5)
    assert stats["fov_vessel_fraction"] == pytest.approx(0.1273, abs=5e-5)
    assert stats["fov_coverage"] == pytest.approx(0.688, abs=5e-4)
    assert stats["second_vessel_fraction"] == pytest.approx(0.0843, abs=5e-5)
    assert stats["derived_fov_iou"]["mean"] >= 0.97
    # The DRIVE 2nd observer inside the FOV is usually quoted as Acc 0.947, Se 0.776, Sp 0.972.
    fov = stats["inter_observer_fov"]
    assert fov["accuracy"] == pytest.approx(0.947, abs=1e-3)
    assert fov["sensitivity"] == pytest.approx(0.776, abs=1e-3)


@pytest.mark.real_data
def test_stare_observer_fractions_match_the_manifest(real_data_root):
    stats = dataset_stats("STARE", real_data_root)
    n_train, n_test = stats["n_train"], stats["n_test"]
    overall = (
        n_train * stats["train_vessel_fraction"] + n_test * stats["test_vessel_fraction"]
    ) / 20
    assert overall == pytest.approx(0.0760, abs=5e-5)  # labels-ah, MANIFEST.md
    assert stats["second_vessel_fraction"] == pytest.approx(0.1089, abs=5e-5)  # labels-vk


@pytest.mark.real_data
@pytest.mark.slow
def test_chase_observer_fractions_match_the_manifest(real_data_root):
    stats = dataset_stats("CHASE_DB1", real_data_root)
    overall = (20 * stats["train_vessel_fraction"] + 8 * stats["test_vessel_fraction"]) / 28
    assert overall == pytest.approx(0.0693, abs=5e-5)
    assert stats["second_vessel_fraction"] == pytest.approx(0.0664, abs=5e-5)
