"""The rendered website in a real browser: every page loads, every image decodes, the table is there.

The site is rendered from the committed, executed notebooks into a temporary copy of the project
(``saunetv2_lib.companion.reproduce.render_site``: Quarto when it is on PATH, otherwise smalldocs), served
on 127.0.0.1 by ``http.server`` in a thread, and opened in Debian's headless Chromium through
playwright-python (never ``playwright install``: the system browser is used). Screenshots of every
page go to ``build/screenshots/``.

Skipped, with the reason, only when Chromium or playwright is missing and ``CI`` is not ``true``;
in CI a missing browser is a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from saunetv2_lib.companion import reproduce

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SAUNETV2_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "build" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _need_browser() -> None:
    problems = []
    if not Path(CHROMIUM).is_file():
        problems.append(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("playwright-python is not installed (pip install playwright)")
    if problems:
        if IN_CI:
            pytest.fail("browser check cannot run in CI: " + "; ".join(problems))
        pytest.skip("browser check skipped: " + "; ".join(problems))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site rendered from the committed notebooks into a scratch copy of the project."""
    project = tmp_path_factory.mktemp("site_project")
    for item in (*reproduce.SITE_FILES, "notebooks", "figures"):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, project / item, ignore=shutil.ignore_patterns(".*"))
        elif source.is_file():
            shutil.copy2(source, project / item)
    reproduce.render_site(project)
    return project / "_site"


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


def _pages(site: Path) -> list[str]:
    return sorted(
        str(p.relative_to(site)) for p in site.rglob("*.html") if "site_libs" not in p.parts
    )


def test_site_has_a_page_per_notebook(site):
    pages = _pages(site)
    assert "index.html" in pages
    for name in reproduce.NOTEBOOKS:
        assert f"notebooks/{name}.html" in pages, pages


def test_every_page_loads_and_every_image_decodes(site, server):
    _need_browser()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        local_failures: list[str] = []
        page.on(
            "requestfailed",
            lambda r: local_failures.append(r.url) if r.url.startswith(server) else None,
        )
        for relative in _pages(site):
            response = page.goto(f"{server}/{relative}", wait_until="load")
            if response is None or response.status != 200:
                problems.append(f"{relative}: HTTP {None if response is None else response.status}")
                continue
            images = page.eval_on_selector_all(
                "img",
                "imgs => imgs.map(i => ({src: i.currentSrc.slice(0, 80), ok: i.complete && i.naturalWidth > 0}))",
            )
            problems += [
                f"{relative}: image {i['src']} did not decode" for i in images if not i["ok"]
            ]
            if relative.startswith("notebooks/"):
                assert images, f"{relative} shows no figure"
                # Each notebook page links its .ipynb (served with the site) and says what
                # produced it; papermill's injected parameters cell is hidden.
                download = page.get_attribute(".notebook-links a[download]", "href")
                assert download and download.endswith(".ipynb"), f"{relative}: no .ipynb link"
                folder = relative.rsplit("/", 1)[0]
                fetched = page.request.get(f"{server}/{folder}/{download}")
                assert fetched.status == 200 and fetched.json()["cells"], download
                assert "Produced by the" in page.inner_text(".provenance"), relative
                assert "# Parameters" not in page.inner_text("body"), relative
            title = page.title()
            assert title, f"{relative} has no title"
            # Maths is MathML typeset at build time: no raw TeX delimiters in the visible text.
            text = page.inner_text("body")
            raw = [d for d in ("\\(", "\\[", "$$") if d in text]
            problems += [f"{relative}: raw maths delimiter {d!r} in the text" for d in raw]
            if relative == "notebooks/03_loss.html":
                sizes = page.eval_on_selector_all(
                    "math", "ms => ms.map(m => m.getBoundingClientRect().width)"
                )
                assert len(sizes) >= 10, f"the Loss page shows {len(sizes)} formulas"
                assert all(width > 0 for width in sizes), "a formula was not laid out"
                page.screenshot(path=str(SCREENSHOTS / "03_loss_full.png"), full_page=True)
            shot = SCREENSHOTS / (relative.replace("/", "_").removesuffix(".html") + ".png")
            page.screenshot(path=str(shot), full_page=False)
        browser.close()
    problems += [f"request failed: {url}" for url in local_failures]
    assert not problems, "\n".join(problems)


def test_home_page_shows_the_reproduced_table(site, server):
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server}/index.html", wait_until="load")
        headers = page.eval_on_selector_all(
            "table", "ts => ts.map(t => Array.from(t.querySelectorAll('th')).map(h => h.innerText))"
        )
        comparison = [h for h in headers if "tolerance" in h and "ours" in h]
        assert comparison, f"no paper-vs-reproduced table on the home page; tables: {headers}"
        body = page.inner_text("body")
        assert "rows within tolerance" in body
        assert "SA-UNetv2" in body and "260,521" in body
        page.screenshot(path=str(SCREENSHOTS / "index_full.png"), full_page=True)
        browser.close()
