"""The training loop: a resumable ``model.fit`` over a :class:`TrainConfig`, and data-parallel scale-out.

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
import dataclasses
import json
import os
import resource
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from saunetv2_lib.data.pipeline import training_data, training_split, validation_arrays
from saunetv2_lib.host import environment_info
from saunetv2_lib.training.batchnorm import PreciseBatchNorm
from saunetv2_lib.training.callbacks import (
    BestCheckpoint,
    EpochTimer,
    ResumeState,
    StepCheckpoints,
    StopBeforeDeadline,
    atomic_write_text,
)
from saunetv2_lib.training.config import RESUMABLE_CHANGES, STATE_FILE, TrainConfig, TrainResult
from saunetv2_lib.training.history import read_history, truncate_history

# --------------------------------------------------------------------------------------------
# Model, strategy


def build_model(config: TrainConfig) -> keras.Model:
    """Build and compile the configured model (call inside ``strategy.scope()`` when distributing).

    Input side: ``patch_size`` when training on patches, else ``side``. The model is built under
    ``config.precision``'s dtype policy (the global policy is restored afterwards) and, with
    ``group_norm_statistics="two_stage"``, its group norms sum their statistics in two stages.
    Compiled with ``Adam(lr, epsilon=adam_epsilon)`` (accumulating ``micro_batches`` gradients
    per step when > 1), :class:`saunetv2_lib.losses.BceMccLoss`
    and binary accuracy at 0.5 named ``accuracy`` (so the logs have ``val_accuracy``, as in the
    paper).
    """
    from saunetv2_lib.losses import BceMccLoss
    from saunetv2_lib.models import get_model
    from saunetv2_lib.models.layers import use_two_stage_group_norm

    input_side = config.patch_size or config.side
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.precision)
    try:
        model = get_model(config.model, (input_side, input_side, 3), **config.model_kwargs)
    finally:
        keras.config.set_dtype_policy(previous)
    if config.group_norm_statistics == "two_stage":
        use_two_stage_group_norm(model)
    accumulate = config.micro_batches if config.micro_batches > 1 else None
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=config.lr,
            epsilon=config.adam_epsilon,
            gradient_accumulation_steps=accumulate,
        ),
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
    ``CSVLogger`` (``history.csv``, appended on resume), :class:`ResumeState` and, with
    ``batch_norm_statistics="precise"``, :class:`saunetv2_lib.training.batchnorm.PreciseBatchNorm`
    (before every validation). Seeds come from
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
    atomic_write_text(out_dir / "config.json", json.dumps(config.to_dict(), indent=2))
    if state:
        truncate_history(out_dir / "history.csv", initial_epoch)

    keras.utils.set_random_seed(config.seed + initial_epoch)
    data = training_data(**config.data_arguments(), epoch=initial_epoch)

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
        *([_precise_batch_norm(config)] if config.batch_norm_statistics == "precise" else []),
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
        data.batches,
        validation_data=(data.x_val, data.y_val),
        validation_batch_size=config.micro_batch_size,
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
        "train": data.train_names,
        "val": data.val_names,
    }
    return _result(
        out_dir,
        config,
        final_state,
        model=model,
        split=split,
        terminated_on_nan=resume_state.terminated_on_nan,
    )


def training_source_images(config: TrainConfig) -> np.ndarray:
    """The run's training sources as they are (padded to the model input, not augmented: the
    images inference will see), ``(N, S, S, 3)`` float32; what precise BN statistics use."""
    train_samples, _ = training_split(
        config.dataset,
        config.data_root,
        config.val_count,
        config.seed,
        labels=config.labels,
        max_train_images=config.max_train_images,
    )
    images, _ = validation_arrays(train_samples, config.side, config.anchor, config.patch_size)
    return images


def _precise_batch_norm(config: TrainConfig) -> PreciseBatchNorm:
    """The callback of ``batch_norm_statistics="precise"``, in the run's training forward
    passes (micro-batches when they accumulate)."""
    return PreciseBatchNorm(training_source_images(config), config.micro_batch_size)


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

    history = read_history(out_dir / "history.csv")
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
        atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return result
