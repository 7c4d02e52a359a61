"""Precise batch-norm statistics: the averages of the batch moments, DropBlock off, nothing else moved."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from saunetv2_lib.models import get_model
from saunetv2_lib.models.layers import DropBlock2D
from saunetv2_lib.training.batchnorm import (
    PreciseBatchNorm,
    batch_norm_layers,
    precise_batch_norm,
)
from saunetv2_lib.training.config import TrainConfig


def _conv_dropblock_bn(side: int = 16) -> keras.Model:
    # SA-UNet's unit, then a second BN fed by the first: Conv -> DropBlock -> BN -> ReLU -> BN.
    inputs = keras.Input((side, side, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = DropBlock2D(0.5, 3, seed=1, name="dropblock")(conv)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs)


def test_moving_statistics_become_the_average_batch_moments_without_dropblock():
    model = _conv_dropblock_bn()
    images = np.random.default_rng(0).uniform(size=(5, 16, 16, 3)).astype("float32")
    conv = keras.Model(model.input, model.get_layer("conv").output)
    # Independent computation of bn1's statistics: per batch of 2 (2, 2, 1 images), the biased
    # moments of the conv output over batch, rows and columns, weighted by the batch's size.
    means, variances, sizes = [], [], []
    for start in range(0, 5, 2):
        features = np.asarray(conv(images[start : start + 2]), "float64")
        means.append(features.mean(axis=(0, 1, 2)))
        variances.append(features.var(axis=(0, 1, 2)))
        sizes.append(len(features))
    expected_mean = np.average(means, axis=0, weights=sizes)
    expected_variance = np.average(variances, axis=0, weights=sizes)
    bn1, bn2 = model.get_layer("bn1"), model.get_layer("bn2")
    weights_before = [w.copy() for w in model.get_weights()]

    assert precise_batch_norm(model, images, batch_size=2) == 2

    np.testing.assert_allclose(bn1.moving_mean.numpy(), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), expected_variance, rtol=1e-4)
    # bn2 sees ReLU of a batch-normalised input: unit-free, its variance below 1 and not the init.
    assert np.all(bn2.moving_variance.numpy() < 0.5)
    # Only the moving averages changed; momentum and DropBlock's rate are restored.
    moving = {id(v) for norm in (bn1, bn2) for v in (norm.moving_mean, norm.moving_variance)}
    for variable, before in zip(model.weights, weights_before, strict=True):
        if id(variable) not in moving:
            np.testing.assert_array_equal(variable.numpy(), before)
    assert bn1.momentum == bn2.momentum == 0.99
    assert model.get_layer("dropblock").rate == 0.5


def test_nested_batch_norms_are_found_and_models_without_them_are_left_alone():
    bn_model = get_model("sa_unet_bn_relu", (32, 32, 3))
    moving_means = [v for v in bn_model.non_trainable_variables if v.path.endswith("moving_mean")]
    assert len(batch_norm_layers(bn_model)) == len(moving_means) > 0

    gn_model = get_model("sa_unet_v2", (32, 32, 3))
    before = [w.copy() for w in gn_model.get_weights()]
    assert precise_batch_norm(gn_model, np.zeros((2, 32, 32, 3), "float32"), 2) == 0
    for weight, old in zip(gn_model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(weight, old)
    with pytest.raises(ValueError, match="at least one image"):
        precise_batch_norm(bn_model, np.zeros((0, 32, 32, 3), "float32"), 2)


def test_fit_validates_and_checkpoints_with_the_precise_statistics():
    model = _conv_dropblock_bn()
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4, 16, 16, 3)).astype("float32")
    y = (rng.uniform(size=(4, 16, 16, 1)) < 0.2).astype("float32")
    seen = {}

    class RecordAtEpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen["mean"] = model.get_layer("bn1").moving_mean.numpy().copy()

    model.fit(
        x,
        y,
        batch_size=2,
        epochs=1,
        validation_data=(x[:2], y[:2]),
        callbacks=[PreciseBatchNorm(x, batch_size=2), RecordAtEpochEnd()],
        verbose=0,
    )
    # What validation used (and what a checkpoint at epoch end saves) is what precise BN gives
    # for the trained weights; the moving averages of training would differ.
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    precise_batch_norm(reference, x, batch_size=2)
    assert np.abs(reference.get_layer("bn1").moving_mean.numpy()).max() > 0.05
    np.testing.assert_allclose(seen["mean"], reference.get_layer("bn1").moving_mean.numpy(), 1e-5)


def test_the_configuration_names_the_statistics():
    assert TrainConfig().batch_norm_statistics == "moving"
    assert TrainConfig(batch_norm_statistics="precise").batch_norm_statistics == "precise"
    with pytest.raises(ValueError, match="batch_norm_statistics must be one of"):
        TrainConfig(batch_norm_statistics="ema")
