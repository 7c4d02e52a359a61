import keras
import numpy as np
import pytest

from saunetv2_lib.models.costs import layer_profiler_flops
from saunetv2_lib.models.selective_scan import (
    linear_recurrence,
    linear_recurrence_flops,
    selective_scan,
    selective_scan_cost,
)


def sequential_recurrence(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """h_t = a_t h_{t-1} + b_t with a plain Python loop (float64)."""
    a, b = np.moveaxis(a, axis, 0).astype(np.float64), np.moveaxis(b, axis, 0).astype(np.float64)
    h, out = np.zeros_like(b[0]), []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        out.append(h)
    return np.moveaxis(np.stack(out), 0, axis)


def sequential_selective_scan(u, delta, a, b, c, d, delta_bias):
    """mamba_ssm's selective_scan_ref, step by step, in channels-last numpy (float64)."""
    u, delta = u.astype(np.float64), delta.astype(np.float64)
    delta = np.logaddexp(0.0, delta + delta_bias[None, :, None, :])  # softplus
    batch, directions, length, channels = u.shape
    y = np.zeros_like(u)
    for n in range(batch):
        for k in range(directions):
            h = np.zeros((channels, a.shape[-1]))
            for t in range(length):
                h = np.exp(delta[n, k, t][:, None] * a[k]) * h + (
                    delta[n, k, t][:, None] * b[n, k, t][None, :] * u[n, k, t][:, None]
                )
                y[n, k, t] = h @ c[n, k, t] + d[k] * u[n, k, t]
    return y


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 13, 64, 100])
def test_parallel_recurrence_matches_the_sequential_loop(length):
    rng = np.random.default_rng(length)
    a = rng.uniform(0.2, 1.0, size=(2, length, 3)).astype("float32")
    b = rng.normal(size=(2, length, 3)).astype("float32")
    h = keras.ops.convert_to_numpy(linear_recurrence(a, b, axis=1))
    np.testing.assert_allclose(h, sequential_recurrence(a, b, 1), rtol=1e-5, atol=1e-5)


def test_recurrence_on_another_axis():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 1.0, size=(2, 3, 11, 4, 2)).astype("float32")
    b = rng.normal(size=a.shape).astype("float32")
    h = keras.ops.convert_to_numpy(linear_recurrence(a, b, axis=2))
    np.testing.assert_allclose(h, sequential_recurrence(a, b, 2), rtol=1e-5, atol=1e-5)


def test_unknown_length_falls_back_to_a_sequential_scan():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("symbolic unknown lengths are a TensorFlow-tracing case")
    import tensorflow as tf

    spec = tf.TensorSpec([2, None, 3], tf.float32)
    scan = tf.function(lambda a, b: linear_recurrence(a, b, axis=1), input_signature=[spec] * 2)
    rng = np.random.default_rng(1)
    a = rng.uniform(0.2, 1.0, size=(2, 9, 3)).astype("float32")
    b = rng.normal(size=(2, 9, 3)).astype("float32")
    np.testing.assert_allclose(
        scan(a, b).numpy(), sequential_recurrence(a, b, 1), rtol=1e-5, atol=1e-5
    )


def _scan_inputs(rng, batch=2, directions=4, length=12, channels=3, state=5):
    u = rng.normal(size=(batch, directions, length, channels)).astype("float32")
    delta = rng.normal(size=u.shape).astype("float32")
    a = -np.exp(rng.normal(size=(directions, channels, state))).astype("float32")
    b = rng.normal(size=(batch, directions, length, state)).astype("float32")
    c = rng.normal(size=(batch, directions, length, state)).astype("float32")
    d = rng.normal(size=(directions, channels)).astype("float32")
    bias = rng.normal(size=(directions, channels)).astype("float32")
    return u, delta, a, b, c, d, bias


def test_selective_scan_matches_mambas_sequential_reference():
    u, delta, a, b, c, d, bias = _scan_inputs(np.random.default_rng(2))
    y = selective_scan(u, delta, a, b, c, d, delta_bias=bias)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(y),
        sequential_selective_scan(u, delta, a, b, c, d, bias),
        rtol=2e-4,
        atol=2e-4,
    )


def test_selective_scan_gradients_are_finite_and_nonzero():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    import tensorflow as tf

    u, delta, a, b, c, d, bias = _scan_inputs(np.random.default_rng(3), length=9)
    u = tf.Variable(u)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(selective_scan(u, delta, a, b, c, d, delta_bias=bias) ** 2)
    grad = tape.gradient(loss, u).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_recurrence_flops_per_level():
    # 8 steps: levels of 4, 2, 1 pairs -> 5*4 + 5*2 + 2*1 per element.
    assert linear_recurrence_flops(8, 1) == 32
    # 5 steps pad to 6 (3 pairs), 3 pairs pad to 4 (2), then 1: 15 + 10 + 2.
    assert linear_recurrence_flops(5, 2) == 2 * 27
    assert linear_recurrence_flops(1, 7) == 0


@pytest.mark.parametrize("length", [7, 16])
def test_scan_cost_equals_the_tf_profiler(length):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the profiler needs the TensorFlow backend")
    directions, channels, state = 4, 3, 5
    rng = np.random.default_rng(4)
    _, _, a, _, _, d, bias = _scan_inputs(rng, 1, directions, length, channels, state)

    class Scan(keras.layers.Layer):
        def call(self, inputs):
            u, delta, b, c = inputs
            return selective_scan(u, delta, a, b, c, d, delta_bias=bias)

    shapes = [(1, directions, length, channels)] * 2 + [(1, directions, length, state)] * 2
    profiled = layer_profiler_flops(Scan(), shapes)
    flops, macs = selective_scan_cost(directions, length, channels, state)
    assert flops == profiled
    assert macs == 2 * directions * length * channels * state


def test_rematerialised_scan_has_the_same_values_and_gradients():
    """SS2D calls ``keras.remat(selective_scan)`` with positional arguments: nothing changes."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    import tensorflow as tf

    inputs = [tf.Variable(v) for v in _scan_inputs(np.random.default_rng(4), length=9)]

    def loss_and_grads(scan):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(scan(*inputs) ** 2)
        return loss.numpy(), [g.numpy() for g in tape.gradient(loss, inputs)]

    plain_loss, plain = loss_and_grads(selective_scan)
    remat_loss, remat = loss_and_grads(keras.remat(selective_scan))
    assert remat_loss == pytest.approx(plain_loss, rel=1e-6)
    for name, first, second in zip("u delta a b c d bias".split(), plain, remat, strict=True):
        assert np.abs(first).sum() > 0, name  # every input, the delta bias too, is trained
        np.testing.assert_allclose(second, first, rtol=1e-5, atol=1e-6, err_msg=name)
