"""Small helpers the notebooks share: output folders, saving figures and tables, histories, timing.

Everything here is what would otherwise be repeated in several notebooks. Plotting lives in
:mod:`saunetv2_lib.companion.plots`.

``SAUNETV2_FIGURES_DIR`` overrides the notebooks' ``figures_dir`` parameter, so that a check that
re-executes the committed notebooks (nbval) writes its figures elsewhere instead of over the
committed ``figures/``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saunetv2_lib.training.history import read_history

FIGURES_ENV = "SAUNETV2_FIGURES_DIR"
PNG_DPI = 110


def quiet_stderr():
    """Silence file descriptor 2 inside a ``with`` block: TensorFlow's C++ start-up lines (absl,
    oneDNN), which ``TF_CPP_MIN_LOG_LEVEL`` does not stop, stay out of the rendered pages.
    See :func:`saunetv2_lib.quiet.native_stderr_silenced`."""
    from saunetv2_lib.quiet import native_stderr_silenced

    return native_stderr_silenced()


def output_dir(figures_dir: str | Path) -> Path:
    """The folder figures and tables go to: ``$SAUNETV2_FIGURES_DIR`` if set, else ``figures_dir``.

    The folder is created.
    """
    folder = Path(os.environ.get(FIGURES_ENV) or figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(figure, name: str, folder: str | Path) -> Path:
    """Save a Matplotlib figure as ``folder/name.png`` (stable bytes: no software/date metadata)."""
    path = Path(folder) / f"{name}.png"
    figure.savefig(path, dpi=PNG_DPI, bbox_inches="tight", metadata={"Software": None})
    return path


def save_table(frame, name: str, folder: str | Path, float_format: str = "%.6g") -> Path:
    """Save a ``pandas.DataFrame`` as ``folder/name.csv`` (no index, ``float_format`` for floats)."""
    path = Path(folder) / f"{name}.csv"
    frame.to_csv(path, index=False, float_format=float_format, lineterminator="\n")
    return path


def show(frame, digits: int = 2, index: bool = False):
    """A DataFrame for display: ``digits`` decimals, "–" for missing values, no index column.

    Returns a pandas ``Styler`` (rendered as an HTML table in notebooks and on the site) with a
    fixed id, so re-running a notebook gives the same HTML.
    """
    styler = frame.style.format(precision=digits, na_rep="–", thousands=",")
    styler = styler.set_uuid("table")
    return styler if index else styler.hide(axis="index")


def percent(value: float | None, digits: int = 2) -> str:
    """``0.8282 -> '82.82'``; ``None`` or NaN -> ``'–'``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100.0 * float(value):.{digits}f}"


# ------------------------------------------------------------------------------ training runs
SCHEDULE_EXCLUDED = ("notes", "profile", "data_root", "model_kwargs")


def schedule_table(configs: Mapping[str, Any], exclude: Sequence[str] = ()):
    """Training configurations side by side: a DataFrame, one column per config, a row per field.

    ``configs`` maps a column title to a :class:`~saunetv2_lib.training.TrainConfig`. Fields in
    :data:`SCHEDULE_EXCLUDED` and ``exclude`` are left out; the column ``differs`` holds ``"◀"``
    where the first two columns differ.
    """
    import pandas as pd

    dicts = {title: config.to_dict() for title, config in configs.items()}
    first = next(iter(dicts.values()))
    fields = [k for k in first if k not in (*SCHEDULE_EXCLUDED, *exclude)]
    table = pd.DataFrame(dicts).loc[fields]
    differs = table.iloc[:, 0].astype(str) != table.iloc[:, 1].astype(str)
    table["differs"] = differs.map({True: "◀", False: ""})
    return table


def find_histories(
    runs_dir: str | Path | None = None, figures_dir: str | Path | None = None
) -> dict[str, dict[str, Any]]:
    """Training histories of the shipped weights and of the runs on this machine.

    Looks, in order, at the shipped model cards (``history`` or ``training.history`` entries),
    ``runs_dir/*/history.csv`` and the copies a previous full run kept as
    ``figures_dir/04_history_<name>.csv``. Returns ``{name: {"history": rows, "source": text,
    "summary": dict}}``; the first source found for a name wins.
    """
    from saunetv2_lib import weights

    found: dict[str, dict[str, Any]] = {}
    for name, shipped in weights.list_weights().items():
        if not shipped:
            continue
        card = weights.read_model_card(name)
        rows = card.get("history") or card.get("training", {}).get("history")
        if rows:
            found[name] = {
                "history": list(rows),
                "source": f"model card of the shipped weights '{name}'",
                "summary": card.get("training", {}),
            }
    if runs_dir is not None and Path(runs_dir).is_dir():
        for path in sorted(Path(runs_dir).glob("*/history.csv")):
            name = path.parent.name
            rows = read_history(path)
            if name in found or not rows:
                continue
            summary_path = path.parent / "summary.json"
            summary = json.loads(summary_path.read_text("utf-8")) if summary_path.is_file() else {}
            found[name] = {
                "history": rows,
                "source": f"run folder {path.parent}",
                "summary": summary,
            }
    if figures_dir is not None and Path(figures_dir).is_dir():
        for path in sorted(Path(figures_dir).glob("04_history_*.csv")):
            name = path.stem.removeprefix("04_history_")
            if name not in found:
                found[name] = {
                    "history": read_history(path),
                    "source": f"{path.name}, kept by the last full run",
                    "summary": {},
                }
    return found


# ----------------------------------------------------------------------------------- attention
def attention_maps(model, image: np.ndarray) -> dict[str, np.ndarray]:
    """The attention maps of every SA / CSA layer of ``model`` for one ``(S, S, 3)`` image.

    Returns ``{layer name: (h, w) float32 map in [0, 1]}`` at each layer's own resolution, in
    the order of the layers. The maps are recomputed from the layers' inputs with
    ``layer.attention_map``, so nothing about the model changes.
    """
    import keras

    from saunetv2_lib.models.layers import CrossScaleSpatialAttention, SpatialAttention

    attention = [
        layer
        for layer in model.layers
        if isinstance(layer, (SpatialAttention, CrossScaleSpatialAttention))
    ]
    if not attention:
        return {}
    probe = keras.Model(model.inputs, [layer.input for layer in attention])
    features = probe.predict_on_batch(np.asarray(image, dtype=np.float32)[None])
    if len(attention) == 1:
        features = [features]
    maps = {}
    for layer, inputs in zip(attention, features, strict=True):
        value = layer.attention_map(inputs)
        maps[layer.name] = np.asarray(keras.ops.convert_to_numpy(value))[0, ..., 0]
    return maps


# ------------------------------------------------------------------------------------- tables
def paper_comparison(
    paper_key: str,
    ours: Mapping[str, Mapping[str, float]] | None = None,
    models: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
):
    """A paper table with our rows beside the paper's and the differences (percentage points).

    Args:
        paper_key: a key of :data:`saunetv2_lib.paper.TABLES`.
        ours: ``{row label: {metric: fraction}}``, e.g. ``{"SA-UNetv2 (ours)": summary}``.
            A label ``"X (ours)"`` gets a ``"X: ours - paper"`` row when the paper has row X.
        models: paper rows to keep (default all).
        columns: metric columns (default the table's metric columns).

    Returns:
        A ``pandas.DataFrame`` with ``model``, ``source`` and the columns, in percent.
    """
    import pandas as pd

    from saunetv2_lib import paper

    table = paper.table(paper_key)
    columns = list(columns or [c for c in table.columns if c in paper.METRICS])
    records = []
    for row in table.rows:
        if models is None or row["model"] in models:
            records.append(
                {
                    "model": row["model"],
                    "source": f"paper ({row.get('source') or table.source})",
                    **{c: row.get(c) for c in columns},
                }
            )
    for label, metrics in (ours or {}).items():
        ours_row = {c: 100.0 * float(metrics[c]) if c in metrics else None for c in columns}
        records.append({"model": label, "source": "this project", **ours_row})
        base = label.removesuffix(" (ours)")
        try:
            printed = table.row(base)
        except KeyError:
            continue
        records.append(
            {
                "model": f"{base}: ours - paper",
                "source": "difference (pp)",
                **{
                    c: None
                    if ours_row[c] is None or printed.get(c) is None
                    else ours_row[c] - printed[c]
                    for c in columns
                },
            }
        )
    return pd.DataFrame.from_records(records, columns=["model", "source", *columns])


def table_finding(
    ours: Mapping[str, Mapping[str, float]], key: str, label: str, source: str
) -> str:
    """The Markdown sentence under a results table: our metrics and their difference from the paper.

    ``ours`` maps a row name to its summary (fractions, keys :data:`saunetv2_lib.paper.METRICS`;
    the first row is used; empty: pending); ``key`` is the paper table, ``label`` its reference
    ("Table 1A"), ``source`` where our model came from (:func:`trained_model`'s description). A
    source other than the shipped weights is flagged as provisional.
    """
    from saunetv2_lib import paper

    if not ours:
        return (
            f"**{label}: ours pending.** {source[0].upper() + source[1:]}. The table shows the "
            "paper's rows and the second observer."
        )
    summary = next(iter(ours.values()))
    claimed = paper.table(key).row("SA-UNetv2")
    parts = [
        f"{paper.METRIC_LABELS[m]} {100 * summary[m]:.2f} ({100 * summary[m] - claimed[m]:+.2f})"
        for m in paper.METRICS
    ]
    text = f"**{label}, ours (difference from the paper, points):** " + ", ".join(parts) + "."
    if not source.startswith("the shipped"):
        text += (
            f" *Provisional: this is {source}, not the shipped weights, so these numbers do not "
            "yet test the paper's claims.*"
        )
    return text


# ------------------------------------------------------------------------------ campaign runs
MILESTONE_COLUMNS = (
    "milestone", "steps", "epoch", "best_epoch", "hours", "kind", "f1", "jaccard", "mcc", "auc"
)  # fmt: skip


def campaign_run_section(bundle: Mapping[str, Any], run: str) -> dict[str, Any]:
    """Notebook 4's view of one paper-scale run: its figures, milestones and where it stands.

    Compares ``run`` of ``bundle`` (:func:`~saunetv2_lib.experiments.campaign.pack_campaign`)
    with the short-schedule weights it replaces (``keep_previous_as`` once shipped, else the
    weights shipped as ``ship_as``) and the paper's headline F1 of its dataset.

    Returns:
        a dict: ``dataset``; ``steps_figure`` (:func:`plots.f1_against_steps`: test F1, best
        checkpoint so far and weights at each milestone, against steps and hours);
        ``curves_figure`` (:func:`plots.training_history` of the run and the short schedule);
        ``milestones`` (a DataFrame, :data:`MILESTONE_COLUMNS`, F1 etc. as fractions, hours of
        training); ``markdown`` (:func:`~saunetv2_lib.experiments.campaign.progress_markdown`).
    """
    import pandas as pd

    from saunetv2_lib import paper
    from saunetv2_lib.companion import plots
    from saunetv2_lib.experiments import campaign as campaigns
    from saunetv2_lib.weights import list_weights, read_model_card

    spec = campaigns.load_campaign(bundle["campaign"]).run(run)
    dataset = spec.config().dataset
    entry = bundle["runs"][run]
    kept = spec.keep_previous_as
    shipped = read_model_card(kept if kept and list_weights().get(kept) else spec.ship_as)
    steps = shipped["training"]["optimizer_iterations"]
    label = f"`{shipped['name']}` ({shipped['profile']}, {steps:,} steps)"
    series = {
        f"{run}, best so far": campaigns.progress_points(bundle, run, "best"),
        f"{run}, weights at the step": campaigns.progress_points(bundle, run, "current"),
        label: [campaigns.card_point(shipped)],
    }
    headline = paper.headline_f1(dataset)
    milestones = pd.DataFrame(entry["milestones"])
    if not milestones.empty:
        milestones["hours"] = milestones["wall_time_s"] / 3600
        milestones = milestones[list(MILESTONE_COLUMNS)]
    return {
        "dataset": dataset,
        "steps_figure": plots.f1_against_steps(series, headline),
        "curves_figure": plots.training_history({run: entry["history"], label: shipped["history"]}),
        "milestones": milestones,
        "markdown": campaigns.progress_markdown(bundle, run, shipped, headline),
    }


def checkpoint_section(run: str, campaign: str = "paper") -> dict[str, Any] | None:
    """Notebook 5's "which checkpoint?" view of a finished campaign run, or ``None`` before the
    bundle holds its scored checkpoints (``saunetv2 campaign checkpoints``, then ``pack``).

    Returns:
        ``table`` (a DataFrame: one row per checkpoint with its epoch, steps, the rules that
        choose it, validation accuracy (%) and loss, test F1 (%) and one F1 column (%) per test
        image), ``diagnosis``
        (:func:`~saunetv2_lib.experiments.checkpoints.checkpoint_diagnosis` against the paper's
        F1) and ``markdown`` (:func:`~saunetv2_lib.experiments.checkpoints.diagnosis_markdown`).
    """
    import pandas as pd

    from saunetv2_lib import paper
    from saunetv2_lib.experiments import campaign as campaigns
    from saunetv2_lib.experiments import checkpoints

    rows = _bundle(campaign).get("runs", {}).get(run, {}).get("checkpoints")
    if not rows:
        return None
    dataset = campaigns.load_campaign(campaign).run(run).config().dataset
    table = pd.DataFrame(
        [
            {
                "epoch": row["epoch"],
                "steps": row["steps"],
                "chosen by": "; ".join(row["rules"]),
                "val accuracy (%)": 100 * row["val_accuracy"],
                "val loss": row["val_loss"],
                "test F1 (%)": 100 * row["f1"],
                **{f"F1 {name} (%)": 100 * value for name, value in row["per_image_f1"].items()},
            }
            for row in rows
        ]
    )
    diagnosis = checkpoints.checkpoint_diagnosis(rows, paper.headline_f1(dataset) / 100)
    return {
        "table": table,
        "diagnosis": diagnosis,
        "markdown": checkpoints.diagnosis_markdown(diagnosis, dataset.upper()),
    }


# ------------------------------------------------------------------------------ ablations
def _bundle(campaign: str) -> dict[str, Any]:
    from saunetv2_lib.experiments.campaign import load_campaign_bundle

    return load_campaign_bundle(campaign, missing_ok=True)


def ablation_section(table: str, metric: str = "f1", campaign: str = "ablation"):
    """A notebook's trained-ablation section: the table, its figure and the finding under it.

    Reads the committed bundles of ``campaign`` (``"ablation"`` or ``"baselines"``) and of the
    ``paper`` campaign
    (:func:`saunetv2_lib.experiments.ablation.ablation_rows`, :func:`~.ablation.budget_gap`).

    Returns:
        ``(frame, figure, markdown)``: one row per paper row (ours: mean and 95 % intervals over
        seeds and test images, percent; the paired difference with the row it is compared with
        and the verdict), :func:`plots.configuration_intervals` of it with the paper's values
        marked, and a Markdown paragraph (what is trained, the budget gap, the verdicts).
    """
    import pandas as pd

    from saunetv2_lib import paper
    from saunetv2_lib.companion import plots
    from saunetv2_lib.experiments import ablation

    name = campaign
    campaign = ablation.load_campaign(name)
    rows = ablation.ablation_rows(table, _bundle(name), campaign, metric)
    steps = ablation.budget_steps(campaign)
    gap = ablation.budget_gap(_bundle("paper"), steps)

    def interval(row: Mapping[str, Any], low: str, high: str) -> str:
        if row.get(low) is None or not np.isfinite(row[low]):
            return ""
        return f"[{row[low]:.2f}, {row[high]:.2f}]"

    label = paper.METRIC_LABELS[metric]
    frame = pd.DataFrame.from_records(
        [
            {
                "row": r["row"],
                "seeds": r["seeds"],
                f"paper {label}": r["paper"],
                f"ours {label}": r.get("mean"),
                "seed 95 %": interval(r, "seed_low", "seed_high"),
                "image 95 %": interval(r, "image_low", "image_high"),
                "against": r.get("against", ""),
                "ours − against": r.get("diff_mean"),
                "verdict": r.get("verdict", ""),
            }
            for r in rows
        ]
    )
    figure = plots.configuration_intervals(
        [{**r, "configuration": r["row"]} for r in rows],
        per_seed={r["row"]: r["seed_means"] for r in rows if r.get("seed_means")},
        paper={r["row"]: r["paper"] for r in rows},
        metric=f"{label} (%)",
        scale=1.0,
    )
    trained = [r for r in rows if r["seeds"]]
    seeds = ablation.declared_seeds(campaign)
    declared = max(seeds[r["configuration"]] for r in rows)
    if not trained:
        text = (
            f"**Ours pending.** None of the {len(rows)} configurations has a finished seed yet: "
            f"the {name} campaign ({declared} seeds each, {steps} optimizer steps per run) "
            f"trains after the paper-scale runs (`saunetv2 campaign run --campaign {name}`). "
            "The figure shows the paper's values only."
        )
    else:
        done = ", ".join(f"{r['row']}: {r['seeds']} seeds" for r in trained)
        text = (
            f"**What we find.** {len(trained)} of {len(rows)} configurations trained ({done}), "
            f"{steps} optimizer steps each."
        )
        if gap is None:
            text += (
                f" The paper-scale SA-UNetv2 run has no checkpoint at {steps} steps, so how far "
                "this budget lies below the paper's scale is not measured: compare the rows with "
                "each other, not with the paper's absolute values."
            )
        else:
            text += (
                f" On the paper-scale SA-UNetv2 run, {steps} steps score "
                f"{gap['gap'][metric]:.2f} {label} points below its "
                f"{'final result' if gap['final'] else 'latest checkpoint'} "
                f"({gap['against_steps']:,} steps), so our absolute values sit below the paper's "
                "by about that much; the comparisons between rows share the budget."
            )
        verdicts = [r for r in rows if r.get("verdict")]
        if verdicts:
            text += " " + " ".join(
                f"{r['row']} vs {r['against']}: {r['diff_mean']:+.2f} points, {r['verdict']}."
                for r in verdicts
            )
    return frame, figure, text


def saturation_section(table: str = "loss_ablation", campaign: str = "ablation"):
    """How far each trained loss pushes the test probabilities to 0 and 1, beside its AUC.

    Reads the committed bundle of ``campaign``
    (:func:`saunetv2_lib.experiments.ablation.saturation_rows`).

    Returns:
        ``(frame, markdown)``: one row per paper row with scored runs (seeds; percent of all
        test pixels saturated, its range over seeds; percent of vessel pixels above
        ``1 - margin`` and below ``margin``, of background pixels above ``1 - margin``; AUC; each
        the mean over seeds), and a paragraph comparing the most and least saturated rows, with
        the rank correlation over every run between AUC and the share of confidently missed
        vessel pixels.
    """
    import pandas as pd
    from scipy import stats

    from saunetv2_lib import paper
    from saunetv2_lib.experiments import ablation

    rows = ablation.saturation_rows(_bundle(campaign), ablation.load_campaign(campaign), table)
    frame = pd.DataFrame.from_records(
        [
            {
                "row": r["row"],
                "seeds": len(r["seeds"]),
                "saturated %": r["saturated_mean"],
                "saturated, seed range": f"{min(r['saturated']):.1f}–{max(r['saturated']):.1f}",
                "vessels > 1 − m %": r["vessel_high_mean"],
                "vessels < m %": r["vessel_low_mean"],
                "background > 1 − m %": r["background_high_mean"],
                "AUC": r["auc_mean"],
            }
            for r in rows
        ]
    )
    if len(rows) < 2:
        return frame, (
            "**Pending.** Fewer than two loss settings have runs scored for saturation yet "
            "(`saunetv2 campaign pack` adds it to every finished run whose folder is present)."
        )
    printed = paper.table(table)
    with_bce = [r["auc"] for r in printed.rows if r["model"].startswith("BCE")]
    margin = rows[0]["margin"]
    most = max(rows, key=lambda r: r["saturated_mean"])
    least = min(rows, key=lambda r: r["saturated_mean"])
    missed = [v for r in rows for v in r["vessel_low"]]
    auc = [v for r in rows for v in r["auc"]]
    rho, p_value = stats.spearmanr(missed, auc)
    text = (
        f"In the paper, MCC alone scores AUC {printed.row('MCC')['auc']:.2f} against "
        f"{min(with_bce):.2f}–{max(with_bce):.2f} for the losses with a BCE term (m = {margin:g} "
        "below). "
        f"**What we find.** Trained with {most['row']}, {most['saturated_mean']:.1f} % of the test "
        f"pixels lie below m or above 1 − m, and its misses go there too: "
        f"{most['vessel_low_mean']:.1f} % of the vessel pixels score below m, where they rank "
        f"among the background; AUC {most['auc_mean']:.2f}. With {least['row']}, "
        f"{least['saturated_mean']:.1f} % of the pixels and {least['vessel_low_mean']:.1f} % of "
        f"the vessel pixels; AUC {least['auc_mean']:.2f}. Over all {len(auc)} runs, the Spearman "
        f"rank correlation between AUC and the share of vessel pixels below m is {rho:+.2f} "
        f"(p = {p_value:.2g})"
    )
    if p_value < 0.05 and rho < 0:
        text += ": confident misses go with a lower AUC beyond the noise."
    else:
        text += (
            f": with {len(auc)} runs, a link between confident misses and AUC is not beyond "
            "the noise."
        )
    return frame, text


# ------------------------------------------------------------------------------ trained models
def trained_model(
    runs_dir: str | Path | None = None, dataset: str = "drive", prefer: str = "shipped"
) -> tuple[Any, str]:
    """The best trained model available for ``dataset``, and a sentence saying which one it is.

    Candidates: the shipped weights named ``dataset`` (SHA-256 checked), the quick run
    ``runs_dir/<dataset>_quick/best.keras`` and any other ``runs_dir/*/best.keras`` (newest
    first). ``prefer="shipped"`` tries the shipped weights first, ``prefer="run"`` the runs
    first. Returns ``(None, reason)`` when there is none, so a notebook can say so plainly.
    """
    from saunetv2_lib import weights

    if prefer not in ("shipped", "run"):
        raise ValueError(f"prefer must be 'shipped' or 'run', got {prefer!r}.")
    name = dataset.lower()
    runs: list[Path] = []
    if runs_dir is not None and Path(runs_dir).is_dir():
        quick = Path(runs_dir) / f"{name}_quick" / "best.keras"
        others = sorted(
            (p for p in Path(runs_dir).glob(f"{name}*/best.keras") if p != quick),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        runs = ([quick] if quick.is_file() else []) + others
    shipped = weights.list_weights().get(name, False)
    order = ["shipped", "run"] if prefer == "shipped" else ["run", "shipped"]
    for kind in order:
        if kind == "shipped" and shipped:
            card = weights.read_model_card(name)
            epochs = card.get("epochs_run") or card.get("training", {}).get("epochs_run")
            detail = f", trained for {epochs} epochs" if epochs else ""
            return weights.load_weights(name), (
                f"the shipped weights '{name}' (SHA-256 checked against their model card{detail})"
            )
        if kind == "run" and runs:
            return weights.load_weights(runs[0], verify=False), f"the training run {runs[0].parent}"
    return None, (
        f"no trained {dataset.upper()} model is available: the shipped weights '{name}' are not "
        "in saunetv2_lib/weights/ yet and no run folder holds a best.keras"
    )


# ------------------------------------------------------------------------------------- losses
def loss_gradient(loss_fn, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``d loss_fn(y_true, y_pred) / d y_pred`` by automatic differentiation (TF or JAX backend).

    ``loss_fn`` is a ``keras.ops`` function returning a scalar; the result has ``y_pred``'s shape.
    """
    import keras

    y_true = np.asarray(y_true, dtype=np.float32)
    y_pred = np.asarray(y_pred, dtype=np.float32)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(y_pred)
        with tf.GradientTape() as tape:
            value = loss_fn(tf.constant(y_true), variable)
        return tape.gradient(value, variable).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda p: loss_fn(y_true, p))(y_pred))
    raise ValueError(f"loss_gradient supports the tensorflow and jax backends, not {backend!r}.")


def fit_logistic(
    loss_fn, x: np.ndarray, y: np.ndarray, start: tuple[float, float] = (1.0, 0.0)
) -> tuple[float, float]:
    """Fit ``p = sigmoid(a x + b)`` to labels ``y`` by minimising ``loss_fn(y, p)`` over ``(a, b)``.

    A deliberately tiny "model" (two parameters, Nelder-Mead) that shows where a loss puts the
    0.5 operating point on an imbalanced problem. Returns ``(a, b)``.
    """
    import keras
    from scipy.optimize import minimize
    from scipy.special import expit

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)

    def objective(params: np.ndarray) -> float:
        p = expit(params[0] * x + params[1])
        return float(keras.ops.convert_to_numpy(loss_fn(y, p.astype(np.float32))))

    result = minimize(
        objective,
        np.asarray(start, dtype=np.float64),
        method="Nelder-Mead",
        options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 400},
    )
    return float(result.x[0]), float(result.x[1])
