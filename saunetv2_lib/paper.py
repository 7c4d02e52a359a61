"""The paper's tables as data, every number with the tag of where it was read (spec 2.4, 3, 5.1-5.4).

Numbers are exactly as the paper prints them: metrics in percent, parameters in millions, GFLOPs
in the TF-profiler convention, CPU seconds per image. ``None`` stands for the paper's "--".

Source tags (``SOURCES``), from ``../shared/design/saunetv2_spec.md``:

* ``PAGE``: the authors' project page (``index.html`` in their later commits), which carries the
  DRIVE tables, the loss ablation and the CPU times;
* ``3P``: a third-party transcription of the paper's tables (not checked against the PDF); the
  STARE table, the architecture ablation, two loss-ablation rows and three GFLOPs cells;
* ``CODE``: the outputs stored in the official notebooks (5-digit fractions).

Table numbering follows the third-party transcription (Tables 1-4); the project page shows
Table 1 as two parts, without and with the FOV mask, here ``1A`` and ``1B``.

Typical use::

    from saunetv2_lib import paper
    paper.TABLES["drive_without_fov"].frame()      # a pandas DataFrame
    paper.value("drive_without_fov", "SA-UNetv2", "f1")   # 82.82
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

METRICS = ("f1", "jaccard", "sensitivity", "specificity", "accuracy", "mcc", "auc")
METRIC_LABELS = {
    "f1": "F1",
    "jaccard": "Jacc",
    "sensitivity": "Sen",
    "specificity": "Spe",
    "accuracy": "Acc",
    "mcc": "MCC",
    "auc": "AUC",
    "params_m": "Params (M)",
    "gflops": "GFLOPs",
    "cpu_s": "CPU time (s)",
    "cpu_ratio": "CPU time / SA-UNetv2's",
}

SOURCES = {
    "PAGE": "authors' project page (index.html, commit 630732a of the fork carrying their commits)",
    "3P": "third-party transcription of the paper's tables (Arptel/Btep), not checked against the PDF",
    "CODE": "outputs stored in the official notebook clguo/SA-UNetv2 sa-unetv2-for-drive.ipynb",
    "PAPER": "the paper's text as quoted by its abstract page",
}

# Registry names (saunetv2_lib.models.MODELS) of the table rows this project rebuilds.
REGISTRY = {
    "SA-UNetv2": "sa_unet_v2",
    "SA-UNet": "sa_unet",
    "U-Net": "unet",
    "Attention U-Net": "attention_unet",
}

# The paper's CPU-time hardware (spec 2.4).
CPU_HARDWARE = "Intel Xeon CPU @ 2.20GHz (2 cores), a Kaggle CPU session"


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper.

    Attributes:
        key: short identifier, e.g. ``"drive_without_fov"``.
        ref: the paper's name for it, e.g. ``"Table 1A"``.
        title: what it shows.
        source: default source tag of its numbers (see ``SOURCES``); rows and cells may override
            it through ``row["source"]`` and ``row["cell_sources"]``.
        protocol: how the numbers were measured.
        columns: the value columns, in order (metrics in percent, see ``METRIC_LABELS``).
        rows: one dict per row: ``"model"`` (the row's name), values keyed by ``columns``, and
            optionally ``"venue"``, ``"source"``, ``"cell_sources"``, ``"note"``.
    """

    key: str
    ref: str
    title: str
    source: str
    protocol: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...] = field(repr=False)

    def row(self, model: str) -> dict[str, Any]:
        """The row named ``model`` (case-insensitive); ``KeyError`` naming the rows otherwise."""
        for row in self.rows:
            if row["model"].lower() == model.lower():
                return row
        names = ", ".join(r["model"] for r in self.rows)
        raise KeyError(f"{self.ref} has no row {model!r}; rows: {names}.")

    def cell_source(self, model: str, column: str) -> str:
        """The source tag of one cell: the cell's own, else its row's, else the table's."""
        row = self.row(model)
        return row.get("cell_sources", {}).get(column) or row.get("source") or self.source

    def frame(self):
        """The table as a ``pandas.DataFrame``: ``model``, ``venue`` (if any), the value columns
        and ``source`` (the row's source tag)."""
        import pandas as pd

        records = []
        has_venue = any("venue" in r for r in self.rows)
        for row in self.rows:
            record: dict[str, Any] = {"model": row["model"]}
            if has_venue:
                record["venue"] = row.get("venue")
            record.update({c: row.get(c) for c in self.columns})
            record["source"] = row.get("source") or self.source
            records.append(record)
        return pd.DataFrame.from_records(records)


def _metric_row(model: str, values: tuple, **extra: Any) -> dict[str, Any]:
    return {"model": model, **dict(zip(METRICS, values, strict=True)), **extra}


# Spec 5.1. GFLOPs of U-Net++, UNet3+, ACC-UNet-Lite and the whole nnWNet row are 3P only.
_DRIVE_A = (
    _metric_row("U-Net", (81.30, 68.52, 80.65, 98.34, 96.77, 79.66, 98.24), venue="MICCAI'15",
                params_m=8.64, gflops=137.10, cpu_s=3.16),
    _metric_row("Attention U-Net", (81.47, 68.76, 81.24, 98.30, 96.78, 79.84, 98.22),
                venue="MIDL'18", params_m=8.65, gflops=425.05, cpu_s=7.74),
    _metric_row("AG-Net", (None, 69.65, 81.00, 98.48, 96.92, 79.84, 98.56), venue="MICCAI'19",
                params_m=9.34, gflops=None, cpu_s=None),
    _metric_row("U-Net++", (81.18, 68.34, 82.40, 98.07, 96.67, 79.50, 98.44), venue="TMI'20",
                params_m=10.20, gflops=338.25, cpu_s=6.95, cell_sources={"gflops": "3P"}),
    _metric_row("PA-Filter", (82.61, None, None, None, 96.99, None, 98.43), venue="ISBI'20",
                params_m=2.01, gflops=None, cpu_s=None,
                note="the transcription (3P) gives the venue as ISBI'22"),
    _metric_row("UNet3+", (81.46, 68.74, 82.02, 98.18, 96.75, 79.79, 98.47), venue="ICASSP'20",
                params_m=1.97, gflops=198.20, cpu_s=5.29, cell_sources={"gflops": "3P"}),
    _metric_row("ACC-UNet-Lite", (81.26, 68.47, 82.05, 98.14, 96.71, 79.57, 98.34),
                venue="MICCAI'23", params_m=9.14, gflops=215.59, cpu_s=4.41,
                cell_sources={"gflops": "3P"}),
    _metric_row("nnWNet", (82.18, 69.86, None, None, None, None, None), venue="CVPR'25",
                params_m=7.00, gflops=None, cpu_s=None, source="3P",
                note="only in the transcription and the Figure 1 bubble chart"),
    _metric_row("SA-UNet", (82.44, 70.15, 83.64, 98.19, 96.90, 80.85, 98.62), venue="ICPR'20",
                params_m=0.54, gflops=26.54, cpu_s=1.12),
    _metric_row("SA-UNetv2", (82.82, 70.69, 83.64, 98.28, 96.98, 81.27, 98.71), venue="ours",
                params_m=0.26, gflops=21.19, cpu_s=0.95),
)  # fmt: skip

# Spec 5.2. The paper's last column is CPU time (s).
_DRIVE_B = (
    _metric_row("IterNet", (82.18, None, 77.91, 98.31, 95.74, None, 98.13), venue="WACV'20",
                params_m=8.25, cpu_s=None),
    _metric_row("RetinalLiteNet", (80.60, 67.50, 78.40, 98.00, None, None, 97.00),
                venue="CVPRW'24", params_m=0.066, cpu_s=None),
    _metric_row("UNetv2", (79.64, None, None, None, 94.72, None, 87.62), venue="ISBI'25",
                params_m=25.15, cpu_s=None, note="marked (dagger) in the paper"),
    _metric_row("MamUNet", (81.78, None, None, None, 95.36, None, 90.25), venue="ISBI'25",
                params_m=16.86, cpu_s=None, note="marked (dagger) in the paper"),
    _metric_row("SA-UNet", (82.46, 70.18, 83.67, 97.25, 95.49, 80.00, 97.94), venue="ICPR'20",
                params_m=0.54, cpu_s=1.12),
    _metric_row("SA-UNetv2", (82.84, 70.73, 83.67, 97.39, 95.61, 80.44, 98.08), venue="ours",
                params_m=0.26, cpu_s=0.95),
)  # fmt: skip

# Spec 5.3 (3P only).
_STARE = (
    _metric_row("IterNet", (81.46, None, 77.15, 99.19, 97.82, None, 99.15)),
    _metric_row("U-Net", (79.74, 66.43, 83.88, 98.45, 97.45, 78.77, 98.90)),
    _metric_row("Attention U-Net", (80.61, 67.72, 84.63, 98.49, 97.55, 79.60, 98.46)),
    _metric_row("U-Net++", (79.56, 66.15, 79.45, 98.82, 97.53, 78.49, 98.82)),
    _metric_row("PA-Filter", (81.70, None, None, None, 97.88, None, 98.43)),
    _metric_row("UNet3+", (81.16, 68.40, 84.50, 98.60, 97.60, 80.34, 99.06)),
    _metric_row("ACC-UNet-Lite", (78.99, 65.47, 86.12, 98.12, 97.24, 78.30, 98.85)),
    _metric_row("SA-UNet", (80.84, 68.01, 89.99, 98.03, 97.45, 80.19, 99.18)),
    _metric_row("SA-UNetv2", (82.81, 70.82, 85.35, 98.71, 97.83, 81.79, 99.13)),
)

# Spec 5.4 (3P only). ``build`` says how this project builds each configuration;
# ``gflops_repeated`` marks rows whose printed GFLOPs equal the full model's (see
# ``saunetv2_lib.companion.paper_check.ablation_complexity_rows``).
_ABLATION = (
    {"model": "SA-UNet (BN, ReLU)", "channels": "16-32-64-128", "f1": 82.17, "jaccard": 69.77,
     "mcc": 80.67, "accuracy": 96.96, "params_m": 0.54, "gflops": 26.30,
     "build": {"model": "sa_unet_bn_relu"}},
    {"model": "+ GN + SiLU", "channels": "16-32-64-128", "f1": 82.49, "jaccard": 70.22,
     "mcc": 80.92, "accuracy": 96.92, "params_m": 0.54, "gflops": 26.54,
     "build": {"model": "sa_unet"}},
    {"model": "+ channel compression", "channels": "16-32-48-64", "f1": 82.70, "jaccard": 70.52,
     "mcc": 81.15, "accuracy": 96.97, "params_m": 0.26, "gflops": 21.19,
     "gflops_repeated": True, "build": {"widths": (16, 32, 48, 64), "skip": "none"}},
    {"model": "+ plain SA in skips", "channels": "16-32-48-64", "f1": 82.65, "jaccard": 70.45,
     "mcc": 81.11, "accuracy": 96.97, "params_m": 0.26, "gflops": 21.19,
     "gflops_repeated": True, "build": {"model": "sa_unet_v2", "skip": "sa"}},
    {"model": "+ CSA (full SA-UNetv2)", "channels": "16-32-48-64", "f1": 82.75, "jaccard": 70.60,
     "mcc": 81.21, "accuracy": 96.99, "params_m": 0.26, "gflops": 21.19,
     "build": {"model": "sa_unet_v2"}},
)  # fmt: skip

# Spec 3: three rows from the project page, two more from the transcription.
_LOSS = (
    _metric_row("BCE", (82.75, 70.60, 82.81, 98.38, 96.99, 81.21, 98.70),
                bce_weight=1.0, mcc_weight=0.0),
    _metric_row("MCC", (82.73, 70.56, 84.35, 98.16, 96.93, 81.17, 91.71),
                bce_weight=0.0, mcc_weight=1.0),
    _metric_row("BCE+MCC (0.5, 0.5)", (82.82, 70.69, 83.64, 98.28, 96.98, 81.27, 98.71),
                bce_weight=0.5, mcc_weight=0.5, note="the paper's choice"),
    _metric_row("BCE+MCC (0.7, 0.3)", (82.62, 70.41, 84.85, 98.07, 96.89, 81.06, 98.71),
                bce_weight=0.7, mcc_weight=0.3, source="3P"),
    _metric_row("BCE+MCC (0.3, 0.7)", (82.76, 70.61, 83.81, 98.25, 96.96, 81.21, 98.68),
                bce_weight=0.3, mcc_weight=0.7, source="3P"),
)  # fmt: skip

# Spec 2.4: seconds per image on the paper's CPU: Table 1A's CPU column, the rows that have one.
_CPU = tuple({"model": row["model"], "cpu_s": row["cpu_s"]} for row in _DRIVE_A if row["cpu_s"])

# Spec 5 / anchors B.9: the official DRIVE notebook's stored outputs, as fractions x 100.
_NOTEBOOK = (
    _metric_row("whole image", (82.818, 70.699, 83.639, 98.280, 96.977, 81.273, 98.719)),
    _metric_row("FOV", (82.837, 70.726, 83.671, 97.387, 95.611, 80.441, 98.107)),
)

_WHOLE = "whole image (584x565), per-image mean over the 20 DRIVE test images, p > 0.5"

TABLES: dict[str, PaperTable] = {
    table.key: table
    for table in (
        PaperTable("drive_without_fov", "Table 1A", "DRIVE test set, without FOV mask", "PAGE",
                   _WHOLE, (*METRICS, "params_m", "gflops", "cpu_s"), _DRIVE_A),
        PaperTable("drive_with_fov", "Table 1B", "DRIVE test set, with FOV mask", "PAGE",
                   "inside the official FOV masks, per-image mean, p >= 0.5",
                   (*METRICS, "params_m", "cpu_s"), _DRIVE_B),
        PaperTable("stare", "Table 2", "STARE test set (16 train / 4 test)", "3P",
                   "whole image (605x700), per-image mean, p > 0.5, Hoover (ah) labels",
                   METRICS, _STARE),
        PaperTable("architecture_ablation", "Table 3", "Architecture ablation on DRIVE", "3P",
                   _WHOLE, ("channels", "f1", "jaccard", "mcc", "accuracy", "params_m", "gflops"),
                   _ABLATION),
        PaperTable("loss_ablation", "Table 4", "Loss ablation on DRIVE (without FOV mask)", "PAGE",
                   _WHOLE, (*METRICS, "bce_weight", "mcc_weight"), _LOSS),
        PaperTable("cpu_time", "Table 1A (CPU column)", f"CPU seconds per image, {CPU_HARDWARE}",
                   "PAGE", "one 592x592 image, after a warm-up call", ("cpu_s",), _CPU),
        PaperTable("official_notebook_drive", "official notebook",
                   "SA-UNetv2 DRIVE results stored in the official notebook", "CODE",
                   "same predictions, whole image (p > 0.5) and FOV (p >= 0.5), per-image mean",
                   METRICS, _NOTEBOOK),
    )
}  # fmt: skip

# Single numbers the paper states in its text.
CLAIMS: dict[str, dict[str, Any]] = {
    "params": {"value": 260_521, "unit": "parameters", "source": "CODE",
               "text": "model.summary() of the official DRIVE notebook (paper: 0.26 M)"},
    "gflops": {"value": 21.190, "unit": "GFLOPs", "source": "CODE",
               "text": "keras_flops.get_flops at 592x592 in the official notebook (paper: 21.19)"},
    "memory_mb": {"value": 1.2, "unit": "MB", "source": "PAPER",
                  "text": "'1.2 MB memory'; the method is not stated"},
    "cpu_s": {"value": 0.95, "unit": "s / image", "source": "PAGE",
              "text": f"CPU inference time on {CPU_HARDWARE}"},
}  # fmt: skip


# The table of each dataset's headline result (whole image, the paper's protocol).
HEADLINE_TABLES = {"drive": "drive_without_fov", "stare": "stare"}


def headline_f1(dataset: str) -> float:
    """The paper's SA-UNetv2 F1 (%) on ``dataset``'s test set (``"drive"`` or ``"stare"``)."""
    key = HEADLINE_TABLES.get(dataset.lower())
    if key is None:
        raise KeyError(
            f"The paper has no headline result on {dataset!r}; it has {list(HEADLINE_TABLES)}."
        )
    return value(key, "SA-UNetv2", "f1")


def table(key: str) -> PaperTable:
    """The table ``key`` (see ``TABLES``), with a clear error for an unknown key."""
    try:
        return TABLES[key]
    except KeyError:
        raise KeyError(f"Unknown paper table {key!r}; available: {', '.join(TABLES)}.") from None


def value(key: str, model: str, column: str) -> float | None:
    """One number of the paper as printed (``None`` for "--")."""
    paper_table = table(key)
    if column not in paper_table.columns:
        raise KeyError(
            f"{paper_table.ref} has no column {column!r}; columns: {paper_table.columns}."
        )
    return paper_table.row(model).get(column)


def registered_model_value(name: str, column: str) -> float | None:
    """The paper's ``column`` (e.g. ``"gflops"``, ``"cpu_s"``) for the registered model ``name``.

    Table 1A gives the models of :data:`REGISTRY`; Table 3 the ablation rows built as one
    registered model (``sa_unet_bn_relu``). ``None`` where the paper does not list the model or
    the cell.
    """
    for paper_name, key in REGISTRY.items():
        if key == name:
            return table("drive_without_fov").row(paper_name).get(column)
    for row in table("architecture_ablation").rows:
        if row.get("build") == {"model": name}:
            return row.get(column)
    return None


def registered_model_complexity(name: str) -> tuple[float | None, float | None]:
    """The paper's (parameters in millions, GFLOPs at 592x592) of the registered model ``name``."""
    return registered_model_value(name, "params_m"), registered_model_value(name, "gflops")
