"""The paper-vs-reproduced judge: rows, tolerances, the shipped weights' metrics, CPU ratios."""

from __future__ import annotations

import csv
import json

import pytest
from scipy import stats

from saunetv2_lib import paper
from saunetv2_lib.companion import paper_check


def test_comparison_rows_tolerance_and_files(tmp_path):
    row = paper_check._row("Table 1A", "SA-UNetv2", "f1", 82.82, 82.0, 1.0, "%", "b", "PAGE", "x")
    assert row["difference"] == pytest.approx(-0.82) and row["within"] is True
    outside = paper_check._row("Table 1A", "m", "f1", 82.82, 80.0, 1.0, "%", "b", "PAGE", "x")
    assert outside["within"] is False
    pending = paper_check._row("Table 2", "m", "f1", 82.81, None, 2.0, "%", "b", "3P", "pending")
    assert pending["within"] is None and pending["difference"] is None
    assert paper_check._half_last_digit(21.19) == pytest.approx(0.005)
    assert paper_check._half_last_digit(0.066) == pytest.approx(0.0005)
    assert paper_check.summarise([row, outside, pending]) == {
        "total": 3,
        "within": 1,
        "outside": 1,
        "pending": 1,
    }
    paths = paper_check.write_paper_vs_reproduced([row, outside, pending], tmp_path)
    with open(paths["csv"], newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [r["within"] for r in records] == ["true", "false", ""]
    assert records[0]["ours"] == "82" and records[2]["ours"] == ""
    text = paths["md"].read_text()
    assert text.startswith("**1 of 3 rows within tolerance**")
    assert "**outside**" in text and "pending" in text
    assert "| Table 1A | 2 | 1 | 1 | 0 |" in text and "| Table 2 | 1 | 0 | 0 | 1 |" in text


def test_known_gaps_are_judged_per_quantity_and_strictly(tmp_path):
    def row(model, quantity, within):
        return {"paper_table": "Table 1A", "row": model, "quantity": quantity, "within": within}

    register = {
        ("Table 1A", "A"): paper_check.KnownGap(frozenset({"cpu_ratio"}), "timing"),
        ("Table 1A", "B"): paper_check.KnownGap(frozenset({"f1", "mcc"}), "budget"),
        ("Table 1A", "C"): paper_check.KnownGap(frozenset({"cpu_ratio"}), "edge", on_the_edge=True),
    }
    rows = [
        row("A", "cpu_ratio", False),
        row("A", "f1", False),  # A's timing diagnosis does not explain its F1
        row("B", "f1", "false"),  # the CSV's spelling
        row("B", "mcc", "true"),  # closed: must leave the register
        row("C", "cpu_ratio", True),  # on the edge: within is allowed
        row("D", "f1", None),
    ]
    unexplained, closed = paper_check.check_known_gaps(rows, register)
    assert unexplained == ["Table 1A / A / f1"]
    assert closed == ["Table 1A / B / mcc (within)"]
    rows[4]["within"] = None  # an edge gap that goes pending has closed too
    assert paper_check.check_known_gaps(rows[1:], register)[1] == [
        "Table 1A / A / cpu_ratio (missing)",
        "Table 1A / B / mcc (within)",
        "Table 1A / C / cpu_ratio (pending)",
    ]
    assert paper_check.check_known_gaps(rows[:3], paper_check.KNOWN_GAPS)[0] == [
        " / ".join(("Table 1A", r, q)) for r, q in (("A", "cpu_ratio"), ("A", "f1"), ("B", "f1"))
    ]
    # The home page names which quantities each diagnosis covers, and flags the rest.
    judged = {"paper": 91.71, "ours": 96.5, "difference": 4.79, "tolerance": 0.5, "unit": "%"}
    full = [{**row("MCC", q, False), **judged, "paper_table": "Table 4"} for q in ("auc", "f1")]
    text = paper_check.paper_vs_reproduced_markdown(full)
    assert "* **Table 4 · MCC** (AUC): its AUC lies above" in text
    assert "* **Table 4 · MCC** (F1): not diagnosed yet." in text


def test_metric_rows_read_the_cards_paper_protocol_cell(tmp_path):
    (tmp_path / "drive.keras").write_bytes(b"stand-in")
    card = {
        "metrics": [
            {"region": "whole", "aggregate": "pooled", "threshold": 0.5, "f1": 0.1},
            {"region": "whole", "aggregate": "per_image", "threshold": 0.5, "paper": True,
             **{m: 0.8 for m in paper.METRICS}},
            {"region": "fov", "aggregate": "per_image", "threshold": 0.5,
             **{m: 0.7 for m in paper.METRICS}},
        ]
    }  # fmt: skip
    (tmp_path / "drive.json").write_text(json.dumps(card))
    rows = paper_check.metric_rows(tmp_path)
    whole = [r for r in rows if r["paper_table"] == "Table 1A"]
    fov = [r for r in rows if r["paper_table"] == "Table 1B"]
    stare = [r for r in rows if r["paper_table"] == "Table 2"]
    assert [r["ours"] for r in whole] == pytest.approx([80.0] * 7)
    assert [r["ours"] for r in fov] == pytest.approx([70.0] * 7)
    f1 = next(r for r in whole if r["quantity"] == "f1")
    assert f1["difference"] == pytest.approx(80.0 - 82.82)
    assert all(r["ours"] is None and "not shipped" in r["ours_from"] for r in stare)
    assert stare[0]["tolerance"] == pytest.approx(2 * paper_check.METRIC_TOLERANCE_PP["f1"])


def test_cpu_rows_read_notebook_06_table(tmp_path):
    assert all(r["ours"] is None for r in paper_check.cpu_rows(tmp_path))
    (tmp_path / "06_efficiency.csv").write_text(
        "model,cpu_s_per_image,host\nsa_unet_v2,0.5,test host\nunet,3.0,test host\n"
        "sa_unet,0.5,test host\n"
    )
    rows = {r["row"]: r for r in paper_check.cpu_rows(tmp_path)}
    assert rows["SA-UNetv2"]["ours"] == 0.5 and rows["SA-UNetv2"]["within"] is True
    unet = rows["U-Net"]
    assert unet["quantity"] == "cpu_ratio"
    assert unet["paper"] == pytest.approx(3.16 / 0.95) and unet["ours"] == pytest.approx(6.0)
    assert unet["within"] is False  # 6.0 vs 3.33: beyond 50 %
    assert rows["SA-UNet"]["ours"] == pytest.approx(1.0) and rows["SA-UNet"]["within"] is True
    assert rows["Attention U-Net"]["within"] is None
    assert "test host" in rows["SA-UNetv2"]["ours_from"]
    (tmp_path / "06_efficiency.csv").write_text(
        "model,cpu_s_per_image,host,load_average,cores\nsa_unet_v2,0.5,h,3.9,2\nunet,3.0,h,3.9,2\n"
    )
    busy = {r["row"]: r for r in paper_check.cpu_rows(tmp_path)}
    assert busy["U-Net"]["ours"] == pytest.approx(6.0)  # reported ...
    assert busy["U-Net"]["within"] is None and busy["U-Net"]["difference"] is None  # ... not judged
    assert "under load 3.9 on 2 cores" in busy["U-Net"]["ours_from"]


def _finished(level: float, seed: int) -> dict:
    """A finished ablation run whose 20 per-image scores centre on ``level`` (every metric)."""
    offsets = [(k - 9.5) / 1000 + seed / 500 for k in range(20)]
    return {"result": {"per_image": [
        {"name": f"{k + 1:02d}_test", **{m: level + o for m in paper.METRICS}}
        for k, o in enumerate(offsets)
    ]}}  # fmt: skip


def _curve(at_budget: float, later: float) -> dict:
    milestones = [
        {"steps": steps, "kind": "best", "wall_time_s": 1.0, "epoch": 1,
         **{m: value for m in paper.METRICS}}
        for steps, value in ((300, at_budget), (2010, later))
    ]  # fmt: skip
    return {"runs": {"drive_paper": {"milestones": milestones}}}


def test_ablation_rows_judge_the_paper_inside_our_interval_widened_by_the_budget_gap():
    empty = paper_check.ablation_metric_rows({"paper": _curve(0.79, 0.826)})
    assert empty and all(r["within"] is None and r["ours"] is None for r in empty)
    assert {r["paper_table"] for r in empty} == {"Table 3", "Table 4", "Table 1A"}
    assert {r["row"] for r in empty if r["paper_table"] == "Table 1A"} == {
        "SA-UNet", "U-Net", "Attention U-Net"
    }  # fmt: skip
    assert len([r for r in empty if r["paper_table"] == "Table 3"]) == 5 * 4

    # SA-UNet at 0.80 over 3 seeds (means 80.2, 80.4, 80.6); the paper prints 82.44 F1.
    runs = {f"t1a_sa_unet_s{s}": _finished(0.80, s) for s in (1, 2, 3)}
    rows = paper_check.ablation_metric_rows(
        {"ablation": {"runs": runs}, "paper": _curve(0.79, 0.826)}
    )
    f1 = next(r for r in rows if r["row"] == "SA-UNet" and r["quantity"] == "f1")
    assert f1["ours"] == pytest.approx(80.4)
    # The t(2) interval's half-width over the seed means, plus the +3.6 pp budget gap.
    half = stats.t.ppf(0.975, 2) * stats.sem([80.2, 80.4, 80.6])
    assert f1["tolerance"] == pytest.approx(half + 3.6)
    assert (
        f1["within"] is True
        and "budget gap (+3.60 pp against 2,010 steps)" in f1["tolerance_basis"]
    )
    assert "3 of 3 seeds, 300 steps each" in f1["ours_from"]
    # Without the gap (the budget scores as the long run), 82.44 lies outside.
    flat = paper_check.ablation_metric_rows({"ablation": {"runs": runs}, "paper": _curve(0.8, 0.8)})
    f1 = next(r for r in flat if r["row"] == "SA-UNet" and r["quantity"] == "f1")
    assert f1["within"] is False
    # One seed: a mean but no interval, so pending.
    one = paper_check.ablation_metric_rows(
        {"ablation": {"runs": {"t1a_sa_unet_s1": _finished(0.8, 1)}}, "paper": _curve(0.79, 0.826)}
    )
    f1 = next(r for r in one if r["row"] == "SA-UNet" and r["quantity"] == "f1")
    assert f1["within"] is None and f1["ours_from"].startswith("pending")
    # U-Net at the smaller baselines budget: reported, not judged.
    unet = {f"b_unet_s{s}": _finished(0.78, s) for s in (1, 2)}
    flagged = paper_check.ablation_metric_rows({"baselines": {"runs": unet}})
    f1 = next(r for r in flagged if r["row"] == "U-Net" and r["quantity"] == "f1")
    assert f1["ours"] == pytest.approx(78.3) and f1["within"] is None
    assert f1["tolerance_basis"].startswith("flagged: a smaller budget (150 steps)")
