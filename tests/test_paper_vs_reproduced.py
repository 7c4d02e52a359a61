"""The committed paper-vs-reproduced table: every row within its tolerance, and not stale.

``figures/paper_vs_reproduced.csv`` is written by ``saunetv2 reproduce`` (the last full run). This
test fails when a reproduced number has left its tolerance, when the complexity rows no longer
match the models the library builds now, when the shipped weights' cards disagree with the table,
and when the README's table-to-notebook map misses an entry.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from saunetv2_lib.companion import paper_check, reproduce

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "figures" / "paper_vs_reproduced.csv"


@pytest.fixture(scope="module")
def committed() -> list[dict[str, str]]:
    if not TABLE.is_file():
        pytest.fail(f"{TABLE} is missing: run `saunetv2 reproduce --profile full` and commit it.")
    with open(TABLE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _key(row) -> tuple[str, str, str]:
    return row["paper_table"], row["row"], row["quantity"]


def test_every_reproduced_row_is_within_its_tolerance_or_a_diagnosed_gap(committed):
    assert list(committed[0]) == list(paper_check.CSV_COLUMNS)
    unexplained, closed = paper_check.check_known_gaps(committed)
    assert not unexplained, "rows outside their tolerance, not in KNOWN_GAPS:\n" + "\n".join(
        unexplained
    )
    # Strict, like xfail(strict=True): a registered gap that has closed must leave the register.
    assert not closed, "gaps no longer outside, remove from KNOWN_GAPS:\n" + "\n".join(closed)
    for row in committed:
        if row["ours"] and row["within"]:  # rows reported but not judged have no difference
            difference = float(row["ours"]) - float(row["paper"])
            assert abs(difference - float(row["difference"])) < 1e-3 * max(1, abs(difference))
            within = abs(difference) <= float(row["tolerance"]) + 1e-9
            assert row["within"] == str(within).lower(), row


def test_complexity_rows_match_the_models_built_now(committed):
    by_key = {_key(r): r for r in committed}
    for row in paper_check.complexity_rows():
        stored = by_key.get((row["paper_table"], row["row"], row["quantity"]))
        assert stored is not None, f"missing row {row['paper_table']} / {row['row']}"
        assert float(stored["ours"]) == pytest.approx(row["ours"], rel=1e-5), stored
        assert float(stored["paper"]) == pytest.approx(row["paper"]), stored


def test_metric_rows_agree_with_the_shipped_cards(committed):
    by_key = {_key(r): r for r in committed}
    for row in paper_check.metric_rows():
        stored = by_key[(row["paper_table"], row["row"], row["quantity"])]
        if row["ours"] is None:
            assert stored["ours"] == "", f"{stored} has a value but the weights are not shipped"
        else:
            assert stored["ours"], f"weights are shipped but {stored} is still pending"
            assert float(stored["ours"]) == pytest.approx(row["ours"], abs=1e-4)


def test_ablation_rows_agree_with_the_committed_campaign_bundles(committed):
    by_key = {_key(r): r for r in committed}
    rows = paper_check.ablation_metric_rows()
    assert {r["paper_table"] for r in rows} == {"Table 1A", "Table 3", "Table 4"}
    for row in rows:
        stored = by_key.get(_key(row))
        assert stored is not None, f"missing row {_key(row)}: re-run `saunetv2 reproduce`"
        if row["ours"] is None:
            assert stored["ours"] == "", f"{stored} has a value the bundle does not give"
        else:
            assert float(stored["ours"]) == pytest.approx(row["ours"], abs=1e-4), stored


def test_readme_and_home_page_carry_the_table_to_notebook_map():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for item in reproduce.ARTEFACTS:
        assert item["files"] in readme, f"README's map lacks {item['files']}"
    assert "{{< include figures/table_map.md >}}" in (ROOT / "index.qmd").read_text("utf-8")
    assert (ROOT / "figures" / "table_map.md").read_text("utf-8") == (
        reproduce.artefact_map_markdown(lambda n: f"[{n}](notebooks/{n}.ipynb)")
    )
