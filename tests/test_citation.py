"""The citation files: CITATION.cff (read by GitHub) and the home page's Cite section agree."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_citation_cff_names_the_paper_and_the_home_page_cites_both():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text("utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("SA-UNetv2: Rethinking Spatial Attention U-Net")
    assert [a["family-names"] for a in paper["authors"]][0] == "Guo"
    home = (ROOT / "index.qmd").read_text("utf-8")
    assert "## Cite" in home
    assert f"title={{{paper['title']}}}" in home  # the same title in the BibTeX block
    assert "@software{saunetv2_companion" in home and "arXiv:2509.11774" in home
