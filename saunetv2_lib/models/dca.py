"""Dual Cross-Attention skips (Ates et al., 2023; seed 003) for U-Net and SA-UNetv2.

:class:`DualCrossAttention` takes the encoder's skip features of all scales at once and returns
refined skips of the same shapes, following the authors' code (``gorkemcanates/Dual-Cross-Attention``,
``model/utils/dca.py``):

1. **Patch embedding**: every skip ``i`` (stride ``2^i`` relative to the finest) is average-pooled
   with a ``P / 2^i`` window (``P = patch_size = 8``), so all scales share one ``H/P x W/P`` token
   grid, then a depthwise 1x1 convolution (with bias).
2. **Channel cross-attention** (one head): per scale, LayerNorm'd tokens give the query
   (``C_i`` channels) and the concatenation of all scales' LayerNorm'd tokens the key and value
   (``sum C`` channels), each through its own depthwise 1x1 projection; attention is over
   channels, ``softmax(q^T k / sqrt(sum C)) v^T``, then a depthwise 1x1 output projection and a
   residual add.
3. **Spatial cross-attention** (4 heads): query and key from the concatenation, value from the
   scale's own tokens; attention over the ``T`` tokens, ``softmax(q k^T / sqrt(sum C / 4)) v``,
   depthwise output projection, residual add.
4. Each scale's tokens are upsampled bilinearly by ``P / 2^i``, passed through a 1x1 convolution
   (with bias), added to the raw skip, then normalised and activated.

Choices (documented deviations from the PyTorch code): the final normalisation and activation
follow the host network's block (GroupNorm(8) + SiLU for both hosts here, which use the v2 block)
instead of BatchNorm + ReLU, because DCA replaces the skip's normalisation and the host trains
with small batches; DCA receives the host's activated skip (the official U-Net feeds it the
pre-normalisation convolution output); the bilinear upsampling uses half-pixel centres like
TensorFlow's resize (:mod:`.upsample`; PyTorch's code uses ``align_corners=True``); the
attention scale is applied to the logits for channel attention and to the queries for spatial
attention (identical results, fewer operations); the spatial key bias (the softmax
cancels it, so it never receives a gradient) is kept for fidelity.

At 592 px the token grid is 74 x 74 (5,476 tokens), so each scale's spatial attention holds
``4 x 5476^2`` logits (480 MB in float32 per image and scale): DCA is the most memory-hungry
skip design here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

from saunetv2_lib.complexity import activation_flops, conv2d_cost, register_counter
from saunetv2_lib.models.costs import depthwise_cost, layer_norm_flops, matmul_cost
from saunetv2_lib.models.unet import (
    BLOCK_SETTINGS,
    block_settings,
    build_unet,
    check_input_shape,
    doubling_widths,
)
from saunetv2_lib.models.upsample import bilinear_upsample, bilinear_upsample_flops

PACKAGE = "saunetv2"


def _projection(name: str) -> layers.DepthwiseConv2D:
    return layers.DepthwiseConv2D(1, name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DualCrossAttention(layers.Layer):
    """DCA over ``n`` encoder skips: called on a list of ``(B, H/2^i, W/2^i, C_i)``, returns the same shapes.

    Args:
        channels: ``C_i`` of each skip, finest first.
        patch_size: pooling window of the finest skip (``P``); scale ``i`` pools by ``P / 2^i``,
            so ``P`` must be a multiple of ``2^(n-1)`` and the input side a multiple of ``P``.
        spatial_heads: heads of the spatial cross-attention (channel attention has one head).
        token_norm_epsilon: epsilon of the token LayerNorms (1e-6 as in the official code).
        norm, groups, norm_epsilon, activation: the output normalisation (``"group"`` or
            ``"batch"``) and activation.
    """

    def __init__(
        self,
        channels: Sequence[int],
        patch_size: int = 8,
        spatial_heads: int = 4,
        token_norm_epsilon: float = 1e-6,
        norm: str = "group",
        groups: int = 8,
        norm_epsilon: float = 1e-3,
        activation: str = "silu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = [int(c) for c in channels]
        self.patch_size = int(patch_size)
        self.spatial_heads = int(spatial_heads)
        self.token_norm_epsilon = float(token_norm_epsilon)
        self.norm = norm
        self.groups = int(groups)
        self.norm_epsilon = float(norm_epsilon)
        self.activation = activation
        scales = len(self.channels)
        if scales < 1:
            raise ValueError("DualCrossAttention needs at least one skip.")
        if self.patch_size % 2 ** (scales - 1):
            raise ValueError(
                f"patch_size {self.patch_size} must be a multiple of 2^{scales - 1} so that all "
                f"{scales} skips pool onto one token grid."
            )
        total = sum(self.channels)
        for value in [total, *self.channels]:
            if value % self.spatial_heads:
                raise ValueError(
                    f"channels {self.channels} (and their sum {total}) must be divisible by "
                    f"spatial_heads={self.spatial_heads}."
                )
        if norm not in ("group", "batch"):
            raise ValueError(f"norm must be 'group' or 'batch', got {norm!r}.")
        self.pool_sizes = [self.patch_size // 2**i for i in range(scales)]

        def token_norm(name):
            return layers.LayerNormalization(epsilon=self.token_norm_epsilon, name=name)

        self.embed, self.ca_norm, self.sa_norm, self.up, self.out_norm = [], [], [], [], []
        self.ca_q, self.ca_k, self.ca_v, self.ca_proj = [], [], [], []
        self.sa_q, self.sa_k, self.sa_v, self.sa_proj = [], [], [], []
        for i, c in enumerate(self.channels):
            s = i + 1
            self.embed.append(_projection(f"embed{s}"))
            self.ca_norm.append(token_norm(f"ca_norm{s}"))
            self.ca_q.append(_projection(f"ca_q{s}"))
            self.ca_k.append(_projection(f"ca_k{s}"))
            self.ca_v.append(_projection(f"ca_v{s}"))
            self.ca_proj.append(_projection(f"ca_proj{s}"))
            self.sa_norm.append(token_norm(f"sa_norm{s}"))
            self.sa_q.append(_projection(f"sa_q{s}"))
            self.sa_k.append(_projection(f"sa_k{s}"))
            self.sa_v.append(_projection(f"sa_v{s}"))
            self.sa_proj.append(_projection(f"sa_proj{s}"))
            self.up.append(layers.Conv2D(c, 1, name=f"up_conv{s}"))
            if norm == "group":
                self.out_norm.append(
                    layers.GroupNormalization(
                        self.groups, epsilon=self.norm_epsilon, name=f"norm{s}"
                    )
                )
            else:
                self.out_norm.append(
                    layers.BatchNormalization(epsilon=self.norm_epsilon, name=f"norm{s}")
                )
        self.act = layers.Activation(activation, name="act")

    def build(self, input_shape):
        if len(input_shape) != len(self.channels):
            raise ValueError(
                f"{self.name}: expected {len(self.channels)} skips, got {len(input_shape)}."
            )
        total = sum(self.channels)
        for i, (shape, c) in enumerate(zip(input_shape, self.channels, strict=True)):
            if shape[-1] != c:
                raise ValueError(
                    f"{self.name}: skip {i + 1} has {shape[-1]} channels, expected {c}."
                )
            grid = (shape[0], None, None)
            for layer in (self.embed[i], self.ca_norm[i], self.ca_q[i], self.ca_proj[i]):
                layer.build((*grid, c))
            for layer in (self.sa_norm[i], self.sa_v[i], self.sa_proj[i]):
                layer.build((*grid, c))
            for layer in (self.ca_k[i], self.ca_v[i], self.sa_q[i], self.sa_k[i]):
                layer.build((*grid, total))
            self.up[i].build(shape)
            self.out_norm[i].build(shape)

    @staticmethod
    def _flat(x):
        shape = ops.shape(x)
        return ops.reshape(x, (-1, shape[1] * shape[2], shape[3]))

    @staticmethod
    def _grid(x, like):
        shape = ops.shape(like)
        return ops.reshape(x, (-1, shape[1], shape[2], x.shape[-1]))

    def _heads(self, x):
        # (B, T, C) -> (B, heads, T, C / heads); channel c = head * (C / heads) + j.
        shape = ops.shape(x)
        x = ops.reshape(x, (-1, shape[1], self.spatial_heads, x.shape[-1] // self.spatial_heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, inputs, training=None):
        total = sum(self.channels)
        tokens = []
        for i, x in enumerate(inputs):
            pool = self.pool_sizes[i]
            if pool > 1:
                x = ops.average_pool(x, pool, strides=pool, padding="valid")
            tokens.append(self.embed[i](x))

        # Channel cross-attention: queries from each scale, keys/values from all scales.
        normed = [norm(t) for norm, t in zip(self.ca_norm, tokens, strict=True)]
        joint = ops.concatenate(normed, axis=-1)
        refined = []
        for i, t in enumerate(tokens):
            q = self._flat(self.ca_q[i](normed[i]))
            k = self._flat(self.ca_k[i](joint))
            v = self._flat(self.ca_v[i](joint))
            logits = ops.matmul(ops.transpose(q, (0, 2, 1)), k) * (total**-0.5)
            attention = ops.softmax(logits, axis=-1)  # (B, C_i, sum C)
            out = ops.matmul(v, ops.transpose(attention, (0, 2, 1)))  # (B, T, C_i)
            refined.append(t + self.ca_proj[i](self._grid(out, t)))
        tokens = refined

        # Spatial cross-attention: queries/keys from all scales, values from each scale.
        normed = [norm(t) for norm, t in zip(self.sa_norm, tokens, strict=True)]
        joint = ops.concatenate(normed, axis=-1)
        scale = (total // self.spatial_heads) ** -0.5
        refined = []
        for i, t in enumerate(tokens):
            q = self._heads(self._flat(self.sa_q[i](joint)) * scale)
            k = self._heads(self._flat(self.sa_k[i](joint)))
            v = self._heads(self._flat(self.sa_v[i](normed[i])))
            attention = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), axis=-1)
            out = ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3))  # (B, T, heads, C_i/h)
            out = ops.reshape(out, (-1, ops.shape(out)[1], self.channels[i]))
            refined.append(t + self.sa_proj[i](self._grid(out, t)))

        outputs = []
        for i, (t, skip) in enumerate(zip(refined, inputs, strict=True)):
            t = bilinear_upsample(t, self.pool_sizes[i])
            t = self.up[i](t) + skip
            outputs.append(self.act(self.out_norm[i](t, training=training)))
        return outputs

    def compute_output_shape(self, input_shape):
        return [tuple(shape) for shape in input_shape]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "channels": self.channels,
            "patch_size": self.patch_size,
            "spatial_heads": self.spatial_heads,
            "token_norm_epsilon": self.token_norm_epsilon,
            "norm": self.norm,
            "groups": self.groups,
            "norm_epsilon": self.norm_epsilon,
            "activation": self.activation,
        }


def dca_cost(layer: DualCrossAttention, input_shapes: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(TF-profiler FLOPs, MACs) of one :class:`DualCrossAttention` call at batch 1."""
    total = sum(layer.channels)
    heads = layer.spatial_heads
    _, height, width, _ = input_shapes[0]
    tokens = (height // layer.patch_size) * (width // layer.patch_size)
    flops, macs = 0, 0

    def add(cost):
        nonlocal flops, macs
        flops, macs = flops + cost[0], macs + cost[1]

    for i, c in enumerate(layer.channels):
        _, h, w, _ = input_shapes[i]
        values = h * w * c
        if layer.pool_sizes[i] > 1:
            flops += values  # average pool: window area x outputs
        add(depthwise_cost(1, c, 1, tokens, bias=True))  # embedding
        # channel attention
        flops += layer_norm_flops(tokens * c, c)
        add(depthwise_cost(1, c, 1, tokens, bias=True))  # q
        add(depthwise_cost(1, total, 1, tokens, bias=True))  # k
        add(depthwise_cost(1, total, 1, tokens, bias=True))  # v
        add(matmul_cost(tokens, c * total))  # q^T k
        flops += c * total + 5 * c * total  # scale, softmax
        add(matmul_cost(total, tokens * c))  # v attention^T
        add(depthwise_cost(1, c, 1, tokens, bias=True))  # projection
        flops += tokens * c  # residual
        # spatial attention
        flops += layer_norm_flops(tokens * c, c)
        add(depthwise_cost(1, total, 1, tokens, bias=True))  # q
        add(depthwise_cost(1, total, 1, tokens, bias=True))  # k
        add(depthwise_cost(1, c, 1, tokens, bias=True))  # v
        flops += tokens * total  # query scaling
        add(matmul_cost(total // heads, heads * tokens * tokens))  # q k^T
        flops += 5 * heads * tokens * tokens  # softmax
        add(matmul_cost(tokens, tokens * c))  # attention v
        add(depthwise_cost(1, c, 1, tokens, bias=True))  # projection
        flops += tokens * c  # residual
        # back to the skip
        grid_h, grid_w = height // layer.patch_size, width // layer.patch_size
        flops += bilinear_upsample_flops(grid_h, grid_w, c, layer.pool_sizes[i])
        add(conv2d_cost((1, 1), c, c, (h, w), values))
        flops += values  # + raw skip
        if layer.norm == "group":
            flops += 6 * values + 3 * c + 4 * layer.groups
        else:
            flops += 2 * values + 6 * c
        flops += activation_flops(layer.activation, values)
    return flops, macs


@register_counter(DualCrossAttention)
def _dual_cross_attention(layer, input_shapes, output_shape):
    return dca_cost(layer, input_shapes)


def build_unet_dca(
    input_shape: Sequence[int | None] = (592, 592, 3),
    widths: Sequence[int] = (16, 32, 48, 64),
    bottleneck_attention: bool = True,
    patch_size: int = 8,
    spatial_heads: int = 4,
    name: str = "unet_dca",
    **unet_kwargs,
) -> keras.Model:
    """:func:`saunetv2_lib.models.unet.build_unet` with one :class:`DualCrossAttention` over all skips.

    Encoder, bottleneck and decoder are layer for layer those of ``build_unet`` (same names; its
    other arguments pass through ``unet_kwargs``); the skips ``enc{l}_conv2`` go through
    ``skip_dca`` before the decoder concatenates them (no CSA, SA or gate on the skips). DCA's
    output normalisation uses the block's ``norm``/``groups``/``norm_epsilon``/``activation``.
    """
    if len(widths) < 2:
        raise ValueError(f"widths needs at least one encoder stage and a bottleneck, got {widths}.")
    # DCA's patch embedding pools by up to ``patch_size``: the side must divide by that too.
    check_input_shape(input_shape, max(len(widths) - 1, int(math.log2(patch_size))), name)
    settings = block_settings(**{k: v for k, v in unet_kwargs.items() if k in BLOCK_SETTINGS})
    block = {key: settings[key] for key in ("norm", "groups", "norm_epsilon", "activation")}

    def dual_cross_attention(skips: list) -> list:
        return DualCrossAttention(
            widths[:-1],
            patch_size=patch_size,
            spatial_heads=spatial_heads,
            name="skip_dca",
            **block,
        )(skips)

    return build_unet(
        input_shape,
        widths=widths,
        skip="none",
        bottleneck_attention=bottleneck_attention,
        name=name,
        skips_block=dual_cross_attention,
        **unet_kwargs,
    )


def unet_dca(
    input_shape: Sequence[int | None] = (592, 592, 3), base_filters: int = 32, **kwargs
) -> keras.Model:
    """The project's U-Net (widths 32..512, 4 pools, v2 block) with DCA skips (P = 8, 4 heads).

    ``kwargs`` (``patch_size``, ``spatial_heads``, ``dropblock_rate``, ``seed``, ...) pass
    through to :func:`build_unet_dca`.
    """
    widths = doubling_widths(base_filters, 5)
    return build_unet_dca(
        input_shape, widths=widths, bottleneck_attention=False, name="unet_dca", **kwargs
    )


def sa_unet_v2_dca(input_shape: Sequence[int | None] = (592, 592, 3), **kwargs) -> keras.Model:
    """SA-UNetv2 (16-32-48-64, GN+SiLU, SA bottleneck) with DCA over its three skips in place of CSA.

    ``kwargs`` (``patch_size``, ``spatial_heads``, ``dropblock_rate``, ``block_size``, ``seed``,
    ...) pass through to :func:`build_unet_dca`.
    """
    widths = (16, 32, 48, 64)
    return build_unet_dca(
        input_shape, widths=widths, bottleneck_attention=True, name="sa_unet_v2_dca", **kwargs
    )
