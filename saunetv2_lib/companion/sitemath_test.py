"""Tests of saunetv2_lib.companion.sitemath: maths typeset to MathML at build time, CDN maths dropped."""

from __future__ import annotations

from saunetv2_lib.companion import sitemath

PAGE = (
    '<html><head><link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/katex@0.16.11/dist/'
    'katex.min.css">\n<script src="https://cdn.jsdelivr.net/npm/katex@0.16.11/dist/katex.min.js" '
    'defer></script><script src="site_libs/smalldocs.js" defer></script></head><body>'
    '<p>Binarise with <span class="math inline">\\(p &gt; 0.5\\)</span>.</p>'
    '<p><span class="math display">\\[\\mathcal{L} = \\lambda_1 \\mathcal{L}_{BCE} + '
    "\\lambda_2 (1 - \\mathrm{MCC})\\]</span></p></body></html>"
)


def test_maths_becomes_mathml_and_the_cdn_scripts_go():
    typeset, failures = sitemath.typeset_html(PAGE)
    assert failures == []
    assert typeset.count("<math ") == 2
    assert 'display="block"' in typeset and 'display="inline"' in typeset
    assert "\\(" not in typeset and "\\[" not in typeset
    assert "katex" not in typeset.lower()
    assert 'src="site_libs/smalldocs.js"' in typeset  # the site's own scripts stay
    assert "<mo>&gt;</mo>" in typeset or "&#x0003E;" in typeset  # p > 0.5, unescaped then typeset


def test_untypesettable_maths_is_left_and_reported(tmp_path, monkeypatch):
    def fail(tex, display=False):
        raise ValueError("unsupported")

    monkeypatch.setattr(sitemath, "tex_to_mathml", fail)
    (tmp_path / "a.html").write_text(PAGE, "utf-8")
    problems = sitemath.typeset_site(tmp_path)
    assert list(problems) == ["a.html"] and len(problems["a.html"]) == 2
    assert "\\(p &gt; 0.5\\)" in (tmp_path / "a.html").read_text("utf-8")


def test_typeset_site_rewrites_pages_in_place(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "03_loss.html").write_text(PAGE, "utf-8")
    (tmp_path / "plain.html").write_text("<p>no maths</p>", "utf-8")
    assert sitemath.typeset_site(tmp_path) == {}
    assert "<math " in (tmp_path / "notebooks" / "03_loss.html").read_text("utf-8")
    assert (tmp_path / "plain.html").read_text("utf-8") == "<p>no maths</p>"
