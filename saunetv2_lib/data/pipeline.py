"""Backend-agnostic input pipeline: a ``keras.utils.PyDataset`` of padded, optionally augmented
image/label batches, in numpy only (no ``tf.data``), so the same code feeds TensorFlow and JAX.

Batches are ``(images, labels)``: images float32 (B, S, S, 3) in [0, 1], labels float32
(B, S, S, 1) in {0, 1}, where S is the model side (whole images zero-padded to S x S with
:func:`saunetv2_lib.data.padding.pad_to_side`, top-left anchored as in the official DRIVE code, or
centred) or the patch size in patch mode.

Randomness is deterministic and independent of worker scheduling: epoch ``e`` shuffles with a
generator seeded from ``(seed, e)`` and every image's augmentation (and every patch position)
uses its own generator seeded from ``(seed, e, index)``. :meth:`SegmentationDataset.on_epoch_end`
(called by Keras after each epoch) advances ``e``; :meth:`SegmentationDataset.set_epoch` sets it
(e.g. when resuming with ``initial_epoch``). Keras 3.15 can call ``on_epoch_end`` once before
training starts (after building the model from the first batch; seen on JAX, and on TF with
``workers > 1``), so training epoch k may use dataset epoch k + 1; runs stay reproducible.
Keras' own ``fit(shuffle=True)`` additionally shuffles the *batch order* with Python's ``random``
module; pass ``shuffle=False`` to ``fit`` (the dataset already shuffles its samples) or seed with
``keras.utils.set_random_seed`` for a fully reproducible order.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from saunetv2_lib.data.augment import random_patches
from saunetv2_lib.data.padding import pad_to_side, side_for
from saunetv2_lib.data.vocabulary import ANCHORS

Array = np.ndarray
AugmentFn = Callable[[Array, Array, np.random.Generator], tuple[Array, Array]]

# Rounding max(H, W) up to a multiple of 16 gives exactly the official model sides: DRIVE
# 584 -> 592, STARE 700 -> 704, CHASE_DB1 999 -> 1008 (a multiple of 8 would give 584 for DRIVE).
SIDE_MULTIPLE = 16


def _micro_batch(items: Array, parts: int, part: int) -> Array:
    """Item indices of micro-batch ``part`` of ``parts`` of a batch of ``items``: nearly equal
    consecutive slices (``numpy.array_split``), or, for a batch of fewer items than parts, one
    item per micro-batch in turn, so that every item of the batch is seen equally often."""
    if len(items) >= parts:
        return np.array_split(items, parts)[part]
    return items[[part % len(items)]]


def _pad_to_side(array: Array, side: int, anchor: str) -> Array:
    padded, _ = pad_to_side(array, side, anchor=anchor)
    return padded


def _validated(
    index: int, name: str, image: Any, label: Any, fov: Any = None
) -> tuple[Array, Array, Array | None]:
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Sample {name!r}: image must have shape (H, W, 3), got {image.shape}.")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"Sample {name!r}: image must be float in [0, 1] (got dtype {image.dtype}); "
            "divide uint8 images by 255."
        )
    if label.shape != image.shape[:2]:
        raise ValueError(
            f"Sample {name!r}: label shape {label.shape} does not match the image's "
            f"(H, W) = {image.shape[:2]}."
        )
    if not np.isin(np.unique(label), (0, 1)).all():
        raise ValueError(
            f"Sample {name!r}: label must be binary {{0, 1}} (got values "
            f"{np.unique(label)[:5].tolist()}...); threshold it first, e.g. label > 127."
        )
    if fov is not None:
        fov = np.asarray(fov).astype(np.uint8)
        if fov.shape != label.shape:
            raise ValueError(f"Sample {name!r}: FOV shape {fov.shape} != label {label.shape}.")
    return image.astype(np.float32, copy=False), label.astype(np.uint8, copy=False), fov


class SegmentationDataset(keras.utils.PyDataset):
    """Batches of (optionally augmented) images and labels for ``model.fit``.

    Args:
        samples: a sequence of samples with ``.image`` (float (H, W, 3) in [0, 1]), ``.label``
            (uint8 {0, 1} (H, W)) and optionally ``.fov`` and ``.name`` (e.g. the output of
            ``load_split``), or, when ``labels`` is given, a sequence/array of images.
        labels: labels matching ``samples`` when ``samples`` are bare images.
        batch_size: images (or patches) per batch.
        side: model input side S. ``None`` (whole-image mode) = the largest H or W in the set
            rounded up to a multiple of 16, which gives the official sides (DRIVE 584x565 -> 592;
            STARE 605x700 -> 704 for both orientations, so transposed variants still fit;
            CHASE_DB1 -> 1008). Ignored in patch mode.
        anchor: "top_left" (content at ``[0:H, 0:W]``, the official DRIVE protocol) or "center".
        augment: ``None`` or a callable ``(image, label, rng) -> (image, label)``, e.g.
            :func:`saunetv2_lib.data.augment.paper_augment`; applied per image and epoch.
        patch_size: ``None`` for whole padded images; else square random patches of this size,
            drawn uniformly over the (augmented) image, ``patches_per_image`` per image and epoch.
        patches_per_image: patches cut from every image per epoch in patch mode.
        shuffle: shuffle the sample order every epoch (seeded by ``(seed, epoch)``).
        seed: integer seed of all randomness.
        drop_remainder: drop the last, smaller batch.
        micro_batches: split every batch into this many consecutive micro-batches of nearly equal
            size (``numpy.array_split``), yielded one after another, for an optimizer that
            accumulates ``micro_batches`` gradients per step (``gradient_accumulation_steps``):
            each step then sees exactly the images of the undivided batch. ``len`` counts
            micro-batches. A last batch of ``n < micro_batches`` items (234 DRIVE images at
            batch 8 leave 2) yields one item per micro-batch, cycling through its items, so
            that every step still makes ``micro_batches`` passes and each item weighs
            ``1 / n`` of the step, as in the undivided batch; ``n`` must then divide
            ``micro_batches``.
        workers, use_multiprocessing, max_queue_size: ``keras.utils.PyDataset`` options.
    """

    def __init__(
        self,
        samples: Sequence[Any] | Array,
        labels: Sequence[Any] | Array | None = None,
        *,
        batch_size: int = 8,
        side: int | None = None,
        anchor: str = "top_left",
        augment: AugmentFn | None = None,
        patch_size: int | None = None,
        patches_per_image: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        drop_remainder: bool = False,
        micro_batches: int = 1,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        if labels is not None:
            if len(samples) != len(labels):
                raise ValueError(f"Got {len(samples)} images but {len(labels)} labels.")
            entries = [(f"#{i}", samples[i], labels[i], None) for i in range(len(samples))]
        else:
            try:
                entries = [
                    (
                        str(getattr(s, "name", f"#{i}")),
                        s.image,
                        s.label,
                        getattr(s, "fov", None),
                    )
                    for i, s in enumerate(samples)
                ]
            except AttributeError as error:
                raise ValueError(
                    "SegmentationDataset expects samples with .image and .label, or images "
                    "together with labels=..."
                ) from error
        if not entries:
            raise ValueError("SegmentationDataset needs at least one sample.")
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}.")
        if int(batch_size) < 1 or int(patches_per_image) < 1 or int(micro_batches) < 1:
            raise ValueError("batch_size, patches_per_image and micro_batches must be >= 1.")
        self.names = [name for name, *_ in entries]
        validated = [_validated(i, *entry) for i, entry in enumerate(entries)]
        self.images = [v[0] for v in validated]
        self.labels = [v[1] for v in validated]
        self.fovs = [v[2] for v in validated]
        self.batch_size = int(batch_size)
        self.anchor = anchor
        self.augment = augment
        self.patch_size = None if patch_size is None else int(patch_size)
        self.patches_per_image = int(patches_per_image) if patch_size is not None else 1
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.micro_batches = int(micro_batches)
        self.epoch = 0
        largest = max(max(image.shape[:2]) for image in self.images)
        largest_shape = max((image.shape for image in self.images), key=lambda s: max(s[:2]))
        if self.patch_size is not None:
            smallest = min(min(image.shape[:2]) for image in self.images)
            if not 1 <= self.patch_size <= smallest:
                raise ValueError(
                    f"patch_size {self.patch_size} must be between 1 and the smallest image "
                    f"side in the set ({smallest} px)."
                )
            self.side = self.patch_size
        elif side is None:
            self.side = side_for(largest_shape, multiple=SIDE_MULTIPLE)
        else:
            self.side = int(side)
            for name, image in zip(self.names, self.images, strict=True):
                if max(image.shape[:2]) > self.side:
                    raise ValueError(
                        f"Sample {name!r} of size {image.shape[0]}x{image.shape[1]} does not fit "
                        f"the model side {self.side}; use side >= {largest}."
                    )
        if len(self) == 0:
            raise ValueError(
                f"No full batch: {self.num_items} items with batch_size {self.batch_size} and "
                "drop_remainder=True."
            )
        last = self.num_items - (self.batches_per_epoch - 1) * self.batch_size
        smallest_batch = min(self.batch_size, last)
        if smallest_batch < self.micro_batches and self.micro_batches % smallest_batch:
            raise ValueError(
                f"Cannot split a batch of {smallest_batch} item(s) into {self.micro_batches} "
                f"micro-batches of equal weight ({self.num_items} items per epoch, batch_size "
                f"{self.batch_size}): a batch smaller than micro_batches must hold a divisor of "
                "it; choose other batch sizes, or drop_remainder=True."
            )

    # --- indexing ---------------------------------------------------------------------------

    @property
    def num_items(self) -> int:
        """Images (whole-image mode) or patches (patch mode) per epoch."""
        return len(self.images) * self.patches_per_image

    @property
    def batches_per_epoch(self) -> int:
        """Whole (undivided) batches per epoch: optimizer steps when micro-batches accumulate."""
        if self.drop_remainder:
            return self.num_items // self.batch_size
        return math.ceil(self.num_items / self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch * self.micro_batches

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentations the next batches use."""
        self.epoch = int(epoch)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def epoch_order(self, epoch: int | None = None) -> Array:
        """Item order of an epoch (item ``k`` is patch ``k % ppi`` of image ``k // ppi``)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if not self.shuffle:
            return np.arange(self.num_items)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        return rng.permutation(self.num_items)

    def _augmented(self, image_index: int, epoch: int) -> tuple[Array, Array]:
        image, label = self.images[image_index], self.labels[image_index]
        if self.augment is None:
            return image, label
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, image_index]))
        image, label = self.augment(image, label, rng)
        return np.asarray(image, dtype=np.float32), np.asarray(label, dtype=np.uint8)

    def __getitem__(self, index: int) -> tuple[Array, Array]:
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range for {len(self)} batches.")
        epoch = self.epoch
        batch, part = divmod(index, self.micro_batches)
        items = self.epoch_order(epoch)[batch * self.batch_size : (batch + 1) * self.batch_size]
        if self.micro_batches > 1:
            items = _micro_batch(items, self.micro_batches, part)
        side = self.side
        images = np.zeros((len(items), side, side, 3), dtype=np.float32)
        labels = np.zeros((len(items), side, side, 1), dtype=np.float32)
        augmented: dict[int, tuple[Array, Array]] = {}  # each image augmented once per batch
        for row, item in enumerate(items):
            image_index = int(item) // self.patches_per_image
            if image_index not in augmented:
                augmented[image_index] = self._augmented(image_index, epoch)
            image, label = augmented[image_index]
            if self.patch_size is None:
                images[row] = _pad_to_side(image, side, self.anchor)
                labels[row, ..., 0] = _pad_to_side(label, side, self.anchor)
            else:
                rng = np.random.default_rng(
                    np.random.SeedSequence([self.seed, epoch, image_index, int(item) + 1])
                )
                patch, patch_label = random_patches(image, label, side, 1, rng)
                images[row], labels[row, ..., 0] = patch[0], patch_label[0]
        return images, labels


def tf_dataset(dataset: SegmentationDataset, epochs: int = 1, prefetch: int = 2):
    """A ``tf.data.Dataset`` over ``epochs`` epochs of ``dataset``, built in a background thread.

    Optional fast path for the TensorFlow backend only (``tf.data`` prefetches the numpy work
    while the model trains). Epochs advance exactly as with Keras' ``on_epoch_end``; call
    ``model.fit(ds, epochs=epochs, steps_per_epoch=len(dataset))``. Raises ``ImportError`` when
    TensorFlow is not installed (e.g. on a JAX-only machine): use the dataset directly there.
    """
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "tf_dataset needs TensorFlow; on JAX pass the SegmentationDataset to fit directly."
        ) from error
    start = dataset.epoch

    def generate():
        for epoch in range(start, start + int(epochs)):
            dataset.set_epoch(epoch)
            for index in range(len(dataset)):
                yield dataset[index]
        dataset.set_epoch(start + int(epochs))

    side = dataset.side
    signature = (
        tf.TensorSpec((None, side, side, 3), tf.float32),
        tf.TensorSpec((None, side, side, 1), tf.float32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(prefetch)


# --------------------------------------------------------------------------------------------
# What a training run reads: its split, its batches and its validation arrays


@dataclasses.dataclass
class TrainingData:
    """The inputs of one training run (see :func:`training_data`).

    Attributes:
        batches: the shuffled, augmented training batches (a :class:`SegmentationDataset`).
        x_val: validation images ``(N, S, S, 3)`` float32 (``N`` tiles of ``S = patch_size`` in
            patch mode).
        y_val: validation labels ``(N, S, S, 1)`` float32 in {0, 1}.
        train_names: source images the batches draw from.
        val_names: source images held out for validation.
    """

    batches: SegmentationDataset
    x_val: Array
    y_val: Array
    train_names: list[str]
    val_names: list[str]


def training_split(
    dataset: str,
    root: str | Path,
    val_count: int,
    seed: int,
    labels: str | None = None,
    max_train_images: int | None = None,
) -> tuple[list[Any], list[Any]]:
    """Load ``dataset``'s training sources and hold ``val_count`` of them out (seeded, by source image)."""
    from saunetv2_lib.data.datasets import load_split
    from saunetv2_lib.data.splits import train_val_split

    samples = load_split(dataset, "train", root=root, labels=labels)
    if max_train_images is not None:
        samples = samples[:max_train_images]
    if len(samples) <= val_count:
        raise ValueError(
            f"{dataset}: {len(samples)} training images under {root} cannot spare "
            f"val_count={val_count} for validation."
        )
    train_names, val_names = train_val_split([s.name for s in samples], n_val=val_count, seed=seed)
    by_name = {s.name: s for s in samples}
    return [by_name[n] for n in train_names], [by_name[n] for n in val_names]


def tiles(batch: Array, tile: int) -> Array:
    """Cut ``(N, H, W, C)`` into ``(N * rows * cols, tile, tile, C)`` after zero padding to a multiple."""
    n, height, width, channels = batch.shape
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)
    padded = np.zeros((n, rows * tile, cols * tile, channels), batch.dtype)
    padded[:, :height, :width] = batch
    cut = padded.reshape(n, rows, tile, cols, tile, channels).transpose(0, 1, 3, 2, 4, 5)
    return cut.reshape(n * rows * cols, tile, tile, channels)


def validation_arrays(
    samples: Sequence[Any], side: int, anchor: str, patch_size: int | None = None
) -> tuple[Array, Array]:
    """Validation images padded to ``side``: ``(N, side, side, 3)`` images, ``(N, side, side, 1)`` labels.

    With ``patch_size`` the padded images are padded further (bottom/right) to a multiple of the
    patch and cut into non-overlapping tiles, so a model built for patches can score them.
    """
    images, labels = [], []
    for sample in samples:
        image, _ = pad_to_side(sample.image, side, anchor=anchor)
        label, _ = pad_to_side(sample.label, side, anchor=anchor)
        images.append(image.astype("float32"))
        labels.append(label.astype("float32")[..., None])
    x, y = np.stack(images), np.stack(labels)
    if patch_size is None:
        return x, y
    return tiles(x, patch_size), tiles(y, patch_size)


def training_data(
    dataset: str,
    root: str | Path,
    *,
    val_count: int,
    seed: int,
    batch_size: int,
    side: int,
    anchor: str,
    epoch: int = 0,
    labels: str | None = None,
    max_train_images: int | None = None,
    augment: bool = True,
    augment_flips: bool = True,
    patch_size: int | None = None,
    epoch_repeats: int = 1,
    micro_batches: int = 1,
) -> TrainingData:
    """The split, the training batches and the validation arrays of one run.

    Each source image appears ``epoch_repeats`` times per epoch, every copy with its own
    augmentation draw; ``epoch`` selects the random stream, so a resumed run sees the batches it
    would have seen. ``micro_batches`` splits each batch for gradient accumulation
    (:class:`SegmentationDataset`).
    """
    from saunetv2_lib.data.augment import paper_augment

    train_samples, val_samples = training_split(
        dataset, root, val_count, seed, labels=labels, max_train_images=max_train_images
    )
    batches = SegmentationDataset(
        list(train_samples) * epoch_repeats,
        batch_size=batch_size,
        side=side,
        anchor=anchor,
        augment=functools.partial(paper_augment, flips=augment_flips) if augment else None,
        patch_size=patch_size,
        shuffle=True,
        seed=seed,
        micro_batches=micro_batches,
    )
    batches.set_epoch(epoch)
    x_val, y_val = validation_arrays(val_samples, side, anchor, patch_size)
    return TrainingData(
        batches, x_val, y_val, [s.name for s in train_samples], [s.name for s in val_samples]
    )
