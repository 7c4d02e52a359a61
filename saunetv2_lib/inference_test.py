"""Tests of own-image prediction: readers, size handling, FOV zeroing, outputs, CLI errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tifffile
from PIL import Image

from saunetv2_lib import inference
from saunetv2_lib.data.fov import derive_fov
from saunetv2_lib.models import get_model


def green_model(input_shape=(None, None, 3)) -> keras.Model:
    """A 'model' whose output is exactly the input's green channel (1x1 conv, weights 0/1/0)."""
    inputs = keras.Input(input_shape)
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="green")
    outputs = conv(inputs)
    conv.set_weights([np.array([0.0, 1.0, 0.0], np.float32).reshape(1, 1, 3, 1)])
    return keras.Model(inputs, outputs)


def fundus(height: int = 96, width: int = 88, seed: int = 0) -> np.ndarray:
    """uint8 RGB: an orange disc with random green texture on a dim, non-black border."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (0.42 * min(height, width)) ** 2
    image = np.empty((height, width, 3), np.float32)
    image[...] = (0.08, 0.3, 0.05)  # border: dim, but with green, so FOV zeroing is visible
    inside = rng.uniform(0.2, 0.9, size=disc.sum())
    image[disc] = np.stack([np.full_like(inside, 0.85), inside, np.full_like(inside, 0.2)], -1)
    return np.round(image * 255).astype(np.uint8)


def test_read_image_formats_and_bit_depths(tmp_path):
    rgb = fundus(40, 50)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(inference.read_image(tmp_path / "a.png"), rgb / np.float32(255))

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 17, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(
        inference.read_image(tmp_path / "rgba.png"), rgb / np.float32(255)
    )

    grey = rgb[..., 1]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    got = inference.read_image(tmp_path / "grey.png")
    assert got.shape == (40, 50, 3)
    for channel in range(3):
        np.testing.assert_array_equal(got[..., channel], grey / np.float32(255))

    grey16 = np.random.default_rng(1).integers(0, 65536, (40, 50), dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    np.testing.assert_allclose(
        inference.read_image(tmp_path / "g16.png")[..., 2], grey16 / 65535.0, rtol=0, atol=1e-7
    )
    rgb16 = np.random.default_rng(2).integers(0, 65536, (40, 50, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16)
    np.testing.assert_allclose(
        inference.read_image(tmp_path / "rgb16.tif"), rgb16 / 65535.0, rtol=0, atol=1e-7
    )
    # LZW TIFF (as DRIVE ships): tifffile lacks the codec here, so Pillow takes over.
    Image.fromarray(rgb).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(inference.read_image(tmp_path / "lzw.tif"), rgb / np.float32(255))

    Image.fromarray(rgb).save(tmp_path / "a.ppm")
    np.testing.assert_array_equal(inference.read_image(tmp_path / "a.ppm"), rgb / np.float32(255))
    palette = Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "a.gif")
    want = np.asarray(Image.open(tmp_path / "a.gif").convert("RGB")) / np.float32(255)
    np.testing.assert_array_equal(inference.read_image(tmp_path / "a.gif"), want)

    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="text.png: not a readable image"):
        inference.read_image(tmp_path / "text.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        inference.read_image(tmp_path / "missing.png")


def test_fixed_side_model_pads_like_the_evaluation():
    from saunetv2_lib.inference import predict_maps

    model = get_model("sa_unet_v2", (64, 64, 3), seed=2)
    image = fundus(60, 56) / np.float32(255)  # fits 64 and fills > half of it: padded to 64
    got = inference.predict_image(model, image, runtime="keras")
    padded = np.pad(image, ((0, 4), (0, 8), (0, 0)))
    want = model.predict_on_batch(padded[None])[0, :60, :56, 0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        got, predict_maps(model, [image], 64, runtime="keras")[0], rtol=0, atol=1e-6
    )


def test_fully_convolutional_twin_copies_weights_and_handles_any_size():
    model = get_model("sa_unet_v2", (64, 64, 3), seed=4)
    twin = inference.fully_convolutional(model)
    assert twin.input_shape == (None, None, None, 3)
    assert inference.fully_convolutional(model) is twin  # cached
    probe = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(
        twin.predict_on_batch(probe), model.predict_on_batch(probe), rtol=0, atol=1e-6
    )
    # Larger than the fixed side: whole image through the twin, padded to a multiple of 8.
    image = fundus(90, 70) / np.float32(255)
    got = inference.predict_image(model, image, runtime="keras")
    assert got.shape == (90, 70)
    padded = np.pad(image, ((0, 6), (0, 26), (0, 0)))  # 96 = 8 * ceil(90 / 8)
    np.testing.assert_allclose(
        got, twin.predict_on_batch(padded[None])[0, :90, :70, 0], rtol=0, atol=1e-6
    )
    # Much smaller than the fixed side (under half its area): also the twin, not a 64 pad.
    small = fundus(40, 36) / np.float32(255)
    padded = np.pad(small, ((0, 0), (0, 4), (0, 0)))
    np.testing.assert_allclose(
        inference.predict_image(model, small, runtime="keras"),
        twin.predict_on_batch(padded[None])[0, :40, :36, 0],
        rtol=0,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="at least 32 px"):
        inference.predict_image(model, np.zeros((20, 40, 3), np.float32))


def test_predict_files_outputs_and_fov_zeroing(tmp_path):
    rgb = fundus()
    Image.fromarray(rgb).save(tmp_path / "eye.png")
    image = rgb / np.float32(255)
    fov = derive_fov(image)
    assert 0.3 < fov.mean() < 0.7  # the disc, not the dim border

    results = inference.predict_files(green_model(), [tmp_path / "eye.png"], tmp_path / "out")
    assert results[0].ok and set(results[0].outputs) == {"prob", "mask", "overlay"}
    prob = np.asarray(Image.open(tmp_path / "out" / "eye_prob.png"))
    np.testing.assert_array_equal(prob, np.round(image[..., 1] * fov * 255).astype(np.uint8))
    mask = np.asarray(Image.open(tmp_path / "out" / "eye_mask.png"))
    np.testing.assert_array_equal(mask, ((image[..., 1] * fov > 0.5) * 255).astype(np.uint8))
    over = np.asarray(Image.open(tmp_path / "out" / "eye_overlay.png"))
    assert over.shape == rgb.shape
    np.testing.assert_array_equal(over[mask == 0], rgb[mask == 0])
    assert np.all(over[mask == 255][:, 1] >= rgb[mask == 255][:, 1])  # tinted green

    inference.predict_files(
        green_model(), [tmp_path / "eye.png"], tmp_path / "nofov", use_fov=False, threshold=0.25
    )
    prob = np.asarray(Image.open(tmp_path / "nofov" / "eye_prob.png"))
    np.testing.assert_array_equal(prob, rgb[..., 1])  # border kept (green 0.3 there)
    mask = np.asarray(Image.open(tmp_path / "nofov" / "eye_mask.png"))
    np.testing.assert_array_equal(mask, ((image[..., 1] > 0.25) * 255).astype(np.uint8))


def test_predict_cli_mixed_good_and_bad_files(tmp_path, capsys):
    from saunetv2_lib.cli import main

    weights = tmp_path / "green.keras"
    green_model().save(weights)
    rgb = fundus()
    good = [tmp_path / "rgb.png", tmp_path / "grey.jpg", tmp_path / "rgba.png"]
    Image.fromarray(rgb).save(good[0])
    Image.fromarray(rgb[..., 1]).save(good[1], quality=95)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(good[2])
    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not a picture\n")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(fundus(20, 20)).save(tiny)
    out = tmp_path / "out"

    code = main(
        ["predict", str(good[0]), str(text), str(good[1]), str(tiny), str(good[2])]
        + ["--out", str(out), "--weights", str(weights)]
    )
    assert code == 2
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3  # one line per bad file, then the count
    assert str(text) in errors[0] and "not a readable image" in errors[0]
    assert str(tiny) in errors[1] and "at least 32 px" in errors[1]
    assert "2 of 5" in errors[2]
    for path in good:
        for kind in ("prob", "mask", "overlay"):
            assert (out / f"{path.stem}_{kind}.png").is_file()
    assert not (out / "notes_prob.png").exists() and not (out / "tiny_prob.png").exists()
    # The grey JPEG is replicated to RGB, so its overlay is a 3-channel image of the same size.
    assert np.asarray(Image.open(out / "grey_overlay.png")).shape == rgb.shape
    # RGBA: alpha is dropped, so the prediction equals the RGB file's.
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "rgba_prob.png")), np.asarray(Image.open(out / "rgb_prob.png"))
    )


def test_predict_cli_default_weights_not_shipped(tmp_path, monkeypatch, capsys):
    from saunetv2_lib import weights
    from saunetv2_lib.cli import main

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    Image.fromarray(fundus()).save(tmp_path / "eye.png")
    assert main(["predict", str(tmp_path / "eye.png"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'drive' weights are not shipped yet" in err[0]


def test_fast_runtime_matches_the_keras_reference():
    import keras

    from saunetv2_lib.inference import predict_batch
    from saunetv2_lib.models import get_model

    model = get_model("sa_unet_v2", (64, 64, 3))
    batch = np.random.default_rng(7).uniform(size=(2, 64, 64, 3)).astype("float32")
    fast = predict_batch(model, batch)
    reference = predict_batch(model, batch, runtime="keras")
    assert fast.shape == reference.shape == (2, 64, 64, 1)
    np.testing.assert_allclose(fast, reference, atol=1e-4)
    assert predict_batch(model, batch) is not fast  # a new array, from the cached predictor
    with pytest.raises(ValueError, match="runtime"):
        predict_batch(model, batch, runtime="onnx")
    keras.backend.clear_session()
