import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from saunetv2_lib.models import MODELS, get_model

# Parameter counts at 592x592x3: spec 1.3 (SA-UNetv2, exact, from the official model.summary())
# and spec 2.2 / 7 (the baselines' reconstructions).
EXPECTED_PARAMS = {
    "sa_unet_v2": 260_521,
    "sa_unet": 537_299,
    "sa_unet_bn_relu": 538_707,
    "unet": 8_636_385,
    "attention_unet": 8_649_828,
}
PAPER_PARAMS_M = {"unet": 8.64, "attention_unet": 8.65}


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_parameter_counts_at_592(name):
    model = get_model(name, (592, 592, 3))
    assert model.count_params() == EXPECTED_PARAMS[name]
    if name in PAPER_PARAMS_M:
        assert model.count_params() / 1e6 == pytest.approx(PAPER_PARAMS_M[name], rel=0.005)


def test_sa_unet_v2_parameter_breakdown():
    model = get_model("sa_unet_v2")
    gn = sum(
        layer.normalization.count_params()
        for layer in model.layers
        if hasattr(layer, "normalization")
    )
    attention = sum(
        layer.count_params()
        for layer in model.layers
        if "csa" in layer.name or "sa" in layer.name.split("_")
    )
    assert gn == 1_024
    assert attention == 4 * 98
    assert all(w.trainable for w in model.weights)


def test_bn_relu_variant_has_moving_statistics():
    model = get_model("sa_unet_bn_relu")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 537_299


@pytest.mark.parametrize("side", [592, 704, 1008])
def test_sa_unet_v2_builds_at_the_datasets_sides(side):
    model = get_model("sa_unet_v2", (side, side, 3))
    assert tuple(model.output.shape) == (None, side, side, 1)
    assert model.count_params() == 260_521


@pytest.mark.parametrize(("name", "side", "factor"), [("sa_unet_v2", 590, 8), ("unet", 600, 16)])
def test_indivisible_sides_fail_at_build_time_with_a_reason(name, side, factor):
    with pytest.raises(ValueError, match=f"not divisible by {factor}") as error:
        get_model(name, (side, side, 3))
    assert "Pad the image" in str(error.value)


def test_unknown_model_names_the_registry():
    with pytest.raises(KeyError, match="sa_unet_v2"):
        get_model("sa_unet_v3")


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_pass_gives_probabilities(name):
    side = 64
    model = get_model(name, (side, side, 3))
    x = np.random.default_rng(0).uniform(size=(2, side, side, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (2, side, side, 1)
    assert y.dtype == np.float32
    assert ((y > 0) & (y < 1)).all()


def test_fully_convolutional_variant_accepts_any_padded_size():
    model = get_model("sa_unet_v2", (None, None, 3))
    y = model(np.zeros((1, 48, 80, 3), "float32"), training=False)
    assert tuple(y.shape) == (1, 48, 80, 1)


def test_layer_names_are_stable_and_weights_map_by_name(tmp_path):
    first = get_model("sa_unet_v2", (64, 64, 3))
    get_model("unet", (64, 64, 3))  # advances Keras' automatic name counters
    second = get_model("sa_unet_v2", (64, 64, 3))
    assert [layer.name for layer in first.layers] == [layer.name for layer in second.layers]
    assert {"enc1_conv1", "bottleneck_sa", "skip3_csa", "dec1_up", "head", "probability"} <= {
        layer.name for layer in first.layers
    }
    path = tmp_path / "first.weights.h5"
    first.save_weights(path)
    second.load_weights(path)
    x = np.random.default_rng(3).uniform(size=(1, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(first(x, training=False)),
        keras.ops.convert_to_numpy(second(x, training=False)),
    )


@pytest.mark.parametrize("name", ["sa_unet_v2", "sa_unet_bn_relu", "attention_unet"])
def test_keras_file_round_trip_in_safe_mode(tmp_path, name):
    model = get_model(name, (64, 64, 3))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # default safe_mode=True: no Lambda, no pickled code
    x = np.random.default_rng(4).uniform(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.predict(x, verbose=0)),
        keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)),
    )
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


JAX_TRAINING_STEP = textwrap.dedent(
    """
    import json, os
    import numpy as np, keras
    from saunetv2_lib.models import get_model
    from saunetv2_lib.losses import BceMccLoss
    keras.utils.set_random_seed(0)
    model = get_model("sa_unet_v2", (64, 64, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=BceMccLoss())
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 64, 64, 3)).astype("float32")
    y = (rng.uniform(size=(4, 64, 64, 1)) < 0.1).astype("float32")
    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    changed = any(not np.allclose(a, np.array(b)) for a, b in zip(before, model.trainable_weights))
    print(json.dumps({"backend": keras.backend.backend(), "loss": history.history["loss"][-1],
                      "changed": bool(changed)}))
    """
)


@pytest.mark.slow
def test_training_step_runs_under_jax():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", JAX_TRAINING_STEP],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert np.isfinite(report["loss"])
    assert report["changed"]


def test_block_settings_default_to_the_conv_unit_s_and_refuse_unknown_keys():
    from saunetv2_lib.models.unet import BLOCK_SETTINGS, block_settings, build_unet

    assert BLOCK_SETTINGS == {"dropblock_rate": 0.15, "block_size": 7, "norm": "group",
                              "groups": 8, "norm_epsilon": 1e-3, "activation": "silu",
                              "kernel_initializer": "he_normal"}  # fmt: skip
    assert block_settings(norm="batch")["norm"] == "batch"
    with pytest.raises(TypeError, match=r"unknown block settings \['norm_eps'\]"):
        build_unet((32, 32, 3), widths=(8, 16), norm_eps=1e-5)
