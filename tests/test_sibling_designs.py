"""Notebook 7 and its committed results.

* The quick profile of ``notebooks/07_sibling_designs.ipynb`` runs end to end here: every design
  is trained from scratch on the tiny ``drive/siblings_quick`` budget, scored, timed and tabled,
  under ``build/`` of a temporary root (the committed notebook, figures and results are untouched).
* The committed long comparison (``saunetv2_lib/results/siblings_drive.json``) is complete, was
  trained on real DRIVE with one budget, and its complexity columns match the models built now.
"""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from saunetv2_lib.companion import reproduce
from saunetv2_lib.experiments.compare import (
    DESIGNS,
    QUICK_MODEL_KWARGS,
    REFERENCES,
    SHIPPED_RESULTS,
    comparison_markdown,
    load_bundle,
)

NOTEBOOK = "07_sibling_designs"


# Slow (about 6.5 min on 2 cores): it trains all seven designs inside the notebook. The default
# suite keeps the same proofs cheaper: experiments/compare_test.py trains, scores, times and
# bundles designs under one budget, and nbval re-executes notebook 07's committed profile.
@pytest.mark.slow
def test_notebook_07_quick_profile_runs_every_design(tmp_path):
    import nbformat

    where = dataclasses.replace(
        reproduce.layout("quick", tmp_path), source_dir=reproduce.REPO_ROOT / "notebooks"
    )
    before = (where.source_dir / f"{NOTEBOOK}.ipynb").read_bytes()
    parameters = reproduce.notebook_parameters(where)
    output = reproduce.execute_notebook(NOTEBOOK, where, parameters, cell_timeout=1200)
    assert (where.source_dir / f"{NOTEBOOK}.ipynb").read_bytes() == before

    with open(where.figures_dir / f"{NOTEBOOK}.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == list(REFERENCES + DESIGNS)
    for row in rows:
        assert row["test_images"] == "2" and row["profile"] == "drive/siblings_quick"
        assert 0.0 <= float(row["auc"]) <= 1.0 and float(row["cpu_s_per_image"]) > 0
        assert json.loads(row["model_kwargs"]) == QUICK_MODEL_KWARGS.get(row["model"], {})
    for figure in ("07_sibling_designs.png", "07_validation_curves.png"):
        assert (where.figures_dir / figure).stat().st_size > 10_000
    bundle = load_bundle(where.runs_dir / "drive_siblings_quick" / "bundle.json")
    assert set(bundle["histories"]) == set(REFERENCES + DESIGNS)
    executed = nbformat.read(output, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "Ranking by F1" in text and "trained from scratch" in text


@pytest.fixture(scope="module")
def shipped():
    if not SHIPPED_RESULTS.is_file():
        pytest.fail(f"{SHIPPED_RESULTS} is missing: run the comparison and bundle it.")
    return load_bundle()


def test_committed_comparison_is_complete_real_and_one_budget(shipped):
    rows = shipped["rows"]
    assert [r["model"] for r in rows] == list(REFERENCES + DESIGNS)
    assert shipped["budget"]["profile"] == "drive/siblings"
    for row in rows:
        assert row["synthetic_data"] is False, row["model"]
        assert row["budget_complete"] and "unfinished" not in row["note"], row["model"]
        assert row["test_images"] == 20 and len(row["per_image_f1"]) == 20
        assert row["epochs_run"] <= shipped["budget"]["epochs"]
        assert len(shipped["histories"][row["model"]]) == row["epochs_run"]
        assert row["cpu_time_side"] == 592 and row["cpu_s_per_image"] > 0
    mamba = rows[-1]
    assert mamba["model"] == "sa_umamba" and "from scratch" in mamba["note"]


def test_committed_complexity_matches_the_models_built_now(shipped):
    from saunetv2_lib.models import complexity_table

    cheap = [r for r in shipped["rows"] if r["model"] != "sa_umamba"]  # 56 M parameters: slow
    built = {r["model"]: r for r in complexity_table([r["model"] for r in cheap])}
    for row in cheap:
        assert row["params"] == built[row["model"]]["params"]
        assert row["gflops"] == pytest.approx(built[row["model"]]["gflops"], rel=1e-9)


def test_readme_table_is_the_committed_comparison(shipped):
    readme = (reproduce.REPO_ROOT / "README.md").read_text("utf-8")
    assert comparison_markdown(shipped["rows"]) in readme, (
        "README's sibling-design table differs from saunetv2_lib/results/siblings_drive.json: "
        "paste `comparison_markdown(load_bundle()['rows'])` into it."
    )
