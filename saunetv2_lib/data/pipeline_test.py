"""Tests of the numpy input pipeline (SegmentationDataset)."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from saunetv2_lib.data import augment as aug
from saunetv2_lib.data.pipeline import SegmentationDataset, tf_dataset, tiles

REPO = Path(__file__).resolve().parents[2]


def _samples(n=5, shape=(20, 18), seed=0):
    """Samples whose image encodes the sample index (red = index / 10) and the pixel position."""
    rng = np.random.default_rng(seed)
    samples = []
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    for i in range(n):
        image = np.empty((*shape, 3), np.float32)
        image[..., 0] = i / 10.0
        image[..., 1] = rows / shape[0]
        image[..., 2] = cols / shape[1]
        label = (rng.random(shape) > 0.7).astype(np.uint8)
        samples.append(SimpleNamespace(name=f"s{i}", image=image, label=label, fov=None))
    return samples


def _epoch(dataset):
    return [dataset[i] for i in range(len(dataset))]


def _sample_ids(batches):
    return [int(round(v * 10)) for images, _ in batches for v in images[:, 0, 0, 0]]


def test_batch_shapes_dtypes_and_length():
    dataset = SegmentationDataset(_samples(5), batch_size=2, side=24, shuffle=False)
    assert len(dataset) == 3 and dataset.num_items == 5
    batches = _epoch(dataset)
    assert [b[0].shape for b in batches] == [(2, 24, 24, 3)] * 2 + [(1, 24, 24, 3)]
    assert [b[1].shape for b in batches] == [(2, 24, 24, 1)] * 2 + [(1, 24, 24, 1)]
    for images, labels in batches:
        assert images.dtype == np.float32 and labels.dtype == np.float32
        assert set(np.unique(labels).tolist()) <= {0.0, 1.0}
    dropped = SegmentationDataset(_samples(5), batch_size=2, side=24, drop_remainder=True)
    assert len(dropped) == 2
    with pytest.raises(IndexError):
        dataset[3]


def test_micro_batches_split_each_batch_into_consecutive_parts_with_the_same_pixels():
    """7 items, batches of 4 (4 + 3), each split in 2: micro-batches 2+2 and 2+1, epoch after
    epoch and with augmentation, together exactly the undivided batches."""
    flips = functools.partial(aug.paper_augment, flips="drive")
    options = dict(batch_size=4, side=24, seed=3, augment=flips)
    whole = SegmentationDataset(_samples(7), **options)
    split = SegmentationDataset(_samples(7), micro_batches=2, **options)
    assert (len(whole), len(split), split.batches_per_epoch) == (2, 4, 2)
    for epoch in (0, 1):
        whole.set_epoch(epoch)
        split.set_epoch(epoch)
        parts = _epoch(split)
        assert [len(images) for images, _ in parts] == [2, 2, 2, 1]
        for index, (images, labels) in enumerate(_epoch(whole)):
            first, second = parts[2 * index], parts[2 * index + 1]
            np.testing.assert_array_equal(images, np.concatenate([first[0], second[0]]))
            np.testing.assert_array_equal(labels, np.concatenate([first[1], second[1]]))
    # A last batch of 3 items cannot be split into 4 passes of equal weight; dropping it can.
    with pytest.raises(ValueError, match="Cannot split a batch of 3 item"):
        SegmentationDataset(_samples(7), batch_size=4, side=24, micro_batches=4)
    assert len(SegmentationDataset(_samples(7), batch_size=4, side=24, micro_batches=4,
                                   drop_remainder=True)) == 4  # fmt: skip
    with pytest.raises(ValueError, match="micro_batches must be >= 1"):
        SegmentationDataset(_samples(5), batch_size=4, side=24, micro_batches=0)


def test_a_last_batch_smaller_than_micro_batches_yields_its_items_in_turn():
    """The DRIVE case in miniature: 10 items at batch 8 leave a last batch of 2, which 4 passes
    see as a, b, a, b: one image a pass, each image half the step, as in the undivided batch."""
    options = dict(batch_size=8, side=24, seed=5)
    whole = SegmentationDataset(_samples(10), **options)
    split = SegmentationDataset(_samples(10), micro_batches=4, **options)
    assert (len(split), split.batches_per_epoch) == (8, 2)
    last_images, last_labels = whole[1]
    parts = _epoch(split)[4:]
    assert [len(images) for images, _ in parts] == [1, 1, 1, 1]
    for index, (images, labels) in enumerate(parts):
        np.testing.assert_array_equal(images[0], last_images[index % 2])
        np.testing.assert_array_equal(labels[0], last_labels[index % 2])


def _assert_top_left(images: np.ndarray, samples) -> None:
    """Each 20x18 sample image sits unchanged at the top-left of its padded batch slot."""
    for k, sample in enumerate(samples):
        np.testing.assert_array_equal(images[k, :20, :18], sample.image)


def test_top_left_padding_places_content_at_origin():
    samples = _samples(2)
    dataset = SegmentationDataset(samples, batch_size=2, side=24, shuffle=False)
    images, labels = dataset[0]
    _assert_top_left(images, samples)
    for k, sample in enumerate(samples):
        np.testing.assert_array_equal(labels[k, :20, :18, 0], sample.label)
        assert not images[k, 20:].any() and not images[k, :, 18:].any()
        assert not labels[k, 20:].any() and not labels[k, :, 18:].any()


def test_center_padding_splits_margins_evenly():
    sample = _samples(2, shape=(19, 14))[1]  # red channel = 0.1 everywhere in the content
    dataset = SegmentationDataset([sample], batch_size=1, side=24, anchor="center")
    images, labels = dataset[0]
    rows, cols = np.nonzero(images[0, ..., 0] > 0)
    top, left = rows.min(), cols.min()
    assert rows.max() - top == 18 and cols.max() - left == 13
    assert top in (2, 3) and left == 5  # margins (24 - 19) / 2 = 2.5 and (24 - 14) / 2 = 5
    np.testing.assert_array_equal(images[0, top : top + 19, left : left + 14], sample.image)
    np.testing.assert_array_equal(labels[0, top : top + 19, left : left + 14, 0], sample.label)
    assert labels[0].sum() == sample.label.sum()


def test_default_side_rounds_up_and_fits_both_orientations():
    tall, wide = _samples(1, shape=(13, 10)), _samples(1, shape=(10, 13))
    dataset = SegmentationDataset(tall + wide, batch_size=2, shuffle=False)
    assert dataset.side == 16  # max(13, 10) rounded up to a multiple of 16
    images, _ = dataset[0]
    assert images.shape == (2, 16, 16, 3)
    # Transposed variants made by the STARE recipe still fit the same side.
    transposing = SegmentationDataset(
        _samples(3, shape=(13, 10)), batch_size=3, augment=aug.transpose, shuffle=False
    )
    images, labels = transposing[0]
    np.testing.assert_array_equal(
        images[0, :10, :13], _samples(1, shape=(13, 10))[0].image.transpose(1, 0, 2)
    )
    with pytest.raises(ValueError, match="does not fit the model side"):
        SegmentationDataset(tall, side=12)


@pytest.mark.parametrize(
    ("shape", "side"), [((584, 565), 592), ((605, 700), 704), ((960, 999), 1008), ((33, 20), 48)]
)
def test_default_side_is_the_official_model_side(shape, side):
    # Only the constructor runs (no batch), so full-size zero arrays stay cheap.
    images = np.zeros((1, *shape, 3), np.float32)
    dataset = SegmentationDataset(images, np.zeros((1, *shape), np.uint8), batch_size=1)
    assert dataset.side == side


def test_seeded_epoch_order_is_deterministic_and_changes_per_epoch():
    first = SegmentationDataset(_samples(8), batch_size=3, side=24, seed=4)
    second = SegmentationDataset(_samples(8), batch_size=3, side=24, seed=4)
    other_seed = SegmentationDataset(_samples(8), batch_size=3, side=24, seed=5)
    order0 = _sample_ids(_epoch(first))
    assert sorted(order0) == list(range(8))
    assert order0 == _sample_ids(_epoch(second))
    assert order0 != _sample_ids(_epoch(other_seed))
    first.on_epoch_end()
    second.on_epoch_end()
    order1 = _sample_ids(_epoch(first))
    assert order1 != order0 and order1 == _sample_ids(_epoch(second))
    # set_epoch jumps to any epoch (resuming), and batches do not depend on the call order.
    second.set_epoch(0)
    reversed_batches = [second[i] for i in reversed(range(len(second)))][::-1]
    assert _sample_ids(reversed_batches) == order0
    unshuffled = SegmentationDataset(_samples(8), batch_size=3, side=24, shuffle=False)
    assert _sample_ids(_epoch(unshuffled)) == list(range(8))


def test_augmentation_only_when_requested_and_seeded():
    samples = _samples(4)
    plain = SegmentationDataset(samples, batch_size=4, side=24, shuffle=False)
    _assert_top_left(plain[0][0], samples)

    calls = []

    def flip_h(image, label, rng):
        calls.append(rng.integers(1_000_000))
        return aug.flip_with(image, label, "h")

    flipped = SegmentationDataset(samples, batch_size=4, side=24, shuffle=False, augment=flip_h)
    images, labels = flipped[0]
    assert len(calls) == 4
    for k, sample in enumerate(samples):
        np.testing.assert_array_equal(images[k, :20, :18], sample.image[:, ::-1])
        np.testing.assert_array_equal(labels[k, :20, :18, 0], sample.label[:, ::-1])
    # Per-image generators are seeded from (seed, epoch, index): same draws when rebuilt,
    # new draws in the next epoch.
    first_draws = list(calls)
    calls.clear()
    flipped[0]
    assert calls == first_draws
    calls.clear()
    flipped.on_epoch_end()
    flipped[0]
    assert calls != first_draws

    recipe = SegmentationDataset(samples, batch_size=4, side=24, augment=aug.paper_augment, seed=1)
    again = SegmentationDataset(samples, batch_size=4, side=24, augment=aug.paper_augment, seed=1)
    epochs = []
    for _ in range(3):
        a, b = recipe[0], again[0]
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert set(np.unique(a[1]).tolist()) <= {0.0, 1.0}
        assert 0.0 <= a[0].min() and a[0].max() <= 1.0
        epochs.append(a[0])
        recipe.on_epoch_end()
        again.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1]) or not np.array_equal(epochs[1], epochs[2])


def test_patches_are_windows_of_the_image():
    samples = _samples(3, shape=(30, 26))
    dataset = SegmentationDataset(samples, batch_size=4, patch_size=8, patches_per_image=4, seed=2)
    assert dataset.side == 8 and len(dataset) == 3 and dataset.num_items == 12
    counts = np.zeros(3, int)
    for images, labels in _epoch(dataset):
        assert images.shape[1:] == (8, 8, 3) and labels.shape[1:] == (8, 8, 1)
        for patch, patch_label in zip(images, labels, strict=True):
            index = int(round(patch[0, 0, 0] * 10))
            top = int(round(patch[0, 0, 1] * 30))
            left = int(round(patch[0, 0, 2] * 26))
            assert 0 <= top <= 30 - 8 and 0 <= left <= 26 - 8
            image = samples[index].image
            np.testing.assert_array_equal(patch, image[top : top + 8, left : left + 8])
            np.testing.assert_array_equal(
                patch_label[..., 0], samples[index].label[top : top + 8, left : left + 8]
            )
            counts[index] += 1
    assert counts.tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="patch_size"):
        SegmentationDataset(samples, patch_size=27)


def test_arrays_input_and_bad_input_errors():
    images = np.random.default_rng(0).random((3, 10, 12, 3)).astype(np.float32)
    labels = (images[..., 1] > 0.5).astype(np.uint8)
    dataset = SegmentationDataset(images, labels, batch_size=3, side=16, shuffle=False)
    batch, batch_labels = dataset[0]
    np.testing.assert_array_equal(batch[:, :10, :12], images)
    np.testing.assert_array_equal(batch_labels[:, :10, :12, 0], labels)
    with pytest.raises(ValueError, match="float in"):
        SegmentationDataset((images * 255).astype(np.uint8), labels)
    with pytest.raises(ValueError, match="binary"):
        SegmentationDataset(images, labels * 255)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        SegmentationDataset(images, labels[:2])
    with pytest.raises(ValueError, match="anchor"):
        SegmentationDataset(images, labels, anchor="bottom")
    with pytest.raises(ValueError, match=".image and .label"):
        SegmentationDataset([object()])


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None, reason="TensorFlow not installed"
)
def test_tf_dataset_matches_the_dataset_over_epochs():
    dataset = SegmentationDataset(_samples(4), batch_size=3, side=24, seed=3)
    reference = SegmentationDataset(_samples(4), batch_size=3, side=24, seed=3)
    expected = _epoch(reference)
    reference.on_epoch_end()
    expected += _epoch(reference)
    got = list(tf_dataset(dataset, epochs=2).as_numpy_iterator())
    assert len(got) == len(expected) == 4
    for (a, la), (b, lb) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert dataset.epoch == 2


JAX_FIT = textwrap.dedent(
    """
    import sys
    sys.modules["tensorflow"] = None  # as on the JAX-only GPU machine: importing TF must fail
    import numpy as np
    import keras
    from saunetv2_lib.data.augment import paper_augment
    from saunetv2_lib.data.pipeline import SegmentationDataset
    from saunetv2_lib.data.synthetic import synthetic_fundus

    assert keras.backend.backend() == "jax", keras.backend.backend()
    samples = [synthetic_fundus((30, 27), seed) for seed in range(4)]


    def run():
        keras.utils.set_random_seed(0)
        dataset = SegmentationDataset(
            [s[0] for s in samples], [s[1] for s in samples], batch_size=2, augment=paper_augment
        )
        assert dataset.side == 32
        inputs = keras.Input((32, 32, 3))
        hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
        outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(hidden)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        history = model.fit(dataset, epochs=2, verbose=0, shuffle=False)
        return dataset, history.history["loss"]


    dataset, losses = run()
    assert len(losses) == 2 and all(np.isfinite(losses)), losses
    # Keras can call on_epoch_end once more, after building the model from one batch.
    assert dataset.epoch in (2, 3), dataset.epoch
    _, again = run()
    assert again == losses, (again, losses)  # seeded pipeline + seeded model: reproducible
    print("JAX_FIT_OK", losses)
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX not installed")
def test_fit_on_jax_backend_without_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", JAX_FIT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "JAX_FIT_OK" in result.stdout


def test_tiles_cover_the_image_exactly():
    rng = np.random.default_rng(0)
    batch = rng.random((2, 20, 13, 3)).astype("float32")
    cut = tiles(batch, 8)  # padded to 24 x 16: 3 x 2 tiles per image
    assert cut.shape == (12, 8, 8, 3)
    # Independent reconstruction: tile k of image n is at row (k // 2), column (k % 2).
    for n in range(2):
        canvas = np.zeros((24, 16, 3), "float32")
        for k in range(6):
            r, c = divmod(k, 2)
            canvas[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = cut[n * 6 + k]
        np.testing.assert_array_equal(canvas[:20, :13], batch[n])
        assert not canvas[20:].any() and not canvas[:, 13:].any()
