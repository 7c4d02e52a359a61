"""Vessel segmentation of your own fundus images with a trained model.

How an image of any size is handled (:func:`predict_image`):

* If the model has a fixed square input side (the shipped models: 592 for DRIVE, 704 for STARE)
  and the image fits inside it while covering at least ``FIXED_SIZE_MIN_FILL`` of its area, the
  image is zero-padded to that side with the evaluation's anchor (top-left by default), predicted,
  and cropped back. This is exactly the test protocol, so a DRIVE test image gives the same map as
  ``saunetv2 evaluate``.
* Otherwise (larger images, much smaller images, or a model built with ``None`` spatial input) the
  model is rebuilt as a *fully convolutional twin*: the same functional graph with a
  ``(None, None, 3)`` input, weights copied layer by layer by name. The image is zero-padded to the
  smallest square side divisible by ``2**pools`` and predicted whole. We prefer this to tiling
  because the models use group normalisation, whose statistics are computed over the whole
  feature map: a whole image matches what the network saw in training, a 592-px tile of a larger
  image would not. Memory grows with the image (about 5 GB at 2000x2000 on CPU).

Scale is not adapted: the models learnt vessel widths at DRIVE/STARE resolution (about 565-700 px
across the field of view). Resize much larger photographs to a similar field-of-view diameter
first for meaningful results.

Input: any format Pillow (or tifffile) reads: TIFF, PNG, JPEG, PPM, GIF (first frame), BMP...;
RGB, grey (replicated to 3 channels), grey+alpha or RGBA (alpha dropped), palette; 8 or 16 bit
(scaled by 255 or 65535 to ``[0, 1]``). The field of view is derived from the image
(:func:`saunetv2_lib.data.fov.derive_fov`) and probabilities outside it are set to 0 (the dark
border holds no vessels, and models sometimes respond to the rim); ``use_fov=False`` disables it.

Outputs per image, in ``out_dir``: ``<stem>_prob.png`` (probability x 255, 8-bit grey),
``<stem>_mask.png`` (0/255, probability strictly above the threshold) and ``<stem>_overlay.png``
(the image with vessels tinted green).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from saunetv2_lib.data.images import read_image

MIN_SIDE = 32
"""Smallest accepted image side in pixels (a 3-pool U-Net needs a few pixels at 1/8 scale)."""

FIXED_SIZE_MIN_FILL = 0.5
"""Pad into a fixed-size model only if the image covers at least this fraction of its input area;
smaller images would be mostly zero padding, which shifts the group-norm statistics."""

OVERLAY_COLOR = (0, 255, 0)
OVERLAY_ALPHA = 0.6

_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------------- the model
def _spatial_input(model) -> tuple[int | None, int | None]:
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    return shape[1], shape[2]


def size_multiple(model) -> int:
    """``2**number_of_pooling_layers``: every padded side must be divisible by this."""
    pools = sum(1 for layer in model.layers if "Pooling2D" in type(layer).__name__)
    return 2 ** max(pools, 0)


def fully_convolutional(model):
    """The model rebuilt with a ``(None, None, C)`` input, sharing no state but the weight values.

    Works for functional models whose layers are size-agnostic (all models of this library);
    weights are copied layer by layer by name. Returns ``model`` itself when its input is already
    ``None`` x ``None``. The twin is cached per model.
    """
    import keras

    if _spatial_input(model) == (None, None):
        return model
    cached = _TWINS.get(model)
    if cached is not None:
        return cached
    try:
        config = model.get_config()
        for layer in config["layers"]:
            if layer["class_name"] == "InputLayer":
                batch_shape = list(layer["config"]["batch_shape"])
                layer["config"]["batch_shape"] = [batch_shape[0], None, None, batch_shape[-1]]
        twin = keras.Model.from_config(config)
    except (KeyError, TypeError, ValueError, NotImplementedError) as error:
        raise ValueError(
            f"Cannot build a size-agnostic copy of model {model.name!r} ({error}); predict images "
            "that fit its input size instead."
        ) from error
    for layer in model.layers:
        twin.get_layer(layer.name).set_weights(layer.get_weights())
    _TWINS[model] = twin
    return twin


RUNTIMES = ("fast", "keras")
_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def predict_batch(model, batch: np.ndarray, runtime: str = "fast") -> np.ndarray:
    """Probabilities ``(B, H, W, 1)`` for a float32 batch ``(B, H, W, 3)``.

    ``runtime="fast"`` (default) runs :func:`saunetv2_lib.export.fast_predictor`'s copy of the
    model, built once per model and cached: the same weights and maths, with group-norm
    statistics summed in two stages, which is ~1.5x faster on CPU and closer to float64 than
    Keras' one-pass sums (``export.py``). ``runtime="keras"`` is the reference,
    ``model.predict_on_batch``.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}.")
    batch = np.asarray(batch, dtype=np.float32)
    if runtime == "keras":
        return np.asarray(model.predict_on_batch(batch))
    predictor = _PREDICTORS.get(model)
    if predictor is None:
        from saunetv2_lib.export import fast_predictor

        predictor = _PREDICTORS[model] = fast_predictor(model)
    return np.asarray(predictor.predict(batch))


def predict_maps(
    model,
    images: Sequence[np.ndarray],
    side: int,
    anchor: str = "top_left",
    batch_size: int = 4,
    runtime: str = "fast",
) -> list[np.ndarray]:
    """Pad every ``(H, W, 3)`` image to ``side``, predict, and crop back to ``(H, W)`` float32.

    ``runtime``: ``"fast"`` (default, the measured-fastest CPU path) or ``"keras"`` (the
    reference ``predict_on_batch``); see :func:`predict_batch`.

    A model whose fixed input differs from ``side`` (or has ``None`` sides) is run through its
    fully convolutional twin (:func:`fully_convolutional`), so e.g. the DRIVE
    model can be evaluated on STARE at 704.
    """
    from saunetv2_lib.data.padding import crop_back, pad_to_side

    if _spatial_input(model) != (side, side):
        model = fully_convolutional(model)
    maps: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        padded, infos = [], []
        for image in chunk:
            if max(image.shape[:2]) > side:
                raise ValueError(
                    f"image of {image.shape[1]}x{image.shape[0]} px does not fit the {side} px "
                    "model side; pass a larger Protocol.side."
                )
            array, info = pad_to_side(np.asarray(image, dtype=np.float32), side, anchor=anchor)
            padded.append(array)
            infos.append(info)
        out = predict_batch(model, np.stack(padded), runtime)
        for prediction, info in zip(out, infos, strict=True):
            maps.append(np.asarray(crop_back(prediction[..., 0], info), dtype=np.float32))
    return maps


def predict_image(
    model, image: np.ndarray, anchor: str = "top_left", runtime: str = "fast"
) -> np.ndarray:
    """Vessel probability map ``(H, W)`` float32 in ``[0, 1]`` for one RGB image of any size.

    ``image`` is float ``(H, W, 3)`` in ``[0, 1]`` (:func:`read_image`). See the module docstring
    for the pad-to-model-side vs fully-convolutional choice. ``anchor`` is where the image sits in
    the padded square (``"top_left"``: the paper's test protocol, or ``"center"``); ``runtime``
    as in :func:`predict_batch`.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"predict_image expects an (H, W, 3) RGB image, got shape {image.shape}.")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(
            f"image is {width}x{height} px; at least {MIN_SIDE} px per side is needed."
        )
    fixed_h, fixed_w = _spatial_input(model)
    fits_fixed = (
        fixed_h is not None
        and fixed_h == fixed_w
        and height <= fixed_h
        and width <= fixed_w
        and height * width >= FIXED_SIZE_MIN_FILL * fixed_h * fixed_w
    )
    if fits_fixed:
        side = fixed_h
    else:  # predict_maps runs the fully convolutional twin at this side
        multiple = size_multiple(model)
        side = multiple * math.ceil(max(height, width) / multiple)
    (probability,) = predict_maps(
        model, [image], side, anchor=anchor, batch_size=1, runtime=runtime
    )
    return np.clip(probability, 0.0, 1.0)


# ------------------------------------------------------------------------------------ outputs
def to_uint8(probability: np.ndarray) -> np.ndarray:
    """Probability ``[0, 1]`` to 8-bit grey (``round(p * 255)``)."""
    return np.round(np.clip(probability, 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay(
    image: np.ndarray, mask: np.ndarray, color=OVERLAY_COLOR, alpha: float = OVERLAY_ALPHA
) -> np.ndarray:
    """The RGB image (float ``[0, 1]``) as 8-bit with ``mask`` pixels blended towards ``color``."""
    base = np.clip(image, 0.0, 1.0) * 255.0
    tint = np.asarray(color, dtype=np.float32)
    blended = np.where(mask[..., None].astype(bool), (1.0 - alpha) * base + alpha * tint, base)
    return np.round(blended).astype(np.uint8)


@dataclass
class FileResult:
    """What happened to one input file: the written outputs, or a one-line error."""

    path: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    stems = [p.stem for p in paths]
    # Two inputs with the same stem (a.png, a.jpg) must not overwrite each other's outputs.
    return [
        f"{p.stem}_{p.suffix.lstrip('.')}" if stems.count(p.stem) > 1 and p.suffix else p.stem
        for p in paths
    ]


def predict_files(
    model,
    paths: Sequence[str | Path],
    out_dir: str | Path,
    threshold: float = 0.5,
    use_fov: bool = True,
    anchor: str = "top_left",
    runtime: str = "fast",
) -> list[FileResult]:
    """Segment every image in ``paths`` and write its prob / mask / overlay PNGs to ``out_dir``.

    A file that is missing, unreadable, not an image or smaller than ``MIN_SIDE`` gets a
    :class:`FileResult` with a one-line ``error`` naming it; the other files are still processed.
    """
    from saunetv2_lib.data.fov import derive_fov

    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in paths]
    results = []
    for path, stem in zip(paths, _unique_stems(paths), strict=True):
        result = FileResult(path)
        try:
            image = read_image(path)
            if min(image.shape[:2]) < MIN_SIDE:
                height, width = image.shape[:2]
                raise ValueError(
                    f"{path}: image is {width}x{height} px; at least {MIN_SIDE} px per side is needed."
                )
            probability = predict_image(model, image, anchor=anchor, runtime=runtime)
            if use_fov:
                probability = probability * (np.asarray(derive_fov(image)) > 0)
            mask = probability > threshold
            outputs = {
                "prob": out_dir / f"{stem}_prob.png",
                "mask": out_dir / f"{stem}_mask.png",
                "overlay": out_dir / f"{stem}_overlay.png",
            }
            Image.fromarray(to_uint8(probability)).save(outputs["prob"])
            Image.fromarray(mask.astype(np.uint8) * 255).save(outputs["mask"])
            Image.fromarray(overlay(image, mask)).save(outputs["overlay"])
            result.outputs = outputs
        except (ValueError, OSError) as error:
            text = str(error).strip()
            message = text.splitlines()[0] if text else type(error).__name__
            result.error = message if str(path) in message else f"{path}: {message}"
        results.append(result)
    return results
