"""Typeset the site's maths at build time, as MathML, so that pages read offline.

Both site renderers (smalldocs and Quarto's Pandoc) write maths as the TeX between ``\\(...\\)``
or ``\\[...\\]`` inside ``<span class="math inline">`` / ``<span class="math display">`` and
load KaTeX or MathJax from a CDN to typeset it in the browser; offline, the reader sees raw TeX.
:func:`typeset_site` replaces every such element with the MathML that ``latex2mathml`` makes of
its TeX (Chromium, Firefox and Safari render MathML natively) and drops the CDN maths scripts.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

# <span class="math inline">\(...\)</span>, <span class="math display">\[...\]</span>, or a div.
MATH_ELEMENT = re.compile(
    r'<(?P<tag>span|div) class="math (?P<mode>inline|display)">(?P<tex>.*?)</(?P=tag)>', re.DOTALL
)
DELIMITERS = {"inline": ("\\(", "\\)"), "display": ("\\[", "\\]")}
# The renderers' CDN maths: KaTeX (smalldocs) and MathJax (Quarto).
CDN_MATH = re.compile(
    r"<(?:script|link)\b[^>]*(?:katex|mathjax)[^>]*>(?:\s*</script>)?", re.IGNORECASE
)


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """MathML for one TeX formula (``latex2mathml``); ``display`` for a block formula."""
    from latex2mathml.converter import convert

    return convert(tex, display="block" if display else "inline")


def typeset_html(text: str) -> tuple[str, list[str]]:
    """Replace the maths elements of one HTML page with MathML.

    Returns the new HTML and the TeX of the formulas that could not be converted (left as they
    were, so the browser check sees them).
    """
    failures: list[str] = []

    def replace(match: re.Match) -> str:
        mode = match["mode"]
        tex = html.unescape(match["tex"]).strip()
        opening, closing = DELIMITERS[mode]
        if tex.startswith(opening) and tex.endswith(closing):
            tex = tex[len(opening) : -len(closing)]
        elif tex.startswith("$"):
            tex = tex.strip("$")
        try:
            mathml = tex_to_mathml(tex, display=mode == "display")
        except Exception:  # latex2mathml raises many kinds on unsupported TeX
            failures.append(tex)
            return match.group(0)
        return f'<{match["tag"]} class="math {mode}">{mathml}</{match["tag"]}>'

    text = MATH_ELEMENT.sub(replace, text)
    return CDN_MATH.sub("", text), failures


def typeset_site(site_dir: str | Path) -> dict[str, list[str]]:
    """Typeset every ``*.html`` under ``site_dir`` in place.

    Returns ``{page: [TeX that could not be converted]}`` for the pages with such formulas.
    """
    problems = {}
    for page in sorted(Path(site_dir).rglob("*.html")):
        original = page.read_text("utf-8")
        typeset, failures = typeset_html(original)
        if typeset != original:
            page.write_text(typeset, "utf-8")
        if failures:
            problems[str(page.relative_to(site_dir))] = failures
    return problems
