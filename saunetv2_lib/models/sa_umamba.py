"""SA-UMamba (Liu et al., PLoS One 2025; seed 002) in Keras 3: RSSS blocks in a VM-UNet shape.

**Trained from scratch.** The paper initialises encoder and decoder from VMamba-S weights
pre-trained on ImageNet-1k (its Table 4: +5.5 DSC points on Synapse over training from
scratch). No such weights exist for this Keras port, so every number this project reports for
SA-UMamba is for a randomly initialised network; say so wherever they appear.

Architecture (seed 002 and the authors' released code, ``xiaomengxin123/SA-UMamba``):

* patch embedding: 4x4 stride-4 convolution to ``C = 96`` channels, then LayerNorm;
* encoder: stages of ``[2, 2, 2, 2]`` RSSS blocks with ``[C, 2C, 4C, 8C]`` channels, a patch
  merging (2x2 space-to-depth, LayerNorm, linear ``4c -> 2c``) after each of the first three;
* decoder: stages of ``[2, 2, 2, 1]`` RSSS blocks with ``[8C, 4C, 2C, C]`` channels; stages 2-4
  first add the skip (the input of the matching encoder stage, as in VM-UNet; the patch-embedding
  skip is unused there too) and patch-expand (linear ``2c -> 4c``, 2x2 depth-to-space, LayerNorm);
* final 4x patch expanding (linear ``C -> 4C``, 4x4 depth-to-space to ``C/4``, LayerNorm), a 1x1
  convolution and a float32 sigmoid.

RSSS block (MambaIR's residual state-space block with RFAConv as its convolutional branch):
``Z = s1 * X + VSSM(LN(X))`` then ``Y = s2 * Z + RFAC(LN(Z))``, ``s1, s2`` learnable per-channel
scales initialised to one. VSSM is VMamba's SS2D branch: linear ``C -> 2 * 2C`` (no bias), one
half through a 3x3 depthwise convolution, SiLU and the four-direction selective scan
(:mod:`.selective_scan`; state 16, ``dt_rank = ceil(C / 16)``), LayerNorm, gated by SiLU of the
other half, linear ``2C -> C``. RFAC is RFAConv: softmax over each 3x3 receptive field of
``conv1x1_grouped(avgpool3x3(X))`` times ``ReLU(BN(grouped conv3x3(X)))``, unfolded to a 3H x 3W
map and reduced by a 3x3 stride-3 convolution, BN and ReLU.

Choices where seed and code leave room (all documented here):

* RSSS blocks in the decoder too, as the paper says; the released code uses plain VSS blocks
  there (``decoder_rfac=False`` builds that variant).
* Scan directions as in VMamba's code (row-major, column-major, and both reversed); the seed
  describes them as diagonal corner-to-corner traversals.
* The input is zero-padded at the bottom/right to a multiple of 32 (4x patches, three merges) and
  the output cropped back, so the model accepts the protocol's 592/704/1008 inputs; at 592 px it
  runs on a 608 x 608 canvas (the complexity counts include the padding).
* Stochastic depth 0.2 (linearly increasing over the encoder blocks, decreasing over the
  decoder's) as in the released config; PyTorch initialisations mirrored where they matter
  (truncated normal 0.02 for linear layers, Mamba's ``dt`` and ``A`` initialisation, PyTorch's
  default uniform bounds for the SS2D projections and depthwise convolution); BN momentum 0.9 and
  epsilon 1e-5, LayerNorm epsilon 1e-5 (PyTorch defaults).
* RFAConv's 3x3 average pool uses Keras' "same" padding, which averages over the valid pixels
  only (PyTorch's ``AvgPool2d(padding=1)`` counts the zero padding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from saunetv2_lib.complexity import conv2d_cost, register_counter
from saunetv2_lib.models.costs import (
    dense_cost,
    depthwise_cost,
    elements,
    layer_norm_flops,
    matmul_cost,
)
from saunetv2_lib.models.selective_scan import selective_scan, selective_scan_cost
from saunetv2_lib.models.unet import check_input_shape

PACKAGE = "saunetv2"
DIRECTIONS = 4


@keras.saving.register_keras_serializable(package=PACKAGE)
class MambaDtBias(keras.initializers.Initializer):
    """Mamba's ``dt`` bias: ``softplus^-1(dt)`` with ``dt`` log-uniform in ``[dt_min, dt_max]``.

    ``dt`` is clipped below at ``floor``; any shape, every entry drawn independently.
    """

    def __init__(self, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4, seed=None):
        self.dt_min, self.dt_max, self.floor = float(dt_min), float(dt_max), float(floor)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        draw = keras.random.uniform(shape, seed=self.seed, dtype="float32")
        dt = ops.exp(draw * (math.log(self.dt_max) - math.log(self.dt_min)) + math.log(self.dt_min))
        dt = ops.maximum(dt, self.floor)
        # softplus^-1(dt) = dt + log(1 - exp(-dt))
        return ops.cast(dt + ops.log(-ops.expm1(-dt)), dtype or "float32")

    def get_config(self) -> dict[str, Any]:
        return {
            "dt_min": self.dt_min,
            "dt_max": self.dt_max,
            "floor": self.floor,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MambaALog(keras.initializers.Initializer):
    """S4D-real initialisation of ``A_log``: ``log(1..N)`` along the last axis (``N`` = state size)."""

    def __call__(self, shape, dtype=None):
        row = np.log(np.arange(1, shape[-1] + 1, dtype=np.float64))
        return ops.convert_to_tensor(np.broadcast_to(row, shape).astype(dtype or "float32"))

    def get_config(self) -> dict[str, Any]:
        return {}


def _torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    # PyTorch's default Linear/Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _spatial(x):
    shape = ops.shape(x)
    return shape[1], shape[2]


@keras.saving.register_keras_serializable(package=PACKAGE)
class SS2D(layers.Layer):
    """VMamba's 2D selective-scan branch (the VSSM of seed 002), ``(B, H, W, C) -> (B, H, W, C)``.

    Args:
        d_state: SSM state size ``N`` (16).
        expand: inner width factor (``D = expand * C``, 2).
        d_conv: depthwise convolution side (3).
        dt_rank: rank of the ``delta`` projection; ``None`` = ``ceil(C / 16)``.
        dt_min, dt_max, dt_init_floor: Mamba's ``dt`` initialisation range.
        norm_epsilon: epsilon of the output LayerNorm.
        seed: seed of the random initialisers.
    """

    def __init__(
        self,
        d_state: int = 16,
        expand: float = 2.0,
        d_conv: int = 3,
        dt_rank: int | None = None,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        norm_epsilon: float = 1e-5,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.d_state = int(d_state)
        self.expand = float(expand)
        self.d_conv = int(d_conv)
        self.dt_rank = None if dt_rank is None else int(dt_rank)
        self.dt_min, self.dt_max, self.dt_init_floor = float(dt_min), float(dt_max), dt_init_floor
        self.norm_epsilon = float(norm_epsilon)
        self.seed = seed

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.d_inner = int(self.expand * channels)
        self.rank = self.dt_rank or math.ceil(channels / 16)
        inner, rank, state = self.d_inner, self.rank, self.d_state
        linear_init = keras.initializers.TruncatedNormal(stddev=0.02, seed=self.seed)
        self.in_proj = layers.Dense(
            2 * inner, use_bias=False, kernel_initializer=linear_init, name="in_proj"
        )
        self.in_proj.build(input_shape)
        self.conv = layers.DepthwiseConv2D(
            self.d_conv,
            padding="same",
            depthwise_initializer=_torch_uniform(self.d_conv**2),
            name="conv",
        )
        self.conv.build((*input_shape[:-1], inner))
        self.x_proj_weight = self.add_weight(
            shape=(DIRECTIONS, inner, rank + 2 * state),
            initializer=_torch_uniform(inner),
            name="x_proj_weight",
        )
        self.dt_proj_weight = self.add_weight(
            shape=(DIRECTIONS, rank, inner),
            initializer=keras.initializers.RandomUniform(-(rank**-0.5), rank**-0.5),
            name="dt_proj_weight",
        )
        self.dt_proj_bias = self.add_weight(
            shape=(DIRECTIONS, inner),
            initializer=MambaDtBias(self.dt_min, self.dt_max, self.dt_init_floor, self.seed),
            name="dt_proj_bias",
        )
        self.a_log = self.add_weight(
            shape=(DIRECTIONS, inner, state), initializer=MambaALog(), name="a_log"
        )
        self.d_skip = self.add_weight(shape=(DIRECTIONS, inner), initializer="ones", name="d")
        self.out_norm = layers.LayerNormalization(epsilon=self.norm_epsilon, name="out_norm")
        self.out_norm.build((*input_shape[:-1], inner))
        self.out_proj = layers.Dense(
            channels, use_bias=False, kernel_initializer=linear_init, name="out_proj"
        )
        self.out_proj.build((*input_shape[:-1], inner))

    def call(self, inputs):
        height, width = _spatial(inputs)
        length = height * width
        inner, rank, state = self.d_inner, self.rank, self.d_state
        x, z = ops.split(self.in_proj(inputs), 2, axis=-1)
        x = ops.silu(self.conv(x))
        # Four 1D sequences (batch, K, L, D): row-major, column-major and both reversed.
        rows = ops.reshape(x, (-1, length, inner))
        cols = ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (-1, length, inner))
        xs = ops.stack([rows, cols, ops.flip(rows, 1), ops.flip(cols, 1)], axis=1)
        xs = ops.cast(xs, "float32")  # the scan runs in float32, as Mamba's reference does
        x_dbl = ops.matmul(xs, ops.cast(self.x_proj_weight, "float32"))
        # Slices, not ops.split with indices: Keras' TF split computes its sizes with 2 profiled ops.
        dts = x_dbl[..., :rank]
        b, c = x_dbl[..., rank : rank + state], x_dbl[..., rank + state :]
        dts = ops.matmul(dts, ops.cast(self.dt_proj_weight, "float32"))
        a = ops.negative(ops.exp(ops.cast(self.a_log, "float32")))
        # Rematerialised: the backward pass recomputes the scan's (batch, K, L, D, N) states
        # instead of keeping every level of the parallel scan (same values; about 2x less peak
        # memory in training: batch 8 of 128-px patches needed over 22 GB without it).
        # Arguments are positional so that TensorFlow's recompute_grad differentiates them all.
        y = keras.remat(selective_scan)(
            xs,
            dts,
            a,
            b,
            c,
            ops.cast(self.d_skip, "float32"),
            ops.cast(self.dt_proj_bias, "float32"),
        )
        y = ops.cast(y, self.compute_dtype)
        # Merge: undo the reversals, bring the column-major pair back to row-major, sum all four.
        y_rows = y[:, 0] + ops.flip(y[:, 2], 1)
        y_cols = y[:, 1] + ops.flip(y[:, 3], 1)
        y_cols = ops.transpose(ops.reshape(y_cols, (-1, width, height, inner)), (0, 2, 1, 3))
        y = ops.reshape(y_rows, (-1, height, width, inner)) + y_cols
        y = self.out_norm(y) * ops.silu(z)
        return self.out_proj(y)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "d_state": self.d_state,
            "expand": self.expand,
            "d_conv": self.d_conv,
            "dt_rank": self.dt_rank,
            "dt_min": self.dt_min,
            "dt_max": self.dt_max,
            "dt_init_floor": self.dt_init_floor,
            "norm_epsilon": self.norm_epsilon,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class RFAConv(layers.Layer):
    """RFAConv (Zhang et al., 2023; group-conv form), ``(B, H, W, C) -> (B, H, W, F)``.

    For every pixel, the ``k x k`` receptive-field features ``ReLU(BN(grouped conv_kxk(X)))``
    (``k^2`` per channel) are weighted by a softmax over the field of ``grouped conv1x1(avgpool_kxk(X))``,
    laid out as a ``kH x kW`` map and reduced by a ``k x k`` stride-``k`` convolution, BN and ReLU.
    """

    def __init__(self, filters: int, kernel_size: int = 3, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.seed = seed
        k = self.kernel_size
        bn = {"momentum": 0.9, "epsilon": 1e-5}
        self.pool = layers.AveragePooling2D(k, strides=1, padding="same", name="pool")
        self.weight_conv = layers.DepthwiseConv2D(
            1,
            depth_multiplier=k * k,
            use_bias=False,
            depthwise_initializer=_torch_uniform(1),
            name="weight_conv",
        )
        self.feature_conv = layers.DepthwiseConv2D(
            k,
            depth_multiplier=k * k,
            padding="same",
            use_bias=False,
            depthwise_initializer=_torch_uniform(k * k),
            name="feature_conv",
        )
        self.feature_norm = layers.BatchNormalization(name="feature_norm", **bn)
        self.conv = layers.Conv2D(
            self.filters,
            k,
            strides=k,
            kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
            name="conv",
        )
        self.norm = layers.BatchNormalization(name="norm", **bn)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        k2 = self.kernel_size**2
        self.weight_conv.build(input_shape)
        self.feature_conv.build(input_shape)
        self.feature_norm.build((*input_shape[:-1], channels * k2))
        unfolded = (input_shape[0], None, None, channels)
        self.conv.build(unfolded)
        self.norm.build((*input_shape[:-1], self.filters))

    def call(self, inputs, training=None):
        k = self.kernel_size
        height, width = _spatial(inputs)
        channels = inputs.shape[-1]
        weights = self.weight_conv(self.pool(inputs))
        weights = ops.softmax(ops.reshape(weights, (-1, height, width, channels, k * k)), axis=-1)
        features = ops.relu(self.feature_norm(self.feature_conv(inputs), training=training))
        weighted = ops.reshape(features, (-1, height, width, channels, k * k)) * weights
        # (B, H, W, C, k, k) -> (B, H, k, W, k, C) -> (B, kH, kW, C): one k x k tile per pixel.
        weighted = ops.reshape(weighted, (-1, height, width, channels, k, k))
        weighted = ops.transpose(weighted, (0, 1, 4, 2, 5, 3))
        unfolded = ops.reshape(weighted, (-1, height * k, width * k, channels))
        return ops.relu(self.norm(self.conv(unfolded), training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class RSSSBlock(layers.Layer):
    """Residual spatial state-space block, ``(B, H, W, C) -> (B, H, W, C)``.

    ``Z = s1 * X + DropPath(SS2D(LN(X)))``, ``Y = s2 * Z + RFAConv(LN(Z))`` with per-channel scales
    ``s1, s2`` (ones at init). ``rfac=False`` gives VMamba's plain VSS block ``X + SS2D(LN(X))``.

    Args:
        d_state, expand: SS2D state size and width factor.
        drop_path: stochastic-depth rate of the SS2D branch (training only).
        rfac: include the RFAConv branch and the scales.
        norm_epsilon: LayerNorm epsilon.
        seed: seed of the initialisers and of the stochastic depth.
    """

    def __init__(
        self,
        d_state: int = 16,
        expand: float = 2.0,
        drop_path: float = 0.0,
        rfac: bool = True,
        norm_epsilon: float = 1e-5,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= float(drop_path) < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}.")
        self.d_state = int(d_state)
        self.expand = float(expand)
        self.drop_path = float(drop_path)
        self.rfac = bool(rfac)
        self.norm_epsilon = float(norm_epsilon)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.norm1 = layers.LayerNormalization(epsilon=self.norm_epsilon, name="norm1")
        self.ss2d = SS2D(d_state=self.d_state, expand=self.expand, seed=seed, name="ss2d")
        self.norm2 = self.conv_branch = None
        if self.rfac:
            self.norm2 = layers.LayerNormalization(epsilon=self.norm_epsilon, name="norm2")

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.norm1.build(input_shape)
        self.ss2d.build(input_shape)
        if self.rfac:
            self.scale1 = self.add_weight(shape=(channels,), initializer="ones", name="scale1")
            self.scale2 = self.add_weight(shape=(channels,), initializer="ones", name="scale2")
            self.norm2.build(input_shape)
            self.conv_branch = RFAConv(channels, seed=self.seed, name="rfac")
            self.conv_branch.build(input_shape)

    def _drop_path(self, x, training):
        if not training or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        noise = keras.random.uniform(
            (ops.shape(x)[0], 1, 1, 1), dtype=x.dtype, seed=self.seed_generator
        )
        return x * ops.floor(keep + noise) / keep

    def call(self, inputs, training=None):
        branch = self._drop_path(self.ss2d(self.norm1(inputs)), training)
        if not self.rfac:
            return inputs + branch
        z = inputs * self.scale1 + branch
        return z * self.scale2 + self.conv_branch(self.norm2(z), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "d_state": self.d_state,
            "expand": self.expand,
            "drop_path": self.drop_path,
            "rfac": self.rfac,
            "norm_epsilon": self.norm_epsilon,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchMerging(layers.Layer):
    """VMamba's patch merging, ``(B, H, W, C) -> (B, H/2, W/2, 2C)``.

    Concatenates the 2x2 neighbours in the order ``x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2],
    x[1::2, 1::2]``, then LayerNorm(4C) and a linear ``4C -> 2C`` without bias.
    """

    def __init__(self, norm_epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.norm_epsilon = float(norm_epsilon)
        self.norm = layers.LayerNormalization(epsilon=self.norm_epsilon, name="norm")

    def build(self, input_shape):
        channels = int(input_shape[-1])
        merged = (input_shape[0], None, None, 4 * channels)
        self.norm.build(merged)
        self.reduction = layers.Dense(
            2 * channels,
            use_bias=False,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="reduction",
        )
        self.reduction.build(merged)

    def call(self, inputs):
        height, width = _spatial(inputs)
        channels = inputs.shape[-1]
        x = ops.reshape(inputs, (-1, height // 2, 2, width // 2, 2, channels))
        # (B, h, i, w, j, C) -> (B, h, w, j, i, C): channel blocks (i, j) = (0,0), (1,0), (0,1), (1,1).
        x = ops.transpose(x, (0, 1, 3, 4, 2, 5))
        x = ops.reshape(x, (-1, height // 2, width // 2, 4 * channels))
        return self.reduction(self.norm(x))

    def compute_output_shape(self, input_shape):
        half = [None if s is None else s // 2 for s in input_shape[1:3]]
        return (input_shape[0], *half, 2 * input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "norm_epsilon": self.norm_epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchExpand(layers.Layer):
    """VMamba/VM-UNet patch expanding, ``(B, H, W, C) -> (B, sH, sW, F)``.

    Linear ``C -> s^2 F`` without bias, depth-to-space with channel blocks ``(p1, p2, F)``, LayerNorm(F).
    ``scale=2, filters=C/2`` is a decoder stage's expand; ``scale=4, filters=C/4`` the final one.
    """

    def __init__(self, scale: int, filters: int, norm_epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        self.filters = int(filters)
        self.norm_epsilon = float(norm_epsilon)
        self.expand = layers.Dense(
            self.scale**2 * self.filters,
            use_bias=False,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="expand",
        )
        self.norm = layers.LayerNormalization(epsilon=self.norm_epsilon, name="norm")

    def build(self, input_shape):
        self.expand.build(input_shape)
        self.norm.build((input_shape[0], None, None, self.filters))

    def call(self, inputs):
        height, width = _spatial(inputs)
        s, f = self.scale, self.filters
        x = ops.reshape(self.expand(inputs), (-1, height, width, s, s, f))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return self.norm(ops.reshape(x, (-1, height * s, width * s, f)))

    def compute_output_shape(self, input_shape):
        grown = [None if side is None else side * self.scale for side in input_shape[1:3]]
        return (input_shape[0], *grown, self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "scale": self.scale,
            "filters": self.filters,
            "norm_epsilon": self.norm_epsilon,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PadToMultiple(layers.Layer):
    """Zero-pad height and width at the bottom/right up to a multiple of ``multiple``."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        height, width = _spatial(inputs)
        pad_h, pad_w = (-height) % self.multiple, (-width) % self.multiple
        return ops.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])

    def compute_output_shape(self, input_shape):
        sides = [
            None if s is None else -(-s // self.multiple) * self.multiple for s in input_shape[1:3]
        ]
        return (input_shape[0], *sides, input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropToReference(layers.Layer):
    """Called on ``[x, reference]``: ``x`` cropped to the reference's height and width (top-left)."""

    def call(self, inputs):
        x, reference = inputs
        height, width = _spatial(reference)
        return x[:, :height, :width, :]

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[-1])


def build_sa_umamba(
    input_shape: Sequence[int | None] = (592, 592, 3),
    embed_dim: int = 96,
    depths: Sequence[int] = (2, 2, 2, 2),
    decoder_depths: Sequence[int] = (2, 2, 2, 1),
    d_state: int = 16,
    expand: float = 2.0,
    drop_path_rate: float = 0.2,
    decoder_rfac: bool = True,
    patch_size: int = 4,
    seed: int | None = None,
    name: str = "sa_umamba",
) -> keras.Model:
    """SA-UMamba as a functional model ``(B, H, W, 3) -> (B, H, W, 1)`` (see the module docstring).

    Any input size works: it is zero-padded to a multiple of ``patch_size * 2**(len(depths) - 1)``
    and the output cropped back. ``embed_dim`` is ``C``; ``depths``/``decoder_depths`` the RSSS
    blocks per stage (the seed's asymmetric ``[2, 2, 2, 2]`` / ``[2, 2, 2, 1]``).
    """
    stages = len(depths)
    if len(decoder_depths) != stages or stages < 1:
        raise ValueError(
            f"{name}: depths {tuple(depths)} and decoder_depths {tuple(decoder_depths)} must have "
            "the same, non-zero length."
        )
    if embed_dim % 4:
        raise ValueError(f"{name}: embed_dim must be a multiple of 4 (got {embed_dim}).")
    check_input_shape(input_shape, 0, name)
    dims = [embed_dim * 2**i for i in range(stages)]
    encoder_rates = np.linspace(0.0, drop_path_rate, sum(depths)).tolist()
    decoder_rates = np.linspace(0.0, drop_path_rate, sum(decoder_depths))[::-1].tolist()

    counter = iter(range(10_000))

    def block(rate: float, rfac: bool, block_name: str) -> RSSSBlock:
        index = next(counter)
        return RSSSBlock(
            d_state=d_state,
            expand=expand,
            drop_path=rate,
            rfac=rfac,
            seed=None if seed is None else seed + index,
            name=block_name,
        )

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = PadToMultiple(patch_size * 2 ** (stages - 1), name="pad")(inputs)
    x = layers.Conv2D(
        embed_dim,
        patch_size,
        strides=patch_size,
        kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
        name="patch_embed",
    )(x)
    x = layers.LayerNormalization(epsilon=1e-5, name="patch_embed_norm")(x)
    skips = []
    for stage in range(stages):
        skips.append(x)
        for b in range(depths[stage]):
            rate = encoder_rates[sum(depths[:stage]) + b]
            x = block(rate, True, f"enc{stage + 1}_block{b + 1}")(x)
        if stage < stages - 1:
            x = PatchMerging(name=f"enc{stage + 1}_merge")(x)
    for stage in range(stages):
        dim = dims[stages - 1 - stage]
        if stage > 0:
            x = layers.Add(name=f"dec{stage + 1}_skip")([x, skips[stages - stage]])
            x = PatchExpand(2, dim, name=f"dec{stage + 1}_expand")(x)
        for b in range(decoder_depths[stage]):
            rate = decoder_rates[sum(decoder_depths[:stage]) + b]
            x = block(rate, decoder_rfac, f"dec{stage + 1}_block{b + 1}")(x)
    x = PatchExpand(patch_size, embed_dim // patch_size, name="final_expand")(x)
    x = layers.Conv2D(1, 1, name="head")(x)
    x = CropToReference(name="crop")([x, inputs])
    outputs = layers.Activation("sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs, outputs, name=name)


def sa_umamba(
    input_shape: Sequence[int | None] = (592, 592, 3), seed: int | None = None, **kwargs
) -> keras.Model:
    """SA-UMamba, the seed's configuration (C 96, depths 2-2-2-2 / 2-2-2-1); trained from scratch here."""
    return build_sa_umamba(input_shape, seed=seed, **kwargs)


# --------------------------------------------------------------------------------------------
# FLOP/MAC counters (TF-profiler convention; see saunetv2_lib.complexity and .costs)


def ss2d_cost(layer: SS2D, height: int, width: int, channels: int) -> tuple[int, int]:
    """(FLOPs, MACs) of one :class:`SS2D` call on a ``(1, H, W, C)`` input."""
    length = height * width
    inner = int(layer.expand * channels)
    rank = layer.dt_rank or math.ceil(channels / 16)
    state = layer.d_state
    parts = [
        dense_cost(channels, 2 * inner, length, bias=False),
        depthwise_cost(layer.d_conv, inner, 1, length, bias=True),
        matmul_cost(inner, DIRECTIONS * length * (rank + 2 * state)),  # x_proj
        matmul_cost(rank, DIRECTIONS * length * inner),  # dt_proj
        selective_scan_cost(DIRECTIONS, length, inner, state),
        dense_cost(inner, channels, length, bias=False),
    ]
    flops = sum(p[0] for p in parts)
    flops += 2 * length * inner  # SiLU after the depthwise conv
    flops += DIRECTIONS * inner * state  # A = -exp(A_log)
    flops += 3 * length * inner  # merging the four directions
    flops += layer_norm_flops(length * inner, inner)
    flops += 2 * length * inner + length * inner  # SiLU(z) and the gate
    return flops, sum(p[1] for p in parts)


def rfaconv_cost(layer: RFAConv, height: int, width: int, channels: int) -> tuple[int, int]:
    """(FLOPs, MACs) of one :class:`RFAConv` call on a ``(1, H, W, C)`` input."""
    k2 = layer.kernel_size**2
    positions = height * width
    values = positions * channels
    weight = depthwise_cost(1, channels, k2, positions, bias=False)
    feature = depthwise_cost(layer.kernel_size, channels, k2, positions, bias=False)
    conv = conv2d_cost(
        (layer.kernel_size, layer.kernel_size),
        channels,
        layer.filters,
        (height, width),
        positions * layer.filters,
    )
    flops = k2 * values  # average pool
    flops += weight[0] + 5 * k2 * values  # grouped 1x1 conv, softmax
    flops += feature[0] + 2 * k2 * values + 6 * k2 * channels  # grouped kxk conv, BN
    flops += k2 * values  # weighting
    flops += conv[0] + 2 * positions * layer.filters + 6 * layer.filters  # conv, BN
    return flops, weight[1] + feature[1] + conv[1]


@register_counter(SS2D)
def _ss2d(layer, input_shapes, output_shape):
    _, height, width, channels = input_shapes[0]
    return ss2d_cost(layer, height, width, channels)


@register_counter(RFAConv)
def _rfaconv(layer, input_shapes, output_shape):
    _, height, width, channels = input_shapes[0]
    return rfaconv_cost(layer, height, width, channels)


@register_counter(RSSSBlock)
def _rsss_block(layer, input_shapes, output_shape):
    _, height, width, channels = input_shapes[0]
    values = height * width * channels
    flops, macs = ss2d_cost(layer.ss2d, height, width, channels)
    flops += layer_norm_flops(values, channels)
    if not layer.rfac:
        return flops + values, macs  # + residual
    conv_flops, conv_macs = rfaconv_cost(layer.conv_branch, height, width, channels)
    flops += conv_flops + layer_norm_flops(values, channels)
    return flops + 4 * values, macs + conv_macs  # two scalings, two residual adds


@register_counter(PatchMerging)
def _patch_merging(layer, input_shapes, output_shape):
    _, height, width, channels = input_shapes[0]
    rows = (height // 2) * (width // 2)
    flops, macs = dense_cost(4 * channels, 2 * channels, rows, bias=False)
    return flops + layer_norm_flops(rows * 4 * channels, 4 * channels), macs


@register_counter(PatchExpand)
def _patch_expand(layer, input_shapes, output_shape):
    _, height, width, channels = input_shapes[0]
    flops, macs = dense_cost(channels, layer.scale**2 * layer.filters, height * width, bias=False)
    return flops + layer_norm_flops(elements(output_shape), layer.filters), macs


@register_counter(PadToMultiple)
def _pad(layer, input_shapes, output_shape):
    return 0, 0


@register_counter(CropToReference)
def _crop(layer, input_shapes, output_shape):
    return 0, 0
