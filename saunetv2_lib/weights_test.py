"""Tests of the shipped-weights registry: cards, SHA-256 checks, shipping a run, clear errors."""

from __future__ import annotations

import hashlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from saunetv2_lib import weights
from saunetv2_lib.models import get_model


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    """A small random SA-UNetv2 saved as .keras, with a probe batch and its predictions."""
    model = get_model("sa_unet_v2", (32, 32, 3), seed=1)
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    model.save(path)
    probe = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    return path, probe, model.predict(probe, verbose=0)


def test_card_round_trip_and_loaded_model_predicts_identically(tiny_model_file, tmp_path):
    source, probe, expected = tiny_model_file
    path = tmp_path / "m.keras"
    path.write_bytes(source.read_bytes())
    card_path = weights.write_model_card(path, {"model": "sa_unet_v2", "sha256": "stale"})
    card = json.loads(card_path.read_text())
    assert card_path == tmp_path / "m.json"
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["size_bytes"] == path.stat().st_size
    assert card["file"] == "m.keras" and card["model"] == "sa_unet_v2"
    loaded = weights.load_weights(path)
    np.testing.assert_allclose(loaded.predict(probe, verbose=0), expected, rtol=0, atol=1e-6)


def test_tampered_byte_gives_sha_mismatch(tiny_model_file, tmp_path):
    source, _, _ = tiny_model_file
    path = tmp_path / "m.keras"
    data = bytearray(source.read_bytes())
    path.write_bytes(bytes(data))
    weights.write_model_card(path, {})
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 mismatch") as info:
        weights.load_weights(path)
    assert str(path) in str(info.value)
    # With the check off, the flipped byte surfaces as a clear load error naming the file.
    with pytest.raises(ValueError, match="Cannot load weights") as info:
        weights.load_weights(path, verify=False)
    assert "SHA-256" not in str(info.value) and str(path) in str(info.value)


def test_names_not_shipped_yet_and_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    assert weights.list_weights() == {"drive": False, "stare": False}
    with pytest.raises(FileNotFoundError, match="not shipped yet"):
        weights.load_weights("drive")
    with pytest.raises(ValueError, match="Unknown weights name 'chase'"):
        weights.load_weights("chase")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        weights.load_weights(tmp_path / "missing.keras")


def test_ship_weights_installs_file_and_card(tiny_model_file, tmp_path, monkeypatch):
    source, probe, expected = tiny_model_file
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(source.read_bytes())
    environment = {"cpu_model": "Xeon", "cpu_count": 2, "gpus": [], "backend": "tensorflow"}
    summary = {"epochs_run": 3, "wall_time_s": 12.5, "environment": environment}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.json").write_text(json.dumps({"model": "sa_unet_v2", "batch_size": 8}))
    rows = [
        {"region": "whole", "aggregate": "per_image", "paper": True, "f1": 0.5},
        {"region": "fov", "aggregate": "pooled", "paper": False, "f1": np.float32(0.25)},
    ]
    shipped = tmp_path / "shipped"
    path = weights.ship_weights(run, "drive", rows, directory=shipped)
    assert path == shipped / "drive.keras"
    card = json.loads((shipped / "drive.json").read_text())
    # The shipped file is an optimizer-free re-save of best.keras; its hash is the card's.
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["epochs_run"] == 3 and card["wall_time_s"] == 12.5
    assert card["backend"] == "tensorflow"
    assert card["hardware"] == {"cpu_model": "Xeon", "cpu_count": 2, "gpus": []}
    assert card["configuration"] == {"model": "sa_unet_v2", "batch_size": 8}
    assert card["training"] == summary
    assert weights.paper_row(card)["f1"] == 0.5
    assert card["metrics"][1]["f1"] == pytest.approx(0.25)

    monkeypatch.setattr(weights, "WEIGHTS_DIR", shipped)
    assert weights.list_weights()["drive"] is True
    assert weights.read_model_card("drive")["name"] == "drive"
    loaded = weights.load_weights("drive")
    np.testing.assert_allclose(loaded.predict(probe, verbose=0), expected, rtol=0, atol=1e-6)


def test_ship_weights_needs_best_keras(tmp_path):
    with pytest.raises(FileNotFoundError, match="no best.keras"):
        weights.ship_weights(tmp_path, "drive", [], directory=tmp_path / "out")


def test_keep_as_copies_file_and_card_under_a_new_name_once(tiny_model_file, tmp_path):
    source, _, _ = tiny_model_file
    (tmp_path / "drive.keras").write_bytes(source.read_bytes())
    weights.write_model_card(tmp_path / "drive.keras", {"name": "drive", "epochs_run": 150})
    kept = weights.keep_as("drive", "drive_450steps", tmp_path)
    card = json.loads((tmp_path / "drive_450steps.json").read_text())
    assert kept == tmp_path / "drive_450steps.keras"
    assert (card["name"], card["kept_from"], card["epochs_run"]) == ("drive_450steps", "drive", 150)
    assert card["file"] == "drive_450steps.keras" and weights.verify_weights(kept) == card["sha256"]
    with pytest.raises(FileExistsError, match="exists already"):
        weights.keep_as("drive", "drive_450steps", tmp_path)
    with pytest.raises(FileNotFoundError, match="No shipped weights 'stare'"):
        weights.keep_as("stare", "stare_old", tmp_path)
    with pytest.raises(ValueError, match="plain name"):
        weights.keep_as("drive", "a/b", tmp_path)
