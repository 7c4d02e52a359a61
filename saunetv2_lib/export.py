"""Exported forms of a model and one predictor interface over every CPU runtime.

Formats written by :func:`export_model` (``saunetv2 export``):

* ``keras``: ``model.keras`` (architecture + weights; the reference);
* ``savedmodel``: ``saved_model/`` from ``model.export(format="tf_saved_model")`` of the export
  copy (:func:`export_graph_model`; TF Serving, ``tf.saved_model.load(...).serve``);
* ``tflite``: ``model.tflite``, float32, the export copy through
  ``tf.lite.TFLiteConverter.from_keras_model``;
* ``tflite_fp16``: ``model_fp16.tflite``, weights stored as float16 (half the file), computed in
  float32 at run time;
* ``tflite_int8``: ``model_int8.tflite``, dynamic-range quantisation (int8 weights, activations
  quantised on the fly per tensor);
* ``onnx``: ``model.onnx``, the export copy through ``tf2onnx`` (opset 17), free batch axis.

Runtimes (the *paths* of :func:`make_predictor`), all behind :class:`Predictor`, whose
``predict(batch)`` maps float32 ``(B, H, W, 3)`` images in ``[0, 1]`` to ``(B, H, W, 1)`` float32
probabilities:

* ``keras``: ``model.predict_on_batch`` on the model as it is (TensorFlow graph with oneDNN; the
  reference, what training and evaluation run);
* ``keras_fast``: the same runtime on :func:`export_graph_model`'s copy, whose group norms compute
  their statistics as means of per-row means: the same maths, fewer long float32 sums, and faster;
* ``xla``: the copy's forward pass in a ``tf.function(jit_compile=True)`` (TensorFlow backend);
* ``tflite`` / ``tflite_fp16`` / ``tflite_int8``: the copy converted to TFLite, run by the LiteRT
  interpreter (``ai_edge_litert``; falls back to ``tf.lite.Interpreter``) with the XNNPACK
  delegate and ``threads`` threads;
* ``onnx``: the copy converted by tf2onnx, run by ONNX Runtime's CPU provider with ``threads``
  intra-op threads.

:func:`fast_predictor` returns the path that measured fastest for SA-UNetv2 at 592x592 on the
project's 2-core CPU (see :data:`FAST_PATH`); :func:`fastest_predictor` measures the candidates
on the caller's machine and input instead. Keras stays the reference of every parity check.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saunetv2_lib.host import usable_cores

PATHS = ("keras", "keras_fast", "xla", "tflite", "tflite_fp16", "tflite_int8", "onnx")
"""Inference paths understood by :func:`make_predictor`."""

EXPORT_FORMATS = ("keras", "savedmodel", "tflite", "tflite_fp16", "tflite_int8", "onnx")
"""Formats written by :func:`export_model`."""

EXPORT_FILES = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "tflite_fp16": "model_fp16.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}

TFLITE_QUANTIZATION = {"tflite": "fp32", "tflite_fp16": "fp16", "tflite_int8": "int8"}

FAST_PATH = "keras_fast"
"""The default of :func:`fast_predictor`, chosen by measurement (``saunetv2 bench``, reports in
``benchmarks/results/``): on the project's 2-core AMD EPYC (AVX-512), TF 2.21 / oneDNN, SA-UNetv2
at 592x592, batch 1, on a shared machine (load average 3-5), the TensorFlow graph of the export
copy took 0.21 s per image against 0.32 s for ``keras`` (paired ratio 1.55x), ahead of
LiteRT/XNNPACK (0.44 s), XLA (0.48 s) and ONNX Runtime (0.77 s). ``SAUNETV2_FAST_PATH``
overrides it."""

FAST_PATH_ENV = "SAUNETV2_FAST_PATH"

ONNX_OPSET = 17


def default_threads() -> int:
    """CPU cores this process may run on: the default thread count of every runtime."""
    return usable_cores()


def _check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"Unknown inference path {path!r}; available: {', '.join(PATHS)}.")
    return path


def check_batch(batch: Any) -> np.ndarray:
    """``batch`` as a C-contiguous float32 ``(B, H, W, C)`` array, or a ``ValueError`` saying why not."""
    array = np.asarray(batch)
    if array.ndim != 4:
        raise ValueError(
            "predict expects a batch of images (batch, height, width, channels), got an array of "
            f"shape {array.shape}; add a leading axis for one image (image[None])."
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"predict expects float images in [0, 1], got dtype {array.dtype}; divide 8-bit "
            "images by 255."
        )
    return np.ascontiguousarray(array, dtype=np.float32)


class Predictor(ABC):
    """One inference runtime: ``predict(batch) -> probabilities``.

    Attributes:
        path: the runtime's name (one of :data:`PATHS`).
        threads: intra-op threads it was created with (``None``: TensorFlow's process-wide pools,
            which use every core).
    """

    path: str = ""
    threads: int | None = None

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray: ...

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(B, H, W, 1)`` float32 for float32 images ``(B, H, W, C)`` in ``[0, 1]``."""
        return np.asarray(self._run(check_batch(batch)), dtype=np.float32)

    __call__ = predict

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, threads={self.threads})"


class KerasPredictor(Predictor):
    """``model.predict_on_batch``: the reference on the model itself (what evaluation runs), or
    the ``keras_fast`` path on :func:`export_graph_model`'s copy."""

    def __init__(self, model, path: str = "keras"):
        self.model = model
        self.path = path

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch))


class XlaPredictor(Predictor):
    """The forward pass compiled by XLA (``tf.function(jit_compile=True)``); TF backend only.

    One compilation per new input shape (a few seconds at 592x592).
    """

    path = "xla"

    def __init__(self, model):
        import keras

        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"The xla path needs the TensorFlow backend, this process runs "
                f"{keras.backend.backend()!r}; use KERAS_BACKEND=tensorflow."
            )
        import tensorflow as tf

        self.model = model
        self._function = tf.function(
            lambda images: model(images, training=False), jit_compile=True, reduce_retracing=True
        )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._function(batch).numpy()


def _litert_interpreter(model_content: bytes, threads: int):
    """The LiteRT interpreter (XNNPACK by default); TF's deprecated copy if LiteRT is absent."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    # The interpreter prints "Created TensorFlow Lite XNNPACK delegate" on stderr at C level; harmless.
    return Interpreter(model_content=model_content, num_threads=threads)


class TFLitePredictor(Predictor):
    """A ``.tflite`` model run by LiteRT with the XNNPACK delegate and ``threads`` threads.

    The input tensor is resized (and the interpreter re-planned) whenever a batch of another shape
    arrives, so any batch size and any image side accepted by the model work.
    """

    def __init__(
        self, model_content: bytes | str | Path, threads: int | None = None, path: str = "tflite"
    ):
        if isinstance(model_content, (str, Path)):
            file = Path(model_content)
            if not file.is_file():
                raise FileNotFoundError(f"TFLite model file {file} does not exist.")
            model_content = file.read_bytes()
        self.path = path
        self.threads = threads or default_threads()
        self.model_content = bytes(model_content)
        try:
            self._interpreter = _litert_interpreter(self.model_content, self.threads)
        except ValueError as error:
            raise ValueError(f"Not a valid TFLite model: {error}") from error
        self._input = self._interpreter.get_input_details()[0]
        self._output_index = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self._interpreter.allocate_tensors()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        # get_tensor returns a copy; the interpreter reuses its buffers on the next invoke.
        return self._interpreter.get_tensor(self._output_index)


class OnnxPredictor(Predictor):
    """An ONNX model run by ONNX Runtime (CPU provider, ``threads`` intra-op threads)."""

    path = "onnx"

    def __init__(self, model: bytes | str | Path, threads: int | None = None):
        import onnxruntime as ort

        if isinstance(model, (str, Path)):
            file = Path(model)
            if not file.is_file():
                raise FileNotFoundError(f"ONNX model file {file} does not exist.")
            model = file.read_bytes()
        self.threads = threads or default_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                bytes(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ORT raises its own exception types for bad files
            raise ValueError(f"ONNX Runtime cannot load the model: {error}") from error
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {self._input: batch})[0]


# ------------------------------------------------------------------------------------ converters
def export_graph_model(model):
    """A copy of ``model`` for conversion: same weights, group norms with short reductions.

    The copy is ``keras.models.clone_model`` plus the weights; every channels-last
    ``GroupNormalization`` in it (top level, or one level down such as
    :class:`~saunetv2_lib.models.layers.ConvNormAct`'s) is switched to the two-stage statistics of
    :class:`~saunetv2_lib.models.layers.TwoStageGroupNormalization`, which adds no weights (TFLite and
    ONNX Runtime sum the one-pass statistics' 700k values per group one at a time: up to 8e-4
    off Keras on SA-UNetv2 at 592x592, against 2e-6 in two stages). ``model`` itself is
    untouched; the copy is meant for converters, not for saving as ``.keras``.
    """
    import keras

    from saunetv2_lib.models.layers import use_two_stage_group_norm

    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
    except (ValueError, TypeError, NotImplementedError) as error:  # e.g. a subclassed model
        warnings.warn(
            f"Cannot copy model {model.name!r} for export ({error}); converting it as it is, so "
            "group-norm statistics use the runtime's long float32 reductions.",
            RuntimeWarning,
            stacklevel=2,
        )
        return model
    use_two_stage_group_norm(clone)  # the fresh copy has never been called
    return clone


def tflite_bytes(model, quantization: str = "fp32", stable_norm: bool = True) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer.

    Args:
        model: a ``keras.Model`` (TensorFlow backend).
        quantization: ``"fp32"`` (no change), ``"fp16"`` (float16 weights) or ``"int8"``
            (dynamic-range: int8 weights, activations quantised per tensor at run time).
        stable_norm: convert :func:`export_graph_model`'s copy (accurate group-norm statistics
            in TFLite's kernels); ``False`` converts ``model`` as it is.
    """
    import tensorflow as tf

    if quantization not in ("fp32", "fp16", "int8"):
        raise ValueError(f"quantization must be 'fp32', 'fp16' or 'int8', got {quantization!r}.")
    if stable_norm:
        model = export_graph_model(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization in ("fp16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    # The converter prints a long "Saved artifact ... Captures" listing on stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def onnx_bytes(model, opset: int = ONNX_OPSET, stable_norm: bool = True) -> bytes:
    """Convert ``model`` to a serialised ONNX graph with tf2onnx (input ``image``, free batch axis).

    ``stable_norm`` as in :func:`tflite_bytes` (ONNX Runtime's ReduceMean has the same issue).
    """
    import tensorflow as tf
    import tf2onnx

    if stable_norm:
        model = export_graph_model(model)

    shape = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
    signature = (tf.TensorSpec((None, *shape[1:]), tf.float32, name="image"),)
    with contextlib.redirect_stdout(io.StringIO()):
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    return proto.SerializeToString()


def make_predictor(model, path: str = "keras", threads: int | None = None) -> Predictor:
    """A :class:`Predictor` for ``model`` on ``path`` (one of :data:`PATHS`), converting as needed.

    Every path but ``keras`` runs :func:`export_graph_model`'s copy. ``threads`` applies to the
    LiteRT and ONNX Runtime paths (default: every usable core); the TensorFlow paths (``keras``,
    ``keras_fast``, ``xla``) use TensorFlow's process-wide thread pools.
    """
    _check_path(path)
    if path == "keras":
        return KerasPredictor(model)
    copy = export_graph_model(model)
    if path == "keras_fast":
        return KerasPredictor(copy, path="keras_fast")
    if path == "xla":
        return XlaPredictor(copy)
    if path in TFLITE_QUANTIZATION:
        content = tflite_bytes(copy, TFLITE_QUANTIZATION[path], stable_norm=False)
        return TFLitePredictor(content, threads, path=path)
    return OnnxPredictor(onnx_bytes(copy, stable_norm=False), threads)


def fast_predictor(model, threads: int | None = None) -> Predictor:
    """The measured-fastest CPU path for ``model`` (:data:`FAST_PATH`, or ``$SAUNETV2_FAST_PATH``).

    Usage: ``fast_predictor(model).predict(batch)`` instead of ``model.predict_on_batch(batch)``.
    """
    path = os.environ.get(FAST_PATH_ENV) or FAST_PATH
    if path not in PATHS:
        raise ValueError(
            f"{FAST_PATH_ENV}={path!r} is not an inference path; use one of {', '.join(PATHS)}."
        )
    return make_predictor(model, path, threads)


def fastest_predictor(
    model,
    sample: np.ndarray,
    paths: Sequence[str] = ("keras", "keras_fast", "xla", "tflite", "onnx"),
    runs: int = 3,
    threads: int | None = None,
    tolerance: float = 1e-3,
) -> tuple[Predictor, dict[str, float]]:
    """Measure ``paths`` on ``sample`` here and return the fastest that agrees with Keras.

    Each candidate is built, called once (warm-up) and timed ``runs`` times; its median seconds
    per call is reported. A candidate whose probabilities differ from the Keras path's by more
    than ``tolerance`` (max absolute) is rejected. Returns ``(predictor, {path: median_s})``;
    failing or rejected paths are missing from the dict.
    """
    sample = check_batch(sample)
    reference = None
    medians: dict[str, float] = {}
    best: tuple[float, Predictor] | None = None
    for path in ("keras", *[p for p in paths if p != "keras"]):
        _check_path(path)
        try:
            predictor = make_predictor(model, path, threads)
            output = predictor.predict(sample)
        except (ImportError, ValueError):  # e.g. tf2onnx missing or a conversion refused
            if path == "keras":
                raise
            continue
        if reference is None:
            reference = output
        elif float(np.max(np.abs(output - reference))) > tolerance:
            continue
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            predictor.predict(sample)
            times.append(time.perf_counter() - start)
        medians[path] = float(np.median(times))
        if path in paths and (best is None or medians[path] < best[0]):
            best = (medians[path], predictor)
    if best is None:
        raise ValueError(f"None of the paths {list(paths)} produced a usable predictor.")
    return best[1], medians


# ------------------------------------------------------------------------------------ exports
def _sha256(path: Path) -> str:
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode())
            digest.update(file.read_bytes())
        return digest.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def export_model(
    model, out_dir: str | Path, formats: Sequence[str] = EXPORT_FORMATS
) -> dict[str, Path]:
    """Write ``model`` in each of ``formats`` (see :data:`EXPORT_FILES`) into ``out_dir``.

    Also writes ``export.json``: per format the file name, size in bytes and SHA-256 (of every
    file, for the SavedModel folder), plus the model name and input shape. Returns
    ``{format: path}``.
    """
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(
            f"Unknown export format(s) {', '.join(unknown)}; available: {', '.join(EXPORT_FORMATS)}."
        )
    if not formats:
        raise ValueError("No export format given.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in formats:
        target = out_dir / EXPORT_FILES[fmt]
        if fmt == "keras":
            model.save(target)
        elif fmt == "savedmodel":
            # The export copy: TF's kernels run its group norms faster and more accurately.
            with contextlib.redirect_stdout(io.StringIO()):
                export_graph_model(model).export(
                    str(target), format="tf_saved_model", verbose=False
                )
        elif fmt in TFLITE_QUANTIZATION:
            target.write_bytes(tflite_bytes(model, TFLITE_QUANTIZATION[fmt]))
        else:
            target.write_bytes(onnx_bytes(model))
        written[fmt] = target
    shape = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
    manifest = {
        "model": model.name,
        "input_shape": list(shape),
        "parameters": int(model.count_params()),
        "files": {
            fmt: {"file": path.name, "bytes": _size_bytes(path), "sha256": _sha256(path)}
            for fmt, path in written.items()
        },
    }
    (out_dir / "export.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return written


def load_predictor(file: str | Path, threads: int | None = None) -> Predictor:
    """A :class:`Predictor` for an exported file: ``.keras``, ``.tflite`` or ``.onnx``."""
    file = Path(file)
    if not file.exists():
        raise FileNotFoundError(f"Exported model {file} does not exist.")
    suffix = file.suffix.lower()
    if suffix == ".keras":
        from saunetv2_lib.weights import load_weights

        return KerasPredictor(load_weights(file, verify=False))
    if suffix == ".tflite":
        path = {"model_fp16": "tflite_fp16", "model_int8": "tflite_int8"}.get(file.stem, "tflite")
        return TFLitePredictor(file, threads, path=path)
    if suffix == ".onnx":
        return OnnxPredictor(file, threads)
    raise ValueError(
        f"Cannot tell the runtime of {file}: expected a .keras, .tflite or .onnx file "
        "(serve a SavedModel folder with tf.saved_model.load)."
    )
