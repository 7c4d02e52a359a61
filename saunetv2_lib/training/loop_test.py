"""The training loop: refusing to overwrite, kill-and-resume, data parallelism, precision, learning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from saunetv2_lib import training
from saunetv2_lib.data.pipeline import tiles as cut_tiles
from saunetv2_lib.paths import REPO_ROOT
from saunetv2_lib.training import TrainConfig, list_profiles, load_profile

REPO = REPO_ROOT


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
# Run folders


def test_train_refuses_to_overwrite_a_run_and_resume_needs_one(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="resume=True"):
        training.train(TrainConfig(), tmp_path, verbose=0)
    with pytest.raises(FileNotFoundError, match="config.json"):
        training.train(None, tmp_path / "nothing", resume=True, verbose=0)


# ------------------------------------------------------------------------------------------
# Kill and resume (subprocess)

_CHILD = """
import json, sys
from saunetv2_lib.training import TrainConfig, train
config = TrainConfig.from_dict(json.loads(sys.argv[1]))
train(config, sys.argv[2], verbose=0)
"""


def test_sigkill_mid_run_then_resume_continues(tmp_path, kill_inside_second_epoch):
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    root = write_synthetic_drive(tmp_path / "data", n_train=6, n_test=0, size=(64, 64), seed=3)
    config = _tiny_config(root)
    out = tmp_path / "run"
    completed = kill_inside_second_epoch(
        _CHILD, [json.dumps(config.to_dict()), str(out)], out / "resume" / "state.json"
    )
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


@pytest.mark.slow
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
    sizes = {"side": 128, "patch_size": 64, "batch_size": 4, "val_count": 2}
    schedule = {"epochs": 25, "epoch_repeats": 4, "lr": 2e-3}
    config = load_profile("drive/quick", data_root=str(root), **sizes, **schedule)
    result = training.train(config, tmp_path / "run", verbose=0)
    model = keras.models.load_model(result.best_path)
    test = load_split("drive", "test", root=root)
    images = np.stack([s.image for s in test]).astype("float32")
    labels = np.stack([s.label for s in test])
    # The model was built for 64-px patches: predict the four quadrants of each 128-px image.
    tiles = cut_tiles(images, 64)
    probs = model.predict(tiles, verbose=0)[..., 0].reshape(len(test), 2, 2, 64, 64)
    probs = probs.transpose(0, 1, 3, 2, 4).reshape(len(test), 128, 128)
    scores = segmentation_metrics(probs, labels)
    chance = segmentation_metrics(np.zeros_like(probs), labels)
    assert scores["f1"] > 0.5, scores
    assert chance["f1"] < 0.2


def test_micro_batches_accumulate_into_the_steps_of_the_undivided_batch(tmp_path):
    """Batches of 2 as 2 micro-batches of 1: the same optimizer steps and, for a model whose
    normalisation is per image (group norm, no DropBlock) and a per-pixel loss (BCE), the same
    weights as undivided batches up to float rounding."""
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    root = write_synthetic_drive(tmp_path / "data", n_train=6, n_test=0, size=(32, 32), seed=4)
    trained = {}
    for micro in (1, 2):
        config = _tiny_config(
            root, side=32, epochs=1, micro_batches=micro, bce_weight=1.0, mcc_weight=0.0,
            model_kwargs={"dropblock_rate": 0.0}, restore_best_weights=False,
        )  # fmt: skip
        result = training.train(config, tmp_path / f"micro{micro}", verbose=0)
        summary = json.loads((result.out_dir / "summary.json").read_text())
        trained[micro] = (result.model, summary["optimizer_iterations"])
    (whole, whole_steps), (split, split_steps) = trained[1], trained[2]
    assert whole_steps == split_steps == 8  # 4 training sources x 4 repeats / batch 2
    assert split.optimizer.gradient_accumulation_steps == 2
    assert whole.optimizer.gradient_accumulation_steps is None
    for a, b in zip(whole.get_weights(), split.get_weights(), strict=True):
        # Adam moves a weight by about lr (1e-3) a step: agree to 2 % of one step.
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)
    with pytest.raises(ValueError, match="multiple of micro_batches"):
        TrainConfig(batch_size=8, micro_batches=3)


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


@pytest.mark.slow
def test_a_run_may_resume_with_another_step_implementation_or_notes_but_not_other_maths(tmp_path):
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    root = write_synthetic_drive(tmp_path / "data", n_train=6, n_test=0, size=(64, 64), seed=3)
    config = _tiny_config(root, epochs=1, epoch_repeats=1, group_norm_statistics="one_pass")
    training.train(config, tmp_path / "run", verbose=0)
    faster = config.replace(
        epochs=2,
        precision="mixed_bfloat16",
        group_norm_statistics="two_stage",
        notes="the campaign's notes, updated with a measured cost",
    )
    result = training.train(faster, tmp_path / "run", resume=True, verbose=0)
    assert result.epochs_run == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text("utf-8"))
    assert saved["notes"] == faster.notes and saved["precision"] == "mixed_bfloat16"
    with pytest.raises(ValueError, match=r"\['lr'\]"):
        training.train(faster.replace(lr=0.01, epochs=3), tmp_path / "run", resume=True)


def test_precise_batch_norm_statistics_are_what_the_checkpoints_hold(tmp_path):
    from saunetv2_lib.data.synthetic import write_synthetic_drive
    from saunetv2_lib.training.batchnorm import batch_norm_layers, precise_batch_norm

    root = write_synthetic_drive(tmp_path / "data", n_train=6, n_test=2, size=(64, 64), seed=3)
    config = _tiny_config(
        root, model="sa_unet_bn_relu", epochs=1, epoch_repeats=1, batch_norm_statistics="precise"
    )
    result = training.train(config, tmp_path / "run", verbose=0)
    best = keras.saving.load_model(tmp_path / "run" / "best.keras", compile=False)
    # Independently: the trained weights, BN re-estimated on the 4 training sources as they are.
    from saunetv2_lib.data.pipeline import training_split, validation_arrays

    train, _ = training_split("drive", root, 2, 7, labels="reference", max_train_images=6)
    images, _ = validation_arrays(train, 64, "top_left")
    assert len(images) == 4 and result.epochs_run == 1
    reference = keras.saving.load_model(tmp_path / "run" / "last.keras", compile=False)
    precise_batch_norm(reference, images, batch_size=2)
    for saved, expected in zip(batch_norm_layers(best), batch_norm_layers(reference), strict=True):
        np.testing.assert_allclose(
            saved.moving_variance.numpy(), expected.moving_variance.numpy(), 1e-4
        )
        # One epoch of momentum 0.99 would leave the variance near its initial 1.
        assert not np.allclose(saved.moving_variance.numpy(), 1.0, atol=0.05)
