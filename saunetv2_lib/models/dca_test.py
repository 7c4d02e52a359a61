import keras
import numpy as np
import pytest
from skimage.transform import resize

from saunetv2_lib.complexity import layer_cost, model_complexity
from saunetv2_lib.losses import BceMccLoss
from saunetv2_lib.models import build_unet, get_model
from saunetv2_lib.models.costs import layer_profiler_flops
from saunetv2_lib.models.dca import DualCrossAttention

CHANNELS = (8, 16)
SHAPES = [(2, 8, 8, 8), (2, 4, 4, 16)]  # two skips, strides 1 and 2; patch 2 -> 4 x 4 tokens


def _random_layer(rng, **kwargs) -> DualCrossAttention:
    layer = DualCrossAttention(CHANNELS, patch_size=2, **kwargs)
    layer.build(SHAPES)
    layer.set_weights([rng.normal(0.0, 0.5, size=w.shape).astype("float32") for w in layer.weights])
    return layer


def _weights(layer):
    return [np.asarray(w, dtype=np.float64) for w in layer.get_weights()]


def _dw(x, layer):  # depthwise 1x1 with bias
    kernel, bias = _weights(layer)
    return x * kernel[0, 0, :, 0] + bias


def _ln(x, layer, eps):
    gamma, beta = _weights(layer)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _group_norm(x, layer, groups, eps):
    gamma, beta = _weights(layer)
    b, h, w, c = x.shape
    g = x.reshape(b, h, w, groups, c // groups)
    mean, var = g.mean((1, 2, 4), keepdims=True), g.var((1, 2, 4), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(x.shape) * gamma + beta


def reference_dca(layer: DualCrossAttention, skips: list[np.ndarray]) -> list[np.ndarray]:
    """DCA step by step in float64 numpy, from the official PyTorch code's equations."""
    total, heads = sum(layer.channels), layer.spatial_heads
    tokens = []
    for i, x in enumerate(skips):
        p = layer.pool_sizes[i]
        b, h, w, c = x.shape
        pooled = x.reshape(b, h // p, p, w // p, p, c).mean((2, 4))
        tokens.append(_dw(pooled, layer.embed[i]))
    b, th, tw, _ = tokens[0].shape
    flat = lambda t: t.reshape(b, th * tw, -1)  # noqa: E731
    normed = [_ln(t, layer.ca_norm[i], 1e-6) for i, t in enumerate(tokens)]
    joint = np.concatenate(normed, -1)
    refined = []
    for i, t in enumerate(tokens):
        q = flat(_dw(normed[i], layer.ca_q[i]))
        k, v = flat(_dw(joint, layer.ca_k[i])), flat(_dw(joint, layer.ca_v[i]))
        att = _softmax(np.swapaxes(q, 1, 2) @ k / np.sqrt(total))  # (B, C_i, sum C)
        out = np.swapaxes(att @ np.swapaxes(v, 1, 2), 1, 2)  # (B, T, C_i)
        refined.append(t + _dw(out.reshape(t.shape), layer.ca_proj[i]))
    tokens = refined
    normed = [_ln(t, layer.sa_norm[i], 1e-6) for i, t in enumerate(tokens)]
    joint = np.concatenate(normed, -1)
    outputs = []
    for i, t in enumerate(tokens):
        split = lambda z: z.reshape(b, th * tw, heads, -1).transpose(0, 2, 1, 3)  # noqa: E731
        q = split(flat(_dw(joint, layer.sa_q[i])))
        k = split(flat(_dw(joint, layer.sa_k[i])))
        v = split(flat(_dw(normed[i], layer.sa_v[i])))
        att = _softmax(q @ np.swapaxes(k, 2, 3) / np.sqrt(total // heads))
        out = (att @ v).transpose(0, 2, 1, 3).reshape(t.shape)
        t = t + _dw(out, layer.sa_proj[i])
        p = layer.pool_sizes[i]
        if p > 1:
            t = np.stack(
                [resize(s, (th * p, tw * p, s.shape[-1]), order=1, mode="edge") for s in t]
            )
        kernel, bias = _weights(layer.up[i])
        t = t @ kernel[0, 0] + bias + skips[i]
        t = _group_norm(t, layer.out_norm[i], layer.groups, layer.norm_epsilon)
        outputs.append(t / (1 + np.exp(-t)))  # SiLU
    return outputs


def test_dca_matches_a_numpy_reimplementation():
    rng = np.random.default_rng(0)
    layer = _random_layer(rng)
    skips = [rng.normal(size=s).astype("float32") for s in SHAPES]
    got = [keras.ops.convert_to_numpy(y) for y in layer(skips)]
    for y, expected in zip(got, reference_dca(layer, skips), strict=True):
        assert y.shape == expected.shape
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_dca_refuses_inconsistent_configurations():
    with pytest.raises(ValueError, match="multiple of 2"):
        DualCrossAttention((8, 16, 24), patch_size=2)
    with pytest.raises(ValueError, match="spatial_heads"):
        DualCrossAttention((6, 16), patch_size=2)
    layer = DualCrossAttention(CHANNELS, patch_size=2)
    with pytest.raises(ValueError, match="skip 2 has 12 channels"):
        layer.build([(2, 8, 8, 8), (2, 4, 4, 12)])


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_dca_counter_equals_the_tf_profiler(norm):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the profiler needs the TensorFlow backend")
    shapes = [(1, 32, 32, 8), (1, 16, 16, 16), (1, 8, 8, 24)]
    layer = DualCrossAttention((8, 16, 24), norm=norm)
    layer.build(shapes)
    assert layer_cost(layer, shapes, shapes[0])[0] == layer_profiler_flops(layer, shapes)


def _dca_params(channels) -> int:
    total = sum(channels)
    per_scale = [
        2 * c  # embedding
        + 2 * c
        + 2 * c
        + 4 * total
        + 2 * c  # channel attention: norm, q, k+v, projection
        + 2 * c
        + 4 * total
        + 2 * c
        + 2 * c  # spatial attention: norm, q+k, v, projection
        + c * c
        + c  # 1x1 up-convolution
        + 2 * c  # group norm
        for c in channels
    ]
    return sum(per_scale)


@pytest.mark.parametrize(
    ("name", "widths", "bottleneck"),
    [("sa_unet_v2_dca", (16, 32, 48, 64), True), ("unet_dca", (32, 64, 128, 256, 512), False)],
)
def test_parameter_count_is_the_host_plus_dca(name, widths, bottleneck):
    model = get_model(name, (64, 64, 3))
    host = build_unet((64, 64, 3), widths=widths, skip="none", bottleneck_attention=bottleneck)
    assert model.count_params() == host.count_params() + _dca_params(widths[:-1])
    assert model.get_layer("skip_dca").count_params() == _dca_params(widths[:-1])
    # Apart from the DCA, the layer names are the host's.
    assert {layer.name for layer in model.layers} - {layer.name for layer in host.layers} == {
        "skip_dca"
    }


def test_round_trip_in_safe_mode_and_size_agnostic_twin(tmp_path):
    from saunetv2_lib.inference import fully_convolutional

    model = get_model("sa_unet_v2_dca", (64, 64, 3))
    path = tmp_path / "dca.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).uniform(size=(2, 64, 64, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(expected, loaded.predict(x, verbose=0))
    twin = fully_convolutional(model)
    np.testing.assert_allclose(twin.predict(x, verbose=0), expected, atol=1e-5)
    assert twin.predict(np.zeros((1, 96, 80, 3), "float32"), verbose=0).shape == (1, 96, 80, 1)


def test_complexity_at_592_exceeds_the_host_by_the_attention():
    dca = model_complexity(get_model("sa_unet_v2_dca", (592, 592, 3)), measure_file=False)
    host = model_complexity(get_model("sa_unet_v2", (592, 592, 3)), measure_file=False)
    tokens = 74 * 74
    # The spatial attention's q k^T alone: 2 (sum C) T^2 FLOPs per scale, 3 scales.
    assert dca["gflops"] - host["gflops"] > 3 * 2 * 96 * tokens**2 / 1e9
    assert dca["params"] == host["params"] - 3 * 98 + _dca_params((16, 32, 48))


@pytest.mark.slow
def test_one_training_step_changes_the_dca_weights(vessel_batch):
    model = get_model("sa_unet_v2_dca", (64, 64, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=BceMccLoss())
    x, y = vessel_batch(2)
    dca = model.get_layer("skip_dca")
    before = {w.path: np.array(w) for w in dca.trainable_weights}
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    unchanged = {w.path for w in dca.trainable_weights if np.allclose(before[w.path], np.array(w))}
    # Only the spatial keys' biases get no gradient: q (k + b) shifts every logit of a query
    # row by the same q b, which the softmax cancels.
    assert unchanged == {f"skip_dca/sa_k{s}/bias" for s in (1, 2, 3)}
