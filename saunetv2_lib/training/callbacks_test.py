"""The resume callback (internals restored, non-finite epochs skipped) and the deadline pause."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from saunetv2_lib import training


def _tiny_dense_model() -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def test_resume_state_restores_callback_internals(tmp_path):
    model = _tiny_dense_model()
    model.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=1, verbose=0)
    plateau = keras.callbacks.ReduceLROnPlateau(patience=5)
    stopper = keras.callbacks.EarlyStopping(patience=9, restore_best_weights=True)
    ckpt = training.BestCheckpoint(tmp_path / "best.keras", "val_accuracy", "max")
    saver = training.ResumeState(tmp_path / "r", tmp_path / "last.keras", plateau, stopper, ckpt)
    (tmp_path / "r").mkdir()
    for callback in (plateau, stopper, ckpt, saver):
        callback.set_model(model)
    plateau.wait, plateau.best, plateau.cooldown_counter = 3, 0.25, 0
    model.optimizer.learning_rate = 2.5e-4
    stopper.wait, stopper.best, stopper.best_epoch = 4, 0.25, 3
    stopper.best_weights = [w + 1.0 for w in model.get_weights()]
    ckpt.best, ckpt.best_epoch = 0.9, 2
    saver.on_epoch_end(3, {"loss": 0.3, "val_loss": 0.3})
    state = json.loads((tmp_path / "r" / "state.json").read_text())
    assert state["completed_epochs"] == 4 and (tmp_path / "last.keras").exists()

    fresh = _tiny_dense_model()
    plateau2 = keras.callbacks.ReduceLROnPlateau(patience=5)
    stopper2 = keras.callbacks.EarlyStopping(patience=9, restore_best_weights=True)
    ckpt2 = training.BestCheckpoint(tmp_path / "best.keras", "val_accuracy", "max")
    restorer = training.ResumeState(
        tmp_path / "r", tmp_path / "last.keras", plateau2, stopper2, ckpt2, restore=state
    )
    for callback in (plateau2, stopper2, ckpt2, restorer):
        callback.set_model(fresh)
        callback.on_train_begin()  # the Keras callbacks reset here; the restorer runs last
    assert (plateau2.wait, plateau2.best) == (3, 0.25)
    assert float(fresh.optimizer.learning_rate) == pytest.approx(2.5e-4)
    assert (stopper2.wait, stopper2.best, stopper2.best_epoch) == (4, 0.25, 3)
    for restored, expected in zip(stopper2.best_weights, stopper.best_weights, strict=True):
        np.testing.assert_array_equal(restored, expected)
    assert (ckpt2.best, ckpt2.best_epoch) == (0.9, 2)


def test_resume_state_skips_non_finite_epochs(tmp_path):
    model = _tiny_dense_model()
    plateau = keras.callbacks.ReduceLROnPlateau()
    stopper = keras.callbacks.EarlyStopping()
    ckpt = training.BestCheckpoint(tmp_path / "best.keras")
    saver = training.ResumeState(tmp_path, tmp_path / "last.keras", plateau, stopper, ckpt)
    saver.set_model(model)
    saver.on_epoch_end(0, {"loss": float("nan")})
    assert saver.terminated_on_nan and not (tmp_path / "state.json").exists()


@pytest.mark.parametrize(
    ("initial_epoch", "epochs", "ran", "paused"),
    [(0, 3, 1, True), (2, 3, 1, False), (0, 1, 1, False)],
)
def test_a_past_deadline_pauses_fit_after_one_epoch_unless_it_was_the_last(
    initial_epoch, epochs, ran, paused
):
    model = _tiny_dense_model()
    pause = training.StopBeforeDeadline(deadline=0.0)  # 1970: every next epoch is too late
    history = model.fit(
        np.ones((4, 3)),
        np.ones((4, 1)),
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=[pause],
        verbose=0,
    )
    assert len(history.epoch) == ran
    assert pause.paused is paused
