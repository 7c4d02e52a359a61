"""Exports and runtimes: parity with Keras, quantisation F1 change, files, predictors, errors."""

from __future__ import annotations

import functools
import hashlib
import json
import warnings

import keras
import numpy as np
import pytest

from saunetv2_lib import export
from saunetv2_lib.export import (
    EXPORT_FILES,
    FAST_PATH,
    export_graph_model,
    export_model,
    fast_predictor,
    fastest_predictor,
    load_predictor,
    make_predictor,
    tflite_bytes,
)
from saunetv2_lib.metrics import segmentation_metrics
from saunetv2_lib.models import get_model

FP32_TOLERANCE = 1e-4  # issue 6: fp32 exports within 1e-4 of Keras (max |difference|)
F1_TOLERANCE = 1e-3  # issue 6: fp16 / int8 change F1 by at most 0.001


def _drive_test_crops(side: int, count: int = 2) -> np.ndarray:
    """Centre crops ``side x side`` of the first DRIVE test images (real when SAUNETV2_DATA is set,
    else the synthetic stand-in)."""
    from saunetv2_lib.data import load_split

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "using the SYNTHETIC DRIVE stand-in"
        samples = load_split("DRIVE", "test")[:count]
    crops = []
    for sample in samples:
        height, width = sample.image.shape[:2]
        top, left = (height - side) // 2, (width - side) // 2
        crops.append(sample.image[top : top + side, left : left + side])
    return np.stack(crops).astype(np.float32)


@functools.cache
def _quick_trained_weights(patch: int = 48, steps: int = 30) -> tuple[np.ndarray, ...]:
    """SA-UNetv2 weights after ``steps`` Adam steps on synthetic fundus patches (seeded).

    Enough to give a meaningful vessel map (F1 about 0.76 on synthetic test images), so that the
    quantisation checks measure a trained network's sensitivity, not a random one's.
    """
    from saunetv2_lib.data.synthetic import synthetic_fundus
    from saunetv2_lib.losses import BceMccLoss

    keras.utils.set_random_seed(0)
    images = [synthetic_fundus((160, 160), seed=seed) for seed in range(8)]
    rng = np.random.default_rng(0)
    model = get_model("sa_unet_v2", (patch, patch, 3), seed=0)
    model.compile(keras.optimizers.Adam(3e-3), BceMccLoss())
    for _ in range(steps):
        batch_x, batch_y = [], []
        for _ in range(8):
            image, label, _ = images[rng.integers(len(images))]
            top, left = rng.integers(0, 160 - patch, size=2)
            batch_x.append(image[top : top + patch, left : left + patch])
            batch_y.append(label[top : top + patch, left : left + patch, None])
        model.train_on_batch(np.stack(batch_x), np.stack(batch_y).astype(np.float32))
    return tuple(model.get_weights())


def _trained_model(side: int) -> keras.Model:
    model = get_model("sa_unet_v2", (side, side, 3))
    model.set_weights(list(_quick_trained_weights()))
    return model


# ------------------------------------------------------------------------------------ parity
def test_fp32_paths_match_keras_on_drive_crops():
    """Every fp32 path agrees with Keras within 1e-4 on DRIVE test images (128 px crops)."""
    images = _drive_test_crops(128)
    model = get_model("sa_unet_v2", (128, 128, 3), seed=3)
    reference = make_predictor(model, "keras").predict(images)
    assert reference.shape == (2, 128, 128, 1)
    for path in ("keras_fast", "tflite", "onnx", "xla"):
        output = make_predictor(model, path).predict(images)
        assert output.shape == reference.shape and output.dtype == np.float32
        difference = float(np.max(np.abs(output - reference)))
        assert difference <= FP32_TOLERANCE, (path, difference)


def _numpy_group_norm(x: np.ndarray, groups: int, epsilon: float) -> np.ndarray:
    b, h, w, c = x.shape
    grouped = x.astype(np.float64).reshape(b, h, w, groups, c // groups)
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    variance = grouped.var(axis=(1, 2, 4), keepdims=True)
    return ((grouped - mean) / np.sqrt(variance + epsilon)).reshape(x.shape)


def test_two_stage_group_norm_is_accurate_in_tflite_on_long_reductions():
    """On 592x592 maps with an offset, the exported group norm matches float64 numpy to 1e-5.

    The same layer converted as Keras builds it sums 700k values per group in TFLite's kernel;
    the export copy must be at least as accurate (here: far more).
    """
    inputs = keras.Input((592, 592, 4))
    outputs = keras.layers.GroupNormalization(groups=2, epsilon=1e-3)(inputs)
    model = keras.Model(inputs, outputs)
    x = (3.0 + np.random.default_rng(0).random((1, 592, 592, 4))).astype(np.float32)
    expected = _numpy_group_norm(x, 2, 1e-3)
    errors = {}
    for stable in (True, False):
        predictor = export.TFLitePredictor(tflite_bytes(model, stable_norm=stable))
        errors[stable] = float(np.max(np.abs(predictor.predict(x) - expected)))
    assert errors[True] <= 1e-5, errors
    assert errors[True] <= errors[False], errors


def test_export_graph_model_same_function_and_weights():
    model = get_model("sa_unet_v2", (64, 64, 3), seed=1)
    copy = export_graph_model(model)
    assert copy is not model and copy.count_params() == model.count_params()
    swapped = [
        layer.normalization
        for layer in copy.layers
        if getattr(layer, "normalization", None) is not None
    ]
    # 14 conv units in SA-UNetv2 (2 per stage x 3 encoder + 2 bottleneck + 2 x 3 decoder).
    assert len(swapped) == 14
    assert all(type(n).__name__ == "TwoStageGroupNormalization" for n in swapped)
    assert all(
        type(layer.normalization) is keras.layers.GroupNormalization
        for layer in model.layers
        if getattr(layer, "normalization", None) is not None
    )
    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(
        np.asarray(copy.predict_on_batch(x)), np.asarray(model.predict_on_batch(x)), atol=1e-5
    )


@pytest.mark.slow
def test_quantized_exports_change_f1_by_at_most_0_001():
    """fp16 and dynamic-range int8 TFLite keep the F1 of a (quickly) trained SA-UNetv2."""
    from saunetv2_lib.data.synthetic import synthetic_fundus

    model = _trained_model(128)
    test = [synthetic_fundus((128, 128), seed=100 + k) for k in range(4)]
    images = np.stack([image for image, _, _ in test])
    labels = [label for _, label, _ in test]
    fovs = [fov for _, _, fov in test]
    reference = make_predictor(model, "keras").predict(images)[..., 0]
    f1_keras = segmentation_metrics(list(reference), labels, fovs)["f1"]
    assert f1_keras > 0.6, f"the quick training did not learn vessels (F1 {f1_keras:.3f})"
    for path in ("tflite_fp16", "tflite_int8"):
        output = make_predictor(model, path).predict(images)[..., 0]
        assert float(np.max(np.abs(output - reference))) > 0.0  # really quantised
        change = abs(segmentation_metrics(list(output), labels, fovs)["f1"] - f1_keras)
        assert change <= F1_TOLERANCE, (path, change)


def _float64_twin(model: keras.Model) -> keras.Model:
    """The same registered architecture and weights computed in float64 (a rounding-free yardstick)."""
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("float64")
    try:
        twin = get_model(model.name, model.input_shape[1:])
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return twin


@pytest.mark.slow
@pytest.mark.real_data
def test_exports_on_drive_test_set_at_592(real_data_root):
    """The issue's check at full size: all 20 DRIVE test images padded to 592.

    Uses the shipped ``drive`` weights when present, else the quickly trained model (a random
    network amplifies float32 rounding so much at 592 that no fp32 comparison is meaningful).
    At 592 the Keras reference itself is not exact to 1e-4: TensorFlow's group-norm reductions
    over 700k values move its probabilities by up to about 1e-3 from a float64 run of the same
    network. So every fp32 path must be within 1e-4 of the float64 run, and its distance to
    Keras must be explained by Keras's own rounding (within Keras-vs-float64 + 1e-4). fp16 and
    int8 must change the F1 (against Keras) by at most 0.001.
    """
    from saunetv2_lib.data import load_split, pad_to_side
    from saunetv2_lib.weights import load_weights

    try:
        model = load_weights("drive")
    except FileNotFoundError:
        model = _trained_model(592)
    samples = load_split("DRIVE", "test", root=real_data_root)
    images = [pad_to_side(sample.image, 592)[0] for sample in samples]
    labels = [sample.label for sample in samples]
    fovs = [sample.fov for sample in samples]
    height, width = labels[0].shape

    def maps(predict):
        return [np.asarray(predict(image[None]))[0, :height, :width, 0] for image in images]

    def max_difference(first, second):
        return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second, strict=True))

    reference = maps(make_predictor(model, "keras").predict)
    exact = maps(_float64_twin(model).predict_on_batch)
    keras_rounding = max_difference(reference, exact)
    f1_keras = segmentation_metrics(reference, labels, fovs)["f1"]
    for path in ("keras_fast", "tflite", "onnx", "tflite_fp16", "tflite_int8"):
        output = maps(make_predictor(model, path).predict)
        change = abs(segmentation_metrics(output, labels, fovs)["f1"] - f1_keras)
        assert change <= F1_TOLERANCE, (path, change)
        if path in ("keras_fast", "tflite", "onnx"):
            assert max_difference(output, exact) <= FP32_TOLERANCE, path
            assert max_difference(output, reference) <= keras_rounding + FP32_TOLERANCE, path


# ------------------------------------------------------------------------------------ predictors
def test_tflite_and_onnx_predictors_follow_the_batch_shape():
    model = get_model("sa_unet_v2", (32, 32, 3), seed=2)
    x = np.random.default_rng(2).random((3, 32, 32, 3), dtype=np.float32)
    reference = np.asarray(model.predict_on_batch(x))
    for path in ("tflite", "onnx"):
        predictor = make_predictor(model, path, threads=1)
        assert predictor.path == path and predictor.threads == 1
        whole = predictor.predict(x)
        single = np.concatenate([predictor.predict(x[k : k + 1]) for k in range(3)])
        np.testing.assert_allclose(whole, reference, atol=FP32_TOLERANCE)
        np.testing.assert_allclose(single, whole, atol=1e-6)
        # float64 input is accepted and converted
        np.testing.assert_allclose(predictor(x[:1].astype(np.float64)), whole[:1], atol=1e-6)


def test_size_agnostic_model_on_every_fp32_path():
    """A ``(None, None, 3)`` model (inference on any padded size) converts and runs everywhere."""
    model = get_model("sa_unet_v2", (None, None, 3), seed=5)
    x = np.random.default_rng(5).random((2, 48, 40, 3), dtype=np.float32)
    reference = np.asarray(model.predict_on_batch(x))
    for path in ("keras_fast", "tflite", "onnx"):
        output = make_predictor(model, path).predict(x)
        np.testing.assert_allclose(output, reference, atol=FP32_TOLERANCE, err_msg=path)


def test_bad_inputs_raise_clear_errors(tmp_path):
    model = get_model("sa_unet_v2", (32, 32, 3), seed=0)
    predictor = make_predictor(model, "keras")
    with pytest.raises(ValueError, match="batch of images"):
        predictor.predict(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="float images"):
        predictor.predict(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="Unknown inference path"):
        make_predictor(model, "tensorrt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_predictor(tmp_path / "missing.tflite")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="Cannot tell the runtime"):
        load_predictor(tmp_path / "model.bin")
    with pytest.raises(ValueError, match="TFLite"):
        export.TFLitePredictor(b"not a flatbuffer")
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        export.OnnxPredictor(b"not onnx")
    with pytest.raises(ValueError, match="quantization"):
        tflite_bytes(model, "int4")
    with pytest.raises(ValueError, match="Unknown export format"):
        export_model(model, tmp_path / "out", ["keras", "pt"])


def test_fast_predictor_default_and_override(monkeypatch):
    model = get_model("sa_unet_v2", (32, 32, 3), seed=0)
    monkeypatch.delenv(export.FAST_PATH_ENV, raising=False)
    assert fast_predictor(model).path == FAST_PATH
    monkeypatch.setenv(export.FAST_PATH_ENV, "tflite")
    predictor = fast_predictor(model, threads=1)
    assert predictor.path == "tflite"
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(predictor.predict(x), model.predict_on_batch(x), atol=FP32_TOLERANCE)
    monkeypatch.setenv(export.FAST_PATH_ENV, "gpu")
    with pytest.raises(ValueError, match="SAUNETV2_FAST_PATH"):
        fast_predictor(model)


def test_fastest_predictor_returns_the_measured_minimum():
    model = get_model("sa_unet_v2", (32, 32, 3), seed=0)
    sample = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    predictor, medians = fastest_predictor(model, sample, paths=("keras", "tflite"), runs=2)
    assert set(medians) == {"keras", "tflite"}
    assert predictor.path == min(medians, key=medians.get)


# ------------------------------------------------------------------------------------ files
def test_export_model_writes_every_format_and_they_reload(tmp_path):
    import tensorflow as tf

    model = get_model("sa_unet_v2", (32, 32, 3), seed=4)
    written = export_model(model, tmp_path)
    assert set(written) == set(EXPORT_FILES)
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest["parameters"] == model.count_params() == 260_521
    for fmt, path in written.items():
        entry = manifest["files"][fmt]
        assert entry["file"] == path.name
        if path.is_file():
            assert entry["bytes"] == path.stat().st_size
            assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # fp32 holds 4 bytes per parameter; fp16 weights halve it, int8 quarter it (plus metadata).
    sizes = {
        fmt: manifest["files"][fmt]["bytes"] for fmt in ("tflite", "tflite_fp16", "tflite_int8")
    }
    assert sizes["tflite"] >= 4 * 260_521
    assert sizes["tflite_fp16"] < 0.6 * sizes["tflite"]
    assert sizes["tflite_int8"] < 0.4 * sizes["tflite"]

    x = np.random.default_rng(4).random((2, 32, 32, 3), dtype=np.float32)
    reference = np.asarray(model.predict_on_batch(x))
    for fmt in ("keras", "tflite", "onnx"):
        predictor = load_predictor(written[fmt])
        assert predictor.path == fmt
        np.testing.assert_allclose(predictor.predict(x), reference, atol=FP32_TOLERANCE)
    assert load_predictor(written["tflite_int8"]).path == "tflite_int8"
    loaded = tf.saved_model.load(str(written["savedmodel"]))  # keep it: it owns the variables
    np.testing.assert_allclose(np.asarray(loaded.serve(x)), reference, atol=FP32_TOLERANCE)
