"""The callbacks that make a run resumable, and the atomic writes they rely on.

After every epoch :class:`ResumeState` writes the model with its optimizer state and the internal
state of the learning-rate, early-stopping and checkpoint callbacks to new files, then atomically
replaces ``resume/state.json`` to point at them (Keras' ``BackupAndRestore`` would restore the
model, optimizer and epoch but reset the other callbacks). :class:`BestCheckpoint`,
:class:`StopBeforeDeadline` (a campaign's pause) and :class:`StepCheckpoints` (milestones) sit
beside it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from saunetv2_lib.training.config import DEADLINE_MARGIN, STATE_FILE


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_save_model(model: keras.Model, path: Path) -> None:
    # Keras insists on the .keras suffix, so the temporary name ends in it too.
    tmp = path.with_name(path.stem + ".partial.keras")
    model.save(tmp, overwrite=True)
    os.replace(tmp, path)


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_time_s`` (training + validation wall seconds) to each epoch's logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_time_s"] = time.perf_counter() - self._start


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the full model (``.keras``, loads with the default ``safe_mode``) when ``monitor`` improves.

    Like ``ModelCheckpoint(save_best_only=True)`` but written atomically (temporary file, then
    ``os.replace``), so a kill during the save never leaves a truncated ``best.keras``.
    """

    def __init__(self, filepath: Path | str, monitor: str = "val_accuracy", mode: str = "max"):
        super().__init__()
        self.filepath = Path(filepath)
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.best_epoch: int | None = None

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)) or not self.improved(float(value)):
            return
        self.best, self.best_epoch = float(value), epoch
        atomic_save_model(self.model, self.filepath)


class StopBeforeDeadline(keras.callbacks.Callback):
    """Ends ``fit`` at an epoch boundary when another epoch would not finish before ``deadline``.

    The estimate is the last epoch's duration times ``margin``. A run paused this way is not
    finished: :class:`ResumeState` records it as resumable (``paused``), unlike an early stop.
    After the last epoch of ``fit`` there is nothing to pause: the run is done.

    Args:
        deadline: POSIX time (``time.time()``) by which training must have stopped.
        margin: safety factor on the last epoch's duration.
    """

    def __init__(self, deadline: float, margin: float = DEADLINE_MARGIN):
        super().__init__()
        self.deadline, self.margin = float(deadline), float(margin)
        self.paused = False

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.params.get("epochs", math.inf):
            return
        duration = time.time() - self._start
        if time.time() + self.margin * duration > self.deadline:
            self.paused = True
            self.model.stop_training = True


class StepCheckpoints(keras.callbacks.Callback):
    """Keeps the model at chosen optimizer steps, to score how accuracy grows along a run.

    At the end of the first epoch whose optimizer iteration count reaches a step in ``steps``
    (epochs end on batch boundaries, so the kept step is the first epoch end at or after it),
    writes into ``directory``: ``step_SSSSSS.weights.h5`` (the current weights, float32),
    ``step_SSSSSS_best.weights.h5`` (the best checkpoint so far, the paper's rule: what a run
    stopped here would ship) and ``step_SSSSSS.json`` (``milestone``, ``steps``, ``epoch``
    (1-based), ``best_epoch``, ``wall_time_s`` of the run so far). Only the steps this session
    crosses are kept (those before its first step belong to earlier sessions). Place it after
    :class:`BestCheckpoint` and before :class:`ResumeState`, whose ``on_train_begin`` restores
    nothing this callback reads (the optimizer's iteration count is loaded before ``fit``).
    """

    def __init__(
        self,
        directory: Path,
        steps: Sequence[int],
        checkpoint: BestCheckpoint,
        wall_time_before: float = 0.0,
    ):
        super().__init__()
        self.directory = Path(directory)
        self.steps = sorted({int(s) for s in steps})
        self.checkpoint = checkpoint
        self.wall_time_before = wall_time_before
        self.session_start = time.perf_counter()

    @staticmethod
    def stem(step: int) -> str:
        return f"step_{int(step):06d}"

    def on_train_begin(self, logs=None):
        # Steps passed in earlier sessions were kept then (on another machine, perhaps); only
        # the ones this session crosses are due, so a resumed run never keeps later weights
        # under an earlier step.
        self.first_iteration = int(self.model.optimizer.iterations.numpy())

    def on_epoch_end(self, epoch, logs=None):
        iterations = int(self.model.optimizer.iterations.numpy())
        due = [
            s
            for s in self.steps
            if self.first_iteration < s <= iterations
            and not (self.directory / f"{self.stem(s)}.json").exists()
        ]
        if not due:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = self.stem(due[-1])  # one checkpoint stands for every step it has passed
        self.model.save_weights(self.directory / f"{stem}.weights.h5")
        if self.checkpoint.filepath.is_file():
            best = keras.saving.load_model(self.checkpoint.filepath, compile=False)
            best.save_weights(self.directory / f"{stem}_best.weights.h5")
        record = {
            "steps": iterations,
            "epoch": epoch + 1,
            "best_epoch": None
            if self.checkpoint.best_epoch is None
            else self.checkpoint.best_epoch + 1,
            "wall_time_s": self.wall_time_before + time.perf_counter() - self.session_start,
        }
        for step in due:
            atomic_write_text(
                self.directory / f"{self.stem(step)}.json",
                json.dumps({"milestone": step, "weights": stem, **record}, indent=2),
            )


class ResumeState(keras.callbacks.Callback):
    """Saves, after every epoch, everything needed to continue the run; restores it on resume.

    Must come *last* in the callback list: at epoch end the other callbacks have updated their
    state, and at train begin it runs after their resets (``ReduceLROnPlateau`` and
    ``EarlyStopping`` clear ``wait``/``best`` in ``on_train_begin``).

    Files under ``directory``: ``model_eNNNN.keras`` (weights + optimizer state incl. iteration
    count and learning rate), ``early_stopping_best_eNNNN.npz`` (EarlyStopping's best weights) and
    ``state.json`` (epoch counter and the callbacks' internal state), which is replaced atomically
    last and so always points at complete files. ``last.keras`` is refreshed afterwards.
    """

    def __init__(
        self,
        directory: Path,
        last_path: Path,
        plateau: keras.callbacks.ReduceLROnPlateau,
        early_stopping: keras.callbacks.EarlyStopping,
        checkpoint: BestCheckpoint,
        restore: dict[str, Any] | None = None,
        wall_time_before: float = 0.0,
        pause: StopBeforeDeadline | None = None,
    ):
        super().__init__()
        self.pause = pause
        self.directory, self.last_path = Path(directory), Path(last_path)
        self.plateau, self.early_stopping, self.checkpoint = plateau, early_stopping, checkpoint
        self.restore = restore
        self.wall_time_before = wall_time_before
        self.session_start = time.perf_counter()
        self.terminated_on_nan = False
        self._es_file: str | None = (restore or {}).get("early_stopping", {}).get("weights_file")

    # -- restore ---------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if not self.restore:
            return
        plateau, es, ckpt = (
            self.restore["plateau"],
            self.restore["early_stopping"],
            self.restore["checkpoint"],
        )
        self.plateau.wait = plateau["wait"]
        self.plateau.best = plateau["best"]
        self.plateau.cooldown_counter = plateau["cooldown_counter"]
        self.model.optimizer.learning_rate = plateau["learning_rate"]
        self.early_stopping.wait = es["wait"]
        self.early_stopping.best = es["best"]
        self.early_stopping.best_epoch = es["best_epoch"]
        if es.get("weights_file"):
            with np.load(self.directory / es["weights_file"]) as stored:
                self.early_stopping.best_weights = [
                    stored[f"w{i}"] for i in range(len(stored.files))
                ]
        self.checkpoint.best = ckpt["best"]
        self.checkpoint.best_epoch = ckpt["best_epoch"]

    # -- save ------------------------------------------------------------------------------
    def state(self, completed_epochs: int) -> dict[str, Any]:
        es = self.early_stopping
        # A pause at the deadline stops fit too, but the run goes on next time; an early stop
        # on the same epoch still ends it.
        paused = bool(self.pause and self.pause.paused) and not es.stopped_epoch
        return {
            "completed_epochs": completed_epochs,
            "optimizer_iterations": int(self.model.optimizer.iterations.numpy()),
            "finished": bool(self.model.stop_training) and not paused,
            "paused": paused,
            "wall_time_s": self.wall_time_before + time.perf_counter() - self.session_start,
            "plateau": {
                "wait": int(self.plateau.wait),
                "best": _float_or_none(self.plateau.best),
                "cooldown_counter": int(self.plateau.cooldown_counter),
                "learning_rate": float(np.asarray(self.model.optimizer.learning_rate)),
            },
            "early_stopping": {
                "wait": int(es.wait),
                "best": _float_or_none(es.best),
                "best_epoch": int(es.best_epoch),
                "stopped_epoch": int(es.stopped_epoch),
                "weights_file": self._es_file,
            },
            "checkpoint": {
                "monitor": self.checkpoint.monitor,
                "best": self.checkpoint.best,
                "best_epoch": self.checkpoint.best_epoch,
            },
        }

    def on_epoch_end(self, epoch, logs=None):
        values = [v for v in (logs or {}).values() if isinstance(v, (int, float))]
        if not all(math.isfinite(v) for v in values):
            # TerminateOnNaN stopped the run; keep the last good state on disk.
            self.terminated_on_nan = True
            return
        completed = epoch + 1
        model_file = f"model_e{completed:04d}.keras"
        atomic_save_model(self.model, self.directory / model_file)
        es = self.early_stopping
        if es.best_weights is not None and es.best_epoch == epoch:
            self._es_file = f"early_stopping_best_e{completed:04d}.npz"
            tmp = self.directory / (self._es_file + ".partial.npz")
            np.savez(tmp, **{f"w{i}": w for i, w in enumerate(es.best_weights)})
            os.replace(tmp, self.directory / self._es_file)
        state = self.state(completed)
        state["model_file"] = model_file
        atomic_write_text(self.directory / STATE_FILE, json.dumps(state, indent=2))
        # The state now points at the new files; older ones can go.
        keep = {STATE_FILE, model_file, self._es_file}
        for path in self.directory.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)
        tmp_last = self.last_path.with_name("last.partial.keras")
        with contextlib.suppress(FileNotFoundError):
            tmp_last.unlink()
        os.link(self.directory / model_file, tmp_last)
        os.replace(tmp_last, self.last_path)


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
