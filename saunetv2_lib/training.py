"""Training: configurations as data, a resumable ``model.fit`` loop, and data-parallel scale-out.

A run is described by a :class:`TrainConfig` (a dataclass; named profiles such as ``drive/full``
live in ``configs/profiles.json``) and executed by :func:`train`, which writes into ``out_dir``::

    config.json     the configuration actually used
    history.csv     one row per completed epoch (CSVLogger; appended on resume)
    best.keras      full model at the best checkpoint-monitor value (val_accuracy for the paper)
    last.keras      full model + optimizer state after the last completed epoch
    summary.json    epochs run, wall time, best monitor value, split, hardware, backend, versions
    resume/         state.json + the model file it points to (what ``resume=True`` continues from)

Runs survive SIGKILL at any moment: after every epoch a callback writes the model with its
optimizer state and the internal state of the learning-rate, early-stopping and checkpoint
callbacks to new files, then atomically replaces ``resume/state.json`` to point at them (Keras'
``BackupAndRestore`` would restore the model, optimizer and epoch but reset the other callbacks).

Spec references are to ``../shared/design/saunetv2_spec.md``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import keras
import numpy as np

PROFILES_RESOURCE = "profiles.json"
STATE_FILE = "state.json"
MONITORS = ("loss", "accuracy", "val_loss", "val_accuracy")
PRECISIONS = ("float32", "mixed_bfloat16")
GROUP_NORM_STATISTICS = ("one_pass", "two_stage")
# How the step is computed, not what it computes: these may change when a run resumes (e.g. a
# faster default adopted mid-campaign); every other field must match the saved configuration.
RESUMABLE_CHANGES = ("epochs", "precision", "group_norm_statistics")


@dataclass
class TrainConfig:
    """Everything that defines a training run; serialisable to and from JSON.

    Attributes:
        profile: name of the profile this configuration came from (informational).
        notes: free text explaining the choices (profiles document their deviations here).
        model: registry name for :func:`saunetv2_lib.models.get_model`.
        model_kwargs: extra keyword arguments for the model factory (e.g. ``dropblock_rate``).
        dataset: ``"drive"``, ``"stare"`` or ``"chase"`` (see ``saunetv2_lib.data.DATASETS``).
        data_root: dataset root; ``None`` uses ``saunetv2_lib.data.data_root()``
            (``$SAUNETV2_DATA`` or a cached synthetic DRIVE), resolved when the run starts and
            saved in ``config.json`` so that a resumed run reads the same data.
        labels: which manual annotation to train on (``"reference"`` or ``"second"``).
        side: square model input side in pixels; images are zero-padded to it.
        anchor: where the image sits in the padded square, ``"top_left"`` or ``"center"``.
        batch_size: global mini-batch size (split across replicas under a strategy).
        epochs: maximum number of epochs.
        lr: Adam learning rate; ``adam_epsilon`` its epsilon (Keras default 1e-7).
        bce_weight, mcc_weight: loss = ``bce_weight * BCE + mcc_weight * (1 - soft MCC)``.
        plateau_*: ``ReduceLROnPlateau(monitor, factor, patience, min_lr)``.
        early_stop_*: ``EarlyStopping(monitor, patience)``; ``restore_best_weights`` as in Keras.
        checkpoint_monitor, checkpoint_mode: which value ``best.keras`` maximises or minimises.
        val_count: number of training SOURCE images held out for validation (never augmented).
        augment: apply ``saunetv2_lib.data.augment.paper_augment`` on the fly to training images.
        augment_flips: the recipe's flip set, ``"drive"`` (h, v, hv) or ``"stare"`` (transpose
            instead of hv, as in the official STARE set).
        epoch_repeats: copies of each training source per epoch, each augmented independently.
        patch_size: train on random square patches of this side (pixels) of the padded image and
            validate on tiles of that side; ``None`` trains and validates on whole padded images.
        max_train_images: use only the first N training sources (for tests and smoke runs).
        seed: seed for weights, dropout, splits, shuffling and augmentation.
        precision: Keras dtype policy of the model while training, ``"float32"`` or
            ``"mixed_bfloat16"`` (bfloat16 convolutions; variables, group-norm statistics, the
            sigmoid and the loss stay float32). Checkpoints are float32 weights either way.
        group_norm_statistics: ``"two_stage"`` (default; :class:`saunetv2_lib.layers.
            TwoStageGroupNormalization`: the same statistics summed over rows first, 1.37x
            faster training on 2 CPU cores) or ``"one_pass"`` (Keras' ``GroupNormalization``).
            Files saved either way load the same.
    """

    profile: str = "custom"
    notes: str = ""
    model: str = "sa_unet_v2"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "drive"
    data_root: str | None = None
    labels: str = "reference"
    side: int = 592
    anchor: str = "top_left"
    batch_size: int = 8
    epochs: int = 150
    lr: float = 1e-3
    adam_epsilon: float = 1e-7
    bce_weight: float = 0.5
    mcc_weight: float = 0.5
    plateau_monitor: str = "val_loss"
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    plateau_min_lr: float = 1e-6
    early_stop_monitor: str = "val_loss"
    early_stop_patience: int = 20
    restore_best_weights: bool = True
    checkpoint_monitor: str = "val_accuracy"
    checkpoint_mode: str = "max"
    val_count: int = 2
    augment: bool = True
    augment_flips: str = "drive"
    epoch_repeats: int = 1
    patch_size: int | None = None
    max_train_images: int | None = None
    seed: int = 42
    precision: str = "float32"
    # Two-stage sums: 1.37x faster training on 2 CPU cores (benchmarks/training_speed.md).
    group_norm_statistics: str = "two_stage"

    def __post_init__(self) -> None:
        problems = []
        for name in ("side", "batch_size", "epochs", "val_count", "epoch_repeats"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.side % 8:
            problems.append(f"side must be a multiple of 8 (got {self.side})")
        if self.patch_size is not None and (self.patch_size < 8 or self.patch_size % 8):
            problems.append(f"patch_size must be a multiple of 8 (got {self.patch_size})")
        if self.max_train_images is not None and self.max_train_images < self.val_count + 1:
            problems.append(
                f"max_train_images ({self.max_train_images}) must leave at least one training "
                f"image after holding out val_count={self.val_count}"
            )
        if self.anchor not in ("top_left", "center"):
            problems.append(f"anchor must be 'top_left' or 'center' (got {self.anchor!r})")
        if self.augment_flips not in ("drive", "stare"):
            problems.append(
                f"augment_flips must be 'drive' or 'stare' (got {self.augment_flips!r})"
            )
        if self.checkpoint_mode not in ("min", "max"):
            problems.append(
                f"checkpoint_mode must be 'min' or 'max' (got {self.checkpoint_mode!r})"
            )
        for name in ("plateau_monitor", "early_stop_monitor", "checkpoint_monitor"):
            if getattr(self, name) not in MONITORS:
                problems.append(f"{name} must be one of {MONITORS} (got {getattr(self, name)!r})")
        if not (self.lr > 0 and 0 < self.plateau_factor < 1 and self.plateau_min_lr >= 0):
            problems.append("need lr > 0, 0 < plateau_factor < 1 and plateau_min_lr >= 0")
        if self.bce_weight < 0 or self.mcc_weight < 0 or self.bce_weight + self.mcc_weight == 0:
            problems.append("loss weights must be >= 0 and not both 0")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS} (got {self.precision!r})")
        if self.group_norm_statistics not in GROUP_NORM_STATISTICS:
            problems.append(
                f"group_norm_statistics must be one of {GROUP_NORM_STATISTICS} "
                f"(got {self.group_norm_statistics!r})"
            )
        if problems:
            raise ValueError("Invalid TrainConfig: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a configuration from a dictionary, rejecting unknown keys with their names."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown TrainConfig field(s) {unknown}; known fields: {sorted(known)}."
            )
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again); unknown names raise ``ValueError``."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def _read_profiles() -> dict[str, dict[str, Any]]:
    text = (resources.files("saunetv2_lib") / "configs" / PROFILES_RESOURCE).read_text("utf-8")
    return json.loads(text)


def list_profiles() -> list[str]:
    """Names of the packaged training profiles, e.g. ``["drive/full", ..., "chase/quick"]``."""
    return list(_read_profiles())


def load_profile(name: str, **overrides: Any) -> TrainConfig:
    """Load the named profile from ``configs/profiles.json`` (resolving ``extends``) plus overrides.

    Example: ``load_profile("drive/quick", epochs=3)``.
    """
    profiles = _read_profiles()
    if name not in profiles:
        raise ValueError(f"Unknown training profile {name!r}; available: {', '.join(profiles)}.")
    chain, current = [], name
    while current is not None:
        if current in chain:
            raise ValueError(f"Profile {name!r} has a cycle in 'extends': {chain + [current]}.")
        chain.append(current)
        current = profiles[current].get("extends")
        if current is not None and current not in profiles:
            raise ValueError(f"Profile {chain[-1]!r} extends unknown profile {current!r}.")
    values: dict[str, Any] = {}
    for entry in reversed(chain):
        values.update({k: v for k, v in profiles[entry].items() if k != "extends"})
    values["profile"] = name
    values.update(overrides)
    return TrainConfig.from_dict(values)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        out_dir: the run folder.
        epochs_run: completed epochs in total (across resumed sessions).
        best_value: best value of ``monitor`` seen (the one ``best.keras`` holds); ``None`` if no
            epoch completed.
        best_epoch: 1-based epoch of ``best_value``.
        monitor: the checkpoint monitor, e.g. ``"val_accuracy"``.
        stopped_early: whether EarlyStopping ended the run before ``config.epochs``.
        wall_time_s: wall-clock seconds of all sessions of the run.
        history: ``history.csv`` as a list of row dictionaries (floats, ``epoch`` 0-based int).
        model: the trained model in memory (best val-loss weights if ``restore_best_weights``).
    """

    out_dir: Path
    epochs_run: int
    best_value: float | None
    best_epoch: int | None
    monitor: str
    stopped_early: bool
    wall_time_s: float
    history: list[dict[str, float]]
    model: keras.Model | None = field(default=None, repr=False)

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.keras"

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.keras"


# --------------------------------------------------------------------------------------------
# Atomic files and small callbacks


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_save_model(model: keras.Model, path: Path) -> None:
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
        _atomic_save_model(self.model, self.filepath)


class StopBeforeDeadline(keras.callbacks.Callback):
    """Ends ``fit`` at an epoch boundary when another epoch would not finish before ``deadline``.

    The estimate is the last epoch's duration times ``margin``. A run paused this way is not
    finished: :class:`ResumeState` records it as resumable (``paused``), unlike an early stop.

    Args:
        deadline: POSIX time (``time.time()``) by which training must have stopped.
        margin: safety factor on the last epoch's duration.
    """

    def __init__(self, deadline: float, margin: float = 1.2):
        super().__init__()
        self.deadline, self.margin = float(deadline), float(margin)
        self.paused = False

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
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
            _atomic_write_text(
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
        _atomic_save_model(self.model, self.directory / model_file)
        es = self.early_stopping
        if es.best_weights is not None and es.best_epoch == epoch:
            self._es_file = f"early_stopping_best_e{completed:04d}.npz"
            tmp = self.directory / (self._es_file + ".partial.npz")
            np.savez(tmp, **{f"w{i}": w for i, w in enumerate(es.best_weights)})
            os.replace(tmp, self.directory / self._es_file)
        state = self.state(completed)
        state["model_file"] = model_file
        _atomic_write_text(self.directory / STATE_FILE, json.dumps(state, indent=2))
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


# --------------------------------------------------------------------------------------------
# Data


def _select_split(config: TrainConfig) -> tuple[list[Any], list[Any]]:
    """Load the training sources and hold ``val_count`` of them out (seeded, by source image)."""
    from saunetv2_lib.data.datasets import data_root, load_split
    from saunetv2_lib.data.splits import train_val_split

    root = Path(config.data_root) if config.data_root else data_root()
    samples = load_split(config.dataset, "train", root=root, labels=config.labels)
    if config.max_train_images is not None:
        samples = samples[: config.max_train_images]
    if len(samples) <= config.val_count:
        raise ValueError(
            f"{config.dataset}: {len(samples)} training images under {root} cannot spare "
            f"val_count={config.val_count} for validation."
        )
    train_names, val_names = train_val_split(
        [s.name for s in samples], n_val=config.val_count, seed=config.seed
    )
    by_name = {s.name: s for s in samples}
    return [by_name[n] for n in train_names], [by_name[n] for n in val_names]


def _validation_arrays(samples: list[Any], config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Validation images padded to ``side`` as ``(N, side, side, 3)`` images, ``(N, side, side, 1)`` labels.

    With ``patch_size`` the padded images are padded further (bottom/right) to a multiple of the
    patch and cut into non-overlapping tiles, so a model built for patches can score them.
    """
    from saunetv2_lib.data.padding import pad_to_side

    images, labels = [], []
    for sample in samples:
        image, _ = pad_to_side(sample.image, config.side, anchor=config.anchor)
        label, _ = pad_to_side(sample.label, config.side, anchor=config.anchor)
        images.append(image.astype("float32"))
        labels.append(label.astype("float32")[..., None])
    x, y = np.stack(images), np.stack(labels)
    if config.patch_size is None:
        return x, y
    return _tiles(x, config.patch_size), _tiles(y, config.patch_size)


def _tiles(batch: np.ndarray, tile: int) -> np.ndarray:
    """Cut ``(N, H, W, C)`` into ``(N * rows * cols, tile, tile, C)`` after zero padding to a multiple."""
    n, height, width, channels = batch.shape
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)
    padded = np.zeros((n, rows * tile, cols * tile, channels), batch.dtype)
    padded[:, :height, :width] = batch
    tiles = padded.reshape(n, rows, tile, cols, tile, channels).transpose(0, 1, 3, 2, 4, 5)
    return tiles.reshape(n * rows * cols, tile, tile, channels)


def _training_dataset(samples: list[Any], config: TrainConfig, epoch: int):
    """The shuffled, augmented training batches; ``epoch`` selects the random stream (resume)."""
    from saunetv2_lib.data.augment import paper_augment
    from saunetv2_lib.data.pipeline import SegmentationDataset

    augment = functools.partial(paper_augment, flips=config.augment_flips)
    dataset = SegmentationDataset(
        # Repeated entries are distinct items: each copy gets its own augmentation draw.
        list(samples) * config.epoch_repeats,
        batch_size=config.batch_size,
        side=config.side,
        anchor=config.anchor,
        augment=augment if config.augment else None,
        patch_size=config.patch_size,
        shuffle=True,
        seed=config.seed,
    )
    dataset.set_epoch(epoch)
    return dataset


# --------------------------------------------------------------------------------------------
# Model, strategy


def build_model(config: TrainConfig) -> keras.Model:
    """Build and compile the configured model (call inside ``strategy.scope()`` when distributing).

    Input side: ``patch_size`` when training on patches, else ``side``. The model is built under
    ``config.precision``'s dtype policy (the global policy is restored afterwards) and, with
    ``group_norm_statistics="two_stage"``, its group norms sum their statistics in two stages.
    Compiled with ``Adam(lr, epsilon=adam_epsilon)``, :class:`saunetv2_lib.losses.BceMccLoss`
    and binary accuracy at 0.5 named ``accuracy`` (so the logs have ``val_accuracy``, as in the
    paper).
    """
    from saunetv2_lib.layers import use_two_stage_group_norm
    from saunetv2_lib.losses import BceMccLoss
    from saunetv2_lib.models import get_model

    input_side = config.patch_size or config.side
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.precision)
    try:
        model = get_model(config.model, (input_side, input_side, 3), **config.model_kwargs)
    finally:
        keras.config.set_dtype_policy(previous)
    if config.group_norm_statistics == "two_stage":
        use_two_stage_group_norm(model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.lr, epsilon=config.adam_epsilon),
        loss=BceMccLoss(bce_weight=config.bce_weight, mcc_weight=config.mcc_weight),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.5)],
    )
    return model


def as_float32(model: keras.Model) -> keras.Model:
    """``model`` itself when its layers compute in float32, else a float32 copy with its weights.

    A model trained under ``mixed_bfloat16`` saves that policy in every layer's config, so
    loading its ``.keras`` file would predict in bfloat16; shipped weights and evaluations use
    this float32 copy (the variables are float32 under the mixed policy already).
    """

    def to_float32(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("class_name") == "DTypePolicy":
                return {**value, "config": {**value.get("config", {}), "name": "float32"}}
            return {key: to_float32(item) for key, item in value.items()}
        if isinstance(value, list):
            return [to_float32(item) for item in value]
        return value

    config = keras.saving.serialize_keras_object(model)
    converted = to_float32(config)
    if converted == config:
        return model
    copy = keras.saving.deserialize_keras_object(converted)
    copy.set_weights(model.get_weights())
    return copy


def strategy_from_env():
    """A ``tf.distribute`` strategy for the current environment, or ``None`` for the default.

    ``TF_CONFIG`` set: ``MultiWorkerMirroredStrategy`` (one process per worker, same command on
    each). Otherwise several visible GPUs: ``MirroredStrategy``. Otherwise ``None``. TensorFlow
    backend only; under JAX pass ``distribution=keras.distribution.DataParallel()`` to
    :func:`train` instead.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "strategy_from_env needs the TensorFlow backend; under JAX use "
            "keras.distribution.DataParallel() (train(..., distribution=...))."
        )
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return None


# --------------------------------------------------------------------------------------------
# Run folder bookkeeping


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", None)}
        for row in rows
    ]


def _truncate_history(path: Path, completed_epochs: int) -> None:
    """Drop rows of epochs that finished after the last saved state (killed in between)."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row and int(row[0]) < completed_epochs]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(kept)
    os.replace(tmp, path)


def environment_info() -> dict[str, Any]:
    """Hardware and software facts for ``summary.json``: CPU model, cores, GPUs, versions."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "backend": keras.backend.backend(),
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }
    from saunetv2_lib import __version__

    info["versions"]["saunetv2_lib"] = __version__
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        info["versions"]["tensorflow"] = tf.__version__
        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    elif keras.backend.backend() == "jax":
        import jax

        info["versions"]["jax"] = jax.__version__
        info["gpus"] = [str(d) for d in jax.devices() if d.platform == "gpu"]
    return info


def _check_out_dir(out_dir: Path, config: TrainConfig | None, resume: bool) -> TrainConfig:
    config_path = out_dir / "config.json"
    if resume:
        if not config_path.exists():
            raise FileNotFoundError(
                f"Cannot resume: {config_path} does not exist (no run was started in {out_dir})."
            )
        saved = TrainConfig.from_dict(json.loads(config_path.read_text("utf-8")))
        if config is None:
            return saved
        if config.data_root is None:
            config = config.replace(data_root=saved.data_root)
        differing = [
            f.name
            for f in dataclasses.fields(TrainConfig)
            if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name)
        ]
        if differing:
            raise ValueError(
                f"Cannot resume {out_dir} with a different configuration (fields {differing} "
                f"differ from {config_path}); only {', '.join(RESUMABLE_CHANGES)} may change "
                "on resume."
            )
        return config
    if config is None:
        raise ValueError("train() needs a TrainConfig unless resume=True.")
    if any((out_dir / name).exists() for name in ("history.csv", "summary.json", "resume")):
        raise ValueError(
            f"{out_dir} already holds a training run; pass resume=True (CLI: --resume) to "
            "continue it, or choose another output folder."
        )
    return config


@contextlib.contextmanager
def _scope(strategy) -> Iterator[None]:
    if strategy is None:
        yield
    else:
        with strategy.scope():
            yield


# --------------------------------------------------------------------------------------------
# The training function


def train(
    config: TrainConfig | None,
    out_dir: Path | str,
    resume: bool = False,
    strategy=None,
    distribution=None,
    verbose: int | str = 1,
    deadline: float | None = None,
    milestone_steps: Sequence[int] = (),
) -> TrainResult:
    """Train ``config`` into ``out_dir`` with ``model.fit``; resumable after any interruption.

    Callbacks: progress bar (``verbose``), per-epoch time, ``TerminateOnNaN``,
    ``ReduceLROnPlateau``, ``EarlyStopping``, :class:`BestCheckpoint` (``best.keras``),
    ``CSVLogger`` (``history.csv``, appended on resume) and :class:`ResumeState`. Seeds come from
    ``config.seed`` via ``keras.utils.set_random_seed`` (weights, DropBlock); the data order and
    augmentation draws are seeded by ``(seed, epoch)``, so a resumed session continues the data
    stream where it stopped, and re-seeds Keras with ``seed + completed_epochs`` so it does not
    replay the first epochs' DropBlock draws.

    Args:
        config: the run's configuration; with ``resume=True`` it may be ``None`` (the saved
            ``config.json`` is used) or differ from the saved one in ``epochs`` only.
        out_dir: run folder (created). A folder that already holds a run needs ``resume=True``.
        resume: continue from ``out_dir/resume/state.json``: weights, optimizer state (Adam
            moments, iteration count, learning rate), the plateau/early-stopping/checkpoint
            callbacks' counters and bests, and the epoch counter. Without a state (killed during
            the first epoch) the run starts over. A finished run is returned as is.
        strategy: a ``tf.distribute`` strategy (e.g. ``MirroredStrategy`` over several GPUs, or
            :func:`strategy_from_env`); the model is built and compiled in ``strategy.scope()``
            and ``config.batch_size`` is the global batch, split across replicas. Note that the
            soft-MCC term is then computed per replica on its share of the batch and averaged,
            whereas on one device it is one MCC over the whole batch (BCE is unaffected).
        distribution: JAX backend only: a ``keras.distribution`` object, e.g.
            ``keras.distribution.DataParallel()``, the JAX equivalent of ``MirroredStrategy``;
            it is installed with ``keras.distribution.set_distribution`` before building.
        verbose: ``model.fit`` verbosity (1: progress bar, 2: a line per epoch, 0: silent).
        deadline: POSIX time by which to stop; training pauses at the last epoch boundary that
            fits (:class:`StopBeforeDeadline`) and a later ``resume=True`` call continues.
        milestone_steps: optimizer steps at which to keep checkpoints in ``out_dir/milestones/``
            (:class:`StepCheckpoints`), e.g. ``(450, 1000, 2000, 4000)``.

    Returns:
        A :class:`TrainResult`; the files are described in the module docstring.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = _check_out_dir(out_dir, config, resume)
    if config.data_root is None:
        # Pin the resolved root in config.json: a resume must not silently switch datasets
        # (e.g. to the synthetic fallback when SAUNETV2_DATA is unset in the resuming shell).
        from saunetv2_lib.data.datasets import data_root

        config = config.replace(data_root=str(data_root().resolve()))
    if strategy is not None and keras.backend.backend() != "tensorflow":
        raise ValueError("strategy= needs the TensorFlow backend; under JAX pass distribution=.")
    if distribution is not None:
        if keras.backend.backend() != "jax":
            raise ValueError(
                "distribution= is for the JAX backend; under TensorFlow pass strategy=."
            )
        keras.distribution.set_distribution(distribution)

    resume_dir = out_dir / "resume"
    state_path = resume_dir / STATE_FILE
    state = json.loads(state_path.read_text("utf-8")) if resume and state_path.exists() else None
    if state and state["finished"] and state["completed_epochs"] >= 1:
        if config.epochs <= state["completed_epochs"] or state["early_stopping"]["stopped_epoch"]:
            if verbose:
                print(f"{out_dir}: run already finished after {state['completed_epochs']} epochs.")
            return _result(out_dir, config, state, model=None)
    initial_epoch = state["completed_epochs"] if state else 0
    if initial_epoch >= config.epochs:
        if verbose:
            print(f"{out_dir}: {initial_epoch} epochs already done (epochs={config.epochs}).")
        return _result(out_dir, config, state, model=None)
    if not resume or state is None:
        # Fresh start (or killed before the first epoch ended): clear partial files.
        for name in ("history.csv", "best.keras", "last.keras", "summary.json"):
            (out_dir / name).unlink(missing_ok=True)
    resume_dir.mkdir(exist_ok=True)
    _atomic_write_text(out_dir / "config.json", json.dumps(config.to_dict(), indent=2))
    if state:
        _truncate_history(out_dir / "history.csv", initial_epoch)

    keras.utils.set_random_seed(config.seed + initial_epoch)
    train_samples, val_samples = _select_split(config)
    train_data = _training_dataset(train_samples, config, epoch=initial_epoch)
    x_val, y_val = _validation_arrays(val_samples, config)

    with _scope(strategy):
        model = build_model(config)
        if state:
            model.optimizer.build(model.trainable_variables)
            # A .keras file holds the optimizer variables too: iterations, lr, Adam moments.
            model.load_weights(resume_dir / state["model_file"])

    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor=config.plateau_monitor,
        factor=config.plateau_factor,
        patience=config.plateau_patience,
        min_lr=config.plateau_min_lr,
        verbose=1 if verbose else 0,
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=config.early_stop_monitor,
        patience=config.early_stop_patience,
        restore_best_weights=config.restore_best_weights,
        verbose=1 if verbose else 0,
    )
    checkpoint = BestCheckpoint(
        out_dir / "best.keras", config.checkpoint_monitor, config.checkpoint_mode
    )
    wall_time_before = state["wall_time_s"] if state else 0.0
    pause = StopBeforeDeadline(deadline) if deadline is not None else None
    resume_state = ResumeState(
        resume_dir,
        out_dir / "last.keras",
        plateau,
        early_stopping,
        checkpoint,
        restore=state,
        wall_time_before=wall_time_before,
        pause=pause,
    )
    callbacks = [
        EpochTimer(),
        keras.callbacks.TerminateOnNaN(),
        plateau,  # before CSVLogger: it adds "learning_rate" to the logs
        early_stopping,
        checkpoint,
        *(
            [StepCheckpoints(out_dir / "milestones", milestone_steps, checkpoint, wall_time_before)]
            if milestone_steps
            else []
        ),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=bool(state)),
        *([pause] if pause else []),  # after EarlyStopping: an early stop outranks a pause
        resume_state,  # last: see ResumeState
    ]
    model.fit(
        train_data,
        validation_data=(x_val, y_val),
        validation_batch_size=config.batch_size,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # the dataset shuffles, seeded by (seed, epoch)
        callbacks=callbacks,
        verbose=verbose,
    )
    final_state = (
        json.loads(state_path.read_text("utf-8")) if state_path.exists() else resume_state.state(0)
    )
    split = {
        "train": [s.name for s in train_samples],
        "val": [s.name for s in val_samples],
    }
    return _result(
        out_dir,
        config,
        final_state,
        model=model,
        split=split,
        terminated_on_nan=resume_state.terminated_on_nan,
    )


def run_result(out_dir: Path | str) -> TrainResult:
    """The state of the run in ``out_dir`` as a :class:`TrainResult`, without training.

    For scoring an unfinished run as it stands (``epochs_run`` tells how far it got); the
    ``model`` field is ``None``. Raises ``FileNotFoundError`` when ``out_dir`` holds no run.
    """
    out_dir = Path(out_dir)
    config = _check_out_dir(out_dir, None, resume=True)
    state_path = out_dir / "resume" / STATE_FILE
    state = json.loads(state_path.read_text("utf-8")) if state_path.is_file() else None
    return _result(out_dir, config, state, None)


def _result(
    out_dir: Path,
    config: TrainConfig,
    state: dict[str, Any] | None,
    model: keras.Model | None,
    split: dict[str, list[str]] | None = None,
    terminated_on_nan: bool = False,
) -> TrainResult:
    from saunetv2_lib.data.datasets import is_synthetic

    history = _read_history(out_dir / "history.csv")
    state = state or {}
    ckpt = state.get("checkpoint", {})
    best_epoch = ckpt.get("best_epoch")
    epochs_run = int(state.get("completed_epochs", 0))
    stopped_early = bool(state.get("finished")) and epochs_run < config.epochs
    result = TrainResult(
        out_dir=out_dir,
        epochs_run=epochs_run,
        best_value=ckpt.get("best"),
        best_epoch=None if best_epoch is None else best_epoch + 1,
        monitor=config.checkpoint_monitor,
        stopped_early=stopped_early,
        wall_time_s=float(state.get("wall_time_s", 0.0)),
        history=history,
        model=model,
    )
    if model is not None:
        epoch_times = [row["epoch_time_s"] for row in history if "epoch_time_s" in row]
        summary = {
            "profile": config.profile,
            "model": config.model,
            "dataset": config.dataset,
            "epochs_run": epochs_run,
            "max_epochs": config.epochs,
            "stopped_early": stopped_early,
            "terminated_on_nan": terminated_on_nan,
            "monitor": config.checkpoint_monitor,
            "best_value": result.best_value,
            "best_epoch": result.best_epoch,
            "final_learning_rate": state.get("plateau", {}).get("learning_rate"),
            "optimizer_iterations": state.get("optimizer_iterations"),
            "wall_time_s": result.wall_time_s,
            "mean_epoch_time_s": float(np.mean(epoch_times)) if epoch_times else None,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "data_root": config.data_root,
            "synthetic_data": is_synthetic(config.data_root),
            "split": split,
            "command": " ".join(sys.argv),
            "environment": environment_info(),
        }
        _atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return result
