"""Train and evaluate the sibling designs beside SA-UNetv2 under one protocol and one budget.

Every model is trained with :func:`saunetv2_lib.training.train` from the same profile and the
same overrides (the stated budget: epochs, patch size, batch size, schedule), then its
``best.keras`` checkpoint (best validation accuracy, as the paper keeps) is scored with
:func:`saunetv2_lib.evaluation.evaluate` under one :class:`~saunetv2_lib.evaluation.Protocol`, and
its complexity is counted at the dataset's model side. Only the model name (and optional
per-model factory arguments, e.g. a narrower SA-UMamba, which must then be stated) differs between
runs. Runs live in ``out_root/<model>/`` and resume where they stopped; the table is written to
``out_root/comparison.json`` and ``comparison.csv`` after every model. Separate calls on one
``out_root`` (e.g. the expensive SA-UMamba in a process of its own) add to the same table, and
a call whose budget differs from the rows already there is refused.

SA-UMamba is trained from scratch (no VMamba ImageNet weights exist for this port); its rows carry
that note.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from saunetv2_lib.paths import RESULTS_DIR

REFERENCES = ("sa_unet_v2", "sa_unet")
DESIGNS = ("unet_dca", "sa_unet_v2_dca", "simple_unet", "simple_unet_small", "sa_umamba")
NOTES = {
    "sa_umamba": "trained from scratch: no pre-trained VMamba weights (the paper used VMamba-S)"
}
# Notebook 7's quick profile (CI) narrows SA-UMamba (2.2 M instead of 56 M parameters): at full
# width its graph tracing, 592-px validation and timing were 4 of the quick run's 7 minutes. The
# committed comparison uses the seed's configuration; the quick rows record these kwargs.
QUICK_MODEL_KWARGS = {
    "sa_umamba": {"embed_dim": 24, "depths": [1, 1, 1, 1], "decoder_depths": [1, 1, 1, 1]}
}
BUDGET_FIELDS = ("profile", "epochs", "batch_size", "patch_size", "epoch_repeats", "lr", "side")


def compare_designs(
    out_root: str | Path,
    models: Sequence[str] = REFERENCES + DESIGNS,
    profile: str = "drive/quick",
    overrides: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    protocol=None,
    complexity_side: int | None = None,
    eval_batch_size: int = 2,
    max_test_images: int | None = None,
    train_runs: bool = True,
    verbose: int | str = 0,
) -> list[dict[str, Any]]:
    """Train (or resume) and evaluate every model in ``models``; return and write the table.

    Args:
        out_root: folder of the runs (``out_root/<model>/``) and of the comparison files.
        models: registry names; the default is SA-UNetv2 and SA-UNet (reference rows) and the
            five sibling designs.
        profile: training profile shared by all runs, e.g. ``"drive/quick"`` or ``"drive/full"``.
        overrides: :class:`~saunetv2_lib.training.TrainConfig` fields applied to every run (the
            budget), e.g. ``{"epochs": 30, "patch_size": 128}``.
        model_kwargs: per-model factory arguments, e.g. ``{"sa_umamba": {"embed_dim": 48}}``;
            recorded in the rows.
        protocol: evaluation protocol (default: the paper's, :class:`Protocol()`).
        complexity_side: side at which parameters/GFLOPs are counted (default: the dataset's
            model side, 592 for DRIVE).
        eval_batch_size: images per forward pass when evaluating.
        max_test_images: score only the first N test images (quick runs; recorded in the rows as
            ``test_images``); ``None`` scores the whole test split.
        train_runs: ``False`` scores every run's ``best.keras`` as it stands, without training
            further: an unfinished run (e.g. the CPU time ran out) gets a row with
            ``budget_complete`` false, its ``epochs_run`` and a note saying so.
        verbose: ``model.fit`` verbosity.

    Returns:
        One row per model: ``model, role, description, note, params, gflops, gmacs,
        complexity_side, train_wall_s, session_cpu_s, epochs_run, best_epoch, eval_wall_s,
        f1, jaccard, mcc, auc, ...`` (all metrics of the protocol), the budget fields,
        ``model_kwargs`` and ``synthetic_data``.
    """
    from saunetv2_lib.complexity import model_complexity
    from saunetv2_lib.data.datasets import is_synthetic
    from saunetv2_lib.evaluation import Protocol, evaluate, model_side_for
    from saunetv2_lib.models import MODELS, get_model
    from saunetv2_lib.training import load_profile, run_result, train

    protocol = protocol or Protocol()
    overrides = dict(overrides or {})
    model_kwargs = {name: dict(kwargs) for name, kwargs in (model_kwargs or {}).items()}
    unknown = [name for name in [*models, *model_kwargs] if name not in MODELS]
    if unknown:
        raise ValueError(f"Unknown model(s) {unknown}; available: {', '.join(MODELS)}.")
    for reserved in ("model", "model_kwargs"):
        if reserved in overrides:
            raise ValueError(f"overrides may not set {reserved!r}: it differs per model.")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    table = {row["model"]: row for row in read_comparison(out_root)}
    budget = {
        field: _budget_value(load_profile(profile, **overrides), field) for field in BUDGET_FIELDS
    }
    for row in table.values():
        differing = [f for f in BUDGET_FIELDS if row.get(f) != budget[f]]
        if differing:
            raise ValueError(
                f"{out_root / 'comparison.json'} holds {row['model']!r} trained with another "
                f"budget ({', '.join(f'{f}={row.get(f)!r}' for f in differing)}; this call: "
                f"{', '.join(f'{f}={budget[f]!r}' for f in differing)}); use another out_root."
            )

    rows = []
    for name in models:
        kwargs = model_kwargs.get(name, {})
        config = load_profile(profile, model=name, model_kwargs=kwargs, **overrides)
        run_dir = out_root / name
        cpu_start = time.process_time()
        if train_runs:
            resume = (run_dir / "config.json").exists()
            result = train(config, run_dir, resume=resume, verbose=verbose)
        else:
            result = run_result(run_dir)
        session_cpu_s = time.process_time() - cpu_start
        complete = result.stopped_early or result.epochs_run >= config.epochs
        note = NOTES.get(name, "")
        if not complete:
            note = "; ".join(
                filter(None, [note, f"unfinished: {result.epochs_run} of {config.epochs} epochs"])
            )
        keras.backend.clear_session()
        best = keras.saving.load_model(run_dir / "best.keras", compile=False)
        saved = json.loads((run_dir / "config.json").read_text("utf-8"))
        start = time.perf_counter()
        scores = evaluate(
            best,
            config.dataset,
            "test",
            protocol,
            root=saved["data_root"],
            batch_size=eval_batch_size,
            max_images=max_test_images,
        )
        eval_wall_s = time.perf_counter() - start
        side = complexity_side or model_side_for(config.dataset)
        keras.backend.clear_session()
        complexity = model_complexity(
            get_model(name, (side, side, 3), **kwargs), measure_file=False
        )
        keras.backend.clear_session()
        rows.append(
            {
                "model": name,
                "role": "reference" if name in REFERENCES else "design",
                "description": MODELS[name].description,
                "note": note,
                "budget_complete": complete,
                "params": complexity["params"],
                "gflops": complexity["gflops"],
                "gmacs": complexity["gmacs"],
                "complexity_side": side,
                "train_wall_s": result.wall_time_s,
                "session_cpu_s": session_cpu_s,
                "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch,
                "eval_wall_s": eval_wall_s,
                "test_images": len(scores.per_image),
                "per_image_f1": {r["name"]: float(r["f1"]) for r in scores.per_image},
                **{key: float(value) for key, value in scores.summary.items()},
                **{field: _budget_value(config, field) for field in BUDGET_FIELDS},
                "model_kwargs": json.dumps(kwargs, sort_keys=True),
                "synthetic_data": bool(is_synthetic(saved["data_root"])),
            }
        )
        # Re-read before writing: another process may have added rows to this table meanwhile.
        table = {row["model"]: row for row in read_comparison(out_root)}
        table[name] = rows[-1]
        write_comparison(_ordered(table), out_root)
    return rows


def _ordered(table: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows in the canonical order (references, then designs), then any other model."""
    order = {name: index for index, name in enumerate(REFERENCES + DESIGNS)}
    return sorted(table.values(), key=lambda row: order.get(row["model"], len(order)))


def read_comparison(out_root: str | Path) -> list[dict[str, Any]]:
    """The rows of ``out_root/comparison.json`` (``[]`` when there is none yet)."""
    path = Path(out_root) / "comparison.json"
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text("utf-8"))["rows"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a comparison table ({error}); move it away.") from None


def _budget_value(config, field: str) -> Any:
    return config.profile if field == "profile" else getattr(config, field)


def write_comparison(rows: Sequence[Mapping[str, Any]], out_root: str | Path) -> dict[str, Path]:
    """Write ``comparison.json`` (with the host) and ``comparison.csv`` into ``out_root``."""
    from saunetv2_lib.host import host_info

    out_root = Path(out_root)
    paths = {"json": out_root / "comparison.json", "csv": out_root / "comparison.csv"}
    payload = {"host": host_info(), "backend": keras.backend.backend(), "rows": list(rows)}
    paths["json"].write_text(json.dumps(payload, indent=2), "utf-8")
    # The CSV holds the scalar columns; per-image scores stay in the JSON.
    fields = [k for k, v in rows[0].items() if not isinstance(v, dict | list)] if rows else []
    with paths["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return paths


def measure_cpu_time(
    out_root: str | Path,
    side: int | None = None,
    repeats: int = 3,
    models: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Seconds per ``side x side`` image of every trained model in ``out_root``, added to its rows.

    Each model is rebuilt at ``side`` (runs on patches train at the patch size) with the weights
    of its ``best.keras`` and timed with
    :func:`saunetv2_lib.efficiency.cpu_seconds_interleaved` (plain Keras ``predict_on_batch``,
    batch 1, one warm-up call, the models taking turns so that load from other processes hits
    them alike). Adds ``cpu_s_per_image`` (median), ``cpu_s_min``, ``cpu_time_side`` and the load
    average around the measurement to the rows, rewrites the comparison files and returns the
    rows. Time it on an idle machine: the load is recorded, not corrected for.
    """
    from saunetv2_lib.efficiency import cpu_seconds_interleaved

    out_root = Path(out_root)
    rows = read_comparison(out_root)
    if not rows:
        raise FileNotFoundError(f"{out_root / 'comparison.json'} holds no trained models yet.")
    chosen = [r for r in rows if models is None or r["model"] in models]
    side = int(side or chosen[0]["complexity_side"])
    loaded = {row["model"]: _trained_at_side(out_root, row, side) for row in chosen}
    load_before = _load_average()
    times = cpu_seconds_interleaved(loaded, side, repeats=repeats)
    load_after = _load_average()
    for row in chosen:
        measured = times[row["model"]]
        row.update(
            cpu_s_per_image=measured["median"],
            cpu_s_min=measured["min"],
            cpu_time_side=side,
            cpu_time_repeats=repeats,
            cpu_time_load=max(load_before, load_after),
        )
    keras.backend.clear_session()
    write_comparison(rows, out_root)
    return rows


def _trained_at_side(out_root: Path, row: Mapping[str, Any], side: int) -> keras.Model:
    """``out_root/<model>/best.keras``'s weights in the model built at ``side x side``."""
    from saunetv2_lib.models import get_model

    trained = keras.saving.load_model(out_root / row["model"] / "best.keras", compile=False)
    kwargs = json.loads(row.get("model_kwargs") or "{}")
    model = get_model(row["model"], (side, side, 3), **kwargs)
    model.set_weights(trained.get_weights())
    return model


def _load_average() -> float:
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


# The committed results of the long comparison (notebook 07's full profile reads them).
SHIPPED_RESULTS = RESULTS_DIR / "siblings_drive.json"


def bundle_comparison(out_root: str | Path, path: str | Path = SHIPPED_RESULTS) -> Path:
    """Write one JSON holding the comparison table, every run's history and the shared budget.

    The bundle is what a fresh clone can show without the run folders (whose checkpoints are too
    large to commit): ``{"host", "backend", "budget", "rows", "histories": {model: rows}}``,
    ``budget`` being the training configuration common to all runs (``config.json`` minus the
    model fields and the machine-specific data root).
    """
    from saunetv2_lib.training.history import read_history

    out_root = Path(out_root)
    payload = json.loads((out_root / "comparison.json").read_text("utf-8"))
    histories, budgets = {}, []
    for row in payload["rows"]:
        run_dir = out_root / row["model"]
        histories[row["model"]] = read_history(run_dir / "history.csv")
        config = json.loads((run_dir / "config.json").read_text("utf-8"))
        budgets.append(
            {k: v for k, v in config.items() if k not in ("model", "model_kwargs", "data_root")}
        )
    if any(budget != budgets[0] for budget in budgets):
        raise ValueError(f"the runs in {out_root} do not share one budget; not bundling them.")
    payload.update(budget=budgets[0] if budgets else {}, histories=histories)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")
    return path


def load_bundle(path: str | Path = SHIPPED_RESULTS) -> dict[str, Any]:
    """The bundle written by :func:`bundle_comparison` (default: the committed results)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run the comparison (notebook 07, quick or "
            "`compare_designs(..., profile='drive/siblings')`) and bundle it first."
        )
    return json.loads(path.read_text("utf-8"))


def paired_against(
    rows: Sequence[Mapping[str, Any]], reference: str = "sa_unet_v2", min_images: int = 6
) -> list[dict[str, Any]]:
    """Per-image F1 of every row against ``reference`` on the same test images.

    Returns one entry per other row: ``model``, ``images`` (common to both), ``mean_f1_diff``
    (model minus reference, in F1 units), ``better`` (images where the model's F1 is higher) and
    ``wilcoxon_p`` (two-sided Wilcoxon signed-rank test of the differences, scipy; ``None`` with
    fewer than ``min_images`` images, where the test says nothing).
    """
    from scipy.stats import wilcoxon

    by_model = {row["model"]: row for row in rows}
    if reference not in by_model:
        raise ValueError(f"reference {reference!r} is not among the rows {list(by_model)}.")
    base = by_model[reference]["per_image_f1"]
    paired = []
    for row in rows:
        if row["model"] == reference:
            continue
        names = [name for name in base if name in row["per_image_f1"]]
        diffs = np.array([row["per_image_f1"][n] - base[n] for n in names], dtype=np.float64)
        p_value = None
        if len(names) >= min_images and np.any(diffs != 0):
            p_value = float(wilcoxon(diffs).pvalue)
        paired.append(
            {
                "model": row["model"],
                "images": len(names),
                "mean_f1_diff": float(diffs.mean()) if len(names) else float("nan"),
                "better": int(np.sum(diffs > 0)),
                "wilcoxon_p": p_value,
            }
        )
    return paired


# Seed 002, Table 4: VMamba-S pre-training over training from scratch, on Synapse.
SA_UMAMBA_PRETRAINING_GAIN_DSC = 5.48

# Row labels of the published table (README and site); registry names elsewhere.
DISPLAY_NAMES = {
    "sa_unet_v2": "SA-UNetv2 (reference)",
    "sa_unet": "SA-UNet (reference)",
    "unet_dca": "U-Net + DCA",
    "sa_unet_v2_dca": "SA-UNetv2 with DCA",
    "simple_unet": "SimpleUNet (w 32)",
    "simple_unet_small": "SimpleUNet (w 16)",
    "sa_umamba": "SA-UMamba (from scratch)",
}


def comparison_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as a Markdown table (the README's), every cell formatted from ``rows``.

    Columns: parameters, GFLOPs, F1, Jaccard, MCC and AUC (%), training wall seconds, CPU
    seconds per image and epochs run (bold ``k of n`` where a run did not finish its budget).
    """
    lines = [
        "| model | params | GFLOPs | F1 | Jaccard | MCC | AUC | train s | CPU s / image | epochs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        epochs = (
            f"{row['epochs_run']}"
            if row["budget_complete"]
            else f"**{row['epochs_run']} of {row['epochs']}**"
        )
        cpu = row.get("cpu_s_per_image")
        cells = [
            DISPLAY_NAMES.get(row["model"], row["model"]),
            f"{row['params']:,}",
            f"{row['gflops']:.2f}",
            *(f"{100 * row[k]:.2f}" for k in ("f1", "jaccard", "mcc", "auc")),
            f"{row['train_wall_s']:,.0f}",
            "" if cpu is None else f"{cpu:.3f}",
            epochs,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def findings_markdown(
    results: Mapping[str, Any],
    shipped_f1: float | None = None,
    reference: str = "sa_unet_v2",
    shipped_train_s: float | None = None,
) -> str:
    """Notebook 7's "What we find": the conclusions, every number computed from ``results``.

    Args:
        results: a bundle (:func:`load_bundle`): ``rows``, ``histories`` and ``budget``.
        shipped_f1: F1 in [0, 1] of the shipped long-schedule SA-UNetv2 weights, to say how far
            the budget is from convergence (omitted when ``None``).
        reference: the row the designs are measured against.
        shipped_train_s: training wall seconds of those shipped weights (their model card), to
            set the costliest design's training time against a converged SA-UNetv2's.

    Returns:
        Markdown paragraphs: ranking, unfinished runs (with the validation losses at the epoch
        every run reached), designs above and below the reference, per parameter, per second,
        paired tests (:func:`paired_against`), SA-UMamba's from-scratch caveat, the budget.
    """
    from saunetv2_lib import paper

    rows, histories, budget = results["rows"], results["histories"], results["budget"]
    by_model = {row["model"]: row for row in rows}
    ref = by_model[reference]
    designs = sorted((r for r in rows if r["role"] == "design"), key=lambda r: -r["f1"])
    epochs = int(budget["epochs"])

    ranking = ", ".join(
        f"`{r['model']}` {100 * r['f1']:.2f}" for r in sorted(rows, key=lambda r: -r["f1"])
    )
    lines = [f"**Ranking by F1 (%)** under one budget ({budget['profile']}): {ranking}."]
    unfinished = [r for r in rows if not r["budget_complete"]]
    if unfinished:
        lines.append("**Not every run finished its budget:** " + ", ".join(
            f"`{r['model']}` ran {r['epochs_run']} of {epochs} epochs" for r in unfinished)
            + ". Those rows are scored as they stand and are not a like-for-like comparison.")  # fmt: skip
        shortest = min(int(r["epochs_run"]) for r in rows)
        at_epoch = sorted((h[shortest - 1]["val_loss"], name) for name, h in histories.items()
                          if len(h) >= shortest)  # fmt: skip
        lines.append(f"At epoch {shortest}, where every run still was, the validation losses rank: "
                     + ", ".join(f"`{name}` {loss:.3f}" for loss, name in at_epoch)
                     + " (lower is better; 2 held-out training images).")  # fmt: skip
    beats = [r for r in designs if r["f1"] > ref["f1"]]
    if beats:
        lines.append("Designs above SA-UNetv2: " + ", ".join(
            f"`{r['model']}` (+{100 * (r['f1'] - ref['f1']):.2f} pp F1 for "
            f"{r['params'] / ref['params']:.1f}× the parameters and "
            f"{r['gflops'] / ref['gflops']:.1f}× the GFLOPs)" for r in beats) + ".")  # fmt: skip
    else:
        lines.append(f"No sibling design beats SA-UNetv2's F1 ({100 * ref['f1']:.2f}) at this "
                     f"budget; the best design, `{designs[0]['model']}`, is "
                     f"{100 * (ref['f1'] - designs[0]['f1']):.2f} pp below it.")  # fmt: skip
    losers = [r for r in designs if r["f1"] < ref["f1"]]
    if losers:
        lines.append("Below SA-UNetv2: " + ", ".join(
            f"`{r['model']}` ({100 * (r['f1'] - ref['f1']):+.2f} pp, "
            f"{r['params'] / ref['params']:.3g}× the parameters)" for r in losers) + ".")  # fmt: skip

    def per_million(row):
        return 100 * row["f1"] / (row["params"] / 1e6)

    lead = max(rows, key=per_million)
    lines.append(f"**Per parameter** `{lead['model']}` leads with {per_million(lead):.0f} F1 points "
                 f"per million parameters; SA-UNetv2 gives {per_million(ref):.0f}.")  # fmt: skip
    timed = sorted((r for r in rows if r.get("cpu_s_per_image") is not None),
                   key=lambda r: r["cpu_s_per_image"])  # fmt: skip
    if timed:
        fastest, slowest = timed[0], timed[-1]
        lines.append(
            f"**Per second** `{fastest['model']}` is the fastest at "
            f"{fastest['cpu_s_per_image']:.3f} s per image and `{slowest['model']}` the slowest at "
            f"{slowest['cpu_s_per_image']:.2f} s "
            f"({slowest['cpu_s_per_image'] / ref['cpu_s_per_image']:.0f}× SA-UNetv2's "
            f"{ref['cpu_s_per_image']:.3f} s); the load average while timing was "
            f"{max(r['cpu_time_load'] for r in timed):.1f}."
        )
    slowest_train = max(rows, key=lambda r: r["train_wall_s"])
    if slowest_train is not ref:
        sentence = (
            f"**Per training second** the budget is equal in steps, not in time: "
            f"`{slowest_train['model']}` trained for {slowest_train['train_wall_s']:,.0f} s, "
            f"{slowest_train['train_wall_s'] / ref['train_wall_s']:.0f}× SA-UNetv2's "
            f"{ref['train_wall_s']:,.0f} s on the same CPU."
        )
        if shipped_f1 is not None and shipped_train_s is not None:
            sentence += (
                f" The shipped SA-UNetv2 weights took {shipped_train_s:,.0f} s to train "
                f"({shipped_train_s / slowest_train['train_wall_s']:.2f}× that, on whole images) "
                f"and reach {100 * shipped_f1:.2f} F1 on the same test images."
            )
        lines.append(sentence)
    paired = paired_against(rows, reference)
    if any(p["wilcoxon_p"] is not None for p in paired):
        significant = [p for p in paired if p["wilcoxon_p"] is not None and p["wilcoxon_p"] < 0.05]
        differ = (
            ", ".join(f"`{p['model']}` ({100 * p['mean_f1_diff']:+.2f} pp, better on {p['better']} "
                      f"of {p['images']}, p = {p['wilcoxon_p']:.2g})" for p in significant)
            + " differ from SA-UNetv2 at p < 0.05"
            if significant
            else "no design differs from SA-UNetv2 at p < 0.05"
        )  # fmt: skip
        lines.append(f"Paired over the test images, {differ}; with one seed each, the seed spread "
                     "is not in these p-values.")  # fmt: skip
    if "sa_umamba" in by_model:
        mamba = by_model["sa_umamba"]
        lines.append(
            f"**SA-UMamba is trained from scratch** (no VMamba weights exist for this port): F1 "
            f"{100 * mamba['f1']:.2f} with {mamba['params'] / 1e6:.1f} M parameters. Its paper's "
            f"Table 4 credits VMamba-S ImageNet pre-training with +{SA_UMAMBA_PRETRAINING_GAIN_DSC} "
            "Dice points on Synapse over training from scratch, so this row says how the "
            "architecture learns from 18 retinal images, not what the paper's model reaches."
        )
    if shipped_f1 is not None:
        still_falling = [name for name, h in histories.items()
                         if len(h) > 1 and h[-1]["val_loss"] <= min(r["val_loss"] for r in h)]  # fmt: skip
        paper_f1 = paper.value("drive_without_fov", "SA-UNetv2", "f1")
        lines.append(
            f"**The budget is short.** SA-UNetv2 reaches {100 * ref['f1']:.2f} F1 here and "
            f"{100 * shipped_f1:.2f} with the shipped 150-epoch weights (notebook 5); the paper "
            f"reports {paper_f1:.2f}. The ranking above is a ranking of how far each design gets "
            f"in {epochs} epochs of {int(budget['patch_size'])}-px patches, not of converged "
            "accuracy"
            + (f"; validation loss was still at its lowest in the last epoch for "
               f"{', '.join(f'`{n}`' for n in still_falling)}." if still_falling else ".")
        )  # fmt: skip
    return "\n\n".join(lines)
