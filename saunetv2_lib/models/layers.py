"""Keras 3 layers of SA-UNetv2 and its baselines.

Every layer here is a registered, serialisable class (no ``Lambda``) written with ``keras.ops``
only, so the same code runs on the TensorFlow and the JAX backends and saves to ``.keras`` under
the default ``safe_mode``. Tensors are channels-last: ``(batch, height, width, channels)``.

Spec references are to ``../shared/design/saunetv2_spec.md``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

PACKAGE = "saunetv2"


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropBlock2D(layers.Layer):
    """DropBlock (Ghiasi et al., 2018) with keras-cv's semantics (spec 1.2).

    In training, seeds are drawn per sample and per channel with probability
    ``gamma = rate * H * W / bs**2 / ((W - bs + 1) * (H - bs + 1))`` inside the region where a
    whole block fits, each seed is grown into a ``bs x bs`` square of zeros, and the output is
    rescaled by ``1 / (fraction of kept units over the whole mask)``. At inference it is the
    identity. We own this layer because ``keras_cv.layers.DropBlock2D`` fails inside ``fit`` under
    Keras 3 and needs TensorFlow even on JAX (``env_report.md`` section 2).

    Args:
        rate: expected fraction of units dropped, in ``[0, 1)``.
        block_size: side of the square block in pixels; clipped to the feature map's size.
        seed: optional integer seed of the layer's random generator.
    """

    def __init__(self, rate: float = 0.15, block_size: int = 7, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"DropBlock2D rate must be in [0, 1), got {rate}.")
        if int(block_size) < 1:
            raise ValueError(f"DropBlock2D block_size must be >= 1, got {block_size}.")
        self.rate = float(rate)
        self.block_size = int(block_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        height, width = inputs.shape[1], inputs.shape[2]
        if height is None or width is None:
            raise ValueError(
                "DropBlock2D needs a static height and width in training; build the model with a "
                f"fixed input size (got feature map shape {inputs.shape})."
            )
        block_h, block_w = min(self.block_size, height), min(self.block_size, width)
        gamma = (
            self.rate
            * (height * width)
            / (block_h * block_w)
            / ((width - block_w + 1) * (height - block_h + 1))
        )
        rows = ops.expand_dims(ops.arange(height), 1)
        cols = ops.expand_dims(ops.arange(width), 0)
        # A seed may only fall where the whole block fits inside the map.
        valid = ops.logical_and(
            ops.logical_and(rows >= block_h // 2, rows < height - (block_h - 1) // 2),
            ops.logical_and(cols >= block_w // 2, cols < width - (block_w - 1) // 2),
        )
        valid = ops.reshape(ops.cast(valid, "float32"), (1, height, width, 1))
        noise = keras.random.uniform(ops.shape(inputs), dtype="float32", seed=self.seed_generator)
        seeds = ops.cast(ops.logical_and(noise < gamma, valid > 0.5), "float32")
        # Grow every seed into a block: a max-pool of the seed map, then invert to a keep mask.
        dropped = ops.max_pool(seeds, pool_size=(block_h, block_w), strides=1, padding="same")
        keep = 1.0 - dropped
        kept_fraction = ops.maximum(ops.mean(keep), 1e-6)
        scale = ops.cast(keep / kept_fraction, inputs.dtype)
        return inputs * scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rate": self.rate,
            "block_size": self.block_size,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TwoStageGroupNormalization(layers.GroupNormalization):
    """``GroupNormalization`` whose statistics are means of per-row means: same maths, shorter sums.

    Keras reduces a group's ``H * W * C/G`` values (700k at 592x592) in one pass. Each image row
    holds the same number of them, so the mean of per-row means is the same mean; summing in two
    stages keeps every partial sum short, which is closer to float64 in float32 (TFLite and ONNX
    Runtime accumulate long sums one value at a time) and cheaper on CPU. Statistics are in
    float32 whatever the dtype policy. Weights and config are ``GroupNormalization``'s;
    channels-last only.
    """

    def call(self, inputs):
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        grouped = (shape[0], shape[1], shape[2], self.groups, channels // self.groups)
        x = ops.reshape(ops.cast(inputs, "float32"), grouped)
        mean = ops.mean(ops.mean(x, axis=2, keepdims=True), axis=(1, 4), keepdims=True)
        variance = ops.mean(
            ops.mean(ops.square(x - mean), axis=2, keepdims=True), axis=(1, 4), keepdims=True
        )
        inverse = ops.rsqrt(variance + self.epsilon)
        per_channel = (1, 1, 1, self.groups, channels // self.groups)
        if self.scale:
            inverse = inverse * ops.reshape(ops.cast(self.gamma, "float32"), per_channel)
        shift = -mean * inverse
        if self.center:
            shift = shift + ops.reshape(ops.cast(self.beta, "float32"), per_channel)
        return ops.cast(ops.reshape(x * inverse + shift, shape), self.compute_dtype)


def use_two_stage_group_norm(model: keras.Model) -> int:
    """Switch every channels-last ``GroupNormalization`` of a never-called ``model`` in place.

    Looks at the model's layers and one level down (e.g. :class:`ConvNormAct`'s ``norm``). The
    attributes and weights are the same, only ``call`` differs, so swapping the class of a layer
    that has not been traced yet keeps the layer tracking intact; a :class:`ConvNormAct` saved
    afterwards still serialises its own config, so files written from such a model load as
    usual. Returns the number of layers switched.
    """
    switched = 0
    for layer in model.layers:
        children = [layer, *(v for v in vars(layer).values() if isinstance(v, layers.Layer))]
        for child in children:
            if type(child) is layers.GroupNormalization and child.axis in (-1, 3):
                child.__class__ = TwoStageGroupNormalization
                switched += 1
    return switched


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvNormAct(layers.Layer):
    """One unit of the paper's block: Conv 3x3 -> DropBlock -> normalisation -> activation.

    SA-UNetv2 (spec 1.2) uses ``Conv3x3(bias, he_normal) -> DropBlock(0.15, 7) -> GroupNorm(8,
    eps 1e-3) -> SiLU``; the original SA-UNet (spec 7) uses ``glorot_uniform``, BatchNorm and ReLU.
    Two units make one encoder or decoder stage.

    Args:
        filters: output channels.
        kernel_size: convolution side (3 in every model of the paper).
        dropblock_rate: DropBlock rate; 0 removes the layer.
        block_size: DropBlock block side.
        norm: ``"group"``, ``"batch"`` or ``"none"``.
        groups: groups of the group normalisation.
        norm_epsilon: epsilon of the normalisation (tensorflow-addons' GN default, 1e-3).
        activation: any Keras activation name (``"silu"``, ``"relu"``).
        kernel_initializer: initializer of the convolution kernel.
        use_bias: whether the convolution has a bias.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        dropblock_rate: float = 0.15,
        block_size: int = 7,
        norm: str = "group",
        groups: int = 8,
        norm_epsilon: float = 1e-3,
        activation: str = "silu",
        kernel_initializer: str = "he_normal",
        use_bias: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if norm not in ("group", "batch", "none"):
            raise ValueError(f"norm must be 'group', 'batch' or 'none', got {norm!r}.")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dropblock_rate = float(dropblock_rate)
        self.block_size = int(block_size)
        self.norm = norm
        self.groups = int(groups)
        self.norm_epsilon = float(norm_epsilon)
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.use_bias = bool(use_bias)
        self.seed = seed

        self.conv = layers.Conv2D(
            self.filters,
            self.kernel_size,
            padding="same",
            use_bias=self.use_bias,
            kernel_initializer=kernel_initializer,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.dropblock = (
            DropBlock2D(self.dropblock_rate, self.block_size, seed=seed, name="dropblock")
            if self.dropblock_rate > 0
            else None
        )
        if norm == "group":
            self.normalization = layers.GroupNormalization(
                groups=self.groups, epsilon=self.norm_epsilon, dtype=self.dtype_policy, name="norm"
            )
        elif norm == "batch":
            self.normalization = layers.BatchNormalization(
                epsilon=self.norm_epsilon, dtype=self.dtype_policy, name="norm"
            )
        else:
            self.normalization = None
        self.act = layers.Activation(activation, dtype=self.dtype_policy, name="act")

    def build(self, input_shape):
        self.conv.build(input_shape)
        out_shape = self.conv.compute_output_shape(input_shape)
        if self.normalization is not None:
            self.normalization.build(out_shape)

    def call(self, inputs, training=None):
        x = self.conv(inputs)
        if self.dropblock is not None:
            x = self.dropblock(x, training=training)
        if self.normalization is not None:
            x = self.normalization(x, training=training)
        return self.act(x)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dropblock_rate": self.dropblock_rate,
            "block_size": self.block_size,
            "norm": self.norm,
            "groups": self.groups,
            "norm_epsilon": self.norm_epsilon,
            "activation": self.activation,
            "kernel_initializer": self.kernel_initializer,
            "use_bias": self.use_bias,
            "seed": self.seed,
        }


def _attention_conv(kernel_size: int, dtype_policy) -> layers.Conv2D:
    # 7x7, one filter, no bias, he_normal, sigmoid: 2 * 49 = 98 parameters (spec 1.4, 1.5).
    return layers.Conv2D(
        1,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        activation="sigmoid",
        dtype=dtype_policy,
        name="conv",
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpatialAttention(layers.Layer):
    """SA-UNet's spatial attention (spec 1.4): ``F * sigmoid(conv7x7([mean_c(F), max_c(F)]))``.

    Input and output: ``(batch, H, W, C)``. The attention map ``(batch, H, W, 1)`` is
    available through :meth:`attention_map`.
    """

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.conv = _attention_conv(self.kernel_size, self.dtype_policy)

    def build(self, input_shape):
        self.conv.build((*input_shape[:-1], 2))

    def attention_map(self, inputs):
        pooled = ops.concatenate(
            [ops.mean(inputs, axis=-1, keepdims=True), ops.max(inputs, axis=-1, keepdims=True)],
            axis=-1,
        )
        return self.conv(pooled)

    def call(self, inputs):
        return inputs * self.attention_map(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CrossScaleSpatialAttention(layers.Layer):
    """SA-UNetv2's cross-scale spatial attention on a skip connection (spec 1.5).

    Called on ``[encoder, decoder]`` feature maps of the same height and width, it returns the
    re-weighted encoder feature ``E * sigmoid(conv7x7([mean_c(E), mean_c(D)]))``; the decoder
    feature only steers the map. Output shape: the encoder's ``(batch, H, W, C_enc)``.
    """

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.conv = _attention_conv(self.kernel_size, self.dtype_policy)

    def build(self, input_shape):
        encoder_shape = input_shape[0]
        self.conv.build((*encoder_shape[:-1], 2))

    def attention_map(self, inputs):
        encoder, decoder = inputs
        pooled = ops.concatenate(
            [ops.mean(encoder, axis=-1, keepdims=True), ops.mean(decoder, axis=-1, keepdims=True)],
            axis=-1,
        )
        return self.conv(pooled)

    def call(self, inputs):
        return inputs[0] * self.attention_map(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionGate(layers.Layer):
    """Additive attention gate of Attention U-Net (Oktay et al., 2018), as reconstructed in spec 2.2.

    Called on ``[skip, gating]`` of the same height and width: ``skip * sigmoid(psi(relu(Wx skip +
    Wg gating)))`` with 1x1 convolutions (with bias) ``Wx``, ``Wg`` to ``intermediate_channels``
    and ``psi`` to one channel. Output shape: the skip's.
    """

    def __init__(self, intermediate_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_channels = int(intermediate_channels)
        conv_kwargs = {"padding": "same", "dtype": self.dtype_policy}
        self.skip_conv = layers.Conv2D(self.intermediate_channels, 1, name="w_x", **conv_kwargs)
        self.gating_conv = layers.Conv2D(self.intermediate_channels, 1, name="w_g", **conv_kwargs)
        self.psi = layers.Conv2D(1, 1, activation="sigmoid", name="psi", **conv_kwargs)

    def build(self, input_shape):
        skip_shape, gating_shape = input_shape
        self.skip_conv.build(skip_shape)
        self.gating_conv.build(gating_shape)
        self.psi.build((*skip_shape[:-1], self.intermediate_channels))

    def attention_map(self, inputs):
        skip, gating = inputs
        return self.psi(ops.relu(self.skip_conv(skip) + self.gating_conv(gating)))

    def call(self, inputs):
        return inputs[0] * self.attention_map(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "intermediate_channels": self.intermediate_channels}
