"""The one image reader: any file Pillow or tifffile decodes, as float32 RGB in ``[0, 1]``.

Dataset images (:func:`saunetv2_lib.data.datasets.read_image`) and your own photographs
(:mod:`saunetv2_lib.inference`) both come through :func:`read_image`; labels and FOV masks
through :func:`read_grey`: TIFF (8 or 16 bit), PNG,
JPEG, PPM (also gzipped), GIF (first frame), BMP...; grey, grey+alpha, RGB, RGBA or palette.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


def to_rgb_float(array: np.ndarray, source: str = "image") -> np.ndarray:
    """Convert a decoded image array to float32 RGB ``(H, W, 3)`` in ``[0, 1]``.

    Grey ``(H, W)`` / ``(H, W, 1)`` is replicated to 3 channels, grey+alpha keeps the grey, RGBA
    drops alpha. ``uint8`` is divided by 255, ``uint16`` by 65535, other integers by 65535 when
    their maximum exceeds 255 (16-bit data in a wider type) else by 255; floats are clipped to
    ``[0, 1]`` (divided by 255 first when their maximum exceeds 1).
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    elif array.ndim == 3 and array.shape[-1] == 2:  # grey + alpha
        array = np.stack([array[..., 0]] * 3, axis=-1)
    elif array.ndim == 3 and array.shape[-1] == 4:  # RGBA
        array = array[..., :3]
    elif not (array.ndim == 3 and array.shape[-1] == 3):
        raise ValueError(
            f"{source}: unsupported image shape {array.shape}; expected grey, grey+alpha, RGB or RGBA."
        )
    if array.dtype == np.bool_:
        out = array.astype(np.float32)
    elif array.dtype == np.uint8:
        out = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        out = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.integer):
        scale = 65535.0 if array.max(initial=0) > 255 else 255.0
        out = np.clip(array.astype(np.float32) / scale, 0.0, 1.0)
    elif np.issubdtype(array.dtype, np.floating):
        out = array.astype(np.float32)
        if out.max(initial=0.0) > 1.0:
            out = out / 255.0
        out = np.clip(out, 0.0, 1.0)
    else:
        raise ValueError(f"{source}: unsupported pixel type {array.dtype}.")
    return np.ascontiguousarray(out, dtype=np.float32)


# What a corrupt or truncated file raises while Pillow decodes it.
_DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    EOFError,
    ValueError,
    zlib.error,
    Image.DecompressionBombError,
)


def _source(path: Path) -> Path | io.BytesIO:
    """``path`` itself, or its decompressed bytes when it ends in ``.gz``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    if path.suffix.lower() != ".gz":  # the STARE distribution ships gzipped PPMs
        return path
    try:
        with gzip.open(path, "rb") as handle:
            return io.BytesIO(handle.read())
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: not a readable image ({error}).") from error


def _pil_to_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if mode in ("I", "F", "L", "LA", "RGB", "RGBA"):
        return np.asarray(image)
    if mode in ("P", "PA"):
        return np.asarray(image.convert("RGBA"))
    if mode == "1":
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))  # CMYK, YCbCr, LAB, HSV ...


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file (optionally ``.gz``) as float32 RGB ``(H, W, 3)`` in ``[0, 1]`` (:func:`to_rgb_float`).

    TIFFs are read with tifffile first (16-bit RGB), falling back to Pillow (e.g. LZW-compressed
    DRIVE TIFFs). Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file
    for anything that is not a readable image.
    """
    path = Path(path)
    source = _source(path)
    array = None
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            array = tifffile.imread(path, key=0)
        except Exception:  # noqa: BLE001 - e.g. LZW needs imagecodecs; Pillow handles those
            array = None
    if array is None:
        try:
            with Image.open(source) as image:
                image.seek(0)
                array = _pil_to_array(image)
        except _DECODE_ERRORS as error:
            raise ValueError(f"{path}: not a readable image ({error}).") from error
    return to_rgb_float(array, source=str(path))


def read_grey(path: str | Path) -> np.ndarray:
    """Read an image file (optionally ``.gz``) as 8-bit grey ``(H, W)`` uint8 through Pillow.

    Palette and 1-bit files are converted through their palette or bit depth. Raises like
    :func:`read_image`.
    """
    path = Path(path)
    source = _source(path)
    try:
        with Image.open(source) as image:
            image.load()  # decode now, so truncation is caught here and not later
            return np.asarray(image.convert("L"))
    except _DECODE_ERRORS as error:
        raise ValueError(f"{path}: not a readable image ({error}).") from error
