"""Training losses of SA-UNetv2 (spec section 3): BCE + soft batch MCC, and Dice for comparison.

``L = bce_weight * mean(BCE) + mcc_weight * (1 - MCC_soft)`` with both weights 0.5 in the paper.

* BCE is the plain, unweighted binary cross-entropy on probabilities. As in Keras, ``p`` is
  clipped to ``[1e-7, 1 - 1e-7]`` before the logarithms.
* ``MCC_soft`` is the Matthews correlation coefficient of the *soft* confusion counts
  (``TP = sum(p * y)`` and so on). The sums are pooled over every pixel of the whole mini-batch,
  so there is one MCC per batch, not one per image. ``epsilon = 1e-7`` is added after the
  square root.

Everything is computed in float32, even under a ``mixed_float16`` policy. The product of the four
confusion sums reaches about 1e23 for a 592x592 batch of 8, which overflows float16.
Only ``keras.ops`` is used, so the losses run on the TensorFlow and the JAX backends.

All functions take ``y_true`` (labels in {0, 1}) and ``y_pred`` (probabilities in [0, 1]) of the
same shape, e.g. ``(batch, height, width, 1)``. They return a float32 scalar.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "saunetv2"
EPSILON = 1e-7  # keras.backend.epsilon(), used by the official code for clipping and MCC
# The soft MCC's denominator is sqrt(product). The product is exactly 0 when a batch has no
# vessel (or no background) pixels, and d sqrt(x)/dx is infinite there, which would turn the
# (zero) gradient into NaN. Flooring the product at a tiny positive value keeps the gradient
# finite and changes the denominator by at most 1e-15, far below EPSILON.
_TINY = 1e-30


def _as_float32(y_true, y_pred):
    return ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")


def binary_crossentropy_mean(y_true, y_pred, epsilon: float = EPSILON):
    """Mean binary cross-entropy over all elements, with ``p`` clipped to ``[eps, 1 - eps]``.

    Returns a float32 scalar in nats per pixel. The clipping happens in float32, where
    ``1 - 1e-7`` rounds to ``1 - 2**-23``, exactly as in Keras.
    """
    y_true, y_pred = _as_float32(y_true, y_pred)
    p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
    bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return ops.mean(bce)


def soft_confusion_counts(y_true, y_pred):
    """Soft ``(TP, TN, FP, FN)`` pooled over all elements, as float32 scalars."""
    y_true, y_pred = _as_float32(y_true, y_pred)
    tp = ops.sum(y_pred * y_true)
    tn = ops.sum((1.0 - y_pred) * (1.0 - y_true))
    fp = ops.sum(y_pred * (1.0 - y_true))
    fn = ops.sum((1.0 - y_pred) * y_true)
    return tp, tn, fp, fn


def soft_mcc(y_true, y_pred, epsilon: float = EPSILON):
    """Soft Matthews correlation coefficient, pooled over all elements of the batch.

    ``(TP*TN - FP*FN) / (sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) + eps)``. It lies in ``[-1, 1]``. For
    hard 0/1 inputs it equals the ordinary MCC. It is 0 when a marginal is 0, e.g. for an
    all-background batch.
    """
    tp, tn, fp, fn = soft_confusion_counts(y_true, y_pred)
    product = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return (tp * tn - fp * fn) / (ops.sqrt(ops.maximum(product, _TINY)) + epsilon)


@keras.saving.register_keras_serializable(package=PACKAGE)
def dice_loss(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice loss ``1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s)``, pooled over the batch.

    ``smooth`` (``s``, in pixels) makes an empty prediction on an empty label a perfect 0 loss
    instead of 0/0. Only used for the BCE vs Dice vs MCC comparison; the paper does not train
    with it.
    """
    y_true, y_pred = _as_float32(y_true, y_pred)
    intersection = ops.sum(y_pred * y_true)
    return 1.0 - (2.0 * intersection + smooth) / (ops.sum(y_pred) + ops.sum(y_true) + smooth)


def _scale_for_replicas(loss):
    """Divide by the number of ``tf.distribute`` replicas, as Keras does for its own losses.

    Keras scales a non-scalar loss by ``1 / replicas`` in its reduction and multiplies the logged
    value back; a loss that is already a scalar skips that step, so without this a
    ``MirroredStrategy`` would sum the replicas' losses (and gradients) instead of averaging them.
    A no-op on one device and on JAX.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss / replicas
    return loss


@keras.saving.register_keras_serializable(package=PACKAGE)
class BceMccLoss(keras.losses.Loss):
    """SA-UNetv2 loss ``bce_weight * mean(BCE) + mcc_weight * (1 - soft batch MCC)`` (spec 3).

    ``call`` returns the final scalar. Keras' reduction of a scalar is the scalar itself, so the
    value is exactly ``0.5 * mean(BCE) + 0.5 * (1 - MCC_batch)`` with the default weights. The
    official code instead adds the scalar MCC term to the per-pixel BCE map and lets Keras take
    the mean, which is the same number. ``sample_weight`` is rejected: per-sample weights have no
    meaning for a batch-pooled MCC.

    Args:
        bce_weight: weight of the mean binary cross-entropy; ``(1, 0)`` gives pure BCE.
        mcc_weight: weight of ``1 - MCC``; ``(0, 1)`` gives the pure MCC loss.
        name: name of the loss.
    """

    def __init__(
        self,
        bce_weight: float = 0.5,
        mcc_weight: float = 0.5,
        name: str = "bce_mcc_loss",
        **kwargs,
    ):
        # Always float32, whatever the global dtype policy (see the module docstring).
        kwargs.pop("dtype", None)
        super().__init__(name=name, dtype="float32", **kwargs)
        self.bce_weight = float(bce_weight)
        self.mcc_weight = float(mcc_weight)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                "BceMccLoss does not support sample_weight: its MCC term is pooled over the "
                "whole batch. Remove the sample weights from the dataset."
            )
        return _scale_for_replicas(super().__call__(y_true, y_pred))

    def call(self, y_true, y_pred):
        y_true, y_pred = _as_float32(y_true, y_pred)
        loss = ops.convert_to_tensor(0.0, dtype="float32")
        if self.bce_weight:
            loss = loss + self.bce_weight * binary_crossentropy_mean(y_true, y_pred)
        if self.mcc_weight:
            loss = loss + self.mcc_weight * (1.0 - soft_mcc(y_true, y_pred))
        return loss

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "bce_weight": self.bce_weight,
            "mcc_weight": self.mcc_weight,
        }
