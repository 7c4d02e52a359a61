import keras
import numpy as np
import pytest

from saunetv2_lib.complexity import model_complexity, tf_profiler_flops
from saunetv2_lib.losses import BceMccLoss
from saunetv2_lib.models import get_model
from saunetv2_lib.models.simple_unet import (
    AdaptiveFeatureFusion,
    ConvBNReLU,
    build_simple_unet,
)
from saunetv2_lib.models.upsample import bilinear_upsample


def expected_params(width: int, depth: int = 5, rate: float = 0.5, k: int = 3, aff=True) -> int:
    """SimpleUNet's parameters counted from its description (BN: 4 per channel, 2 trainable)."""
    narrow = int(rate * width)
    units = [(3, width, k)] + [(width, width, k)] * (depth - 1)  # encoder
    units += [(width, narrow, 1)] * (depth - 1)  # partial feature selection
    units += [(width, narrow, k)]  # bottleneck
    units += [(2 * narrow, narrow, k)] * (depth - 1)  # decoder
    params = sum(k_ * k_ * c_in * c_out + 4 * c_out for c_in, c_out, k_ in units)
    params += (depth - 1) * 2 * narrow if aff else 0  # alpha and beta
    return params + narrow + 1  # head


@pytest.mark.parametrize(("name", "width"), [("simple_unet", 32), ("simple_unet_small", 16)])
def test_parameter_counts_follow_the_architecture(name, width):
    model = get_model(name, (64, 64, 3))
    assert model.count_params() == expected_params(width)
    if name == "simple_unet_small":
        assert 16_000 < model.count_params() < 17_000  # the seed's "16 KB" variant


def test_dilation_sets_the_receptive_field_of_a_unit():
    unit = ConvBNReLU(1, 3, dilation=2)
    unit.build((1, 9, 9, 1))
    unit.conv.kernel.assign(np.ones((3, 3, 1, 1), "float32"))
    impulse = np.zeros((1, 9, 9, 1), "float32")
    impulse[0, 4, 4, 0] = 1.0
    response = keras.ops.convert_to_numpy(unit(impulse, training=False))[0, ..., 0]
    # Inference BN at init divides by sqrt(1 + 1e-5); ReLU keeps the positive taps.
    expected = np.zeros((9, 9))
    expected[2:7:2, 2:7:2] = 1.0 / np.sqrt(1.0 + 1e-5)
    np.testing.assert_allclose(response, expected, rtol=1e-6)


@pytest.mark.parametrize("adaptive", [True, False])
def test_adaptive_feature_fusion_weights_then_concatenates(adaptive):
    rng = np.random.default_rng(0)
    skip = rng.normal(size=(2, 8, 6, 4)).astype("float32")
    deep = rng.normal(size=(2, 4, 3, 5)).astype("float32")
    layer = AdaptiveFeatureFusion(adaptive)
    layer.build([skip.shape, deep.shape])
    assert len(layer.weights) == (2 if adaptive else 0)
    alpha, beta = np.ones(4, "float32"), np.ones(5, "float32")
    if adaptive:
        alpha, beta = rng.normal(size=4).astype("float32"), rng.normal(size=5).astype("float32")
        layer.set_weights([alpha, beta])
    got = keras.ops.convert_to_numpy(layer([skip, deep]))
    up = keras.ops.convert_to_numpy(bilinear_upsample(deep * beta, 2))
    np.testing.assert_allclose(got, np.concatenate([skip * alpha, up], -1), rtol=1e-6)


@pytest.mark.parametrize("options", [{}, {"adaptive_fusion": False, "dilation": 1}])
def test_counter_equals_the_tf_profiler(options):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the profiler needs the TensorFlow backend")
    model = build_simple_unet((64, 64, 3), width=16, **options)
    analytic = round(model_complexity(model, measure_file=False)["gflops"] * 1e9)
    assert analytic == tf_profiler_flops(model, (64, 64, 3))


def test_bad_configurations_fail_with_a_reason():
    with pytest.raises(ValueError, match="rate"):
        build_simple_unet((64, 64, 3), rate=0.0)
    with pytest.raises(ValueError, match="not divisible by 16"):
        build_simple_unet((72, 72, 3))


def test_round_trip_in_safe_mode_and_size_agnostic_twin(tmp_path):
    from saunetv2_lib.inference import fully_convolutional

    model = get_model("simple_unet", (64, 64, 3))
    model.save(tmp_path / "simple.keras")
    loaded = keras.saving.load_model(tmp_path / "simple.keras")
    x = np.random.default_rng(1).uniform(size=(2, 64, 64, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(expected, loaded.predict(x, verbose=0))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    twin = fully_convolutional(model)
    np.testing.assert_allclose(twin.predict(x, verbose=0), expected, atol=1e-5)
    assert twin.predict(np.zeros((1, 48, 80, 3), "float32"), verbose=0).shape == (1, 48, 80, 1)


def test_one_training_step_moves_every_trainable_weight(vessel_batch):
    model = get_model("simple_unet_small", (64, 64, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=BceMccLoss())
    x, y = vessel_batch(4)
    before = [np.array(w) for w in model.trainable_weights]
    assert np.isfinite(model.train_on_batch(x, y))
    assert all(
        not np.allclose(a, np.array(b))
        for a, b in zip(before, model.trainable_weights, strict=True)
    )
