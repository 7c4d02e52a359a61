"""What defines a training run: :class:`TrainConfig`, the named profiles, and :class:`TrainResult`.

Profiles (``drive/full``, ``drive/paper``, ...) live in ``saunetv2_lib/configs/profiles.json``;
an entry may ``extend`` another. Spec references are to ``../shared/design/saunetv2_spec.md``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

PROFILES_RESOURCE = "profiles.json"
STATE_FILE = "state.json"
MONITORS = ("loss", "accuracy", "val_loss", "val_accuracy")
PRECISIONS = ("float32", "mixed_bfloat16")
GROUP_NORM_STATISTICS = ("one_pass", "two_stage")
BATCH_NORM_STATISTICS = ("moving", "precise")
# A pause at the deadline, and a campaign's "time for another epoch?", both allow the last
# epoch's duration times this factor: epochs vary (validation, a busy machine) by a few percent.
DEADLINE_MARGIN = 1.2
# How the step is computed, not what it computes, and the free-text notes: these may change when a
# run resumes (e.g. a faster default adopted mid-campaign, or a campaign's notes updated with a
# measured cost); every other field must match the saved configuration.
RESUMABLE_CHANGES = ("epochs", "precision", "group_norm_statistics", "notes")


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
        group_norm_statistics: ``"two_stage"`` (default; :class:`saunetv2_lib.models.layers.
            TwoStageGroupNormalization`: the same statistics summed over rows first, 1.37x
            faster training on 2 CPU cores) or ``"one_pass"`` (Keras' ``GroupNormalization``).
            Files saved either way load the same.
        batch_norm_statistics: what a model's batch norms use in inference (validation,
            checkpoints): ``"moving"`` (Keras' moving averages, as the paper) or ``"precise"``
            (re-estimated on the training images with DropBlock off before every validation,
            :mod:`saunetv2_lib.training.batchnorm`; for short budgets, where the moving averages
            have not converged). No effect on models without batch norms.
        micro_batches: split every batch of ``batch_size`` into this many micro-batches and
            accumulate their gradients into one optimizer step (Keras'
            ``gradient_accumulation_steps``), to fit a model's activations in memory. The steps
            see the same images as undivided batches, but batch-norm statistics and the pooled
            soft MCC are computed per micro-batch. ``1`` (default): the paper's step.
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
    batch_norm_statistics: str = "moving"
    micro_batches: int = 1

    def __post_init__(self) -> None:
        problems = []
        for name in ("side", "batch_size", "epochs", "val_count", "epoch_repeats", "micro_batches"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.batch_size % max(int(self.micro_batches), 1):
            problems.append(
                f"batch_size ({self.batch_size}) must be a multiple of micro_batches "
                f"({self.micro_batches})"
            )
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
        if self.batch_norm_statistics not in BATCH_NORM_STATISTICS:
            problems.append(
                f"batch_norm_statistics must be one of {BATCH_NORM_STATISTICS} "
                f"(got {self.batch_norm_statistics!r})"
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

    def data_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`saunetv2_lib.data.pipeline.training_data` for this run."""
        names = (
            "val_count", "seed", "batch_size", "side", "anchor", "labels", "max_train_images",
            "augment", "augment_flips", "patch_size", "epoch_repeats", "micro_batches",
        )  # fmt: skip
        return {
            "dataset": self.dataset,
            "root": self.data_root,
            **{n: getattr(self, n) for n in names},
        }

    @property
    def micro_batch_size(self) -> int:
        """Images per forward pass in training: ``batch_size / micro_batches``."""
        return self.batch_size // self.micro_batches

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
