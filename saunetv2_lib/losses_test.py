"""Tests of saunetv2_lib.losses against independent float64 numpy references and scikit-learn."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops
from sklearn.metrics import matthews_corrcoef

from saunetv2_lib.losses import (
    EPSILON,
    BceMccLoss,
    binary_crossentropy_mean,
    dice_loss,
    soft_mcc,
)


def np_bce(y, p, eps=EPSILON):
    # The clip bounds as float32 sees them: 1 - 1e-7 rounds to 1 - 2**-23 there.
    low, high = np.float32(eps), np.float32(1.0) - np.float32(eps)
    p = np.clip(np.asarray(p, np.float64), low, high)
    y = np.asarray(y, np.float64)
    return float(np.mean(-(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))))


def np_soft_mcc(y, p, eps=EPSILON):
    y, p = np.asarray(y, np.float64).ravel(), np.asarray(p, np.float64).ravel()
    tp, tn = np.sum(p * y), np.sum((1 - p) * (1 - y))
    fp, fn = np.sum(p * (1 - y)), np.sum((1 - p) * y)
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) + eps
    return float((tp * tn - fp * fn) / den)


def np_loss(y, p, wb=0.5, wm=0.5):
    return wb * np_bce(y, p) + wm * (1.0 - np_soft_mcc(y, p))


def batch(seed=0, shape=(2, 8, 8, 1), vessel_fraction=0.2):
    rng = np.random.default_rng(seed)
    y = (rng.random(shape) < vessel_fraction).astype("float32")
    # Probabilities correlated with the label, strictly inside (0, 1).
    p = np.clip(0.6 * y + 0.4 * rng.random(shape), 0.02, 0.98).astype("float32")
    return y, p


def value(x) -> float:
    return float(ops.convert_to_numpy(x))


def autodiff_grad(fn, x: np.ndarray) -> np.ndarray:
    """Gradient of the scalar ``fn(x)`` with respect to x on the active Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xv = tf.Variable(x)
        with tf.GradientTape() as tape:
            out = fn(xv)
        return tape.gradient(out, xv).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(fn)(x))
    pytest.skip(f"no autodiff helper for backend {backend}")


def test_soft_mcc_equals_sklearn_for_hard_labels():
    rng = np.random.default_rng(1)
    y = (rng.random((3, 16, 16, 1)) < 0.15).astype("float32")
    pred = np.where(rng.random(y.shape) < 0.8, y, 1 - y).astype("float32")
    expected = matthews_corrcoef(y.ravel(), pred.ravel())
    assert value(soft_mcc(y, pred)) == pytest.approx(expected, abs=1e-6)


def test_loss_value_matches_numpy():
    y, p = batch()
    loss = BceMccLoss()
    assert value(loss(y, p)) == pytest.approx(np_loss(y, p), rel=1e-5)
    assert value(binary_crossentropy_mean(y, p)) == pytest.approx(np_bce(y, p), rel=1e-5)
    # The same as the official formulation: per-pixel BCE map plus the scalar MCC term, averaged.
    bce_map = keras.losses.binary_crossentropy(y, p)  # mean over the channel axis of size 1
    official = np.mean(0.5 * ops.convert_to_numpy(bce_map) + 0.5 * (1 - np_soft_mcc(y, p)))
    assert value(loss(y, p)) == pytest.approx(official, rel=1e-5)


def test_loss_value_under_every_reduction_is_the_batch_scalar():
    y, p = batch(seed=3)
    for reduction in ("sum_over_batch_size", "sum", "mean", None):
        assert value(BceMccLoss(reduction=reduction)(y, p)) == pytest.approx(np_loss(y, p), 1e-5)


@pytest.mark.parametrize("weights", [(0.5, 0.5), (1.0, 0.0), (0.0, 1.0), (0.7, 0.3)])
def test_weights_are_parameters(weights):
    y, p = batch(seed=2)
    got = value(BceMccLoss(*weights)(y, p))
    assert got == pytest.approx(np_loss(y, p, *weights), rel=1e-5)
    if weights == (1.0, 0.0):
        assert got == pytest.approx(np_bce(y, p), rel=1e-5)
    if weights == (0.0, 1.0):
        assert got == pytest.approx(1 - np_soft_mcc(y, p), rel=1e-5)


def central_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


def test_gradient_matches_finite_differences():
    y, p = batch(seed=4, shape=(2, 4, 4, 1), vessel_fraction=0.3)
    loss = BceMccLoss()
    got = autodiff_grad(lambda q: loss(y, q), p)
    expected = central_differences(lambda q: np_loss(y, q), p)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-6)


def degenerate_batches():
    shape = (2, 8, 8, 1)
    y, p = batch()
    return {
        "all_background": (np.zeros(shape, "float32"), p),
        "all_vessel": (np.ones(shape, "float32"), p),
        "p_exactly_0_and_1": (y, np.where(np.arange(y.size).reshape(shape) % 2, 1.0, 0.0)),
        "perfect_hard": (y, y.copy()),
        "all_zero": (np.zeros(shape, "float32"), np.zeros(shape, "float32")),
    }


@pytest.mark.parametrize("case", list(degenerate_batches()))
def test_degenerate_batches_are_finite(case):
    y, p = degenerate_batches()[case]
    p = p.astype("float32")
    loss = BceMccLoss()
    got = value(loss(y, p))
    assert np.isfinite(got)
    assert got == pytest.approx(np_loss(y, p), abs=1e-5)
    grad = autodiff_grad(lambda q: loss(y, q), p)
    assert np.all(np.isfinite(grad))
    assert np.isfinite(value(dice_loss(y, p)))


def test_dice_loss_matches_numpy():
    y, p = batch(seed=5)
    yd, pd = y.astype(np.float64), p.astype(np.float64)
    expected = 1 - (2 * np.sum(yd * pd) + 1) / (np.sum(yd) + np.sum(pd) + 1)
    assert value(dice_loss(y, p)) == pytest.approx(expected, rel=1e-5)
    assert value(dice_loss(y, y)) == pytest.approx(0.0, abs=1e-6)


def test_serialisation_round_trip():
    loss = BceMccLoss(bce_weight=0.3, mcc_weight=0.7, name="custom")
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, BceMccLoss)
    assert (restored.bce_weight, restored.mcc_weight, restored.name) == (0.3, 0.7, "custom")
    y, p = batch(seed=6)
    assert value(restored(y, p)) == pytest.approx(value(loss(y, p)), rel=1e-7)
    fn = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(dice_loss))
    assert fn is dice_loss


def test_mixed_float16_input_gives_float32_result():
    y, p = batch(seed=7, shape=(2, 32, 32, 1))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        loss = BceMccLoss()
        out16 = loss(ops.cast(y, "float16"), ops.cast(p, "float16"))
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(out16.dtype) == "float32"
    assert value(out16) == pytest.approx(value(BceMccLoss()(y, p)), abs=1e-3)
    assert keras.backend.standardize_dtype(soft_mcc(y, ops.cast(p, "float16")).dtype) == "float32"


def test_sample_weight_is_rejected():
    y, p = batch()
    with pytest.raises(ValueError, match="sample_weight"):
        BceMccLoss()(y, p, sample_weight=np.ones(y.shape[0]))
