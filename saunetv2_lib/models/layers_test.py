import keras
import numpy as np
import pytest
from keras import ops
from scipy import ndimage

from saunetv2_lib.models.layers import (
    AttentionGate,
    ConvNormAct,
    CrossScaleSpatialAttention,
    DropBlock2D,
    SpatialAttention,
    TwoStageGroupNormalization,
    use_two_stage_group_norm,
)


def _dropped_fraction(layer, shape, draws):
    x = np.ones(shape, "float32")
    zeros = [
        float(np.mean(ops.convert_to_numpy(layer(x, training=True)) == 0)) for _ in range(draws)
    ]
    return float(np.mean(zeros))


def _expected_dropped_fraction(rate, height, width, block):
    """Exact expectation: a pixel survives when none of the valid seeds whose block covers it fires."""
    gamma = rate * height * width / block**2 / ((width - block + 1) * (height - block + 1))
    rows, cols = np.arange(height), np.arange(width)
    valid_rows = (rows >= block // 2) & (rows < height - (block - 1) // 2)
    valid_cols = (cols >= block // 2) & (cols < width - (block - 1) // 2)
    kernel = np.ones(block)
    covering_rows = np.convolve(valid_rows.astype(float), kernel, mode="same")
    covering_cols = np.convolve(valid_cols.astype(float), kernel, mode="same")
    covering = np.outer(covering_rows, covering_cols)
    return float(np.mean(1 - (1 - gamma) ** covering))


@pytest.mark.parametrize("rate", [0.05, 0.15, 0.3])
def test_dropblock_drops_the_expected_fraction(rate):
    layer = DropBlock2D(rate=rate, block_size=7, seed=0)
    fraction = _dropped_fraction(layer, (4, 96, 96, 8), draws=10)
    assert fraction == pytest.approx(_expected_dropped_fraction(rate, 96, 96, 7), rel=0.03)
    # keras-cv's gamma makes the fraction close to `rate` while blocks rarely overlap.
    if rate <= 0.15:
        assert fraction == pytest.approx(rate, abs=0.02)


def test_dropblock_is_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 4)).astype("float32")
    layer = DropBlock2D(rate=0.3, seed=1)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x, training=False)), x)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), x)


def test_dropblock_rescales_to_preserve_the_mean():
    x = np.ones((8, 64, 64, 4), "float32")
    out = ops.convert_to_numpy(DropBlock2D(rate=0.2, seed=3)(x, training=True))
    kept = out[out > 0]
    # Every kept unit is scaled by 1 / (kept fraction), so the mean over the tensor stays 1.
    assert out.mean() == pytest.approx(1.0, abs=1e-4)
    assert np.allclose(kept, kept[0])


def test_dropblock_drops_whole_square_blocks():
    x = np.ones((1, 120, 120, 1), "float32")
    out = ops.convert_to_numpy(DropBlock2D(rate=0.01, block_size=7, seed=5)(x, training=True))
    dropped = out[0, :, :, 0] == 0
    labels, count = ndimage.label(dropped)
    assert count > 0
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        height, width = region[0].stop - region[0].start, region[1].stop - region[1].start
        if (labels[region] == index).sum() == 49:  # an isolated block
            assert (height, width) == (7, 7)
        else:  # overlapping blocks: at least one block's extent
            assert height >= 7 and width >= 7


def test_dropblock_non_square_inputs_keep_blocks_inside():
    x = np.ones((2, 40, 72, 3), "float32")
    out = ops.convert_to_numpy(DropBlock2D(rate=0.2, block_size=7, seed=2)(x, training=True))
    assert out.shape == x.shape
    dropped = out == 0
    assert 0.05 < dropped.mean() < 0.35
    # Seeds lie where a whole block fits: a dropped pixel's 7-row band lies inside the map, so
    # the first and last three rows are only ever dropped together with rows further inside.
    assert dropped[:, :3].mean() <= dropped[:, 3:-3].mean()


def test_dropblock_block_larger_than_map_is_clipped():
    x = np.ones((1, 5, 5, 2), "float32")
    out = ops.convert_to_numpy(DropBlock2D(rate=0.5, block_size=7, seed=0)(x, training=True))
    assert out.shape == x.shape and np.isfinite(out).all()


def test_dropblock_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rate"):
        DropBlock2D(rate=1.0)
    with pytest.raises(ValueError, match="block_size"):
        DropBlock2D(block_size=0)


def test_spatial_attention_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 12, 10, 5)).astype("float32")
    layer = SpatialAttention()
    out = ops.convert_to_numpy(layer(x))
    kernel = ops.convert_to_numpy(layer.conv.kernel)  # (7, 7, 2, 1)
    pooled = np.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], -1)
    padded = np.pad(pooled, ((0, 0), (3, 3), (3, 3), (0, 0)))
    logits = np.zeros(x.shape[:3])
    for i in range(7):
        for j in range(7):
            logits += padded[:, i : i + 12, j : j + 10, :] @ kernel[i, j, :, 0]
    expected = x / (1 + np.exp(-logits))[..., None]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert layer.count_params() == 98


def test_cross_scale_attention_reweights_encoder_only():
    rng = np.random.default_rng(1)
    encoder = rng.normal(size=(1, 8, 8, 6)).astype("float32")
    decoder = rng.normal(size=(1, 8, 8, 6)).astype("float32")
    layer = CrossScaleSpatialAttention()
    out = ops.convert_to_numpy(layer([encoder, decoder]))
    attention = ops.convert_to_numpy(layer.attention_map([encoder, decoder]))
    assert attention.shape == (1, 8, 8, 1) and (attention > 0).all() and (attention < 1).all()
    np.testing.assert_allclose(out, encoder * attention, rtol=1e-6)
    # The decoder steers the map: changing it changes the output.
    changed = ops.convert_to_numpy(layer([encoder, decoder + 3.0]))
    assert not np.allclose(changed, out)
    assert layer.count_params() == 98


def test_attention_gate_parameters_and_shape():
    skip = np.ones((1, 8, 8, 16), "float32")
    gate = AttentionGate(8)
    out = gate([skip, skip])
    assert tuple(out.shape) == (1, 8, 8, 16)
    assert gate.count_params() == 2 * (16 * 8 + 8) + 8 + 1


def test_conv_norm_act_matches_its_parts():
    x = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype("float32")
    unit = ConvNormAct(16, dropblock_rate=0.15)
    out = ops.convert_to_numpy(unit(x, training=False))
    conv = ops.convert_to_numpy(unit.conv(x))
    normed = ops.convert_to_numpy(unit.normalization(conv))
    np.testing.assert_allclose(out, normed / (1 + np.exp(-normed)), rtol=1e-5, atol=1e-6)
    assert unit.count_params() == 3 * 9 * 16 + 16 + 2 * 16
    assert unit.normalization.epsilon == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "layer",
    [
        DropBlock2D(0.2, 5, seed=3),
        ConvNormAct(8, norm="batch", activation="relu", kernel_initializer="glorot_uniform"),
        SpatialAttention(kernel_size=5),
        CrossScaleSpatialAttention(),
        AttentionGate(4),
    ],
)
def test_layers_round_trip_through_their_config(layer):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_two_stage_group_norm_equals_keras_in_values_and_gradients():
    """Same statistics summed in another order: outputs and every gradient agree to float32."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the gradient tape here is TensorFlow's")
    import tensorflow as tf

    x = tf.constant(
        (2.0 + np.random.default_rng(0).standard_normal((2, 40, 36, 16))).astype("float32")
    )
    reference = keras.layers.GroupNormalization(groups=8, epsilon=1e-3)
    two_stage = TwoStageGroupNormalization(groups=8, epsilon=1e-3)
    reference.build(x.shape)
    two_stage.build(x.shape)
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(16).astype("float32") for _ in range(2)]
    reference.set_weights(weights)
    two_stage.set_weights(weights)
    upstream = tf.constant(rng.standard_normal(x.shape).astype("float32"))
    results = []
    for layer in (reference, two_stage):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            objective = tf.reduce_sum(y * upstream)
        grads = tape.gradient(objective, [x, *layer.trainable_weights])
        results.append([y.numpy(), *(g.numpy() for g in grads)])
    for ours, theirs in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=2e-4)


def test_use_two_stage_group_norm_switches_every_group_norm_and_saves_as_usual(tmp_path):
    from saunetv2_lib.models import get_model

    model = get_model("sa_unet_v2", (32, 32, 3), seed=0)
    x = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    expected = model.predict_on_batch(x)  # built and called: compare against a fresh twin
    twin = get_model("sa_unet_v2", (32, 32, 3), seed=0)
    assert use_two_stage_group_norm(twin) == 14  # 2 units x 7 stages
    twin.set_weights(model.get_weights())
    np.testing.assert_allclose(twin.predict_on_batch(x), expected, atol=1e-5)
    twin.save(tmp_path / "twin.keras")
    loaded = keras.saving.load_model(tmp_path / "twin.keras")
    norms = [layer.normalization for layer in loaded.layers if hasattr(layer, "normalization")]
    assert {type(norm) for norm in norms} == {keras.layers.GroupNormalization}
    np.testing.assert_allclose(loaded.predict_on_batch(x), expected, atol=1e-5)
