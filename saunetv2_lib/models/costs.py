"""TF-profiler cost rules and FLOP counters: core Keras layers, the SA-UNetv2 layers, the siblings' ops.

The rules come from TensorFlow's ``flops_registry`` (the profiler behind the paper's
``keras_flops``) and were checked on single-layer graphs (``costs_test.py``):

==============================  ==================================================================
op                              TF-profiler FLOPs
==============================  ==================================================================
LayerNormalization (last axis)  ``9 E + 4 R`` with scale and centre (``R = E / C`` rows): Keras'
                                ``moments`` (``4 E``), ``rsqrt(var + eps)`` (``3 R``), ``-mean``
                                (``R``), and five full-size multiplies/adds
Dense / batched matmul          ``2 k`` per output (+ ``E`` for a bias)
DepthwiseConv2D                 ``2 k_h k_w`` per output (+ ``E`` for a bias)
AvgPool                         ``k_h k_w`` per output
softmax (last axis)             ``5 E``
add, multiply, negate, mean     ``E`` (of the output; mean: of the input)
exp, softplus, ReLU, sigmoid,   0: the profiler registers no cost for them
bilinear resize, reshape,
transpose, pad, slice, concat
einsum                          depends on TF's lowering (a broadcast einsum stays an unregistered
                                ``Einsum`` op: 0), so the layers use ``matmul`` instead
==============================  ==================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers

from saunetv2_lib.complexity import (
    activation_flops,
    conv2d_cost,
    layer_cost,
    profiler_flops,
    register_counter,
    register_free_layer,
)
from saunetv2_lib.models.layers import (
    AttentionGate,
    ConvNormAct,
    CrossScaleSpatialAttention,
    DropBlock2D,
    SpatialAttention,
)

Shape = tuple[int, ...]


def elements(shape: Shape) -> int:
    """Values per sample of a batch-first shape (the batch axis is dropped)."""
    return math.prod(int(d) for d in shape[1:])


def layer_norm_flops(values: int, channels: int, center: bool = True, scale: bool = True) -> int:
    """Profiler FLOPs of ``keras.ops.layer_normalization`` over the last axis of ``values`` entries."""
    rows = values // channels
    flops = 4 * values + 3 * rows + rows  # moments; rsqrt(var + eps); -mean
    if scale:
        flops += values  # inv * gamma (inv becomes full size)
    flops += values if scale else rows  # -mean * inv
    if center:
        flops += values  # + beta
    return flops + 2 * values  # x * inv + res


def dense_cost(in_features: int, out_features: int, rows: int, bias: bool) -> tuple[int, int]:
    """(FLOPs, MACs) of a dense projection applied to ``rows`` vectors."""
    macs = in_features * out_features * rows
    return 2 * macs + (out_features * rows if bias else 0), macs


def depthwise_cost(
    kernel: int, channels: int, multiplier: int, positions: int, bias: bool
) -> tuple[int, int]:
    """(FLOPs, MACs) of a ``kernel x kernel`` depthwise convolution evaluated at ``positions``."""
    outputs = channels * multiplier * positions
    macs = kernel * kernel * outputs
    return 2 * macs + (outputs if bias else 0), macs


def matmul_cost(inner: int, outputs: int) -> tuple[int, int]:
    """(FLOPs, MACs) of a (batched) matmul with contraction ``inner`` and ``outputs`` results."""
    return 2 * inner * outputs, inner * outputs


@register_counter(layers.LayerNormalization)
def _layer_norm(layer, input_shapes, output_shape):
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(output_shape)
    if [a % rank for a in axes] != [rank - 1] or layer.rms_scaling:
        raise NotImplementedError(
            f"{layer.name}: only last-axis LayerNormalization without rms_scaling is counted."
        )
    return layer_norm_flops(elements(output_shape), output_shape[-1], layer.center, layer.scale), 0


@register_counter(layers.UpSampling2D)
def _upsampling(layer, input_shapes, output_shape):
    return 0, 0  # ResizeBilinear / ResizeNearestNeighbor have no registered cost


def layer_profiler_flops(layer: keras.layers.Layer, input_shapes: Sequence[Sequence[int]]) -> int:
    """TF-profiler FLOPs of one inference call of ``layer`` at batch-first ``input_shapes``."""
    if len(input_shapes) == 1:
        return profiler_flops(lambda x: layer(x, training=False), input_shapes)
    return profiler_flops(lambda *x: layer(list(x), training=False), input_shapes)


# The SA-UNetv2 layers (spec 2.1): attention convolutions plus the element-wise work around them.
register_free_layer(DropBlock2D)  # identity at inference; the frozen graph has no DropBlock op


def _attention_conv_cost(layer, height: int, width: int) -> tuple[int, int]:
    return conv2d_cost((layer.kernel_size, layer.kernel_size), 2, 1, (height, width), 0)


@register_counter(SpatialAttention)
def _spatial_attention(layer, input_shapes, output_shape):
    _, h, w, _ = output_shape
    values = elements(output_shape)
    flops, macs = _attention_conv_cost(layer, h, w)
    return flops + values + values, macs  # channel mean + re-weighting multiply


@register_counter(CrossScaleSpatialAttention)
def _cross_scale_attention(layer, input_shapes, output_shape):
    encoder_shape, decoder_shape = input_shapes
    _, h, w, _ = output_shape
    flops, macs = _attention_conv_cost(layer, h, w)
    means = elements(encoder_shape) + elements(decoder_shape)
    return flops + means + elements(output_shape), macs


@register_counter(AttentionGate)
def _attention_gate(layer, input_shapes, output_shape):
    skip_shape, gating_shape = input_shapes
    _, h, w, _ = skip_shape
    hidden = layer.intermediate_channels
    total_flops, total_macs = 0, 0
    for channels in (skip_shape[-1], gating_shape[-1]):
        flops, macs = conv2d_cost((1, 1), channels, hidden, (h, w), h * w * hidden)
        total_flops, total_macs = total_flops + flops, total_macs + macs
    flops, macs = conv2d_cost((1, 1), hidden, 1, (h, w), h * w)
    # + the add of the two projections and the multiply of the skip by the map.
    total_flops += flops + h * w * hidden + elements(skip_shape)
    return total_flops, total_macs + macs


@register_counter(ConvNormAct)
def _conv_norm_act(layer, input_shapes, output_shape):
    flops, macs = layer_cost(layer.conv, input_shapes, output_shape)
    if layer.normalization is not None:
        flops += layer_cost(layer.normalization, [output_shape], output_shape)[0]
    return flops + activation_flops(layer.activation, elements(output_shape)), macs
