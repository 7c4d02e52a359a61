import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from saunetv2_lib.complexity import model_complexity, tf_profiler_flops
from saunetv2_lib.losses import BceMccLoss
from saunetv2_lib.models.sa_umamba import (
    SS2D,
    PatchExpand,
    PatchMerging,
    RFAConv,
    RSSSBlock,
    build_sa_umamba,
)
from saunetv2_lib.models.selective_scan_test import sequential_selective_scan


def _np(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _ln(x, layer):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * _np(layer.gamma) + _np(layer.beta)


def _bn(x, layer):
    scale = _np(layer.gamma) / np.sqrt(_np(layer.moving_variance) + layer.epsilon)
    return (x - _np(layer.moving_mean)) * scale + _np(layer.beta)


def _depthwise_same(x, kernel):
    """'same' depthwise conv of (B, H, W, C) with kernel (k, k, C, M) -> (B, H, W, C, M)."""
    k = kernel.shape[0]
    pad = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros((*x.shape, kernel.shape[-1]))
    for di in range(k):
        for dj in range(k):
            out += pad[:, di : di + h, dj : dj + w, :, None] * kernel[di, dj]
    return out


def _randomise(layer, rng, scale=0.3):
    for variable in layer.weights:
        value = rng.normal(0.0, scale, size=variable.shape)
        if "variance" in variable.path:
            value = np.abs(value) + 0.5
        variable.assign(value.astype("float32"))


def reference_ss2d(layer: SS2D, x: np.ndarray) -> np.ndarray:
    """VMamba's SS2D forward (forward_corev0) in float64 numpy, with a step-by-step scan."""
    b, h, w, _ = x.shape
    d, rank, n = layer.d_inner, layer.rank, layer.d_state
    xz = x @ _np(layer.in_proj.kernel)
    xp, z = xz[..., :d], xz[..., d:]
    xp = _silu(_depthwise_same(xp, _np(layer.conv.kernel))[..., 0] + _np(layer.conv.bias))
    rows = xp.reshape(b, h * w, d)
    cols = xp.transpose(0, 2, 1, 3).reshape(b, h * w, d)
    xs = np.stack([rows, cols, rows[:, ::-1], cols[:, ::-1]], axis=1)
    x_dbl = np.einsum("bkld,kdm->bklm", xs, _np(layer.x_proj_weight))
    dts = np.einsum("bklr,krd->bkld", x_dbl[..., :rank], _np(layer.dt_proj_weight))
    y = sequential_selective_scan(
        xs,
        dts,
        -np.exp(_np(layer.a_log)),
        x_dbl[..., rank : rank + n],
        x_dbl[..., rank + n :],
        _np(layer.d_skip),
        _np(layer.dt_proj_bias),
    )
    y_rows = (y[:, 0] + y[:, 2, ::-1]).reshape(b, h, w, d)
    y_cols = (y[:, 1] + y[:, 3, ::-1]).reshape(b, w, h, d).transpose(0, 2, 1, 3)
    y = _ln(y_rows + y_cols, layer.out_norm) * _silu(z)
    return y @ _np(layer.out_proj.kernel)


def reference_rfaconv(layer: RFAConv, x: np.ndarray) -> np.ndarray:
    """RFAConv (group-conv form) in numpy; the 3x3 average pool averages valid pixels only."""
    b, h, w, c = x.shape
    k = layer.kernel_size
    ones = np.ones((1, h, w, 1))
    counts = _depthwise_same(ones, np.ones((k, k, 1, 1)))[..., 0]
    avg = _depthwise_same(x, np.ones((k, k, c, 1)))[..., 0] / counts
    weights = avg[..., None] * _np(layer.weight_conv.kernel)[0, 0]  # (B, H, W, C, k^2)
    weights = np.exp(weights - weights.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    features = _depthwise_same(x, _np(layer.feature_conv.kernel)).reshape(b, h, w, c * k * k)
    features = np.maximum(_bn(features, layer.feature_norm), 0).reshape(b, h, w, c, k * k)
    weighted = (features * weights).reshape(b, h, w, c, k, k)
    # The k x k tile of pixel (i, j) sits at rows 3i..3i+2, cols 3j..3j+2 of the unfolded map,
    # which a k x k stride-k convolution reads back tile by tile.
    conv = np.einsum("bijcnm,nmco->bijo", weighted, _np(layer.conv.kernel)) + _np(layer.conv.bias)
    return np.maximum(_bn(conv, layer.norm), 0)


def test_ss2d_matches_vmamba_reference():
    rng = np.random.default_rng(0)
    layer = SS2D(d_state=4)
    layer.build((2, 3, 5, 8))
    _randomise(layer, rng)
    layer.a_log.assign(np.log(rng.uniform(0.5, 2.0, size=layer.a_log.shape)).astype("float32"))
    x = rng.normal(size=(2, 3, 5, 8)).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, reference_ss2d(layer, x), rtol=1e-4, atol=1e-4)


def test_rfaconv_matches_reference():
    rng = np.random.default_rng(1)
    layer = RFAConv(6)
    layer.build((2, 4, 5, 3))
    _randomise(layer, rng)
    x = rng.normal(size=(2, 4, 5, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x, training=False))
    assert got.shape == (2, 4, 5, 6)
    np.testing.assert_allclose(got, reference_rfaconv(layer, x), rtol=1e-4, atol=1e-4)


def test_patch_merging_and_expanding_match_their_rearrangements():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 6, 3)).astype("float32")
    merge = PatchMerging()
    merge.build(x.shape)
    _randomise(merge, rng)
    quads = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
    expected = _ln(np.concatenate(quads, -1).astype(np.float64), merge.norm)
    expected = expected @ _np(merge.reduction.kernel)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(merge(x)), expected, atol=1e-5)

    expand = PatchExpand(2, 5)
    expand.build(x.shape)
    _randomise(expand, rng)
    y = (x @ _np(expand.expand.kernel)).reshape(2, 4, 6, 2, 2, 5)
    y = y.transpose(0, 1, 3, 2, 4, 5).reshape(2, 8, 12, 5)  # b h w (p1 p2 c) -> b (h p1) (w p2) c
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(expand(x)), _ln(y, expand.norm), atol=1e-5
    )


def test_rsss_block_wiring_and_scales():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 4, 8)).astype("float32")
    block = RSSSBlock(d_state=4)
    block.build(x.shape)
    _randomise(block, rng, scale=0.2)
    s1, s2 = _np(block.scale1), _np(block.scale2)
    z = x * s1 + keras.ops.convert_to_numpy(block.ss2d(block.norm1(x)))
    expected = z * s2 + keras.ops.convert_to_numpy(
        block.conv_branch(block.norm2(z.astype("float32")), training=False)
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(block(x, training=False)), expected, rtol=1e-5, atol=1e-5
    )
    plain = RSSSBlock(d_state=4, rfac=False)
    plain.build(x.shape)
    branch = keras.ops.convert_to_numpy(plain.ss2d(plain.norm1(x)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain(x)), x + branch, atol=1e-6)
    assert not hasattr(plain, "scale1")


def test_stochastic_depth_drops_whole_samples_in_training_only():
    x = np.repeat(np.random.default_rng(4).normal(size=(1, 4, 4, 8)), 64, 0).astype("float32")
    block = RSSSBlock(d_state=4, rfac=False, drop_path=0.5, seed=0)
    block.build(x.shape)
    branch = keras.ops.convert_to_numpy(block.ss2d(block.norm1(x)))
    y = keras.ops.convert_to_numpy(block(x, training=True))
    dropped = np.all(np.isclose(y, x, atol=1e-6), axis=(1, 2, 3))
    kept = np.all(np.isclose(y, x + 2.0 * branch, atol=1e-5), axis=(1, 2, 3))
    assert np.all(dropped ^ kept) and 10 < dropped.sum() < 54
    np.testing.assert_allclose(keras.ops.convert_to_numpy(block(x)), x + branch, atol=1e-6)


def expected_params(c: int, depths, decoder_depths, n: int = 16, rfac_decoder=True) -> int:
    """SA-UMamba's parameters from its description (BN: 4 per channel)."""

    def ss2d(c):
        d, r = 2 * c, math.ceil(c / 16)
        # in_proj, depthwise conv + bias, x_proj, dt_proj weight + bias, A_log, D
        return c * 2 * d + 10 * d + 4 * d * (r + 2 * n) + 4 * r * d + 4 * d + 4 * d * n + 4 * d

    def block(c, rfac):
        d = 2 * c
        params = 2 * c + ss2d(c) + 2 * d + d * c  # norm1, SS2D (+ out_norm, out_proj)
        if rfac:
            params += 2 * c + 2 * c  # scales, norm2
            params += 9 * c + 81 * c + 4 * 9 * c + 9 * c * c + c + 4 * c  # RFAConv
        return params

    dims = [c * 2**i for i in range(len(depths))]
    total = 3 * 16 * c + c + 2 * c  # 4x4 patch embedding + LayerNorm
    for i, depth in enumerate(depths):
        total += depth * block(dims[i], True)
        if i < len(depths) - 1:
            total += 2 * 4 * dims[i] + 4 * dims[i] * 2 * dims[i]  # merging
    for j, depth in enumerate(decoder_depths):
        dim = dims[len(depths) - 1 - j]
        if j:
            total += 2 * dim * 4 * dim + 2 * dim  # expanding 2*dim -> 4*dim, LayerNorm(dim)
        total += depth * block(dim, rfac_decoder)
    total += c * 16 * (c // 4) + 2 * (c // 4)  # final 4x expanding
    return total + c // 4 + 1  # head


@pytest.mark.parametrize("decoder_rfac", [True, False])
def test_parameter_count_follows_the_architecture(decoder_rfac):
    model = build_sa_umamba((64, 64, 3), embed_dim=8, decoder_rfac=decoder_rfac)
    expected = expected_params(8, (2, 2, 2, 2), (2, 2, 2, 1), rfac_decoder=decoder_rfac)
    assert model.count_params() == expected


def test_seed_configuration_at_592_pads_to_608():
    model = build_sa_umamba((592, 592, 3))
    assert model.count_params() == expected_params(96, (2, 2, 2, 2), (2, 2, 2, 1))
    assert model.get_layer("pad").output.shape[1:3] == (608, 608)
    assert tuple(model.output.shape) == (None, 592, 592, 1)


@pytest.mark.parametrize("side", [64, 40])
def test_counter_equals_the_tf_profiler(side):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the profiler needs the TensorFlow backend")
    model = build_sa_umamba((side, side, 3), embed_dim=8, d_state=4)
    analytic = round(model_complexity(model, measure_file=False)["gflops"] * 1e9)
    assert analytic == tf_profiler_flops(model, (side, side, 3))


# Two stages of one block each keep the graph-heavy tests fast; the full shape is covered above.
SMALL = {"embed_dim": 8, "d_state": 4, "depths": (1, 1), "decoder_depths": (1, 1)}


def test_round_trip_in_safe_mode_and_size_agnostic_twin(tmp_path):
    from saunetv2_lib.inference import fully_convolutional

    model = build_sa_umamba((64, 64, 3), seed=1, **SMALL)
    model.save(tmp_path / "mamba.keras")
    loaded = keras.saving.load_model(tmp_path / "mamba.keras")
    x = np.random.default_rng(5).uniform(size=(2, 64, 64, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    assert expected.shape == (2, 64, 64, 1) and ((expected > 0) & (expected < 1)).all()
    np.testing.assert_array_equal(expected, loaded.predict(x, verbose=0))
    twin = fully_convolutional(model)
    np.testing.assert_allclose(twin.predict(x, verbose=0), expected, atol=1e-5)
    # A second size retraces with unknown sides: the scan takes its sequential fallback.
    small = x[:1, :40, :56]
    fixed = build_sa_umamba((40, 56, 3), **SMALL)
    fixed.set_weights(model.get_weights())
    np.testing.assert_allclose(
        twin.predict(small, verbose=0), fixed.predict(small, verbose=0), atol=1e-5
    )


@pytest.mark.slow
def test_every_weight_gets_a_gradient_and_a_training_step_runs(vessel_batch):
    model = build_sa_umamba((64, 64, 3), seed=2, **SMALL)
    x, y = vessel_batch(2, seed=6)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = BceMccLoss()(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        for weight, grad in zip(model.trainable_weights, grads, strict=True):
            assert grad is not None, weight.path
            largest = float(np.abs(grad.numpy()).max())
            if weight.path.endswith("rfac/conv/bias"):
                # A bias right before a training-mode BatchNorm is cancelled by the mean.
                assert largest < 1e-5, weight.path
            else:
                assert largest > 0.0, weight.path
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=BceMccLoss())
    before = [np.array(w) for w in model.trainable_weights]
    assert np.isfinite(model.train_on_batch(x, y))
    weights = model.trainable_weights
    moved = [not np.allclose(a, np.array(b)) for a, b in zip(before, weights, strict=True)]
    # The scan's dt/A/x_proj gradients are tiny at Mamba's initialisation (|g| < 1e-7 here),
    # below Adam's epsilon, so not every weight visibly moves after one step.
    assert np.mean(moved) > 0.7


JAX_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np, keras
    from saunetv2_lib.losses import BceMccLoss
    from saunetv2_lib.models import get_model
    from saunetv2_lib.models.sa_umamba import build_sa_umamba
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 64, 64, 3)).astype("float32")
    y = (rng.uniform(size=(2, 64, 64, 1)) < 0.1).astype("float32")
    report = {"backend": keras.backend.backend()}
    for name, model in [
        ("sa_umamba", build_sa_umamba((64, 64, 3), embed_dim=8, d_state=4, depths=(1, 1),
                                      decoder_depths=(1, 1))),
        ("sa_unet_v2_dca", get_model("sa_unet_v2_dca", (64, 64, 3))),
        ("simple_unet", get_model("simple_unet", (64, 64, 3))),
    ]:
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=BceMccLoss())
        before = [np.array(w) for w in model.trainable_weights]
        loss = float(model.train_on_batch(x, y))
        moved = any(not np.allclose(a, np.array(b)) for a, b in zip(before, model.trainable_weights))
        report[name] = {"loss": loss, "moved": moved}
    print(json.dumps(report))
    """
)


@pytest.mark.slow
def test_training_steps_run_under_jax():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report.pop("backend") == "jax"
    for name, row in report.items():
        assert np.isfinite(row["loss"]) and row["moved"], name
