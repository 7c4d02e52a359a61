import zipfile

import keras
import numpy as np
import pytest

from saunetv2_lib.experiments import packing
from saunetv2_lib.losses import BceMccLoss
from saunetv2_lib.models import get_model


@pytest.fixture(scope="module")
def resume_model(tmp_path_factory):
    """A compiled SA-UNetv2 after one Adam step with 2 accumulation passes, saved with its
    optimizer state, as a paused run's ``resume/model_eNNNN.keras`` is."""
    model = get_model("sa_unet_v2", (32, 32, 3), seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(gradient_accumulation_steps=2),
        loss=BceMccLoss(),
    )
    rng = np.random.default_rng(0)
    x = rng.random((4, 32, 32, 3)).astype("float32")
    y = (rng.random((4, 32, 32, 1)) > 0.9).astype("float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)  # 2 passes = 1 step
    path = tmp_path_factory.mktemp("resume") / "model_e0001.keras"
    model.save(path)
    return model, path


def test_a_compact_keras_file_holds_every_array_bit_for_bit_and_loads_as_it_is(
    resume_model, tmp_path
):
    model, original = resume_model
    copy = tmp_path / original.name
    copy.write_bytes(original.read_bytes())
    want = packing.keras_file_arrays(original)
    # weights and optimizer state: iterations, 2 moments and 1 accumulator per variable
    assert len(want) == len(model.weights) + len(model.optimizer.variables)

    before, after = packing.compact_weights_file(copy)
    assert before == original.stat().st_size
    assert after == copy.stat().st_size < before

    got = packing.keras_file_arrays(copy)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])
    with zipfile.ZipFile(copy) as archive:  # still a stored zip with Keras' three members
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]

    loaded = keras.saving.load_model(copy, compile=True)  # default safe_mode
    for got_w, want_w in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got_w, want_w)
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    for got_v, want_v in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(got_v), np.asarray(want_v))


def test_a_compact_npz_holds_the_same_arrays(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"w0": rng.normal(size=(3, 3, 8)).astype("float32"), "w1": np.zeros(1000, "float32")}
    path = tmp_path / "early_stopping_best_e0003.npz"
    np.savez(path, **arrays)
    before, after = packing.compact_weights_file(path)
    assert after < before
    with np.load(path) as stored:
        assert sorted(stored.files) == ["w0", "w1"]
        for name, want in arrays.items():
            np.testing.assert_array_equal(stored[name], want)


def test_other_files_are_refused_and_a_copy_that_differs_is_never_kept(
    resume_model, tmp_path, monkeypatch
):
    other = tmp_path / "history.csv"
    other.write_text("epoch\n0\n")
    with pytest.raises(ValueError, match="not a weights file"):
        packing.compact_weights_file(other)

    _, original = resume_model
    copy = tmp_path / original.name
    copy.write_bytes(original.read_bytes())
    real = packing._copy_compact

    def lossy(source, target):  # drops one array: the check must notice
        real(source, target)
        for name in list(target):
            if name.startswith("optimizer"):
                del target[name]

    monkeypatch.setattr(packing, "_copy_compact", lossy)
    with pytest.raises(RuntimeError, match="same arrays"):
        packing.compact_weights_file(copy)
    assert copy.read_bytes() == original.read_bytes()
    assert not copy.with_name(copy.name + ".compact").exists()
