"""Shipped trained weights: a small registry with SHA-256-checked model cards.

Each shipped model is a pair of files in ``saunetv2_lib/weights/``:

* ``NAME.keras``: the Keras 3 model (architecture + weights), loadable under the default
  ``safe_mode`` because every layer of the library is a registered class;
* ``NAME.json``: its model card, holding the file's ``sha256`` and size, the model and training
  configuration, epochs run, wall time, hardware, backend, and the test metrics under every
  evaluation protocol (rows of :func:`saunetv2_lib.evaluation.protocol_switchboard`).

Names: ``drive`` (trained on DRIVE) and ``stare`` (trained on STARE). They are produced by the
training runs and installed with :func:`ship_weights`; until then :func:`load_weights` with a
name raises a ``FileNotFoundError`` that says so. Any ``.keras`` path works too; when a card
``<stem>.json`` lies beside it, its hash is checked as well.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from saunetv2_lib.paths import WEIGHTS_DIR

# The folder of the shipped weights; functions read it at call time so tests can point it elsewhere.

# Names the project intends to ship (the DRIVE and STARE training runs).
SHIPPED_NAMES = ("drive", "stare")

MODEL_SUFFIXES = (".keras",)


def sha256_of(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path_for(model_path: str | Path) -> Path:
    """The model card that belongs to ``model_path``: the same stem with ``.json``."""
    return Path(model_path).with_suffix(".json")


def _to_jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, paths and tuples into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(key): _to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return value


def write_model_card(model_path: str | Path, card: Mapping[str, Any]) -> Path:
    """Write ``<stem>.json`` beside ``model_path`` holding ``card`` plus the file's hash and size.

    The keys ``file``, ``sha256`` and ``size_bytes`` are computed here (any value given for them
    in ``card`` is replaced). Returns the card's path.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(
            f"Cannot write a model card: model file {model_path} does not exist."
        )
    full = dict(_to_jsonable(dict(card)))
    full.update(
        file=model_path.name,
        sha256=sha256_of(model_path),
        size_bytes=model_path.stat().st_size,
    )
    out = card_path_for(model_path)
    out.write_text(json.dumps(full, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out


def read_model_card(name_or_path: str | Path) -> dict[str, Any]:
    """The model card of a shipped name or of a ``.keras`` path (its ``<stem>.json``)."""
    model_path = resolve_weights(name_or_path)
    card_path = card_path_for(model_path)
    if not card_path.is_file():
        raise FileNotFoundError(f"No model card {card_path} for weights {model_path}.")
    try:
        return json.loads(card_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"Model card {card_path} is not valid JSON: {error}.") from error


def list_weights() -> dict[str, bool]:
    """Every known weights name mapped to whether its ``.keras`` file and card are present."""
    names = list(SHIPPED_NAMES)
    if WEIGHTS_DIR.is_dir():
        names += sorted(p.stem for p in WEIGHTS_DIR.glob("*.json") if p.stem not in names)
    return {
        name: (WEIGHTS_DIR / f"{name}.keras").is_file() and (WEIGHTS_DIR / f"{name}.json").is_file()
        for name in names
    }


def _is_name(value: str | Path) -> bool:
    text = str(value)
    return (
        not isinstance(value, Path)
        and "/" not in text
        and "\\" not in text
        and Path(text).suffix == ""
    )


def resolve_weights(name_or_path: str | Path) -> Path:
    """Map a shipped name (``drive``, ``stare``) or a path to an existing ``.keras`` file.

    Raises ``FileNotFoundError`` when a shipped name has no file yet or a path does not exist, and
    ``ValueError`` for an unknown name.
    """
    if _is_name(name_or_path) and not Path(str(name_or_path)).exists():
        name = str(name_or_path).lower()
        path = WEIGHTS_DIR / f"{name}.keras"
        known = list_weights()
        if name not in known:
            raise ValueError(
                f"Unknown weights name {name_or_path!r}: shipped names are "
                f"{', '.join(known)}; or give the path of a .keras file."
            )
        if not path.is_file() or not card_path_for(path).is_file():
            raise FileNotFoundError(
                f"The {name!r} weights are not shipped yet ({path} or its card {path.stem}.json is "
                f"missing). They come from the {name.upper()} training run and are installed with "
                "saunetv2_lib.weights.ship_weights; meanwhile pass the path of a trained .keras "
                "file (e.g. a run's best.keras)."
            )
        return path
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {path} does not exist.")
    if path.suffix not in MODEL_SUFFIXES:
        raise ValueError(
            f"Weights file {path} must be a Keras 3 model file ({', '.join(MODEL_SUFFIXES)})."
        )
    return path


def verify_weights(model_path: str | Path, card: Mapping[str, Any] | None = None) -> str:
    """Check ``model_path`` against the ``sha256`` of its card; return the digest.

    ``card`` defaults to the ``<stem>.json`` beside the file. Raises ``ValueError`` on a mismatch
    or when the card has no ``sha256``.
    """
    model_path = Path(model_path)
    if card is None:
        card = json.loads(card_path_for(model_path).read_text(encoding="utf-8"))
    expected = card.get("sha256")
    if not expected:
        raise ValueError(
            f"Model card of {model_path} has no 'sha256' entry; rewrite it with write_model_card."
        )
    actual = sha256_of(model_path)
    if actual != expected:
        raise ValueError(
            f"SHA-256 mismatch for {model_path}: its model card says {expected}, the file hashes to "
            f"{actual}. The file is corrupted or was replaced without updating its card; restore it "
            "(e.g. git checkout of the file) or re-ship it with ship_weights."
        )
    return actual


def load_weights(name_or_path: str | Path, verify: bool = True, compile: bool = False):
    """Load a shipped model by name (``drive``, ``stare``) or any ``.keras`` file.

    When the model has a card (always for names; ``<stem>.json`` beside a path) and ``verify`` is
    true, the file's SHA-256 is checked first. Returns the ``keras.Model`` (not compiled unless
    ``compile``).
    """
    model_path = resolve_weights(name_or_path)
    card_path = card_path_for(model_path)
    if verify and card_path.is_file():
        verify_weights(model_path)

    import keras

    # Importing registers the library's serialisable layers and losses with Keras.
    import saunetv2_lib.models.layers  # noqa: F401

    try:
        import saunetv2_lib.losses  # noqa: F401
    except ImportError:  # losses may not be present in a partial install
        pass
    try:
        return keras.saving.load_model(model_path, compile=compile)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"Cannot load weights {model_path}: {error}") from error


def _metric_rows(eval_results: Any) -> list[dict[str, Any]]:
    """Normalise evaluation output into JSON rows (protocol fields + metrics)."""
    if eval_results is None:
        return []
    if hasattr(eval_results, "as_row"):
        return [eval_results.as_row()]
    if isinstance(eval_results, Mapping):
        return [dict(eval_results)]
    rows: list[dict[str, Any]] = []
    for item in eval_results:
        rows.extend(_metric_rows(item))
    return rows


def _save_inference_copy(source: Path, destination: Path) -> None:
    """Save ``source`` without its optimizer state (3.4 MB -> ~1.2 MB for SA-UNetv2), in float32.

    A run trained under ``mixed_bfloat16`` ships as a float32 model (same weights), so that
    loading the shipped file predicts in float32.
    """
    import keras

    import saunetv2_lib.models  # noqa: F401  (registers the custom layers)
    from saunetv2_lib.training import as_float32

    model = as_float32(keras.saving.load_model(source, compile=False))
    temporary = destination.with_suffix(".tmp.keras")
    model.save(temporary)
    temporary.replace(destination)


def ship_weights(
    run_dir: str | Path,
    name: str,
    eval_results: Any,
    directory: str | Path | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Install a training run's ``best.keras`` as shipped weights ``NAME`` with its model card.

    Args:
        run_dir: a training output folder (:func:`saunetv2_lib.training.train`) holding
            ``best.keras`` and optionally ``summary.json`` (stored under ``training``; its model,
            dataset, epochs, wall time, hardware and backend are lifted to the top level) and
            ``config.json`` (stored as ``configuration``).
        name: the registry name, e.g. ``"drive"``.
        eval_results: an :class:`~saunetv2_lib.evaluation.EvalResult`, a list of them, or rows of
            :func:`~saunetv2_lib.evaluation.protocol_switchboard` (dicts); stored under ``metrics``.
        directory: destination folder (default: the package's ``weights/``).
        extra: more card entries (e.g. ``{"notes": ...}``).

    Returns:
        The path of the installed ``NAME.keras``.
    """
    run_dir = Path(run_dir)
    source = run_dir / "best.keras"
    if not source.is_file():
        raise FileNotFoundError(f"Training run {run_dir} has no best.keras to ship.")
    if not name or not _is_name(name):
        raise ValueError(f"Weights name must be a plain name like 'drive', got {name!r}.")
    summary: dict[str, Any] = {}
    if (run_dir / "summary.json").is_file():
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))

    destination_dir = Path(directory) if directory is not None else WEIGHTS_DIR
    destination_dir.mkdir(parents=True, exist_ok=True)
    destination = destination_dir / f"{name.lower()}.keras"
    _save_inference_copy(source, destination)

    card: dict[str, Any] = {
        "name": name.lower(),
        "shipped": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source_run": str(run_dir),
    }
    lifted = (
        "profile",
        "model",
        "dataset",
        "epochs_run",
        "max_epochs",
        "stopped_early",
        "best_epoch",
        "monitor",
        "wall_time_s",
    )
    card.update({key: summary[key] for key in lifted if key in summary})
    # training.py records hardware and backend under "environment"; accept them at the top too.
    environment = summary.get("environment", {})
    card["backend"] = summary.get("backend", environment.get("backend"))
    card["hardware"] = summary.get(
        "hardware",
        {k: environment[k] for k in ("cpu_model", "cpu_count", "gpus") if k in environment},
    )
    if "versions" in environment:
        card["versions"] = environment["versions"]
    if (run_dir / "config.json").is_file():
        card["configuration"] = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    card["metrics"] = _metric_rows(eval_results)
    card["training"] = summary
    if extra:
        card.update(extra)
    write_model_card(destination, card)
    return destination


def paper_row(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The card's metric row under the paper's protocol (flag ``paper`` true), if any."""
    rows: Iterable[Mapping[str, Any]] = card.get("metrics", [])
    for row in rows:
        if row.get("paper"):
            return dict(row)
    return None


def card_row(
    card: Mapping[str, Any],
    region: str = "whole",
    aggregate: str = "per_image",
    threshold: float = 0.5,
    anchor: str = "top_left",
    labels: str = "reference",
) -> dict[str, Any] | None:
    """The card's metric row under one protocol (defaults: the paper's for ``region``), if any."""
    for row in card.get("metrics", []):
        if (
            row.get("region") == region
            and row.get("aggregate") == aggregate
            and float(row.get("threshold", -1)) == threshold
            and row.get("anchor", "top_left") == anchor
            and row.get("labels", "reference") == labels
        ):
            return dict(row)
    return None


def shipped_paper_row(name: str) -> dict[str, Any] | None:
    """:func:`paper_row` of the shipped weights ``name``; ``None`` when they are not shipped."""
    if not list_weights().get(name):
        return None
    return paper_row(read_model_card(name))


def keep_as(name: str, new_name: str, directory: str | Path | None = None) -> Path:
    """Copy shipped weights ``name`` (file and card) to ``new_name``, before a re-ship replaces them.

    The copy's card keeps everything of the original's, with ``name`` set to ``new_name`` and
    ``kept_from`` naming the original; its file, hash and size are written anew. Refuses to
    overwrite an existing ``new_name``. Returns the new ``.keras`` path.
    """
    import shutil

    folder = Path(directory) if directory is not None else WEIGHTS_DIR
    source, target = folder / f"{name}.keras", folder / f"{new_name}.keras"
    if not _is_name(new_name):
        raise ValueError(
            f"Weights name must be a plain name like 'drive_450steps', got {new_name!r}."
        )
    if not source.is_file() or not card_path_for(source).is_file():
        raise FileNotFoundError(f"No shipped weights {name!r} in {folder} to keep.")
    if target.exists() or card_path_for(target).exists():
        raise FileExistsError(f"{target} exists already; choose another name.")
    card = json.loads(card_path_for(source).read_text(encoding="utf-8"))
    shutil.copy2(source, target)
    card.update(name=new_name, kept_from=name)
    write_model_card(target, card)
    return target
