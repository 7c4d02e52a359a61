"""Model factories: SA-UNetv2 and the paper's baselines (registered in :mod:`saunetv2_lib.models`).

All four models share one U-shaped builder (:func:`build_unet`) so that what differs between
them (widths, depth, block, skip treatment, bottleneck attention) is visible as arguments. Every
layer has a deterministic name (``enc1_conv1``, ``skip2_csa``, ...), so weights map by name.

Counts at 592x592x3 (checked in ``models_test.py``): SA-UNetv2 260,521 parameters; SA-UNet with
GN+SiLU 537,299; SA-UNet with BN+ReLU 538,707 (537,299 trainable); U-Net 8,636,385; Attention
U-Net 8,649,828.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers

from saunetv2_lib.models.layers import (
    AttentionGate,
    ConvNormAct,
    CrossScaleSpatialAttention,
    SpatialAttention,
)

SKIP_MODES = ("csa", "sa", "gate", "none")


def check_input_shape(input_shape: Sequence[int | None], num_pools: int, model_name: str) -> None:
    """Raise ``ValueError`` unless ``input_shape`` is ``(H, W, C)`` with sides divisible by ``2**num_pools``.

    ``None`` sides (a fully convolutional model for inference on padded images) are accepted.
    """
    if len(input_shape) != 3:
        raise ValueError(
            f"{model_name}: input_shape must be (height, width, channels), got {tuple(input_shape)}."
        )
    factor = 2**num_pools
    for axis, side in zip(("height", "width"), input_shape[:2], strict=True):
        if side is None:
            continue
        if side % factor:
            below, above = side - side % factor, side + factor - side % factor
            raise ValueError(
                f"{model_name}: input {axis} {side} is not divisible by {factor}: the model "
                f"downsamples {num_pools} times by 2 and its decoder must meet the encoder at "
                f"every level. Pad the image to {above} (or crop to {below}); "
                "saunetv2_lib.data pads to the paper's sides 592 (DRIVE), 704 (STARE), 1008 (CHASE_DB1)."
            )
    if input_shape[2] is not None and input_shape[2] < 1:
        raise ValueError(f"{model_name}: channels must be >= 1, got {input_shape[2]}.")


# The settings every ConvNormAct unit of a U-Net shares, with ConvNormAct's own defaults.
BLOCK_SETTINGS: dict[str, Any] = {
    key: inspect.signature(ConvNormAct).parameters[key].default
    for key in ("dropblock_rate", "block_size", "norm", "groups", "norm_epsilon", "activation",
                "kernel_initializer")
}  # fmt: skip


def block_settings(**block: Any) -> dict[str, Any]:
    """The convolution block's settings: :class:`ConvNormAct`'s defaults updated with ``block``.

    Keys: ``dropblock_rate``, ``block_size``, ``norm``, ``groups``, ``norm_epsilon``,
    ``activation``, ``kernel_initializer`` (SA-UNetv2's block by default: DropBlock 0.15 with
    7x7 blocks, GroupNorm(8) with epsilon 1e-3, SiLU, he_normal).

    Raises:
        TypeError: a key that is not one of these.
    """
    unknown = sorted(set(block) - set(BLOCK_SETTINGS))
    if unknown:
        raise TypeError(f"unknown block settings {unknown}; known: {', '.join(BLOCK_SETTINGS)}.")
    return {**BLOCK_SETTINGS, **block}


def build_unet(
    input_shape: Sequence[int | None] = (592, 592, 3),
    widths: Sequence[int] = (16, 32, 48, 64),
    skip: str = "csa",
    bottleneck_attention: bool = True,
    head_initializer: str = "he_normal",
    seed: int | None = None,
    name: str = "unet",
    skips_block: Callable[[list], list] | None = None,
    **block: Any,
) -> keras.Model:
    """Build a U-shaped segmentation network with one sigmoid output channel.

    ``widths[:-1]`` are the encoder stages (each followed by a 2x2 max-pool), ``widths[-1]`` the
    bottleneck, so there are ``len(widths) - 1`` downsamplings. Each stage is two
    :class:`ConvNormAct` units; the bottleneck optionally has :class:`SpatialAttention` between
    them. The decoder upsamples with a 3x3 stride-2 transposed convolution (glorot init, bias, no
    norm), treats the encoder skip according to ``skip`` (``"csa"``: cross-scale spatial attention
    with the upsampled decoder; ``"sa"``: plain spatial attention on the skip; ``"gate"``: additive
    attention gate with ``F_int = C/2``; ``"none"``), concatenates ``[upsampled, skip]`` and applies
    two units. Head: 1x1 convolution and a float32 sigmoid. ``skips_block``, if given, maps the
    list of all encoder skips (shallowest first) to their replacements once the bottleneck is
    built, for designs that attend over every scale at once (e.g. Dual Cross-Attention).
    ``block`` sets every convolution unit (:func:`block_settings`).

    Returns:
        A functional ``keras.Model`` mapping ``(batch, H, W, C)`` images in ``[0, 1]`` to
        ``(batch, H, W, 1)`` vessel probabilities.
    """
    if skip not in SKIP_MODES:
        raise ValueError(f"skip must be one of {SKIP_MODES}, got {skip!r}.")
    if len(widths) < 2:
        raise ValueError(f"widths needs at least one encoder stage and a bottleneck, got {widths}.")
    num_pools = len(widths) - 1
    check_input_shape(input_shape, num_pools, name)

    settings = block_settings(**block)

    def unit(filters: int, unit_name: str) -> ConvNormAct:
        return ConvNormAct(filters, seed=seed, name=unit_name, **settings)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    skips = []
    for level, filters in enumerate(widths[:-1], start=1):
        x = unit(filters, f"enc{level}_conv1")(x)
        x = unit(filters, f"enc{level}_conv2")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)

    x = unit(widths[-1], "bottleneck_conv1")(x)
    if bottleneck_attention:
        x = SpatialAttention(name="bottleneck_sa")(x)
    x = unit(widths[-1], "bottleneck_conv2")(x)
    if skips_block is not None:
        skips = list(skips_block(skips))

    for level in range(num_pools, 0, -1):
        filters, encoder = widths[level - 1], skips[level - 1]
        up = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"dec{level}_up")(x)
        if skip == "csa":
            encoder = CrossScaleSpatialAttention(name=f"skip{level}_csa")([encoder, up])
        elif skip == "sa":
            encoder = SpatialAttention(name=f"skip{level}_sa")(encoder)
        elif skip == "gate":
            encoder = AttentionGate(filters // 2, name=f"skip{level}_gate")([encoder, up])
        x = layers.Concatenate(name=f"dec{level}_concat")([up, encoder])
        x = unit(filters, f"dec{level}_conv1")(x)
        x = unit(filters, f"dec{level}_conv2")(x)

    logits = layers.Conv2D(1, 1, kernel_initializer=head_initializer, name="head")(x)
    outputs = layers.Activation("sigmoid", dtype="float32", name="probability")(logits)
    return keras.Model(inputs, outputs, name=name)


def sa_unet_v2(
    input_shape: Sequence[int | None] = (592, 592, 3),
    dropblock_rate: float = 0.15,
    block_size: int = 7,
    skip: str = "csa",
    seed: int | None = None,
) -> keras.Model:
    """SA-UNetv2 (spec 1): widths 16-32-48-64, GN(8)+SiLU blocks, SA in the bottleneck, CSA in every skip.

    ``skip="sa"`` gives the ablation's "plain SA in skips" row; 260,521 parameters either way.
    """
    return build_unet(
        input_shape,
        widths=(16, 32, 48, 64),
        skip=skip,
        dropblock_rate=dropblock_rate,
        block_size=block_size,
        seed=seed,
        name="sa_unet_v2",
    )


# SA-UNet's two blocks: the paper's comparison row (SA-UNetv2's block) and the ICPR 2020 original.
SA_UNET_VARIANTS: dict[str, dict[str, Any]] = {
    "gn_silu": {"dropblock_rate": 0.15, "name": "sa_unet"},
    "bn_relu": {
        "dropblock_rate": 0.18,  # the original's keep_prob 0.82
        "name": "sa_unet_bn_relu",
        "norm": "batch",
        "activation": "relu",
        "kernel_initializer": "glorot_uniform",
        "head_initializer": "glorot_uniform",
    },
}


def sa_unet(
    input_shape: Sequence[int | None] = (592, 592, 3),
    variant: str = "gn_silu",
    dropblock_rate: float | None = None,
    block_size: int = 7,
    seed: int | None = None,
) -> keras.Model:
    """SA-UNet (ICPR 2020, spec 7): widths 16-32-64-128, SA in the bottleneck, plain skips.

    ``variant="gn_silu"`` is the paper's comparison row (SA-UNetv2's block: he_normal, GN(8), SiLU;
    DropBlock 0.15). ``variant="bn_relu"`` is the original (glorot init, BatchNorm eps 1e-3, ReLU,
    DropBlock keep_prob 0.82, i.e. rate 0.18).
    """
    if variant not in SA_UNET_VARIANTS:
        raise ValueError(f"variant must be 'gn_silu' or 'bn_relu', got {variant!r}.")
    block = dict(SA_UNET_VARIANTS[variant])
    default_rate, name = block.pop("dropblock_rate"), block.pop("name")
    return build_unet(
        input_shape,
        widths=(16, 32, 64, 128),
        skip="none",
        dropblock_rate=default_rate if dropblock_rate is None else dropblock_rate,
        block_size=block_size,
        seed=seed,
        name=name,
        **block,
    )


def doubling_widths(base_filters: int, stages: int) -> tuple[int, ...]:
    """Channel widths ``base, 2 base, 4 base, ...`` of ``stages`` stages (the last is the bottleneck)."""
    return tuple(base_filters * 2**i for i in range(stages))


def unet(
    input_shape: Sequence[int | None] = (592, 592, 3),
    base_filters: int = 32,
    pools: int = 4,
    skip: str = "none",
    name: str = "unet",
    **kwargs,
) -> keras.Model:
    """U-Net as in the official STARE notebook (spec 8): widths 32..512, 4 pools, v2 block, plain skips.

    Widths double from ``base_filters`` at each of the ``pools`` poolings; ``skip`` is
    :func:`build_unet`'s, and the other ``kwargs`` (``dropblock_rate``, ``seed``, ...) pass
    through to it.
    """
    widths = doubling_widths(base_filters, pools + 1)
    return build_unet(
        input_shape, widths=widths, skip=skip, bottleneck_attention=False, name=name, **kwargs
    )


def attention_unet(
    input_shape: Sequence[int | None] = (592, 592, 3), base_filters: int = 64, **kwargs
) -> keras.Model:
    """Attention U-Net as reconstructed in spec 2.2: :func:`unet` with widths 64..512, 3 pools and
    additive gates on the skips."""
    return unet(input_shape, base_filters, pools=3, skip="gate", name="attention_unet", **kwargs)


def sa_unet_bn_relu(input_shape: Sequence[int | None] = (592, 592, 3), **kwargs) -> keras.Model:
    """The original SA-UNet block (BN + ReLU); see :func:`sa_unet`."""
    return sa_unet(input_shape, variant="bn_relu", **kwargs)
