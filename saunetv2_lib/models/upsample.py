"""Bilinear upsampling by an integer factor in plain ``keras.ops``, for static or unknown sizes.

``keras.layers.UpSampling2D(interpolation="bilinear")`` and ``keras.ops.image.resize`` fail when
the height or width is unknown at trace time (TensorFlow backend, Keras 3.15: the size check
``size[0] <= 0`` needs a Python bool), which happens when a size-agnostic model is predicted at
several sizes. :func:`bilinear_upsample` computes the same values as TensorFlow's bilinear resize
with half-pixel centres (``tf.image.resize``, no antialiasing): output pixel ``o`` samples input
coordinate ``(o + 0.5) / p - 0.5``, clamped at the borders. For output phase ``r`` of a factor
``p`` that is a blend of two neighbours with weight ``|2r + 1 - p| / (2p)``, so each axis is one
pass of slices, two multiplies and an add per output value (free of any resize op).
"""

from __future__ import annotations

from keras import ops


def _upsample_axis(x, factor: int, axis: int):
    first = x[(slice(None),) * axis + (slice(0, 1),)]
    last = x[(slice(None),) * axis + (slice(-1, None),)]
    padded = ops.concatenate([first, x, last], axis=axis)  # edge-replicated borders
    size = ops.shape(x)[axis]

    def window(start: int):
        return padded[(slice(None),) * axis + (slice(start, start + size),)]

    previous, centre, following = window(0), window(1), window(2)
    phases = []
    for r in range(factor):
        offset = (2 * r + 1 - factor) / (2 * factor)  # sample position relative to the pixel
        if offset == 0:
            phases.append(centre)
        else:
            neighbour = previous if offset < 0 else following
            phases.append(centre * (1.0 - abs(offset)) + neighbour * abs(offset))
    stacked = ops.stack(phases, axis=axis + 1)
    shape = list(ops.shape(x))
    shape[axis] = shape[axis] * factor
    return ops.reshape(stacked, [-1, *shape[1:]])


def bilinear_upsample(x, factor: int):
    """Upsample ``(B, H, W, C)`` to ``(B, pH, pW, C)`` bilinearly (half-pixel centres, edge clamp)."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}.")
    if factor == 1:
        return x
    return _upsample_axis(_upsample_axis(x, factor, 1), factor, 2)


def bilinear_upsample_flops(height: int, width: int, channels: int, factor: int) -> int:
    """TF-profiler FLOPs of :func:`bilinear_upsample` on a ``(1, H, W, C)`` input."""
    if factor == 1:
        return 0
    blended = factor - (factor % 2)  # phases with a non-zero offset
    rows = 3 * blended * height * width * channels  # first pass: output (pH, W)
    cols = 3 * blended * factor * height * width * channels  # second pass: output (pH, pW)
    return rows + cols
