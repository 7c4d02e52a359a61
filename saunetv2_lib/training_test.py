"""Tests of saunetv2_lib.training: profiles, resumable state, kill-and-resume, data parallelism, learning."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from saunetv2_lib import training
from saunetv2_lib.training import TrainConfig, list_profiles, load_profile

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    env.pop("SAUNETV2_DATA", None)
    return env


def _tiny_config(root: Path, **changes) -> TrainConfig:
    """SA-UNetv2 on 64-px synthetic images: 4 training and 2 validation sources."""
    values = dict(
        profile="test",
        dataset="drive",
        data_root=str(root),
        side=64,
        batch_size=2,
        epochs=5,
        val_count=2,
        max_train_images=6,
        epoch_repeats=4,
        plateau_patience=1,
        plateau_min_lr=1e-5,
        early_stop_patience=100,
        seed=7,
    )
    values.update(changes)
    return TrainConfig(**values)


# ------------------------------------------------------------------------------------------
# Profiles and configuration


def test_drive_full_profile_is_the_papers_schedule():
    config = load_profile("drive/full")
    # Spec 4.1, value by value.
    assert (config.model, config.dataset, config.side, config.anchor) == (
        "sa_unet_v2",
        "drive",
        592,
        "top_left",
    )
    assert (config.lr, config.adam_epsilon, config.batch_size, config.epochs) == (
        1e-3,
        1e-7,
        8,
        150,
    )
    assert (config.bce_weight, config.mcc_weight) == (0.5, 0.5)
    assert (
        config.plateau_monitor,
        config.plateau_factor,
        config.plateau_patience,
        config.plateau_min_lr,
    ) == ("val_loss", 0.5, 10, 1e-6)
    assert (config.early_stop_monitor, config.early_stop_patience, config.restore_best_weights) == (
        "val_loss",
        20,
        True,
    )
    assert (config.checkpoint_monitor, config.checkpoint_mode) == ("val_accuracy", "max")
    assert (config.val_count, config.augment, config.epoch_repeats, config.patch_size) == (
        2,
        True,
        1,
        None,
    )


def test_stare_and_chase_profiles_override_their_fields():
    stare = load_profile("stare/full")
    assert (stare.dataset, stare.side, stare.batch_size) == ("stare", 704, 2)
    assert (stare.plateau_patience, stare.plateau_min_lr, stare.early_stop_patience) == (
        20,
        1e-8,
        30,
    )
    assert stare.lr == load_profile("drive/full").lr  # inherited through "extends"
    chase = load_profile("chase/full")
    assert (chase.dataset, chase.side, chase.batch_size, chase.anchor) == (
        "chase",
        1008,
        2,
        "center",
    )


def test_every_profile_loads_and_quick_profiles_use_patches():
    names = list_profiles()
    assert {f"{d}/{p}" for d in ("drive", "stare", "chase") for p in ("quick", "full")} <= set(
        names
    )
    for name in names:
        config = load_profile(name)
        assert config.profile == name and config.notes
        if name.endswith("/quick"):
            assert config.patch_size is not None and config.epochs <= 20


def test_config_round_trips_through_json_and_rejects_bad_values():
    config = load_profile("drive/quick", epochs=3, seed=1)
    assert (config.epochs, config.seed) == (3, 1)
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="multiple of 8"):
        TrainConfig(side=100)
    with pytest.raises(ValueError, match="checkpoint_monitor"):
        TrainConfig(checkpoint_monitor="val_f1")
    with pytest.raises(ValueError, match="available: drive/full"):
        load_profile("drive/fast")


def test_tiles_cover_the_image_exactly():
    rng = np.random.default_rng(0)
    batch = rng.random((2, 20, 13, 3)).astype("float32")
    tiles = training._tiles(batch, 8)  # padded to 24 x 16: 3 x 2 tiles per image
    assert tiles.shape == (12, 8, 8, 3)
    # Independent reconstruction: tile k of image n is at row (k // 2), column (k % 2).
    for n in range(2):
        canvas = np.zeros((24, 16, 3), "float32")
        for k in range(6):
            r, c = divmod(k, 2)
            canvas[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = tiles[n * 6 + k]
        np.testing.assert_array_equal(canvas[:20, :13], batch[n])
        assert not canvas[20:].any() and not canvas[:, 13:].any()


def test_truncate_history_drops_epochs_after_the_saved_state(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n")
    training._truncate_history(path, 2)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1]


def test_train_refuses_to_overwrite_a_run_and_resume_needs_one(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="resume=True"):
        training.train(TrainConfig(), tmp_path, verbose=0)
    with pytest.raises(FileNotFoundError, match="config.json"):
        training.train(None, tmp_path / "nothing", resume=True, verbose=0)


# ------------------------------------------------------------------------------------------
# Resume state of the callbacks


def _tiny_dense_model() -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def test_resume_state_restores_callback_internals(tmp_path):
    model = _tiny_dense_model()
    model.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=1, verbose=0)
    plateau = keras.callbacks.ReduceLROnPlateau(patience=5)
    stopper = keras.callbacks.EarlyStopping(patience=9, restore_best_weights=True)
    ckpt = training.BestCheckpoint(tmp_path / "best.keras", "val_accuracy", "max")
    saver = training.ResumeState(tmp_path / "r", tmp_path / "last.keras", plateau, stopper, ckpt)
    (tmp_path / "r").mkdir()
    for callback in (plateau, stopper, ckpt, saver):
        callback.set_model(model)
    plateau.wait, plateau.best, plateau.cooldown_counter = 3, 0.25, 0
    model.optimizer.learning_rate = 2.5e-4
    stopper.wait, stopper.best, stopper.best_epoch = 4, 0.25, 3
    stopper.best_weights = [w + 1.0 for w in model.get_weights()]
    ckpt.best, ckpt.best_epoch = 0.9, 2
    saver.on_epoch_end(3, {"loss": 0.3, "val_loss": 0.3})
    state = json.loads((tmp_path / "r" / "state.json").read_text())
    assert state["completed_epochs"] == 4 and (tmp_path / "last.keras").exists()

    fresh = _tiny_dense_model()
    plateau2 = keras.callbacks.ReduceLROnPlateau(patience=5)
    stopper2 = keras.callbacks.EarlyStopping(patience=9, restore_best_weights=True)
    ckpt2 = training.BestCheckpoint(tmp_path / "best.keras", "val_accuracy", "max")
    restorer = training.ResumeState(
        tmp_path / "r", tmp_path / "last.keras", plateau2, stopper2, ckpt2, restore=state
    )
    for callback in (plateau2, stopper2, ckpt2, restorer):
        callback.set_model(fresh)
        callback.on_train_begin()  # the Keras callbacks reset here; the restorer runs last
    assert (plateau2.wait, plateau2.best) == (3, 0.25)
    assert float(fresh.optimizer.learning_rate) == pytest.approx(2.5e-4)
    assert (stopper2.wait, stopper2.best, stopper2.best_epoch) == (4, 0.25, 3)
    for restored, expected in zip(stopper2.best_weights, stopper.best_weights, strict=True):
        np.testing.assert_array_equal(restored, expected)
    assert (ckpt2.best, ckpt2.best_epoch) == (0.9, 2)


def test_resume_state_skips_non_finite_epochs(tmp_path):
    model = _tiny_dense_model()
    plateau = keras.callbacks.ReduceLROnPlateau()
    stopper = keras.callbacks.EarlyStopping()
    ckpt = training.BestCheckpoint(tmp_path / "best.keras")
    saver = training.ResumeState(tmp_path, tmp_path / "last.keras", plateau, stopper, ckpt)
    saver.set_model(model)
    saver.on_epoch_end(0, {"loss": float("nan")})
    assert saver.terminated_on_nan and not (tmp_path / "state.json").exists()


# ------------------------------------------------------------------------------------------
# Kill and resume (subprocess)

_CHILD = """
import json, sys
from saunetv2_lib.training import TrainConfig, train
config = TrainConfig.from_dict(json.loads(sys.argv[1]))
train(config, sys.argv[2], verbose=0)
"""


def test_sigkill_mid_run_then_resume_continues(tmp_path):
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    root = write_synthetic_drive(tmp_path / "data", n_train=6, n_test=0, size=(64, 64), seed=3)
    config = _tiny_config(root)
    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(config.to_dict()), str(out)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state_path = out / "resume" / "state.json"
    deadline = time.monotonic() + 120
    try:
        while not state_path.exists():
            if child.poll() is not None:
                pytest.fail(f"training child exited early: {child.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no epoch completed within 120 s")
            time.sleep(0.05)
        time.sleep(0.3)  # somewhere inside the next epoch
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    completed = json.loads(state_path.read_text())["completed_epochs"]
    assert 1 <= completed < config.epochs, "the kill should land before the run ends"

    result = training.train(None, out, resume=True, verbose=0)

    epochs = [int(row["epoch"]) for row in result.history]
    assert epochs == list(range(config.epochs))  # every epoch exactly once, in order
    steps_per_epoch = -(-(4 * config.epoch_repeats) // config.batch_size)
    assert int(result.model.optimizer.iterations.numpy()) == config.epochs * steps_per_epoch
    last = keras.models.load_model(out / "last.keras")
    assert int(last.optimizer.iterations.numpy()) == config.epochs * steps_per_epoch
    # Learning rates follow ReduceLROnPlateau across the kill: each is the previous one or halved.
    rates = [row["learning_rate"] for row in result.history]
    for before, after in zip(rates, rates[1:], strict=False):
        assert after == pytest.approx(before) or after == pytest.approx(
            max(before * config.plateau_factor, config.plateau_min_lr)
        )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == config.epochs
    assert summary["optimizer_iterations"] == config.epochs * steps_per_epoch
    best = keras.models.load_model(out / "best.keras")  # default safe_mode
    assert best.output_shape == (None, 64, 64, 1)
    # A finished run resumes to itself without training.
    again = training.train(None, out, resume=True, verbose=0)
    assert again.epochs_run == config.epochs and again.model is None


# ------------------------------------------------------------------------------------------
# Data parallelism (subprocess: logical devices must be set before TensorFlow initialises)

_MIRRORED = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from saunetv2_lib.training import TrainConfig, build_model
rng = np.random.default_rng(0)
x = rng.random((4, 64, 64, 3), dtype=np.float32)
y = (rng.random((4, 64, 64, 1)) < 0.2).astype("float32")
devices = [d.name for d in tf.config.list_logical_devices("CPU")]
report = {}
for weights in ((1.0, 0.0), (0.5, 0.5)):
    config = TrainConfig(side=64, batch_size=4, bce_weight=weights[0], mcc_weight=weights[1],
                         model_kwargs={"dropblock_rate": 0.0})
    keras.utils.set_random_seed(0)
    single = build_model(config)
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        mirrored = build_model(config)
    mirrored.set_weights(single.get_weights())
    halves = [single.evaluate(x[i:i + 2], y[i:i + 2], batch_size=2, verbose=0) for i in (0, 2)]
    report[str(weights)] = {
        "replicas": strategy.num_replicas_in_sync,
        "single_eval": single.evaluate(x, y, batch_size=4, verbose=0)[0],
        "mirrored_eval": mirrored.evaluate(x, y, batch_size=4, verbose=0)[0],
        "half_losses": [h[0] for h in halves],
        "single_step": single.train_on_batch(x, y)[0],
        "mirrored_step": mirrored.train_on_batch(x, y)[0],
        "single_after": single.evaluate(x, y, batch_size=4, verbose=0)[0],
        "mirrored_after": mirrored.evaluate(x, y, batch_size=4, verbose=0)[0],
    }
print("REPORT" + json.dumps(report))
"""


def test_mirrored_strategy_loss_equals_single_device_loss():
    run = subprocess.run(
        [sys.executable, "-c", _MIRRORED], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.split("REPORT", 1)[1])
    bce = report["(1.0, 0.0)"]
    assert bce["replicas"] == 2
    # BCE is a per-pixel mean: splitting the batch over replicas changes nothing.
    assert bce["mirrored_eval"] == pytest.approx(bce["single_eval"], abs=1e-5)
    assert bce["mirrored_step"] == pytest.approx(bce["single_step"], abs=1e-5)
    # One optimizer step with the all-reduced gradient lands on the same weights.
    assert bce["mirrored_after"] == pytest.approx(bce["single_after"], abs=1e-5)
    # The soft MCC is pooled per replica: the distributed loss is the mean of the per-half losses.
    full = report["(0.5, 0.5)"]
    assert full["mirrored_eval"] == pytest.approx(np.mean(full["half_losses"]), abs=1e-5)
    assert full["mirrored_step"] == pytest.approx(np.mean(full["half_losses"]), abs=1e-5)


# ------------------------------------------------------------------------------------------
# Learning on the synthetic set


def test_quick_training_learns_synthetic_vessels(tmp_path):
    from saunetv2_lib.data.datasets import load_split
    from saunetv2_lib.data.synthetic import write_synthetic_drive
    from saunetv2_lib.metrics import segmentation_metrics

    root = write_synthetic_drive(tmp_path / "data", n_train=10, n_test=3, size=(128, 128), seed=5)
    config = load_profile(
        "drive/quick",
        data_root=str(root),
        side=128,
        patch_size=64,
        batch_size=4,
        epochs=25,
        epoch_repeats=4,
        lr=2e-3,
        val_count=2,
    )
    result = training.train(config, tmp_path / "run", verbose=0)
    model = keras.models.load_model(result.best_path)
    test = load_split("drive", "test", root=root)
    images = np.stack([s.image for s in test]).astype("float32")
    labels = np.stack([s.label for s in test])
    # The model was built for 64-px patches: predict the four quadrants of each 128-px image.
    tiles = training._tiles(images, 64)
    probs = model.predict(tiles, verbose=0)[..., 0].reshape(len(test), 2, 2, 64, 64)
    probs = probs.transpose(0, 1, 3, 2, 4).reshape(len(test), 128, 128)
    scores = segmentation_metrics(probs, labels)
    chance = segmentation_metrics(np.zeros_like(probs), labels)
    assert scores["f1"] > 0.5, scores
    assert chance["f1"] < 0.2


# ------------------------------------------------------------------------------------------
# CLI


def test_cli_lists_profiles_and_reports_errors_in_one_line(tmp_path, capsys):
    from saunetv2_lib.cli import main

    assert main(["train", "--list-profiles"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in list_profiles())
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    error = capsys.readouterr().err.strip()
    assert "config.json" in error and len(error.splitlines()) == 1
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--seed", "3"]) == 2
    assert "only --epochs" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# How the step is computed: precision and group-norm statistics


def test_mixed_bfloat16_build_keeps_float32_where_it_matters_and_ships_float32(tmp_path):
    config = TrainConfig(side=32, precision="mixed_bfloat16", group_norm_statistics="two_stage")
    model = training.build_model(config)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    units = [layer for layer in model.layers if hasattr(layer, "normalization")]
    assert units and all(u.conv.compute_dtype == "bfloat16" for u in units)
    assert all(type(u.normalization).__name__ == "TwoStageGroupNormalization" for u in units)
    assert all(v.dtype == "float32" for v in model.weights)
    assert model.output.dtype == "float32"
    rng = np.random.default_rng(0)
    x = rng.random((2, 32, 32, 3), dtype=np.float32)
    y = (rng.random((2, 32, 32, 1)) < 0.2).astype("float32")
    loss = model.train_on_batch(x, y)[0]
    assert np.isfinite(loss)
    model.save(tmp_path / "mixed.keras")
    copy = training.as_float32(keras.saving.load_model(tmp_path / "mixed.keras", compile=False))
    assert all(layer.compute_dtype == "float32" for layer in copy.layers)
    reference = training.build_model(config.replace(precision="float32"))
    assert training.as_float32(reference) is reference  # already float32: no copy
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(
        copy.predict_on_batch(x), reference.predict_on_batch(x), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="float16")


def test_a_run_may_resume_with_another_step_implementation_but_not_other_maths(tmp_path):
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    root = write_synthetic_drive(tmp_path / "data", n_train=6, n_test=0, size=(64, 64), seed=3)
    config = _tiny_config(root, epochs=1, epoch_repeats=1, group_norm_statistics="one_pass")
    training.train(config, tmp_path / "run", verbose=0)
    faster = config.replace(epochs=2, precision="mixed_bfloat16", group_norm_statistics="two_stage")
    result = training.train(faster, tmp_path / "run", resume=True, verbose=0)
    assert result.epochs_run == 2
    with pytest.raises(ValueError, match=r"\['lr'\]"):
        training.train(faster.replace(lr=0.01, epochs=3), tmp_path / "run", resume=True)
