"""Paper vs reproduced: every number of the paper we can recompute, judged against a stated tolerance.

Complexity (parameters, GFLOPs) must match to the paper's printed precision; the shipped weights'
metrics within a re-training tolerance per metric; CPU times by their ratios to SA-UNetv2 (the
paper's CPU is not ours). Rows outside their tolerance carry a diagnosis from
:data:`KNOWN_GAPS`; a gap that closes must leave the register (``tests/test_paper_vs_reproduced.py``).
The runner (:mod:`saunetv2_lib.companion.reproduce`) writes the table as
``figures/paper_vs_reproduced.csv`` and ``.md``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAPER_VS_REPRODUCED = "paper_vs_reproduced"

# Tolerances of trained-model metrics, in percentage points. A CPU re-training with on-the-fly
# augmentation is not the authors' run: seeds alone move DRIVE F1 by a few tenths; sensitivity
# moves most, since it trades off against specificity at a fixed threshold. STARE has only 4
# test images and third-party numbers, hence twice the tolerance.
METRIC_TOLERANCE_PP = {
    "f1": 1.0,
    "jaccard": 1.5,
    "sensitivity": 3.0,
    "specificity": 0.5,
    "accuracy": 0.3,
    "mcc": 1.0,
    "auc": 0.5,
}
STARE_TOLERANCE_FACTOR = 2.0
# Reproduced rows known to fall outside their tolerance, with the diagnosis. The tolerances stay
# honest: an outside row is reported as outside everywhere (CSV, home page, notebooks); this
# register only records that it is understood. A gap names the quantities it explains, so a
# diagnosis of one quantity (a CPU ratio, a sensitivity) never covers another quantity of the same
# row that leaves its tolerance later. tests/test_paper_vs_reproduced.py fails, through
# :func:`check_known_gaps`, on an outside row that is not registered here, and on a registered
# quantity that is no longer outside (so that a fixed gap is removed from this list).


@dataclass(frozen=True)
class KnownGap:
    """Why some quantities of one reproduced row lie outside their tolerance.

    ``on_the_edge`` marks a measurement that falls on either side of its tolerance from one run to
    the next (a CPU timing); such a gap may also be found within without failing the register.
    """

    quantities: frozenset[str]
    reason: str
    on_the_edge: bool = False


_BUDGET_QUANTITIES = frozenset({"f1", "jaccard", "mcc"})
# Why the BCE-trained rows of Tables 3 and 4 sit below the paper (their differences and verdicts are
# computed in notebook 2, not retyped here).
_ABLATION_BUDGET_LEVEL = (
    "3 seeds at the ablation budget (300 steps, BCE) lie below the paper beyond the budget gap "
    "that widens the interval; that gap is measured on SA-UNetv2's paper-scale run (its 300-step "
    "checkpoint, BCE + MCC), and the BCE-trained rows are still learning at 300 steps (their best "
    "checkpoints come from the last three of ten epochs). Their level needs the paper's budget "
    "(issue 14); their ordering, the paper's claim, is tested with seeds in notebook 2."
)
KNOWN_GAPS: dict[tuple[str, str], KnownGap] = {
    # The paper-scale DRIVE and STARE rows are within tolerance (issue 12).
    ("Table 3", "SA-UNet (BN, ReLU)"): KnownGap(
        _BUDGET_QUANTITIES | {"accuracy"},
        _ABLATION_BUDGET_LEVEL + " It validates with precise BN statistics.",
    ),
    ("Table 3", "+ GN + SiLU"): KnownGap(_BUDGET_QUANTITIES, _ABLATION_BUDGET_LEVEL),
    ("Table 3", "+ channel compression"): KnownGap(_BUDGET_QUANTITIES, _ABLATION_BUDGET_LEVEL),
    ("Table 4", "BCE"): KnownGap(
        frozenset({"sensitivity"}),
        _ABLATION_BUDGET_LEVEL
        + " Here it is sensitivity that falls short: trained with BCE alone for 300 steps, SA-UNetv2"
        " still misses thin vessels (its F1, Jaccard, MCC and specificity are within).",
    ),
    ("Table 4", "MCC"): KnownGap(
        frozenset({"auc"}),
        "its AUC lies above the paper's, whose MCC-only AUC is the one of Table 4 far below the "
        "others. Ours falls below our BCE row's too, the paper's direction. Soft MCC alone "
        "pushes the probabilities to 0 and 1, its misses included, and a vessel pixel scored "
        "near 0 ranks among the background (notebook 3, 'Why MCC alone loses AUC', measures "
        "this on every run, and whether it goes with AUC). How far AUC falls may grow with "
        "training as more pixels saturate; 300 steps are a tenth of the paper's schedule.",
    ),
    ("Table 4", "BCE+MCC (0.3, 0.7)"): KnownGap(
        frozenset({"auc"}),
        "its AUC misses the widened interval by hundredths of a point, and only since its third "
        "seed narrowed the seed interval. The AUC budget gap that widens it is measured on the "
        "paper's loss (0.5, 0.5); with more weight on soft MCC this loss saturates more of the "
        "test probabilities, its confident vessel misses included, and its AUC lies below the "
        "paper's loss's at the same budget (notebook 3, the saturation table), as MCC alone does "
        "further. Its F1, Jaccard, sensitivity, specificity, accuracy and MCC are within.",
    ),
    ("Table 1A", "Attention U-Net"): KnownGap(
        frozenset({"cpu_ratio"}),
        "its CPU-time ratio, judged on an idle machine, follows the FLOP ratio (20x) more than the "
        "paper's 8.15x: the paper's four times fit a constant per-image cost plus a multiple of "
        "ours, and a constant raises the small model's time most, which compresses the ratios "
        "(notebook 6, 'Why the paper's CPU ratios are not the FLOP ratios', from "
        "benchmarks/bench_paper_timing.py). A property of how the paper timed, not of the models; "
        "our ratio sits on the tolerance's edge (12.1x to 14.0x between timings).",
        on_the_edge=True,
    ),
}


def check_known_gaps(
    rows: Sequence[Mapping[str, Any]],
    register: Mapping[tuple[str, str], KnownGap] | None = None,
) -> tuple[list[str], list[str]]:
    """Compare outside rows with the register: ``(unexplained, closed)``, each a list of labels.

    ``rows`` are paper-vs-reproduced rows whose ``within`` is ``True``, ``False`` or ``None`` (or
    the CSV's ``"true"``, ``"false"``, ``""``). ``unexplained``: outside quantities no gap names.
    ``closed``: registered quantities not outside any more (pending, within, or missing), except
    the within ones of an ``on_the_edge`` gap.
    """
    register = KNOWN_GAPS if register is None else register
    states = {True: "within", "true": "within", False: "outside", "false": "outside"}
    status = {
        (r["paper_table"], r["row"], r["quantity"]): states.get(r["within"], "pending")
        for r in rows
    }

    def registered(key: tuple[str, str, str]) -> bool:
        gap = register.get(key[:2])
        return gap is not None and key[2] in gap.quantities

    unexplained = [
        " / ".join(key)
        for key, state in status.items()
        if state == "outside" and not registered(key)
    ]
    closed = [
        f"{table} / {row} / {quantity} ({status.get((table, row, quantity), 'missing')})"
        for (table, row), gap in register.items()
        for quantity in sorted(gap.quantities)
        if status.get((table, row, quantity)) != "outside"
        and not (gap.on_the_edge and status.get((table, row, quantity)) == "within")
    ]
    return unexplained, closed


# CPU seconds depend on the host (the paper's: a 2-core Xeon); the time of each baseline relative
# to SA-UNetv2 transfers better between machines, but still depends on caches and memory
# bandwidth (the large baselines suffer most when other processes share the CPU).
CPU_RATIO_TOLERANCE = 0.5
BUSY_LOAD = 0.75  # per core: above this the machine was shared while timing


def _row(
    ref: str,
    model: str,
    quantity: str,
    paper: float | None,
    ours: float | None,
    tolerance: float | None,
    unit: str,
    basis: str,
    source: str,
    ours_from: str,
    judged: bool = True,
) -> dict[str, Any]:
    known = ours is not None and paper is not None and not math.isnan(float(ours))
    difference = float(ours) - float(paper) if known else None
    if not judged:  # reported, but not held to the tolerance (e.g. timed on a busy machine)
        difference = None
    return {
        "paper_table": ref,
        "row": model,
        "quantity": quantity,
        "unit": unit,
        "paper": paper,
        "ours": None if ours is None else float(ours),
        "difference": difference,
        "tolerance": tolerance,
        "within": None
        if difference is None or tolerance is None
        else bool(abs(difference) <= tolerance + 1e-9),
        "tolerance_basis": basis,
        "paper_source": source,
        "ours_from": ours_from,
    }


def _half_last_digit(number: float) -> float:
    """Half a unit of the last printed decimal of ``number`` (two decimals for most tables)."""
    text = f"{number:.6f}".rstrip("0").rstrip(".")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10 ** (-decimals)


def _gflops(model) -> float:
    from saunetv2_lib.complexity import layer_costs

    return sum(r["flops"] for r in layer_costs(model)) / 1e9


def table1_complexity_rows() -> list[dict[str, Any]]:
    """Parameters and GFLOPs of Table 1A's four models rebuilt now, plus the text's SA-UNetv2 claims.

    SA-UNetv2 and SA-UNet must match to the printed digit (half a unit of the last decimal); U-Net
    and Attention U-Net are arithmetic reconstructions (spec 2.2), allowed 0.1 %.
    """
    import keras

    from saunetv2_lib import paper
    from saunetv2_lib.complexity import weights_file_mb
    from saunetv2_lib.models import get_model

    rows = []
    table = paper.table("drive_without_fov")
    for name, registry in paper.REGISTRY.items():
        model = get_model(registry)
        params = model.count_params()
        reconstructed = registry in ("unet", "attention_unet")
        for quantity, ours, unit in (
            ("params_m", params / 1e6, "M"),
            ("gflops", _gflops(model), "GFLOPs"),
        ):
            printed = table.row(name)[quantity]
            tolerance = _half_last_digit(printed)
            basis = "half the last printed digit"
            if reconstructed:
                tolerance, basis = max(tolerance, 1e-3 * printed), "0.1 % (reconstructed baseline)"
            rows.append(
                _row(table.ref, name, quantity, printed, ours, tolerance, unit, basis,
                     table.cell_source(name, quantity), f"saunetv2_lib.models.{registry}")
            )  # fmt: skip
        if registry == "sa_unet_v2":
            claims = paper.CLAIMS
            rows.append(
                _row("text", name, "params", claims["params"]["value"], params, 0, "parameters",
                     "exact", claims["params"]["source"], "model.count_params()")
            )  # fmt: skip
            mib = weights_file_mb(model) * 1e6 / 2**20
            rows.append(
                _row("text", name, "memory", claims["memory_mb"]["value"], mib, 0.05, "MiB",
                     "half the last printed digit", claims["memory_mb"]["source"],
                     ".weights.h5 file size in MiB (the paper's method is not stated)")
            )  # fmt: skip
        keras.backend.clear_session()
    return rows


# Table 3 prints 21.19 GFLOPs for all three 16-32-48-64 rows, the full model's cost; counted
# with the same profiler rules the rows without CSA are cheaper (spec 5.4 is a 3P transcription).
ABLATION_REPEATED_BASIS = "1 % (the paper repeats the full model's GFLOPs on this row)"


def ablation_complexity_rows() -> list[dict[str, Any]]:
    """Parameters and GFLOPs of each step of the architecture ablation (Table 3), rebuilt now."""
    import keras

    from saunetv2_lib import paper
    from saunetv2_lib.models import build_unet, get_model

    rows = []
    ablation = paper.table("architecture_ablation")
    for entry in ablation.rows:
        build = dict(entry["build"])
        if "model" in build:
            model = get_model(build.pop("model"), **build)
        else:
            model = build_unet((592, 592, 3), name="ablation", **build)
        described = ", ".join(f"{k}={v}" for k, v in entry["build"].items())
        for quantity, ours, unit in (
            ("params_m", model.count_params() / 1e6, "M"),
            ("gflops", _gflops(model), "GFLOPs"),
        ):
            printed = entry[quantity]
            tolerance, basis = _half_last_digit(printed), "half the last printed digit"
            if quantity == "gflops" and entry.get("gflops_repeated"):
                tolerance, basis = 0.01 * printed, ABLATION_REPEATED_BASIS
            rows.append(
                _row(ablation.ref, entry["model"], quantity, printed, ours, tolerance, unit,
                     basis, ablation.source, f"saunetv2_lib.models ({described})")
            )  # fmt: skip
        keras.backend.clear_session()
    return rows


def complexity_rows() -> list[dict[str, Any]]:
    """:func:`table1_complexity_rows` followed by :func:`ablation_complexity_rows`."""
    return table1_complexity_rows() + ablation_complexity_rows()


def metric_rows(weights_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The shipped weights' test metrics (paper protocol cells of their model cards) vs the paper.

    Rows stay in the table with ``ours`` empty while the weights are not shipped yet.
    """
    from saunetv2_lib import paper, weights

    shipped = weights if weights_dir is None else _weights_module_at(Path(weights_dir))
    targets = (
        ("drive", "drive_without_fov", {"region": "whole"}, 1.0),
        ("drive", "drive_with_fov", {"region": "fov"}, 1.0),
        ("stare", "stare", {"region": "whole"}, STARE_TOLERANCE_FACTOR),
    )
    rows = []
    for name, key, match, factor in targets:
        table = paper.table(key)
        card_row = None
        available = shipped.list_weights().get(name, False)
        if available:
            card_row = weights.card_row(shipped.read_model_card(name), **match)
        origin = (
            f"shipped weights '{name}' (model card)"
            if card_row
            else f"pending: weights '{name}' not shipped yet"
        )
        for metric in paper.METRICS:
            printed = table.row("SA-UNetv2")[metric]
            ours = None if card_row is None else 100.0 * float(card_row[metric])
            rows.append(
                _row(table.ref, "SA-UNetv2", metric, printed, ours,
                     METRIC_TOLERANCE_PP[metric] * factor, "%",
                     f"{METRIC_TOLERANCE_PP[metric] * factor:g} pp (re-training)",
                     table.cell_source("SA-UNetv2", metric), origin)
            )  # fmt: skip
    return rows


def _weights_module_at(directory: Path):
    """The weights module reading ``directory`` instead of the package folder (for tests)."""
    import types

    from saunetv2_lib import weights

    module = types.SimpleNamespace()
    module.list_weights = lambda: {
        name: (directory / f"{name}.keras").is_file() for name in weights.SHIPPED_NAMES
    }
    module.read_model_card = lambda name: weights.read_model_card(directory / f"{name}.keras")
    return module


def cpu_rows(figures_dir: str | Path) -> list[dict[str, Any]]:
    """CPU times measured by notebook 06 on this host (``06_efficiency.csv``) vs the paper.

    The paper's CPU is not ours, so SA-UNetv2's absolute time only has to stay within the
    paper's number either way (``|ours - paper| <= paper``); the baselines are compared by what
    transfers between machines: their time relative to SA-UNetv2, within ``CPU_RATIO_TOLERANCE``.
    Timings taken while the machine was busy (1-minute load average above ``BUSY_LOAD`` per core,
    recorded by notebook 06) are reported but not judged: other processes slow the large models
    more than the small ones, which distorts the ratios.
    """
    from saunetv2_lib import paper

    path = Path(figures_dir) / "06_efficiency.csv"
    measured: dict[str, float] = {}
    origin = "pending: notebook 06 has not written 06_efficiency.csv"
    judged = True
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                if record.get("cpu_s_per_image"):
                    measured[record["model"]] = float(record["cpu_s_per_image"])
                    origin = f"06_efficiency.csv, measured on {record.get('host') or 'this host'}"
                    load, cores = record.get("load_average"), record.get("cores")
                    if load and cores and float(load) > BUSY_LOAD * float(cores):
                        judged = False
                        origin += (
                            f" under load {float(load):.1f} on {int(float(cores))} cores: "
                            "not judged, re-run notebook 06 on an idle machine"
                        )
    table = paper.table("cpu_time")
    reference = table.row("SA-UNetv2")["cpu_s"]
    ours_reference = measured.get("sa_unet_v2")
    rows = [
        _row("Table 1A", "SA-UNetv2", "cpu_s", reference, ours_reference, reference, "s / image",
             "|ours - paper| <= paper (a different CPU)", table.source, origin, judged)
    ]  # fmt: skip
    for name, registry in paper.REGISTRY.items():
        if registry == "sa_unet_v2":
            continue
        ratio = table.row(name)["cpu_s"] / reference
        ours = None
        if registry in measured and ours_reference:
            ours = measured[registry] / ours_reference
        rows.append(
            _row("Table 1A", name, "cpu_ratio", ratio, ours, CPU_RATIO_TOLERANCE * ratio,
                 "x SA-UNetv2", f"{CPU_RATIO_TOLERANCE:.0%} of the paper's ratio",
                 table.source, origin, judged)
        )  # fmt: skip
    return rows


# The campaigns of trained rows: judged against the paper, or flagged (reported, not judged).
TRAINED_ROW_CAMPAIGNS = {"ablation": True, "baselines": False}


def ablation_metric_rows(
    bundles: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The trained rows of issue 14 (Tables 3, 4; the baselines of Table 1A) vs the paper.

    Ours is the mean over a configuration's seeds under its campaign's budget. An ``ablation``
    row is within when the paper's value lies inside our 95 % seed interval widened, on the side
    the budget biases, by the budget gap: how much more the paper-scale SA-UNetv2 run scores
    than at the budget's step count (:func:`saunetv2_lib.experiments.ablation.budget_gap`). The
    tolerance column is the distance from our mean to that interval's end on the paper's side,
    so that ``|ours - paper| <= tolerance`` reads as usual. ``baselines`` rows (U-Net, Attention
    U-Net at a smaller budget) are reported, not judged. Fewer than two seeds: pending.

    Args:
        bundles: ``{"ablation" | "baselines" | "paper": bundle}``; ``None`` reads the committed
            bundles, and a campaign missing from the mapping counts as not run.
    """
    from saunetv2_lib.experiments.campaign import load_campaign_bundle

    names = (*TRAINED_ROW_CAMPAIGNS, "paper")
    if bundles is None:
        bundles = {name: load_campaign_bundle(name, missing_ok=True) for name in names}
    rows = []
    for name, judged in TRAINED_ROW_CAMPAIGNS.items():
        rows += _trained_rows(name, judged, bundles.get(name, {"runs": {}}),
                              bundles.get("paper", {"runs": {}}))  # fmt: skip
    return rows


def _trained_rows(
    name: str, judged: bool, bundle: Mapping[str, Any], curve: Mapping[str, Any]
) -> list[dict[str, Any]]:
    from saunetv2_lib import paper
    from saunetv2_lib.experiments import ablation
    from saunetv2_lib.experiments.campaign import load_campaign

    campaign = load_campaign(name)
    steps = ablation.budget_steps(campaign)
    gap = ablation.budget_gap(curve, steps)
    seeds_declared = ablation.declared_seeds(campaign)
    tables = {spec_table for spec in campaign.runs for spec_table in spec.paper_rows}
    rows = []
    for key, metrics in ablation.TABLE_METRICS.items():
        if key not in tables:
            continue
        table = paper.table(key)
        for metric in metrics:
            for entry in ablation.ablation_rows(key, bundle, campaign, metric):
                if key == "drive_without_fov" and entry["row"] == "SA-UNetv2":
                    continue  # the shipped paper-scale weights give this row (metric_rows)
                configuration = entry["configuration"]
                origin = (
                    f"{name} campaign '{configuration}': {entry['seeds']} of "
                    f"{seeds_declared[configuration]} seeds, {steps} steps each"
                )
                ours, tolerance, basis = None, None, "pending: fewer than 2 finished seeds"
                if entry["seeds"] < 2:
                    origin = "pending: " + origin
                elif not judged:
                    ours = entry["mean"]
                    basis = (f"flagged: a smaller budget ({steps} steps) for a costly model on "
                             "CPU; reported beside the paper, not judged")  # fmt: skip
                elif gap is None:
                    basis = f"pending: the paper-scale run has no {steps}-step milestone"
                else:
                    shift = gap["gap"][metric]
                    low = entry["seed_low"] + min(shift, 0.0)
                    high = entry["seed_high"] + max(shift, 0.0)
                    ours = entry["mean"]
                    tolerance = high - ours if entry["paper"] >= ours else ours - low
                    basis = (
                        f"our 95 % seed interval [{entry['seed_low']:.2f}, "
                        f"{entry['seed_high']:.2f}] widened by the {steps}-step budget gap "
                        f"({shift:+.2f} pp against {gap['against_steps']:,} steps)"
                    )
                rows.append(
                    _row(table.ref, entry["row"], metric, entry["paper"], ours, tolerance, "%",
                         basis, table.cell_source(entry["row"], metric), origin, judged)
                )  # fmt: skip
    return rows


def paper_vs_reproduced(
    figures_dir: str | Path, weights_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Every paper number this project reproduces, ours beside it, the difference and tolerance.

    Complexity is recomputed now; metrics come from the shipped weights' model cards and the
    ablation campaign's bundle; CPU times from notebook 06's ``06_efficiency.csv`` in
    ``figures_dir``. Each row has ``within``: True,
    False, or None while ours is pending.
    """
    return (
        complexity_rows()
        + metric_rows(weights_dir)
        + ablation_metric_rows()
        + cpu_rows(figures_dir)
    )


CSV_COLUMNS = (
    "paper_table",
    "row",
    "quantity",
    "unit",
    "paper",
    "ours",
    "difference",
    "tolerance",
    "within",
    "tolerance_basis",
    "paper_source",
    "ours_from",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Counts: ``total``, ``within``, ``outside``, ``pending``."""
    within = sum(1 for r in rows if r["within"] is True)
    outside = sum(1 for r in rows if r["within"] is False)
    return {
        "total": len(rows),
        "within": within,
        "outside": outside,
        "pending": len(rows) - within - outside,
    }


def write_paper_vs_reproduced(
    rows: Sequence[dict[str, Any]], figures_dir: str | Path
) -> dict[str, Path]:
    """Write ``paper_vs_reproduced.csv`` and the home page's ``paper_vs_reproduced.md``."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{PAPER_VS_REPRODUCED}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    md_path = out / f"{PAPER_VS_REPRODUCED}.md"
    md_path.write_text(paper_vs_reproduced_markdown(rows), encoding="utf-8")
    return {"csv": csv_path, "md": md_path}


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "parameters":
        return f"{value:,.0f}"
    return f"{value:.3f}" if unit in ("M", "MiB", "x SA-UNetv2") else f"{value:.2f}"


def _or_dash(value: float | None, spec: str, prefix: str = "") -> str:
    return "–" if value is None else prefix + format(value, spec)


def paper_vs_reproduced_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown for the home page: a one-line summary, counts per paper table, then every row."""
    counts = summarise(rows)
    lines = [
        f"**{counts['within']} of {counts['total']} rows within tolerance**, "
        f"{counts['outside']} outside, {counts['pending']} pending (no reproduced value yet, or "
        "measured under conditions that cannot be judged; see the last column).",
        "",
        "| paper table | rows | within | outside | pending |",
        "|---|---:|---:|---:|---:|",
    ]
    for table in dict.fromkeys(r["paper_table"] for r in rows):
        part = summarise([r for r in rows if r["paper_table"] == table])
        lines.append(
            f"| {table} | {part['total']} | {part['within']} | {part['outside']} | {part['pending']} |"
        )
    outside: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r["within"] is False:
            outside.setdefault((r["paper_table"], r["row"]), []).append(r["quantity"])
    if outside:
        lines += ["", "Why rows are outside their tolerance:", ""]
        for (table, model), quantities in sorted(outside.items()):
            gap = KNOWN_GAPS.get((table, model))
            explained = [q for q in quantities if gap is not None and q in gap.quantities]
            unexplained = [q for q in quantities if q not in explained]
            if explained:
                labels = ", ".join(paper_label(q) for q in explained)
                lines.append(f"* **{table} · {model}** ({labels}): {gap.reason}")
            if unexplained:
                labels = ", ".join(paper_label(q) for q in unexplained)
                lines.append(f"* **{table} · {model}** ({labels}): not diagnosed yet.")
    lines += [
        "",
        "| paper table · row | quantity | paper | ours | ours − paper | tolerance | status |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        status = {True: "✓ within", False: "✗ **outside**", None: "… pending"}[row["within"]]
        if row["within"] is None and row["ours"] is not None:
            status = "reported, not judged"
        unit = row["unit"]
        label = paper_label(row["quantity"])
        label = label if unit in label else f"{label} ({unit})"
        lines.append(
            f"| {row['paper_table']} · {row['row']} | {label} | "
            f"{_number(row['paper'], unit)} | {_number(row['ours'], unit)} | "
            f"{_or_dash(row['difference'], '+.2g')} | {_or_dash(row['tolerance'], '.2g', '±')} | "
            f"{status} |"
        )
    return "\n".join(lines) + "\n"


def paper_label(quantity: str) -> str:
    """The paper's column label of ``quantity`` (``f1`` -> ``F1``)."""
    from saunetv2_lib.paper import METRIC_LABELS

    return METRIC_LABELS.get(quantity, quantity)
