"""The notebooks' figures: each function returns a Matplotlib figure (or an RGB array) and saves nothing.

Save with :func:`saunetv2_lib.companion.save_figure`. Images are ``(H, W, 3)`` floats in [0, 1],
labels and masks ``(H, W)`` in {0, 1}, probabilities ``(H, W)`` floats in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Error-overlay colours (RGB in [0, 1]): true positives white, false positives red, false
# negatives blue (a common convention in vessel papers); true negatives stay black and pixels
# outside the evaluated region grey.
TP_COLOR = (1.0, 1.0, 1.0)
FP_COLOR = (0.9, 0.1, 0.1)
FN_COLOR = (0.1, 0.4, 1.0)
OUTSIDE_COLOR = (0.25, 0.25, 0.25)


def pyplot():
    """``matplotlib.pyplot``, imported on first use (the library does not import matplotlib)."""
    import matplotlib.pyplot as plt

    return plt


def _grid(rows: int, columns: int, size: float = 3.0):
    plt = pyplot()
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    return figure, axes


def dataset_samples(samples: Sequence[tuple[str, Any]]):
    """One row per ``(title, Sample)``: the image, its reference label and its FOV mask."""
    figure, axes = _grid(len(samples), 3)
    for row, (title, sample) in enumerate(samples):
        axes[row, 0].imshow(sample.image)
        axes[row, 0].set_title(f"{title}: image")
        axes[row, 1].imshow(sample.label, cmap="gray", vmin=0, vmax=1)
        axes[row, 1].set_title("vessel label")
        if sample.fov is not None:
            axes[row, 2].imshow(sample.fov, cmap="gray", vmin=0, vmax=1)
        axes[row, 2].set_title("FOV mask")
    figure.tight_layout()
    return figure


def intensity_histograms(images_by_dataset: Mapping[str, tuple[list, list]], bins: int = 64):
    """Per dataset, histograms of the R, G, B values inside the FOVs (``{name: (images, fovs)}``)."""
    plt = pyplot()
    figure, axes = plt.subplots(
        1, len(images_by_dataset), figsize=(4 * len(images_by_dataset), 3), squeeze=False
    )
    for axis, (name, (images, fovs)) in zip(axes[0], images_by_dataset.items(), strict=True):
        pixels = np.concatenate([img[fov > 0] for img, fov in zip(images, fovs, strict=True)])
        for channel, color in enumerate(("red", "green", "blue")):
            axis.hist(pixels[:, channel], bins=bins, range=(0, 1), color=color, alpha=0.45,
                      density=True, label=color)  # fmt: skip
        axis.set_title(name)
        axis.set_xlabel("intensity in the FOV")
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(frameon=False)
    figure.tight_layout()
    return figure


def lines(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    axis=None,
):
    """A line plot of several named series against ``x`` (returns the figure)."""
    plt = pyplot()
    if axis is None:
        figure, axis = plt.subplots(figsize=(5, 3.4))
    else:
        figure = axis.figure
    for name, values in series.items():
        axis.plot(x, values, marker="o", markersize=3, label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if logx:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        axis.set_xscale("log")
        axis.set_xticks(list(x))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        axis.set_yscale("log")
    if title:
        axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    return figure


def attention_panel(
    image: np.ndarray, maps: Mapping[str, np.ndarray], probability: np.ndarray | None = None
):
    """The input image, each attention map (resized by nearest neighbour for display) and the output."""
    panels = [("input", image, None)]
    panels += [(name, value, "viridis") for name, value in maps.items()]
    if probability is not None:
        panels.append(("vessel probability", probability, "gray"))
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure, axes = _grid(rows, columns, size=3.2)
    for axis, (name, value, cmap) in zip(axes.ravel(), panels, strict=False):
        shown = axis.imshow(value, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None)
        axis.set_title(f"{name} ({value.shape[0]}x{value.shape[1]})" if cmap == "viridis" else name)
        if cmap == "viridis":
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
    figure.tight_layout()
    return figure


def training_history(histories: Mapping[str, Sequence[Mapping[str, float]]]):
    """Loss, accuracy and learning rate per epoch of each run (``{name: CSVLogger rows}``)."""
    plt = pyplot()
    panels = (("loss", "loss"), ("accuracy", "pixel accuracy"), ("learning_rate", "learning rate"))
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for name, rows in histories.items():
        epochs = [int(r.get("epoch", i)) + 1 for i, r in enumerate(rows)]
        for axis, (key, label) in zip(axes, panels, strict=True):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = [r.get(prefix + key) for r in rows]
                if key == "learning_rate" and prefix:
                    continue
                if all(v is None for v in values):
                    continue
                axis.plot(epochs, [np.nan if v is None else v for v in values], style,
                          label=f"{name} {prefix.rstrip('_') or 'train'}"
                          if key != "learning_rate" else name)  # fmt: skip
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
    axes[2].set_yscale("log")
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    return figure


def roc_pr(curves: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]], points=None):
    """ROC and precision-recall curves (``{label: (roc_curve_data, pr_curve_data)}``).

    ``points`` optionally maps a label to ``(fpr, tpr, recall, precision)`` to mark an operating
    point (e.g. the second observer).
    """
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for label, (roc, pr) in curves.items():
        left.plot(roc["fpr"], roc["tpr"], label=f"{label} (AUC {roc['auc']:.4f})")
        right.plot(pr["recall"], pr["precision"],
                   label=f"{label} (AP {pr['average_precision']:.4f})")  # fmt: skip
    for label, (fpr, tpr, recall, precision) in (points or {}).items():
        left.plot([fpr], [tpr], "k*", markersize=10, label=label)
        right.plot([recall], [precision], "k*", markersize=10, label=label)
    left.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC",
             xlim=(0, 0.3), ylim=(0.5, 1.0))  # fmt: skip
    right.set(xlabel="recall (sensitivity)", ylabel="precision", title="precision-recall",
              xlim=(0.5, 1.0), ylim=(0.5, 1.0))  # fmt: skip
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(frameon=False, fontsize=8, loc="lower left")
    figure.tight_layout()
    return figure


def error_overlay(
    probability: np.ndarray,
    label: np.ndarray,
    region: np.ndarray | None = None,
    threshold: float = 0.5,
    strict: bool = True,
) -> np.ndarray:
    """RGB ``(H, W, 3)`` float map of TP (white), FP (red), FN (blue), TN (black).

    Pixels outside ``region`` (e.g. the FOV) are grey. Binarisation as in the metrics: ``p >
    threshold`` when ``strict`` else ``p >= threshold``.
    """
    probability = np.asarray(probability)
    label = np.asarray(label) > 0
    if probability.shape != label.shape:
        raise ValueError(f"probability {probability.shape} and label {label.shape} differ.")
    predicted = probability > threshold if strict else probability >= threshold
    out = np.zeros((*label.shape, 3), dtype=np.float32)
    out[predicted & label] = TP_COLOR
    out[predicted & ~label] = FP_COLOR
    out[~predicted & label] = FN_COLOR
    if region is not None:
        out[np.asarray(region) == 0] = OUTSIDE_COLOR
    return out


def qualitative(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    threshold: float = 0.5,
    crop: tuple[slice, slice] | None = None,
):
    """Per ``(name, image, label, probability)``: image, label, probability, binary, TP/FP/FN.

    ``crop`` (a pair of slices) zooms every panel of the second figure row onwards into the same
    window, where thin vessels can be seen.
    """
    titles = ("image", "label (1st observer)", "probability", f"p > {threshold:g}", "TP / FP / FN")
    figure, axes = _grid(len(rows), 5, size=2.8)
    for row, (name, image, label, probability) in enumerate(rows):
        window = crop if crop is not None else (slice(None), slice(None))
        panels = (
            image[window],
            label[window],
            probability[window],
            (probability > threshold)[window],
            error_overlay(probability, label, threshold=threshold)[window],
        )
        for column, (title, panel) in enumerate(zip(titles, panels, strict=True)):
            cmap = None if panel.ndim == 3 else "gray"
            axes[row, column].imshow(panel, cmap=cmap, vmin=0, vmax=1)
            axes[row, column].set_title(f"{name}: {title}" if column == 0 else title, fontsize=9)
    figure.tight_layout()
    return figure


def per_image(values: Mapping[str, Sequence[float]], metric: str = "F1 (%)", reference=None):
    """Per-image scores as a box per label with every image as a dot (seaborn box + swarm).

    ``values`` maps a label to its per-image values; ``reference`` maps a label (e.g.
    ``"paper mean"``) to a value drawn as a horizontal line. The swarm places the dots
    deterministically, so the figure is reproducible.
    """
    import pandas as pd
    import seaborn as sns

    plt = pyplot()
    frame = pd.DataFrame(
        [(label, float(v)) for label, points in values.items() for v in points],
        columns=["label", metric],
    )
    figure, axis = plt.subplots(figsize=(1.8 + 1.6 * len(values), 3.6))
    sns.boxplot(data=frame, x="label", y=metric, ax=axis, showfliers=False, color="0.9", width=0.5)
    sns.swarmplot(data=frame, x="label", y=metric, ax=axis, hue="label", size=4, alpha=0.8,
                  legend=False)  # fmt: skip
    for label, value in (reference or {}).items():
        axis.axhline(value, linestyle="--", linewidth=1, color="gray")
        axis.text(-0.45, value, f" {label}", va="bottom", fontsize=8, color="gray")
    if reference:  # room above the highest line for its label
        low, high = axis.get_ylim()
        axis.set_ylim(low, max(high, max(reference.values()) + 0.06 * (high - low)))
    axis.set_xlabel("")
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure


def _place_labels(
    axis, labels: Sequence[tuple[str, float, float]], width: float, height: float, **annotate
) -> None:
    """Annotate ``(text, x, y)`` points, highest first, each pushed below any label it overlaps.

    ``width`` and ``height`` (pixels) are the box a label claims; ``annotate`` goes to
    ``axis.annotate`` (e.g. ``arrowprops``). Call after the axis scales and limits are set.
    """
    axis.figure.canvas.draw()  # fixes the data-to-pixel transform before the labels are placed
    placed: list[tuple[float, float]] = []
    for text, x, y in sorted(labels, key=lambda label: -label[2]):
        px, py = axis.transData.transform((x, y))
        label_y = py + 6
        for other_x, other_y in placed:  # greedy: move below any label it would overlap
            if abs(other_x - px) < width and abs(other_y - label_y) < height:
                label_y = other_y - height
        placed.append((px, label_y))
        axis.annotate(text, (x, y), xytext=(8, label_y - py), textcoords="offset pixels",
                      fontsize=8, **annotate)  # fmt: skip


def bubble_chart(points: Sequence[Mapping[str, Any]], title: str = ""):
    """The paper's Figure 1: F1 (%) against parameters (M, log scale), bubble area ~ GFLOPs.

    Each point: ``model``, ``params_m``, ``f1``, ``gflops`` (``None``: a small hollow marker),
    and optionally ``ours: True`` (drawn in a second colour). Labels that would overlap are
    pushed apart vertically.
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    for point in points:
        known = point.get("gflops") is not None
        size = 4.0 * point["gflops"] if known else 60.0
        color = "tab:red" if point.get("ours") else "tab:blue"
        axis.scatter(point["params_m"], point["f1"], s=size, alpha=0.45 if known else 1.0,
                     facecolors=color if known else "none", edgecolors=color, linewidths=1.2)  # fmt: skip
    axis.set_xscale("log")
    axis.margins(x=0.35, y=0.15)
    labels = [
        (f"{p['model']} ({p['gflops']:.0f} GFLOPs)" if p.get("gflops") is not None else p["model"],
         p["params_m"], p["f1"])
        for p in points
    ]  # fmt: skip
    _place_labels(axis, labels, width=150, height=13,
                  arrowprops={"arrowstyle": "-", "color": "gray", "lw": 0.5})  # fmt: skip
    axis.set_xlabel("parameters (M, log scale)")
    axis.set_ylabel("F1 on DRIVE (%)")
    axis.set_title(title or "F1 vs parameters; bubble area ~ GFLOPs (hollow: not reported)")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def bars(values: Mapping[str, float], ylabel: str, reference: Mapping[str, float] | None = None):
    """Bars of ``values`` with the paper's ``reference`` values beside them when given."""
    plt = pyplot()
    labels = list(values)
    x = np.arange(len(labels))
    figure, axis = plt.subplots(figsize=(1.5 + 1.4 * len(labels), 3.4))
    width = 0.38 if reference else 0.6
    axis.bar(x - (width / 2 if reference else 0), [values[k] for k in labels], width,
             label="this host")  # fmt: skip
    if reference:
        axis.bar(x + width / 2, [reference.get(k, np.nan) for k in labels], width,
                 label="paper (2-core Xeon)")  # fmt: skip
        axis.legend(frameon=False)
    axis.set_xticks(x, labels)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure


def design_comparison(rows: Sequence[Mapping[str, Any]], metric: str = "f1"):
    """Notebook 7's figure: ``metric`` (%) against parameters and against CPU seconds per image.

    Each row: ``model``, ``role`` (``"reference"`` rows are drawn in a second colour),
    ``params``, ``gflops`` (bubble area), ``metric`` in [0, 1] and optionally
    ``cpu_s_per_image`` (rows without it are left out of the right panel). Both x axes are log.
    """
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    panels = ((axes[0], "params", 1e-6, "parameters (M, log scale)"),
              (axes[1], "cpu_s_per_image", 1.0, "CPU seconds per image (log scale)"))  # fmt: skip
    for axis, key, scale, label in panels:
        shown = [row for row in rows if row.get(key) is not None]
        points = [(float(row[key]) * scale, 100.0 * float(row[metric])) for row in shown]
        for row, (x, y) in zip(shown, points, strict=True):
            color = "tab:red" if row.get("role") == "reference" else "tab:blue"
            axis.scatter(x, y, s=32.0 * float(row["gflops"]) ** 0.5, alpha=0.45, color=color,
                         edgecolors=color)  # fmt: skip
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.margins(x=0.25, y=0.2)
        axis.grid(alpha=0.3)
        labels = [(row["model"], x, y) for row, (x, y) in zip(shown, points, strict=True)]
        _place_labels(axis, labels, width=110, height=12)
    axes[0].set_ylabel(f"{metric.upper() if len(metric) <= 3 else metric} on the test set (%)")
    axes[0].set_title("red: references; bubble area ~ sqrt(GFLOPs)", fontsize=9)
    figure.tight_layout()
    return figure


def validation_curves(histories: Mapping[str, Sequence[Mapping[str, float]]]):
    """Validation loss and accuracy per epoch, one line per run (``{name: CSVLogger rows}``)."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    for name, rows in histories.items():
        epochs = [int(r.get("epoch", i)) + 1 for i, r in enumerate(rows)]
        for axis, key in zip(axes, ("val_loss", "val_accuracy"), strict=True):
            values = [r.get(key, np.nan) for r in rows]
            axis.plot(epochs, values, marker="o", markersize=3, label=name)
    for axis, label in zip(axes, ("validation loss", "validation pixel accuracy"), strict=True):
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(frameon=False, fontsize=8)
    figure.tight_layout()
    return figure


def f1_against_steps(
    series: Mapping[str, Sequence[Mapping[str, float]]], paper_f1: float | None = None
):
    """Test F1 (%) against optimizer steps and against training hours, one line per series.

    ``series`` maps a label to points ``{"steps", "hours", "f1"}`` (F1 as a fraction); a series
    of one point is drawn as a marker. ``paper_f1`` (%) draws the paper's value as a line.
    """
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    for label, points in series.items():
        points = sorted(points, key=lambda p: p["steps"])
        f1 = [100 * p["f1"] for p in points]
        style = {"marker": "o", "linestyle": "-" if len(points) > 1 else "none"}
        axes[0].plot([p["steps"] for p in points], f1, label=label, **style)
        axes[1].plot([p["hours"] for p in points], f1, label=label, **style)
    for axis, xlabel in zip(
        axes, ("optimizer steps", "training wall hours (2 CPU cores)"), strict=True
    ):
        if paper_f1 is not None:
            axis.axhline(paper_f1, color="black", linestyle=":", linewidth=1, label="paper")
        axis.set_xlabel(xlabel)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("test F1 (%), paper protocol")
    axes[0].legend(frameon=False, fontsize=8)
    figure.tight_layout()
    return figure


def configuration_intervals(
    rows: Sequence[Mapping[str, Any]],
    per_seed: Mapping[str, Sequence[float]] | None = None,
    paper: Mapping[str, float] | None = None,
    metric: str = "F1 (%)",
    scale: float = 100.0,
):
    """Each configuration's mean with its intervals over seeds and test images, paper marked.

    ``rows`` are :func:`saunetv2_lib.experiments.claims.claims_table` rows (fractions, multiplied by
    ``scale``): the thick bar is the t-interval over seeds, the thin one the bootstrap interval
    over images; a row without ``mean`` (not trained yet) shows only the paper's value.
    ``per_seed`` (``{configuration: per-seed means}``) adds each seed as a dot
    (seaborn strip plot); ``paper`` marks the paper's value of a configuration with a cross.
    """
    import pandas as pd
    import seaborn as sns

    plt = pyplot()
    names = [row["configuration"] for row in rows]
    figure, axis = plt.subplots(figsize=(7.5, 0.6 + 0.55 * len(rows)))
    positions = np.arange(len(rows))
    for y, row in zip(positions, rows, strict=True):
        if row.get("mean") is None:  # not trained yet: only the paper's cross
            continue
        axis.plot([scale * row["image_low"], scale * row["image_high"]], [y, y], color="0.6", lw=1)
        if np.isfinite(row["seed_low"]):
            axis.plot([scale * row["seed_low"], scale * row["seed_high"]], [y, y], color="C0", lw=4,
                      solid_capstyle="butt")  # fmt: skip
        axis.plot(scale * row["mean"], y, "o", color="C0", ms=6, zorder=3)
    if per_seed:
        frame = pd.DataFrame([(name, scale * v) for name in names for v in per_seed.get(name, [])],
                             columns=["configuration", metric])  # fmt: skip
        frame["y"] = frame["configuration"].map({n: i for i, n in enumerate(names)})
        sns.stripplot(data=frame, x=metric, y="y", orient="h", native_scale=True, ax=axis,
                      color="0.2", size=3, jitter=False, zorder=4)  # fmt: skip
    for name, value in (paper or {}).items():
        if name in names:
            axis.plot(value, names.index(name), "x", color="C3", ms=8, mew=2, zorder=5,
                      label="paper" if name == next(iter(paper)) else None)  # fmt: skip
    axis.set_yticks(positions, names)
    axis.invert_yaxis()
    axis.set_xlabel(metric)
    axis.set_ylabel("")
    axis.grid(alpha=0.3, axis="x")
    if paper:
        axis.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure
