"""Model complexity: parameters, weights size, FLOPs in the paper's convention, and true MACs.

The paper's GFLOPs come from ``keras_flops.get_flops``, i.e. TensorFlow's v1 profiler on the
frozen inference graph (spec 2.1). ``keras-flops`` no longer imports under TF 2.21, so this
module counts analytically, layer by layer, with the profiler's rules, measured here on
single-layer graphs and cross-checked against the profiler on the whole models in
``complexity_test.py``:

==========================  ===================================================================
op                          TF-profiler FLOPs
==========================  ===================================================================
Conv2D                      ``2 k_h k_w C_in C_out H_out W_out`` (+ ``H_out W_out C_out`` bias)
Conv2DTranspose             ``2 k_h k_w C_in C_out H_in W_in`` on the *input* grid (+ bias on output)
GroupNormalization          ``6 E + 3 C + 4 G`` (E elements, C channels, G groups)
BatchNormalization (infer)  ``2 E + 6 C``
SiLU                        ``2 E`` (ReLU, sigmoid: 0: the profiler registers no cost for them)
MaxPool                     one per input element
channel mean / multiply     ``E`` each (channel max: 0)
==========================  ===================================================================

``gmacs`` is the number of multiply-accumulates the convolutions really need: a transposed
convolution scatters each input pixel through its kernel once, so it also costs
``k_h k_w C_in C_out H_in W_in``; element-wise work is excluded. (Implementations that insert
zeros and run a dense convolution on the output grid spend 4x that on the transposed layers.)
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence

import keras
from keras import layers

Shape = tuple[int, ...]
# A counter maps (layer, input shapes, output shape) to (profiler FLOPs, MACs).
Counter = Callable[[keras.layers.Layer, list[Shape], Shape], tuple[int, int]]

_COUNTERS: dict[type, Counter] = {}
_FREE_LAYERS: set[type] = {
    layers.InputLayer,
    layers.Concatenate,
    layers.Dropout,
    layers.SpatialDropout2D,
    layers.Reshape,
    layers.Identity,
}


def register_counter(layer_class: type) -> Callable[[Counter], Counter]:
    """Register a FLOP/MAC counter for ``layer_class`` (and its subclasses)."""

    def decorator(counter: Counter) -> Counter:
        _COUNTERS[layer_class] = counter
        return counter

    return decorator


def register_free_layer(layer_class: type) -> type:
    """Count ``layer_class`` (and its subclasses) as free: no op in the frozen inference graph.

    Usable as a class decorator (the DropBlock layer is an identity at inference).
    """
    _FREE_LAYERS.add(layer_class)
    return layer_class


def _elements(shape: Shape) -> int:
    return math.prod(int(d) for d in shape[1:])


def activation_flops(activation: str | Callable | None, elements: int) -> int:
    """Profiler FLOPs of an activation over ``elements`` values (only SiLU has a registered cost)."""
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", "")
    return 2 * elements if name in ("silu", "swish") else 0


def conv2d_cost(
    kernel: Sequence[int],
    in_channels: int,
    out_channels: int,
    grid: Sequence[int],
    bias_elements: int,
    groups: int = 1,
) -> tuple[int, int]:
    """(FLOPs, MACs) of a convolution evaluated on ``grid`` (H, W) positions, plus its bias adds."""
    macs = kernel[0] * kernel[1] * (in_channels // groups) * out_channels * grid[0] * grid[1]
    return 2 * macs + bias_elements, macs


@register_counter(layers.Conv2D)
def _conv2d(layer, input_shapes, output_shape):
    _, h, w, c_out = output_shape
    bias = h * w * c_out if layer.use_bias else 0
    flops, macs = conv2d_cost(
        layer.kernel_size, input_shapes[0][-1], c_out, (h, w), bias, layer.groups
    )
    return flops + activation_flops(layer.activation, _elements(output_shape)), macs


@register_counter(layers.Conv2DTranspose)
def _conv2d_transpose(layer, input_shapes, output_shape):
    _, h_in, w_in, c_in = input_shapes[0]
    _, h, w, c_out = output_shape
    bias = h * w * c_out if layer.use_bias else 0
    flops, macs = conv2d_cost(layer.kernel_size, c_in, c_out, (h_in, w_in), bias)
    return flops + activation_flops(layer.activation, _elements(output_shape)), macs


@register_counter(layers.GroupNormalization)
def _group_norm(layer, input_shapes, output_shape):
    return 6 * _elements(output_shape) + 3 * output_shape[-1] + 4 * layer.groups, 0


@register_counter(layers.BatchNormalization)
def _batch_norm(layer, input_shapes, output_shape):
    return 2 * _elements(output_shape) + 6 * output_shape[-1], 0


@register_counter(layers.Activation)
def _activation(layer, input_shapes, output_shape):
    return activation_flops(layer.activation, _elements(output_shape)), 0


@register_counter(layers.MaxPooling2D)
def _max_pool(layer, input_shapes, output_shape):
    return _elements(input_shapes[0]), 0


@register_counter(layers.Add)
def _add(layer, input_shapes, output_shape):
    return (len(input_shapes) - 1) * _elements(output_shape), 0


@register_counter(layers.Multiply)
def _multiply(layer, input_shapes, output_shape):
    return (len(input_shapes) - 1) * _elements(output_shape), 0


def layer_cost(layer: keras.layers.Layer, input_shapes: list[Shape], output_shape: Shape):
    """(profiler FLOPs, MACs) of one layer at batch 1 given its input and output shapes."""
    if isinstance(layer, tuple(_FREE_LAYERS)):
        return 0, 0
    for cls in type(layer).__mro__:
        if cls in _COUNTERS:
            return _COUNTERS[cls](layer, input_shapes, output_shape)
    if layer.count_params() == 0 and not layer.weights:
        raise NotImplementedError(
            f"No FLOP counter for layer {layer.name!r} of type {type(layer).__name__}; "
            "register one with saunetv2_lib.complexity.register_counter."
        )
    raise NotImplementedError(
        f"No FLOP counter for layer {layer.name!r} of type {type(layer).__name__} "
        f"({layer.count_params()} parameters); register one with register_counter."
    )


def _shapes(tensors) -> list[Shape]:
    tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    shapes = [tuple(t.shape) for t in tensors]
    for shape in shapes:
        if any(d is None for d in shape[1:]):
            raise ValueError(
                f"Counting FLOPs needs static spatial sizes; got {shape}. Build the model at a "
                "fixed input size first."
            )
    return [(1, *shape[1:]) for shape in shapes]


def layer_costs(model: keras.Model) -> list[dict]:
    """Per-layer rows ``{layer, type, output_shape, params, flops, macs}`` at batch 1."""
    rows = []
    for layer in model.layers:
        input_shapes = _shapes(layer.input)
        output_shape = _shapes(layer.output)[0]
        flops, macs = layer_cost(layer, input_shapes, output_shape)
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output_shape": output_shape[1:],
                "params": layer.count_params(),
                "flops": flops,
                "macs": macs,
            }
        )
    return rows


def weights_file_mb(model: keras.Model) -> float:
    """Size in MB (10^6 bytes) of the model's ``.weights.h5`` file (the paper's "1.2 MB" is likely this)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.weights.h5")
        model.save_weights(path)
        return os.path.getsize(path) / 1e6


def model_complexity(model: keras.Model, measure_file: bool = True) -> dict:
    """Complexity of a built model at batch 1.

    Returns ``{model, params, trainable_params, gflops, gmacs, weights_mb, weights_file_mb}`` where
    ``gflops`` follows the TF-profiler convention (the paper's), ``gmacs`` the true MACs,
    ``weights_mb`` the raw float32 weights in MB (10^6 bytes) and ``weights_file_mb`` the size of
    the ``.weights.h5`` file.
    """
    rows = layer_costs(model)
    params = model.count_params()
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    result = {
        "model": model.name,
        "params": int(params),
        "trainable_params": int(trainable),
        "gflops": sum(r["flops"] for r in rows) / 1e9,
        "gmacs": sum(r["macs"] for r in rows) / 1e9,
        "weights_mb": params * 4 / 1e6,
    }
    if measure_file:
        result["weights_file_mb"] = weights_file_mb(model)
    return result


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of :func:`complexity_table` rows."""
    header = f"{'model':<18} {'params':>10} {'GFLOPs':>9} {'paper':>8} {'GMACs':>8} {'MB':>6} {'h5 MB':>6}"
    lines = [header, "-" * len(header)]
    for row in rows:
        paper = f"{row['paper_gflops']:.2f}" if row.get("paper_gflops") else "-"
        lines.append(
            f"{row['model']:<18} {row['params']:>10,} {row['gflops']:>9.2f} {paper:>8} "
            f"{row['gmacs']:>8.2f} {row['weights_mb']:>6.2f} {row.get('weights_file_mb', 0):>6.2f}"
        )
    return "\n".join(lines)


def tf_profiler_flops(model: keras.Model, input_shape: Sequence[int]) -> int:
    """FLOPs of ``model`` at batch 1 from TensorFlow's v1 profiler on the frozen graph (TF backend only).

    This is what ``keras_flops.get_flops`` did for the paper; kept to cross-check the analytic count.
    """
    return profiler_flops(lambda x: model(x, training=False), [[1, *input_shape]])


def profiler_flops(function: Callable, input_shapes: Sequence[Sequence[int]]) -> int:
    """TF-profiler FLOPs of ``function(*tensors)`` traced at the given full shapes (TF only).

    The tests use it to check a cost formula on one layer or function.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2_as_graph,
    )

    specs = [tf.TensorSpec(list(shape), tf.float32) for shape in input_shapes]
    concrete = tf.function(function).get_concrete_function(*specs)
    frozen, _ = convert_variables_to_constants_v2_as_graph(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(
        graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
    )
    return int(profile.total_float_ops)
