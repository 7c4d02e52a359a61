"""Tests of the paper's tables as data: shapes, lookups, and the consistency checks the spec notes."""

from __future__ import annotations

import pytest

from saunetv2_lib import paper


def test_every_table_has_its_columns_in_every_row():
    for table in paper.TABLES.values():
        assert table.source in paper.SOURCES
        for row in table.rows:
            assert set(table.columns) <= set(row), (table.key, row["model"])
            assert (row.get("source") or table.source) in paper.SOURCES
        frame = table.frame()
        assert list(frame["model"]) == [r["model"] for r in table.rows]
        assert frame.columns[-1] == "source"


def test_headline_numbers_agree_with_the_official_notebook_outputs():
    # The project page's Table 1A/1B rows are the notebook's 5-digit fractions, rounded (spec 5);
    # the paper truncates whole-image AUC and Jaccard and differs by 0.03 on FOV AUC.
    notebook = paper.table("official_notebook_drive")
    for key, region in (("drive_without_fov", "whole image"), ("drive_with_fov", "FOV")):
        ours = paper.table(key).row("SA-UNetv2")
        stored = notebook.row(region)
        for metric in ("f1", "sensitivity", "specificity", "accuracy", "mcc"):
            assert ours[metric] == pytest.approx(round(stored[metric], 2), abs=1e-9), metric
        assert abs(ours["jaccard"] - stored["jaccard"]) < 0.01
        assert abs(ours["auc"] - stored["auc"]) <= 0.03 + 1e-9


def test_loss_and_architecture_ablations_share_the_bce_row():
    # Spec 5.4: the ablation's last row equals the BCE-only row of the loss table.
    bce = paper.table("loss_ablation").row("BCE")
    full = paper.table("architecture_ablation").row("+ CSA (full SA-UNetv2)")
    for metric in ("f1", "jaccard", "mcc", "accuracy"):
        assert bce[metric] == full[metric]
    paper_choice = paper.table("loss_ablation").row("BCE+MCC (0.5, 0.5)")
    headline = paper.table("drive_without_fov").row("SA-UNetv2")
    assert all(paper_choice[m] == headline[m] for m in paper.METRICS)


def test_cpu_table_matches_the_table_1a_column():
    for row in paper.table("cpu_time").rows:
        assert paper.value("drive_without_fov", row["model"], "cpu_s") == row["cpu_s"]


def test_lookups_and_clear_errors():
    assert paper.value("drive_without_fov", "sa-unetv2", "gflops") == 21.19
    assert paper.value("drive_without_fov", "AG-Net", "f1") is None  # the paper's "--"
    assert paper.table("drive_without_fov").cell_source("U-Net++", "gflops") == "3P"
    assert paper.table("drive_without_fov").cell_source("U-Net++", "f1") == "PAGE"
    assert paper.table("drive_without_fov").cell_source("nnWNet", "f1") == "3P"
    with pytest.raises(KeyError, match="available"):
        paper.table("table9")
    with pytest.raises(KeyError, match="no row 'V-Net'"):
        paper.value("stare", "V-Net", "f1")
    with pytest.raises(KeyError, match="no column 'gflops'"):
        paper.value("stare", "U-Net", "gflops")
    assert (paper.headline_f1("DRIVE"), paper.headline_f1("stare")) == (82.82, 82.81)
    with pytest.raises(KeyError, match="no headline result on 'chase'"):
        paper.headline_f1("chase")
    assert set(paper.REGISTRY.values()) <= {
        "sa_unet_v2",
        "sa_unet",
        "unet",
        "attention_unet",
    }
