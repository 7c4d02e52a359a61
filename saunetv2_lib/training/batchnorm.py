"""Precise batch-norm statistics: re-estimate a model's BN moving averages on training images.

A batch norm normalises with the statistics of the batch in training and with exponential moving
averages of them (momentum 0.99) in inference. Two things make those averages wrong for the
paper's BN baseline (SA-UNet: Conv -> DropBlock -> BN -> ReLU) at a short budget:

- DropBlock runs before every BN in training only, so the batch statistics the averages follow
  are those of dropped-out activations, not of what the BN sees in inference;
- after ``n`` steps the averages still hold ``0.99 ** n`` of their initial values (mean 0,
  variance 1): 5 % after 300 steps, far from a layer whose true variance is 1e-2.

The remedy is precise BN (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021; fvcore's
``update_bn_stats``): run the trained model over training images in training mode with DropBlock
off, and set each BN's moving mean and variance to the average of the batch statistics it saw.
Every BN is normalised by batch statistics during these passes, as in training, so no layer's
estimate depends on another's. Models without batch norms are left untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import numpy as np

from saunetv2_lib.models.layers import DropBlock2D


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every ``BatchNormalization`` in ``model``, nested layers included, in call order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


@contextlib.contextmanager
def _dropblock_off(model: keras.Model) -> Iterator[None]:
    blocks = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, DropBlock2D)
    ]
    rates = [block.rate for block in blocks]
    try:
        for block in blocks:
            block.rate = 0.0  # DropBlock2D.call is the identity at rate 0
        yield
    finally:
        for block, rate in zip(blocks, rates, strict=True):
            block.rate = rate


def precise_batch_norm(model: keras.Model, images: np.ndarray, batch_size: int) -> int:
    """Set every BN's moving mean and variance to its average batch statistics over ``images``.

    Args:
        model: a built model; changed in place (only the BN moving averages).
        images: training images ``(N, H, W, 3)`` float32 in [0, 1], ``H, W`` the model's input.
        batch_size: images per forward pass; the training batch size gives the statistics the
            BN normalised with in training. A last, smaller batch is used too.

    Returns:
        The number of batch norms updated (0 for a model without any: nothing is run).
    """
    norms = batch_norm_layers(model)
    if not norms:
        return 0
    if len(images) == 0 or batch_size < 1:
        raise ValueError(
            f"precise_batch_norm needs at least one image and batch_size >= 1, got "
            f"{len(images)} images and batch_size {batch_size}."
        )
    momenta = [norm.momentum for norm in norms]
    sums = [
        [
            np.zeros(norm.moving_mean.shape, "float64"),
            np.zeros(norm.moving_variance.shape, "float64"),
        ]
        for norm in norms
    ]
    weight = 0
    try:
        for norm in norms:
            # Momentum 0: after a training-mode call each moving average is that batch's moment.
            norm.momentum = 0.0
        with _dropblock_off(model):
            for start in range(0, len(images), batch_size):
                batch = images[start : start + batch_size]
                model(batch, training=True)
                for norm, (mean_sum, var_sum) in zip(norms, sums, strict=True):
                    mean_sum += len(batch) * keras.ops.convert_to_numpy(norm.moving_mean)
                    var_sum += len(batch) * keras.ops.convert_to_numpy(norm.moving_variance)
                weight += len(batch)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
    for norm, (mean_sum, var_sum) in zip(norms, sums, strict=True):
        norm.moving_mean.assign((mean_sum / weight).astype(norm.moving_mean.dtype))
        norm.moving_variance.assign((var_sum / weight).astype(norm.moving_variance.dtype))
    return len(norms)


class PreciseBatchNorm(keras.callbacks.Callback):
    """Re-estimates the BN statistics (:func:`precise_batch_norm`) before every validation.

    ``fit`` passes its callbacks to the validation ``evaluate``, so ``on_test_begin`` runs after
    an epoch's training and before its validation: the validation scores, the best checkpoint
    and the resume state all see the precise statistics. Training itself normalises with batch
    statistics, so replacing the moving averages does not change it.
    """

    def __init__(self, images: np.ndarray, batch_size: int):
        super().__init__()
        self.images, self.batch_size = images, int(batch_size)

    def on_test_begin(self, logs=None):
        precise_batch_norm(self.model, self.images, self.batch_size)
