"""The README's trained-weights numbers are the shipped model cards' (they go stale on shipping)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from saunetv2_lib import paper
from saunetv2_lib.weights import card_row, list_weights, read_model_card

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
ROWS = [("drive", "**ours, whole image**", "whole"), ("drive", "**ours, FOV**", "fov"),
        ("stare", "**ours**", "whole")]  # fmt: skip


def _readme_row(label: str, dataset: str) -> list[float]:
    """The seven numbers of the README table row ``label`` in the ``dataset`` table."""
    table = README[README.index(f"| {dataset.upper()} | F1 |") :]
    line = next(row for row in table.splitlines() if row.startswith(f"| {label} |"))
    return [float(cell.strip(" *")) for cell in line.split("|")[2:-1]]


@pytest.mark.parametrize(("name", "label", "region"), ROWS)
def test_the_readme_tables_print_the_shipped_cards_metrics(name, label, region):
    if not list_weights().get(name):
        pytest.skip(f"weights {name!r} are not shipped")
    row = card_row(read_model_card(name), region=region)
    expected = [round(100 * row[m], 2) for m in paper.METRICS]
    assert _readme_row(label, name) == expected


def test_the_readme_states_the_shipped_runs_steps_and_seconds():
    for name in ("drive", "stare"):
        if not list_weights().get(name):
            continue
        card = read_model_card(name)
        steps = card["training"]["optimizer_iterations"]
        assert re.search(rf"\b{steps:,} (optimizer )?steps\b", README), (name, steps)
        assert f"{card['wall_time_s']:,.0f} s" in README, (name, card["wall_time_s"])


def test_the_readme_states_the_stare_checkpoint_diagnosis_of_the_bundle():
    from saunetv2_lib import companion

    view = companion.checkpoint_section("stare_paper")
    if view is None:
        pytest.skip("the bundle holds no scored checkpoints of stare_paper")
    d = view["diagnosis"]
    late, images = d["late"], d["images"]
    for text in (
        f"{100 * d['gap']:.2f} points of F1 short",
        f"all {d['rank']['checkpoints']} checkpoints",
        f"up to {100 * (late['f1_max'] - late['f1_min']):.2f} points",
        f"from epoch {d['val_loss']['epoch']} on",
        f"{100 * late['f1_min']:.2f} to {100 * late['f1_max']:.2f}",
        f"SD of {100 * images['sd']:.2f} points",
        f"[{100 * images['low']:.2f}, {100 * images['high']:.2f}]",
    ):
        assert text in " ".join(README.split()), text


def test_the_readme_states_the_malloc_measurement_of_the_speed_reports():
    import json

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    rows = [
        row
        for path in sorted(results.glob("*_training_speed.json"))
        for row in json.loads(path.read_text("utf-8"))["rows"]
        if row["dataset"] == "drive" and row.get("allocator")  # reports that record the malloc
    ]
    by_variant = {row["variant"]: row for row in rows}  # the latest report wins
    assert by_variant["tcmalloc"]["allocator"] == "tcmalloc"
    assert by_variant["two_stage_gn"]["allocator"] == "system"
    for variant in ("tcmalloc", "tcmalloc_eigen"):
        speedup = by_variant["two_stage_gn"]["s_per_image"] / by_variant[variant]["s_per_image"]
        assert f"({speedup:.2f}x)" in README or f"{speedup:.2f}x faster" in README, variant
