"""Campaigns: long training runs declared as data, trained in turn, resumed on any machine.

A campaign (``configs/campaigns.json``) is a named, ordered list of runs. Each run is a
:class:`RunSpec`: a training profile plus model, factory arguments and
:class:`~saunetv2_lib.training.TrainConfig` overrides (loss weights, seed, ...), the optimizer
steps at which to keep a checkpoint for scoring, and the shipped-weights name it is meant to
become. Three folders hold a campaign's state:

* ``runs/campaign/<run>/``: the working run folders of :func:`saunetv2_lib.training.train`
  (ignored by git). :func:`run_campaign` trains the unfinished runs in order, resuming each
  from its last completed epoch, and pauses at an epoch boundary before a deadline.
* ``campaigns/<campaign>/<run>/``: the committed resume state of unfinished runs (configuration,
  history, weights with optimizer state, the callbacks' counters, best checkpoint), written by
  :func:`pack_campaign` and copied back into an empty run folder on a fresh clone. Slim: weights
  that equal the resume model's are stored once, the best checkpoint without optimizer state,
  every weights file compactly (:mod:`.packing`) and a file over :data:`PART_BYTES` in parts
  (``packed.json`` says how to put them back).
* ``saunetv2_lib/results/campaign_<campaign>.json``: the committed bundle every notebook can
  read: per run the history, the training segments (machine, precision, wall time), the scored
  milestone checkpoints and, once finished, the metrics under every protocol.

A run trained under a configuration its spec no longer declares (:meth:`RunSpec.changed_fields`,
e.g. ``batch_norm_statistics`` added to the BN baseline) is superseded: :func:`run_campaign`
moves its folder to ``runs/campaign/superseded/`` and trains it again, :func:`pack_campaign`
moves its bundle entry under the bundle's ``superseded`` key (kept, never read as the run).

Runs are independent, so an external scheduler can spread them over machines:
``saunetv2 campaign run --only NAME`` or ``--shard K/N`` per job (see the README). On one machine
a lock file makes sure that two trainings never run at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from saunetv2_lib.paths import REPO_ROOT, RESULTS_DIR, WEIGHTS_DIR

CAMPAIGNS_RESOURCE = "campaigns.json"
RUNS_ROOT = REPO_ROOT / "runs" / "campaign"
PACKED_ROOT = REPO_ROOT / "campaigns"
LOCK_FILE = ".campaign.lock"
LOG_FILE = "campaign.log"
SEGMENTS_FILE = "segments.json"
MILESTONES_FILE = "milestones.json"
CHECKPOINTS_FILE = "checkpoints.json"  # every kept checkpoint scored (experiments.checkpoints)
RESULT_FILE = "result.json"
KILLED = "killed: closed when the next session started"
DONE = ("finished", "stopped early")  # the statuses of a run that trains no more
# What a fresh machine needs to continue a run (resume/ holds the files state.json names).
PACKED_FILES = ("config.json", "history.csv", "best.keras", SEGMENTS_FILE, MILESTONES_FILE)
PACK_MANIFEST = "packed.json"
PACK_FORMAT = "saunetv2-packed-run/2"
# Git hosts warn at 50 MB a file and refuse 100 MB; a U-Net resume model is 104 MB.
PART_BYTES = 45 * 2**20


@dataclass(frozen=True)
class RunSpec:
    """One declared run of a campaign.

    Attributes:
        name: folder and display name, e.g. ``"drive_paper"``.
        profile: training profile (``configs/profiles.json``), e.g. ``"drive/paper"``.
        description: one line for tables.
        model: registry name; ``None`` keeps the profile's.
        model_kwargs: factory arguments (recorded in the configuration).
        overrides: other :class:`~saunetv2_lib.training.TrainConfig` fields, e.g.
            ``{"bce_weight": 1.0, "mcc_weight": 0.0, "seed": 7}``.
        milestone_steps: optimizer steps at which a checkpoint is kept and scored.
        ship_as: shipped-weights name this run is meant to become (``None``: not shipped).
        configuration: what the run is one seed of (runs declared with ``"seeds"`` share it);
            defaults to ``name``.
        keep_previous_as: when shipping replaces ``ship_as``, the weights shipped before are
            kept under this name (e.g. ``"drive_450steps"``) so the two schedules stay comparable.
        paper_rows: the rows of the paper's tables this run's configuration reproduces,
            ``{table key in saunetv2_lib.paper: row name}`` (:mod:`.ablation` reads them).
    """

    name: str
    profile: str
    description: str = ""
    model: str | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    milestone_steps: tuple[int, ...] = ()
    ship_as: str | None = None
    configuration: str | None = None
    keep_previous_as: str | None = None
    paper_rows: Mapping[str, str] = field(default_factory=dict)

    def train_fields(self) -> dict[str, Any]:
        """The :class:`~saunetv2_lib.training.TrainConfig` fields this run sets over its profile."""
        fields = dict(self.overrides)
        if self.model is not None:
            fields["model"] = self.model
        if self.model_kwargs:
            fields["model_kwargs"] = dict(self.model_kwargs)
        return fields

    def config(self):
        """The run's :class:`~saunetv2_lib.training.TrainConfig`."""
        from saunetv2_lib.training import load_profile

        return load_profile(self.profile, **self.train_fields())

    def changed_fields(self, configuration: Mapping[str, Any]) -> list[str]:
        """The fields in which a run's saved ``configuration`` (its ``config.json`` or bundle
        entry) differs from what this spec declares now; ``[]`` when it is this run.

        How the step is computed (``RESUMABLE_CHANGES`` but ``epochs``), the data root and the
        notes do not count; fields a saved configuration predates take their defaults.
        """
        from saunetv2_lib.training import RESUMABLE_CHANGES, TrainConfig

        ignored = {"data_root", "notes", *(set(RESUMABLE_CHANGES) - {"epochs"})}
        saved = json.loads(json.dumps(TrainConfig.from_dict(dict(configuration)).to_dict()))
        declared = json.loads(json.dumps(self.config().to_dict()))
        return sorted(
            name for name in declared if name not in ignored and saved[name] != declared[name]
        )

    def images_per_epoch(self) -> int:
        """Training images (augmented copies) per epoch: training sources x ``epoch_repeats``."""
        from saunetv2_lib.data.splits import split_names

        config = self.config()
        sources = len(split_names(config.dataset, "train"))
        if config.max_train_images is not None:
            sources = min(sources, config.max_train_images)
        return (sources - config.val_count) * config.epoch_repeats

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (the last batch may be short)."""
        return math.ceil(self.images_per_epoch() / self.config().batch_size)


@dataclass(frozen=True)
class Campaign:
    """A named, ordered list of :class:`RunSpec` with a note on what it is for.

    ``speed`` holds the campaign's own choice of how its steps are computed (``precision``,
    ``group_norm_statistics``), applied to each of its runs under any ``speed`` a session passes
    (see :func:`run_campaign`): declared here, one campaign of a queue can train in
    ``mixed_bfloat16`` while the one before it stays in float32.
    """

    name: str
    runs: tuple[RunSpec, ...]
    notes: str = ""
    speed: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def run(self, name: str) -> RunSpec:
        for spec in self.runs:
            if spec.name == name:
                return spec
        raise ValueError(
            f"campaign {self.name!r} has no run {name!r}; runs: "
            f"{', '.join(s.name for s in self.runs)}."
        )

    def select(self, only: Sequence[str] | None = None, shard: str | None = None) -> list[RunSpec]:
        """The runs to work on: all, those named in ``only``, or shard ``"K/N"`` (1-based K).

        Shard K of N holds the runs at positions K-1, K-1+N, ... of the declared order, so N
        jobs with K = 1..N cover every run exactly once.
        """
        runs = list(self.runs)
        if only:
            runs = [self.run(name) for name in only]
        if shard:
            try:
                k, n = (int(part) for part in shard.split("/"))
            except ValueError:
                raise ValueError(f"shard must look like K/N, e.g. 2/4 (got {shard!r}).") from None
            if not 1 <= k <= n:
                raise ValueError(f"shard K/N needs 1 <= K <= N (got {shard!r}).")
            runs = [spec for index, spec in enumerate(runs) if index % n == k - 1]
        return runs


def _read_campaigns() -> dict[str, Any]:
    text = resources.files("saunetv2_lib.configs").joinpath(CAMPAIGNS_RESOURCE).read_text("utf-8")
    return json.loads(text)


def campaign_names() -> list[str]:
    """The declared campaigns in ``configs/campaigns.json``'s order: the order they train in."""
    return list(_read_campaigns())


def load_campaign(name: str = "paper") -> Campaign:
    """The campaign ``name`` from ``configs/campaigns.json``; every run's configuration is checked."""
    declared = _read_campaigns()
    if name not in declared:
        raise ValueError(f"Unknown campaign {name!r}; declared: {', '.join(sorted(declared))}.")
    entry = declared[name]
    known = {f.name for f in dataclasses.fields(RunSpec)}
    runs = []
    for raw in entry["runs"]:
        unknown = sorted(set(raw) - known - {"seeds"})
        if unknown:
            raise ValueError(f"campaign {name!r}, run {raw.get('name')!r}: unknown keys {unknown}.")
        raw = {**raw, "milestone_steps": tuple(raw.get("milestone_steps", ()))}
        seeds = raw.pop("seeds", None)
        # "seeds": [1, 2, 3] declares one run per seed, named <name>_s<seed>.
        expanded = (
            [RunSpec(**raw)]
            if seeds is None
            else [
                RunSpec(**{**raw, "name": f"{raw['name']}_s{seed}", "configuration": raw["name"],
                           "overrides": {**raw.get("overrides", {}), "seed": int(seed)}})
                for seed in seeds
            ]
        )  # fmt: skip
        for spec in expanded:
            spec.config()  # fail here, with the profile's message, rather than hours later
        runs.extend(expanded)
    names = [spec.name for spec in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"campaign {name!r} declares a run name twice: {names}.")
    speed = dict(entry.get("speed", {}))
    _check_speed(speed, f"campaign {name!r}: speed")
    return Campaign(name=name, runs=tuple(runs), notes=entry.get("notes", ""), speed=speed)


def _check_speed(speed: Mapping[str, Any], where: str) -> None:
    """``speed`` may set only the fields that say how a step is computed, to values they take."""
    from saunetv2_lib.training import GROUP_NORM_STATISTICS, PRECISIONS

    allowed = {"precision": PRECISIONS, "group_norm_statistics": GROUP_NORM_STATISTICS}
    not_speed = sorted(set(speed) - set(allowed))
    if not_speed:
        raise ValueError(f"{where} may set only how the step is computed, not {not_speed}.")
    for key, value in speed.items():
        if value not in allowed[key]:
            raise ValueError(f"{where}: {key} must be one of {list(allowed[key])}, not {value!r}.")


# --------------------------------------------------------------------------------------------
# Reading a run folder


def _read_json(path: Path, default: Any = None) -> Any:
    return json.loads(path.read_text("utf-8")) if path.is_file() else default


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n", "utf-8")
    os.replace(tmp, path)


def run_state(run_dir: Path) -> dict[str, Any] | None:
    """``resume/state.json`` of a run folder, or ``None`` before its first completed epoch."""
    return _read_json(Path(run_dir) / "resume" / "state.json")


def holds_run(spec: RunSpec, folder: Path) -> bool:
    """Whether ``folder`` holds a run (``config.json``) trained as ``spec`` declares it now."""
    saved = _read_json(Path(folder) / "config.json")
    return saved is not None and not spec.changed_fields(saved)


def run_status(spec: RunSpec, run_dir: Path | None) -> dict[str, Any]:
    """Where one run stands, from its folder alone (no TensorFlow); ``run_dir=None``: no folder.

    Returns a dict with ``run, status`` (``not started``, ``in progress``, ``finished``,
    ``stopped early``), ``epochs_done, epochs_total, steps_done, steps_total, best_val``
    (the checkpoint monitor's best), ``wall_time_s``, ``s_per_image`` (mean of the last five
    epochs, validation included, over the training images of an epoch) and ``hours_left``
    (the remaining epochs at that pace; an early stop may come sooner).
    """
    from saunetv2_lib.training.history import read_history

    config = spec.config()
    state = (run_state(run_dir) or {}) if run_dir is not None else {}
    history = read_history(Path(run_dir) / "history.csv") if run_dir is not None else []
    done = int(state.get("completed_epochs", 0))
    images = spec.images_per_epoch()
    times = [row["epoch_time_s"] for row in history[-5:] if "epoch_time_s" in row]
    epoch_s = sum(times) / len(times) if times else None
    finished = bool(state.get("finished"))
    if finished and done < config.epochs:
        status = "stopped early"
    elif finished or done >= config.epochs:
        status = "finished"
    elif state or (run_dir is not None and (Path(run_dir) / "config.json").is_file()):
        status = "in progress"
    else:
        status = "not started"
    left = 0 if status in DONE else config.epochs - done
    return {
        "run": spec.name,
        "status": status,
        "epochs_done": done,
        "epochs_total": config.epochs,
        "steps_done": int(state.get("optimizer_iterations", 0)),
        "steps_total": math.ceil(images / config.batch_size) * config.epochs,
        "best_val": state.get("checkpoint", {}).get("best"),
        "monitor": config.checkpoint_monitor,
        "learning_rate": state.get("plateau", {}).get("learning_rate"),
        "wall_time_s": float(state.get("wall_time_s", 0.0)),
        "s_per_image": None if epoch_s is None else epoch_s / images,
        "epoch_s": epoch_s,
        "hours_left": None if epoch_s is None else left * epoch_s / 3600,
    }


def format_status(rows: Sequence[Mapping[str, Any]]) -> str:
    """The status rows as an aligned text table."""
    width = max([len("run"), *(len(row["run"]) for row in rows)])
    header = (
        f"{'run':<{width}} {'status':<13} {'epochs':>9} {'steps':>13} {'best val':>9} "
        f"{'wall h':>7} {'s/image':>8} {'h left':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        best = "" if row["best_val"] is None else f"{row['best_val']:.5f}"
        pace = "" if row["s_per_image"] is None else f"{row['s_per_image']:.3f}"
        left = "" if row["hours_left"] is None else f"{row['hours_left']:.1f}"
        lines.append(
            f"{row['run']:<{width}} {row['status']:<13} "
            f"{row['epochs_done']:>4}/{row['epochs_total']:<4} "
            f"{row['steps_done']:>6}/{row['steps_total']:<6} {best:>9} "
            f"{row['wall_time_s'] / 3600:>7.2f} {pace:>8} {left:>7}"
        )
    return "\n".join(lines)


def bundled_status(
    campaign: str, spec: RunSpec, bundle: Path | str | None = None
) -> dict[str, Any] | None:
    """The bundle's :func:`run_status` row of the finished run ``spec`` (its result is committed).

    ``None`` when the bundle is missing, holds no result for the run, or a result trained under
    a configuration the spec no longer declares (:meth:`RunSpec.changed_fields`). A finished run leaves
    neither a run folder nor a packed copy on a fresh clone (:func:`pack_campaign`), so the
    bundle is the only place that says it is done.
    """
    path = Path(bundle) if bundle is not None else bundle_path(campaign)
    entry = _read_json(path, {}).get("runs", {}).get(spec.name, {})
    if "result" not in entry or "status" not in entry:
        return None
    if spec.changed_fields(entry.get("configuration", {})):
        return None  # trained under another configuration: not this run's result
    return dict(entry["status"])


def campaign_status(
    campaign: Campaign,
    runs_root: Path | str = RUNS_ROOT,
    packed_root: Path | str = PACKED_ROOT,
    bundle: Path | str | None = None,
) -> list[dict[str, Any]]:
    """:func:`run_status` of every run, reading the packed state where no run folder exists yet
    and the bundle (:func:`bundled_status`) for a finished run that has neither; a folder or
    entry of a superseded configuration (:func:`holds_run`) counts as none."""
    rows = []
    for spec in campaign.runs:
        run_dir = Path(runs_root) / spec.name
        packed = Path(packed_root) / campaign.name / spec.name
        if holds_run(spec, run_dir):
            rows.append(run_status(spec, run_dir))
        elif holds_run(spec, packed):
            rows.append(run_status(spec, packed))
        else:
            done = bundled_status(campaign.name, spec, bundle)
            rows.append(done if done is not None else run_status(spec, None))
    return rows


def seed_pace(
    spec: RunSpec,
    campaign: Campaign,
    runs_root: Path | str = RUNS_ROOT,
    packed_root: Path | str = PACKED_ROOT,
    bundle: Path | str | None = None,
) -> tuple[float | None, str | None]:
    """Seconds per epoch measured on the other seeds of ``spec``'s configuration, for a run that
    has not timed an epoch of its own: ``(slowest pace, that seed's name)``, ``(None, None)``
    when no other seed has run. Read as :func:`campaign_status` reads them (folder, packed copy,
    bundle), so a finished seed's pace counts on a fresh clone too.
    """
    configuration = spec.configuration or spec.name
    seeds = tuple(
        other
        for other in campaign.runs
        if other.name != spec.name and (other.configuration or other.name) == configuration
    )
    rows = campaign_status(Campaign(campaign.name, seeds), runs_root, packed_root, bundle)
    paced = [(row["epoch_s"], row["run"]) for row in rows if row.get("epoch_s")]
    return max(paced) if paced else (None, None)


# --------------------------------------------------------------------------------------------
# Running


@contextlib.contextmanager
def training_lock(runs_root: Path) -> Iterator[None]:
    """Hold ``runs_root/.campaign.lock`` exclusively, or raise: one training at a time."""
    import fcntl

    runs_root.mkdir(parents=True, exist_ok=True)
    handle = open(runs_root / LOCK_FILE, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RuntimeError(
                f"a campaign is already training in {runs_root} ({holder}); never run two "
                "trainings at once (7.8 GiB peak each)."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {_now()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class _Log:
    """Lines to stdout and to ``runs_root/campaign.log``, each stamped with the UTC time."""

    def __init__(self, path: Path, stream: TextIO | None = None):
        self.path, self.stream = path, stream or sys.stdout

    def __call__(self, message: str) -> None:
        line = f"[{_now()}] {message}"
        print(line, file=self.stream, flush=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def restore_packed(spec: RunSpec, campaign: str, runs_root: Path, packed_root: Path) -> bool:
    """Copy a packed run into ``runs_root/<run>`` when that folder holds no run; True if copied.

    A packed copy of a superseded configuration (:func:`holds_run`) is not restored.
    """
    run_dir, packed = runs_root / spec.name, packed_root / campaign / spec.name
    if (run_dir / "config.json").is_file() or not holds_run(spec, packed):
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    for item in packed.iterdir():
        target = run_dir / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    # The packed configuration names the packing machine's data root; use this machine's.
    from saunetv2_lib.data.datasets import data_root

    config = json.loads((run_dir / "config.json").read_text("utf-8"))
    config["data_root"] = spec.config().data_root or str(data_root().resolve())
    (run_dir / "config.json").write_text(json.dumps(config, indent=2), "utf-8")
    try:
        _unpack_run(spec, run_dir)
    except Exception:
        shutil.rmtree(run_dir)  # never leave a half-restored run that would resume wrongly
        raise
    return True


def _unpack_run(spec: RunSpec, run_dir: Path) -> None:
    """Rebuild the files a slim pack (:func:`_pack_run`) left out, in a restored ``run_dir``.

    Joins the parts of split files (checking their SHA-256) and writes the files whose weights
    equal another's: EarlyStopping's ``.npz`` and ``best.keras`` (without optimizer state). A
    pack without ``packed.json`` (format 1) is complete as it is.
    """
    import hashlib

    import numpy as np

    manifest_path = run_dir / PACK_MANIFEST
    manifest = _read_json(manifest_path)
    if manifest is None:
        return
    if manifest.get("format") != PACK_FORMAT:
        raise ValueError(f"{manifest_path}: unknown format {manifest.get('format')!r}")
    for name, record in manifest["split"].items():
        target = run_dir / name
        partial = target.with_name(target.name + ".joining")
        digest = hashlib.sha256()
        with open(partial, "wb") as joined:
            for part in record["parts"]:
                if not (target.parent / part).is_file():
                    raise FileNotFoundError(f"Packed run {run_dir}: {part} of {name} is missing.")
                block = (target.parent / part).read_bytes()
                digest.update(block)
                joined.write(block)
        if digest.hexdigest() != record["sha256"]:
            partial.unlink()
            raise ValueError(
                f"Packed run {run_dir}: the parts of {name} do not join into the packed file "
                f"(SHA-256 differs; {record['bytes']} bytes expected). Check out the packed "
                "copy again."
            )
        os.replace(partial, target)
        for part in record["parts"]:
            (target.parent / part).unlink()
    config = _saved_config(spec, run_dir)
    models: dict[str, Any] = {}  # one build per source: best and EarlyStopping share the model's
    for name, source in manifest["weights_of"].items():
        if source not in models:
            models[source] = _float32_model(config, run_dir / source)
        model = models[source]
        if name.endswith(".npz"):  # ResumeState's format: w0, w1, ... in model order
            arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
            np.savez(run_dir / name, **arrays)
        else:
            model.save(run_dir / name)
    manifest_path.unlink()


def supersede_folder(run_dir: Path, runs_root: Path) -> Path:
    """Move a run folder of a superseded configuration to ``runs_root/superseded/<run>-<time>``
    (kept, never trained or packed again); returns the new place."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    aside = Path(runs_root) / "superseded" / f"{Path(run_dir).name}-{stamp}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run_dir, aside)
    return aside


def _segment_machine(config) -> dict[str, Any]:
    """How a session computed its steps and on what: precision, GN, malloc, oneDNN, CPU, versions."""
    from saunetv2_lib.host import environment_info

    info = environment_info()
    return {
        "precision": config.precision,
        "group_norm_statistics": config.group_norm_statistics,
        "allocator": info["allocator"],
        "onednn": info.get("onednn"),
        "cpu_model": info["cpu_model"],
        "cpu_count": info["cpu_affinity"] or info["cpu_count"],
        "gpus": info.get("gpus", []),
        "backend": info["backend"],
        "versions": info["versions"],
    }


def run_campaign(
    campaign: Campaign | str = "paper",
    hours: float = 2.5,
    only: Sequence[str] | None = None,
    shard: str | None = None,
    runs_root: Path | str = RUNS_ROOT,
    packed_root: Path | str = PACKED_ROOT,
    speed: Mapping[str, Any] | None = None,
    verbose: int = 2,
    stream: TextIO | None = None,
    bundle: Path | str | None = None,
) -> list[dict[str, Any]]:
    """Train the unfinished runs in their declared order until done or ``hours`` are up.

    Each run resumes from its last completed epoch (from the packed state on a fresh clone),
    keeps its milestone checkpoints and pauses at the last epoch boundary that fits before the
    deadline; a killed process loses at most the epoch in progress. After each run's session
    its new milestones are scored and the session is appended to ``segments.json``.

    Args:
        campaign: a :class:`Campaign` or its name.
        hours: wall-clock budget of this call; no epoch is started that would end after it.
        only: run names to work on (default: every run); ``shard``: ``"K/N"`` (see
            :meth:`Campaign.select`).
        runs_root, packed_root: the working and the committed folders (module docstring).
        speed: :class:`~saunetv2_lib.training.TrainConfig` fields that set how the step is
            computed (``precision``, ``group_norm_statistics``), applied to every run over the
            campaign's own :attr:`Campaign.speed`; they may differ between sessions of one run
            and are recorded per segment.
        verbose: ``model.fit`` verbosity.
        stream: where log lines go besides ``runs_root/campaign.log`` (default stdout).
        bundle: the committed bundle (default :func:`bundle_path`); a run whose result is
            there and that has no folder here is finished and never trained again.

    Returns:
        :func:`run_status` rows of the selected runs after this call (the bundle's row for a
        run finished elsewhere).
    """
    from saunetv2_lib.training import train
    from saunetv2_lib.training.config import DEADLINE_MARGIN

    campaign = load_campaign(campaign) if isinstance(campaign, str) else campaign
    runs_root, packed_root = Path(runs_root), Path(packed_root)
    speed = speed or {}
    _check_speed(speed, "speed")
    speed = {**campaign.speed, **speed}  # what a session passes wins
    deadline = time.time() + hours * 3600
    selected = campaign.select(only, shard)
    with training_lock(runs_root):
        log = _Log(runs_root / LOG_FILE, stream)
        log(f"campaign {campaign.name}: {len(selected)} run(s), {hours:g} h, pid {os.getpid()}")
        for spec in selected:
            run_dir = runs_root / spec.name
            if (run_dir / "config.json").is_file() and not holds_run(spec, run_dir):
                changed = spec.changed_fields(_read_json(run_dir / "config.json"))
                aside = supersede_folder(run_dir, runs_root)
                log(
                    f"{spec.name}: its configuration changed ({', '.join(changed)}); moved to {aside}"
                )
            done = bundled_status(campaign.name, spec, bundle)
            if done is not None and not (run_dir / "config.json").is_file():
                log(f"{spec.name}: {done['status']} (its result is in the bundle)")
                continue
            if restore_packed(spec, campaign.name, runs_root, packed_root):
                log(f"{spec.name}: restored the packed state from {packed_root / campaign.name}")
            status = run_status(spec, run_dir)
            if status["status"] in DONE:
                log(f"{spec.name}: {status['status']} after {status['epochs_done']} epochs")
                continue
            epoch_s, paced_by = status["epoch_s"], spec.name
            if epoch_s is None:  # a fresh run's first epoch would otherwise overrun the deadline
                epoch_s, paced_by = seed_pace(spec, campaign, runs_root, packed_root, bundle)
            if epoch_s and time.time() + DEADLINE_MARGIN * epoch_s > deadline:
                log(
                    f"{spec.name}: no time left for an epoch ({epoch_s:.0f} s, {paced_by}'s pace); stop"
                )
                break
            config = spec.config().replace(**speed)
            before = run_state(run_dir) or {}
            machine = _segment_machine(config)
            log(
                f"{spec.name}: {'resuming at' if before else 'starting'} epoch "
                f"{before.get('completed_epochs', 0) + 1}/{config.epochs} "
                f"({config.precision}, group norm {config.group_norm_statistics}, "
                f"malloc {machine['allocator']})"
            )
            run_dir.mkdir(parents=True, exist_ok=True)
            _close_segment(run_dir, KILLED)
            segments = _read_json(run_dir / SEGMENTS_FILE, [])
            opened = {
                "started": _now(),
                "ended": None,
                "epochs": [before.get("completed_epochs", 0), None],
                "steps": [before.get("optimizer_iterations", 0), None],
                "wall_time_before_s": float(before.get("wall_time_s", 0.0)),
                **machine,
            }
            _write_json(run_dir / SEGMENTS_FILE, [*segments, opened])
            result = train(
                config,
                run_dir,
                resume=(run_dir / "config.json").is_file(),
                verbose=verbose,
                deadline=deadline,
                milestone_steps=spec.milestone_steps,
            )
            after = run_state(run_dir) or {}
            _close_segment(run_dir, "paused at the deadline" if after.get("paused") else "returned")
            scored = score_milestones(spec, run_dir)
            for row in scored:
                log(
                    f"{spec.name}: milestone {row['milestone']} steps ({row['kind']}) F1 {row['f1']:.4f}"
                )
            log(
                f"{spec.name}: now at epoch {result.epochs_run}, "
                f"{after.get('optimizer_iterations', 0)} steps, "
                f"{float(after.get('wall_time_s', 0.0)) / 3600:.2f} h in all"
            )
            if after.get("paused"):  # paused is never finished (ResumeState)
                log(f"{spec.name}: paused before the deadline")
                break
        log("campaign: stopped")
    return campaign_status(Campaign(campaign.name, tuple(selected)), runs_root, packed_root, bundle)


def run_queue(
    names: Sequence[Campaign | str] | None = None,
    hours: float = 2.5,
    only: Sequence[str] | None = None,
    shard: str | None = None,
    runs_root: Path | str = RUNS_ROOT,
    packed_root: Path | str = PACKED_ROOT,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """:func:`run_campaign` over several campaigns in order, within one ``hours`` budget.

    The next campaign starts only when every selected run of the one before is done, so a
    session whose campaign finishes early goes on with the next instead of idling.

    Args:
        names: campaigns or their names (default :func:`campaign_names`, the declared order).
        hours: wall-clock budget of the whole call.
        only: run names, looked up in every campaign of ``names``; an unknown one is an error.
        shard: ``"K/N"``, applied to each campaign's runs (:meth:`Campaign.select`).
        runs_root, packed_root: as for :func:`run_campaign`; kwargs: its ``speed``,
            ``verbose`` and ``stream`` (each campaign reads its own bundle).

    Returns:
        the :func:`run_status` rows of the campaigns reached, in order.
    """
    deadline = time.time() + hours * 3600
    queue = [
        load_campaign(name) if isinstance(name, str) else name
        for name in (names or campaign_names())
    ]
    if only:
        declared = {spec.name for campaign in queue for spec in campaign.runs}
        unknown = [name for name in only if name not in declared]
        if unknown:
            raise ValueError(
                f"no run {unknown} in the campaigns {[c.name for c in queue]}; "
                "`saunetv2 campaign status` lists them."
            )
    rows: list[dict[str, Any]] = []
    for campaign in queue:
        names_here = (
            None if not only else [n for n in only if any(s.name == n for s in campaign.runs)]
        )
        if only and not names_here:
            continue
        left_h = (deadline - time.time()) / 3600
        if left_h <= 0:
            break
        reached = run_campaign(
            campaign, left_h, names_here, shard, runs_root, packed_root, **kwargs
        )
        rows.extend(reached)
        if any(row["status"] not in DONE for row in reached):
            break  # the deadline came before this campaign was done
    return rows


def _close_segment(run_dir: Path, ended_by: str) -> None:
    """Complete the open (last) entry of ``segments.json`` from the run's saved state.

    A session opens its segment before training and closes it afterwards; one that was killed
    leaves it open, and the next session closes it from ``resume/state.json`` (the last
    completed epoch; its modification time stands for the end). A segment in which no epoch
    completed is dropped.
    """
    path = run_dir / SEGMENTS_FILE
    segments = _read_json(path, [])
    if not segments or segments[-1]["epochs"][1] is not None:
        return
    segment, state_path = segments[-1], run_dir / "resume" / "state.json"
    state = run_state(run_dir) or {}
    done = int(state.get("completed_epochs", 0))
    if done <= segment["epochs"][0]:
        _write_json(path, segments[:-1])
        return
    if ended_by == KILLED:  # the last saved epoch is the last sign of life
        ended = _dt.datetime.fromtimestamp(state_path.stat().st_mtime, _dt.timezone.utc)
        end = ended.isoformat(timespec="seconds")
    else:
        end = _now()
    segment.update(
        ended=end,
        ended_by=ended_by,
        epochs=[segment["epochs"][0], done],
        steps=[segment["steps"][0], int(state.get("optimizer_iterations", 0))],
        wall_time_s=float(state.get("wall_time_s", 0.0)) - segment["wall_time_before_s"],
        load_average=_load_average(),
    )
    _write_json(path, segments)


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# --------------------------------------------------------------------------------------------
# Scoring


def _saved_config(spec: RunSpec, run_dir: Path):
    """The run's configuration with the data root its folder was trained on (``config.json``)."""
    saved = json.loads((Path(run_dir) / "config.json").read_text("utf-8"))
    return spec.config().replace(data_root=saved["data_root"])


def _float32_model(config, weights: Path | Sequence[Any]):
    """The run's model built in float32 at the dataset side, with ``weights`` loaded.

    ``weights`` is a ``.keras`` / ``.weights.h5`` file or the arrays of ``model.get_weights()``
    (EarlyStopping's best weights, kept as ``.npz``).
    """
    import keras

    from saunetv2_lib.models import get_model

    keras.backend.clear_session()
    model = get_model(config.model, (config.side, config.side, 3), **config.model_kwargs)
    if isinstance(weights, (str, Path)):
        model.load_weights(weights)
    else:
        model.set_weights(list(weights))
    return model


def _evaluate_checkpoint(
    spec: RunSpec,
    run_dir: Path,
    weights: Path | Sequence[Any],
    batch_size: int = 2,
    max_test_images: int | None = None,
):
    """The :class:`~saunetv2_lib.evaluation.EvalResult` of one checkpoint on the test split,
    under the paper's protocol (whole image, per image, > 0.5, the run's anchor)."""
    from saunetv2_lib.evaluation import Protocol, evaluate

    config = _saved_config(spec, run_dir)
    return evaluate(
        _float32_model(config, weights),
        config.dataset,
        "test",
        Protocol(anchor=config.anchor, side=config.side),
        root=config.data_root,
        batch_size=batch_size,
        max_images=max_test_images,
    )


def score_checkpoint(
    spec: RunSpec,
    run_dir: Path,
    weights: Path | Sequence[Any],
    batch_size: int = 2,
    max_test_images: int | None = None,
) -> dict[str, Any]:
    """One checkpoint of a run under the paper's protocol (test split, whole image, per image,
    > 0.5, the run's anchor): the summary metrics (fractions) and ``per_image_f1``
    (``{image name: F1}``). ``max_test_images`` scores only the first N test images (tests).
    """
    result = _evaluate_checkpoint(spec, run_dir, weights, batch_size, max_test_images)
    return {
        **{key: float(value) for key, value in result.summary.items()},
        "per_image_f1": {r["name"]: float(r["f1"]) for r in result.per_image},
    }


def score_milestones(
    spec: RunSpec, run_dir: Path, batch_size: int = 2, max_test_images: int | None = None
) -> list[dict[str, Any]]:
    """Score the milestone checkpoints not scored yet; add them to ``milestones.json``.

    Each milestone is scored twice with :func:`score_checkpoint`: ``current`` (the weights at
    that step) and ``best`` (the best checkpoint so far, what the run would ship if it stopped
    there). Returns the new rows.
    """
    run_dir = Path(run_dir)
    scored = _read_json(run_dir / MILESTONES_FILE, [])
    done = {(row["milestone"], row["kind"]) for row in scored}
    new = []
    for record_path in sorted((run_dir / "milestones").glob("step_*.json")):
        record = json.loads(record_path.read_text("utf-8"))
        for kind, suffix in (("current", ""), ("best", "_best")):
            weights = run_dir / "milestones" / f"{record['weights']}{suffix}.weights.h5"
            if (record["milestone"], kind) in done or not weights.is_file():
                continue
            scores = score_checkpoint(spec, run_dir, weights, batch_size, max_test_images)
            new.append({**record, "kind": kind, **scores})
    if new:
        rows = sorted([*scored, *new], key=lambda r: (r["milestone"], r["kind"]))
        _write_json(run_dir / MILESTONES_FILE, rows)
    return new


def finish_run(spec: RunSpec, run_dir: Path) -> dict[str, Any]:
    """A finished run's result (``result.json``): its best checkpoint under every protocol.

    Holds ``metrics`` (rows of :func:`~saunetv2_lib.evaluation.protocol_switchboard`),
    ``per_image`` (paper protocol), ``train_threshold``, ``saturation``, the run's summary
    (epochs, steps, best epoch, wall time over every session) and ``environment``. Written once;
    read afterwards, except that a result written before ``saturation`` (or one of its
    fields) existed gains it from the run's best checkpoint.
    """
    from saunetv2_lib.evaluation import probability_saturation, score_every_protocol
    from saunetv2_lib.host import environment_info
    from saunetv2_lib.metrics import SATURATION_FIELDS

    run_dir = Path(run_dir)
    existing = _read_json(run_dir / RESULT_FILE)
    if existing is not None and not set(SATURATION_FIELDS) <= set(existing.get("saturation", {})):
        tested = _evaluate_checkpoint(spec, run_dir, run_dir / "best.keras")
        existing["saturation"] = probability_saturation(tested)
        _write_json(run_dir / RESULT_FILE, existing)
    if existing is not None:
        return existing
    state = run_state(run_dir) or {}
    config = _saved_config(spec, run_dir)
    model = _float32_model(config, run_dir / "best.keras")
    scores = score_every_protocol(
        model, config.dataset, config.data_root, anchor=config.anchor, side=config.side
    )
    checkpoint = state.get("checkpoint", {})
    result = {
        "finished": _now(),
        "epochs_run": state.get("completed_epochs"),
        "optimizer_steps": state.get("optimizer_iterations"),
        "stopped_early": state.get("completed_epochs", 0) < config.epochs,
        "best_epoch": None
        if checkpoint.get("best_epoch") is None
        else checkpoint["best_epoch"] + 1,
        "best_val": checkpoint.get("best"),
        "wall_time_s": state.get("wall_time_s"),
        **scores,
        "environment": environment_info(),
    }
    _write_json(run_dir / RESULT_FILE, result)
    return result


# --------------------------------------------------------------------------------------------
# Packing and the bundle


def bundle_path(campaign: str) -> Path:
    """The committed bundle of ``campaign``: ``saunetv2_lib/results/campaign_<name>.json``."""
    return RESULTS_DIR / f"campaign_{campaign}.json"


def _same_arrays(a: Sequence[Any], b: Sequence[Any]) -> bool:
    import numpy as np

    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _npz_arrays(path: Path) -> list[Any]:
    """The arrays of an ``early_stopping_best_eNNNN.npz`` (``w0``, ``w1``, ... in model order)."""
    import numpy as np

    with np.load(path) as stored:
        return [stored[f"w{i}"] for i in range(len(stored.files))]


def _split_file(path: Path, part_bytes: int) -> dict[str, Any]:
    """Cut ``path`` into ``<name>.part000``, ... of at most ``part_bytes``; returns the record."""
    import hashlib

    digest, parts = hashlib.sha256(), []
    with open(path, "rb") as handle:
        for index, block in enumerate(iter(lambda: handle.read(part_bytes), b"")):
            digest.update(block)
            part = path.with_name(f"{path.name}.part{index:03d}")
            part.write_bytes(block)
            parts.append(part.name)
    record = {"bytes": path.stat().st_size, "sha256": digest.hexdigest(), "parts": parts}
    path.unlink()
    return record


def _pack_run(spec: RunSpec, run_dir: Path, destination: Path) -> list[str]:
    """Copy what a fresh machine needs to continue ``run_dir`` into ``destination``, slim.

    ``best.keras`` is stored without optimizer state (only its weights are ever read once a
    run is packed), and not at all when its weights equal the resume model's (the best epoch is
    the latest one); EarlyStopping's best weights likewise. Every weights file is stored
    compactly and losslessly (:func:`~saunetv2_lib.experiments.packing.compact_weights_file`),
    so that replacing one pack by the next fits a submission. Files still over
    :data:`PART_BYTES` are stored in parts with their SHA-256. ``packed.json`` records all
    three; :func:`restore_packed` rebuilds the files. Returns the run-folder files a restore
    gives back.
    """
    from saunetv2_lib.experiments.packing import compact_weights_file

    state = run_state(run_dir)
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "resume").mkdir(parents=True)
    copied = []
    for name in PACKED_FILES:
        if name != "best.keras" and (run_dir / name).is_file():
            shutil.copy2(run_dir / name, staging / name)
            copied.append(name)
    derived: dict[str, str] = {}
    config = _saved_config(spec, run_dir)
    resume_weights = None
    if state is not None:
        model_name = f"resume/{state['model_file']}"
        shutil.copy2(run_dir / model_name, staging / model_name)
        copied.append(model_name)
        resume_weights = _float32_model(config, run_dir / model_name).get_weights()
        es_file = state.get("early_stopping", {}).get("weights_file")
        if es_file:
            es_name = f"resume/{es_file}"
            if _same_arrays(_npz_arrays(run_dir / es_name), resume_weights):
                derived[es_name] = model_name
            else:
                shutil.copy2(run_dir / es_name, staging / es_name)
            copied.append(es_name)
        shutil.copy2(run_dir / "resume" / "state.json", staging / "resume" / "state.json")
        copied.append("resume/state.json")
    if (run_dir / "best.keras").is_file():
        best = _float32_model(config, run_dir / "best.keras")
        if resume_weights is not None and _same_arrays(best.get_weights(), resume_weights):
            derived["best.keras"] = model_name
        else:
            best.save(staging / "best.keras")  # uncompiled: no optimizer state
        copied.append("best.keras")
    compacted = {
        path.relative_to(staging).as_posix(): dict(
            zip(("bytes", "compact_bytes"), compact_weights_file(path), strict=True)
        )
        for path in sorted(staging.rglob("*"))
        if path.suffix in (".keras", ".npz")
    }
    split = {
        path.relative_to(staging).as_posix(): _split_file(path, PART_BYTES)
        for path in sorted(staging.rglob("*"))
        if path.is_file() and path.stat().st_size > PART_BYTES
    }
    manifest = {
        "format": PACK_FORMAT,
        "weights_of": derived,
        "compact": compacted,
        "split": split,
    }
    _write_json(staging / PACK_MANIFEST, manifest)
    # Replace the previous copy in one step, so an interrupted pack leaves the old one intact.
    old = destination.with_name(destination.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if destination.exists():
        os.replace(destination, old)
    os.replace(staging, destination)
    shutil.rmtree(old, ignore_errors=True)
    return copied


def pack_campaign(
    campaign: Campaign | str = "paper",
    runs_root: Path | str = RUNS_ROOT,
    packed_root: Path | str = PACKED_ROOT,
    bundle: Path | str | None = None,
    score: bool = True,
) -> dict[str, Any]:
    """Score pending milestones, pack unfinished runs, and write the campaign's bundle.

    An unfinished run's resume state is copied to ``packed_root/<campaign>/<run>/`` (replacing
    the previous copy). A finished run is scored under every protocol (:func:`finish_run`) and
    leaves only its result in the bundle; its packed copy is removed. Runs without a folder on
    this machine keep their packed copy and bundle entry. An entry, packed copy or folder of a
    configuration the spec no longer declares (:meth:`RunSpec.changed_fields`) is not the run:
    the entry moves under the bundle's ``superseded`` key (with its ``changed_fields``), the
    packed copy is removed and the folder is not packed. Returns the bundle.
    """
    from saunetv2_lib.training.history import read_history

    campaign = load_campaign(campaign) if isinstance(campaign, str) else campaign
    runs_root, packed_root = Path(runs_root), Path(packed_root)
    bundle = Path(bundle) if bundle is not None else bundle_path(campaign.name)
    previous_bundle = _read_json(bundle, {})
    previous = previous_bundle.get("runs", {})
    superseded: dict[str, Any] = dict(previous_bundle.get("superseded", {}))
    runs: dict[str, Any] = {}
    for spec in campaign.runs:
        run_dir = runs_root / spec.name
        packed = packed_root / campaign.name / spec.name
        old = previous.get(spec.name)
        changed = spec.changed_fields(old.get("configuration", {})) if old else []
        if changed:
            stamp = old.get("result", {}).get("finished") or previous_bundle.get("packed", "")
            superseded[f"{spec.name}@{stamp}"] = {**old, "changed_fields": changed}
            old = None
        if (packed / "config.json").is_file() and not holds_run(spec, packed):
            shutil.rmtree(packed)  # a superseded configuration's resume state (git keeps it)
        if not holds_run(spec, run_dir):  # no folder here, or a superseded one
            if old is not None:
                runs[spec.name] = old
            continue
        if score:
            score_milestones(spec, run_dir)
        status = run_status(spec, run_dir)
        entry: dict[str, Any] = {
            "description": spec.description,
            "ship_as": spec.ship_as,
            "status": status,
            "configuration": json.loads((run_dir / "config.json").read_text("utf-8")),
            "history": read_history(run_dir / "history.csv"),
            "segments": _read_json(run_dir / SEGMENTS_FILE, []),
            "milestones": _read_json(run_dir / MILESTONES_FILE, []),
        }
        entry["configuration"].pop("data_root", None)  # machine-specific
        if status["status"] in DONE:
            if score:
                entry["result"] = finish_run(spec, run_dir)
            if (run_dir / CHECKPOINTS_FILE).is_file():  # saunetv2 campaign checkpoints
                entry["checkpoints"] = _read_json(run_dir / CHECKPOINTS_FILE)
            shutil.rmtree(packed, ignore_errors=True)
        else:
            packed.parent.mkdir(parents=True, exist_ok=True)
            entry["packed"] = _pack_run(spec, run_dir, packed)
        runs[spec.name] = entry
    from saunetv2_lib.host import host_info

    payload = {
        "campaign": campaign.name,
        "notes": campaign.notes,
        "packed": _now(),
        "host": host_info(),
        "runs": runs,
        **({"superseded": superseded} if superseded else {}),
    }
    bundle.parent.mkdir(parents=True, exist_ok=True)
    _write_json(bundle, payload)
    return payload


def pack_queue(
    names: Sequence[str] | None = None,
    runs_root: Path | str = RUNS_ROOT,
    packed_root: Path | str = PACKED_ROOT,
) -> dict[str, dict[str, Any]]:
    """:func:`pack_campaign` of each campaign in ``names`` (default: all) that has something
    to pack: a run folder under ``runs_root`` or a bundle already. Returns ``{name: bundle}``."""
    packed = {}
    for name in names or campaign_names():
        campaign = load_campaign(name)
        started = any(
            (Path(runs_root) / spec.name / "config.json").is_file() for spec in campaign.runs
        )
        if started or bundle_path(name).is_file():
            packed[name] = pack_campaign(campaign, runs_root, packed_root)
    return packed


def load_campaign_bundle(
    campaign: str = "paper", path: Path | str | None = None, missing_ok: bool = False
) -> dict[str, Any]:
    """The committed bundle of ``campaign`` (:func:`pack_campaign`).

    ``missing_ok``: a campaign not packed yet gives an empty bundle (``{"runs": {}}``) instead
    of ``FileNotFoundError``.
    """
    path = Path(path) if path is not None else bundle_path(campaign)
    if not path.is_file() and missing_ok:
        return {"campaign": campaign, "runs": {}}
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run `saunetv2 campaign run` and `saunetv2 campaign pack`."
        )
    return json.loads(path.read_text("utf-8"))


def progress_points(bundle: Mapping[str, Any], run: str, kind: str = "best") -> list[dict]:
    """A run's scored milestones as ``{"steps", "hours", "f1", "epoch"}`` points, by steps.

    ``kind`` is ``"best"`` (the best checkpoint so far: what the run would ship if it stopped
    there) or ``"current"`` (the weights at that step). A finished run adds its final result.
    """
    entry = bundle["runs"].get(run)
    if entry is None:
        return []
    points = [
        {"steps": m["steps"], "hours": m["wall_time_s"] / 3600, "f1": m["f1"], "epoch": m["epoch"]}
        for m in entry.get("milestones", [])
        if m["kind"] == kind
    ]
    result = entry.get("result")
    if result is not None:
        from saunetv2_lib.weights import paper_row

        points.append({"steps": result["optimizer_steps"], "hours": result["wall_time_s"] / 3600,
                       "f1": paper_row(result)["f1"], "epoch": result["epochs_run"]})  # fmt: skip
    return sorted(points, key=lambda p: p["steps"])


def card_point(card: Mapping[str, Any]) -> dict:
    """A shipped model card as one progress point (steps, hours, F1 under the paper protocol)."""
    from saunetv2_lib.weights import paper_row

    return {
        "steps": card["training"]["optimizer_iterations"],
        "hours": card["wall_time_s"] / 3600,
        "f1": paper_row(card)["f1"],
        "epoch": card["epochs_run"],
    }


def ship_campaign_run(
    spec: RunSpec, runs_root: Path | str = RUNS_ROOT, directory: Path | str | None = None
) -> dict[str, Any]:
    """Ship a finished run as ``spec.ship_as``; returns the new model card.

    The weights shipped under that name before are first kept as ``spec.keep_previous_as``
    (when declared and not kept yet). The card gets the campaign's record beside the usual
    training summary: every training segment (machine, precision, wall time), the optimizer
    steps and the scored milestones.
    """
    from saunetv2_lib.experiments.ship import ship_run
    from saunetv2_lib.weights import keep_as

    run_dir = Path(runs_root) / spec.name
    status = run_status(spec, run_dir)
    if status["status"] not in DONE:
        raise ValueError(
            f"{spec.name} is {status['status']} ({status['epochs_done']} of "
            f"{status['epochs_total']} epochs); only a finished run is shipped."
        )
    if not spec.ship_as:
        raise ValueError(f"{spec.name} declares no ship_as name.")
    folder = Path(directory) if directory is not None else WEIGHTS_DIR
    if (
        spec.keep_previous_as
        and (folder / f"{spec.ship_as}.keras").is_file()
        and not (folder / f"{spec.keep_previous_as}.keras").exists()
    ):
        keep_as(spec.ship_as, spec.keep_previous_as, folder)
    record = {
        "campaign_run": spec.name,
        "optimizer_steps": status["steps_done"],
        "segments": _read_json(run_dir / SEGMENTS_FILE, []),
        "milestones": [
            {k: v for k, v in m.items() if k != "per_image_f1"}
            for m in _read_json(run_dir / MILESTONES_FILE, [])
        ],
    }
    return ship_run(run_dir, spec.ship_as, directory=folder, extra={"campaign": record})


def progress_markdown(
    bundle: Mapping[str, Any], run: str, card: Mapping[str, Any], paper_f1: float
) -> str:
    """Notebook 4's "Where the campaign stands", every number from ``bundle`` and ``card``.

    A run in progress states its pace, time left and latest milestone; a finished one (its
    result in the bundle) how it ended and what its best checkpoint scores.

    ``card`` is the model card of the short-schedule weights to set the run against;
    ``paper_f1`` the paper's F1 (%) on the run's dataset.
    """
    entry = bundle["runs"][run]
    state = entry["status"]
    if state.get("status") in DONE and entry.get("result") is not None:
        from saunetv2_lib.weights import paper_row

        result, short = entry["result"], card_point(card)
        how = "early stopping ended it" if result["stopped_early"] else "it ran to the end"
        return (
            f"**Where the campaign stands.** `{run}` is finished: {how} after "
            f"{result['epochs_run']} of {state['epochs_total']} epochs "
            f"({result['optimizer_steps']:,} of {state['steps_total']:,} optimizer steps), in "
            f"{result['wall_time_s'] / 3600:.2f} h at {state['s_per_image']:.2f} s per training "
            f"image. Its best checkpoint (epoch {result['best_epoch']}) scores F1 "
            f"{100 * paper_row(result)['f1']:.2f} on the test images. The `{card['name']}` "
            f"weights ({card['profile']}) score {100 * short['f1']:.2f} after "
            f"{short['steps']:,} steps, and the paper reports {paper_f1:.2f}."
        )
    sentence = (
        f"**Where the campaign stands.** `{run}` has run {state['epochs_done']} of "
        f"{state['epochs_total']} epochs ({state['steps_done']:,} of {state['steps_total']:,} "
        f"optimizer steps) in {state['wall_time_s'] / 3600:.2f} h, at {state['s_per_image']:.2f} s "
        f"per training image; the rest would take about {state['hours_left']:.1f} h at that pace, "
        "unless the paper's early-stopping rule ends it sooner. "
    )
    points = progress_points(bundle, run, "best")
    if not points:
        return sentence + "No milestone checkpoint has been scored yet."
    latest, short = points[-1], card_point(card)
    return sentence + (
        f"At {latest['steps']:,} steps, the best checkpoint so far scores F1 "
        f"{100 * latest['f1']:.2f} on the test images. The `{card['name']}` weights "
        f"({card['profile']}) score {100 * short['f1']:.2f} after {short['steps']:,} steps, and "
        f"the paper reports {paper_f1:.2f}."
    )
