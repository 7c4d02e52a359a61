"""What a reader needs around each notebook page: its .ipynb, a Colab link and its provenance.

At execution time :func:`record_provenance` stores in the notebook's metadata (``saunetv2``)
which commit, profile, library versions and data produced it, and tags papermill's injected
parameters cell ``remove-cell`` (both renderers then show the notebook's own, commented
parameters cell only; the profile is named in the provenance line). At render time
:func:`decorate_site` copies every notebook next to its page, adds a line of links under the
title (download the ``.ipynb``; "Open in Colab" when ``website.repo-url`` in ``_quarto.yml``
names a GitHub repository) and a provenance line at the end of the page.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

METADATA_KEY = "saunetv2"
INJECTED_TAG = "injected-parameters"
HIDE_TAG = "remove-cell"
TITLE_BLOCK_END = re.compile(r'(<header id="title-block-header"[^>]*>.*?</header>)', re.DOTALL)


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def data_description(root: str | Path | None) -> str:
    """``"real, SHA-256 verified"``, ``"real, N files differ from SHA256SUMS"`` or ``"synthetic"``."""
    from saunetv2_lib.data.datasets import data_root, is_synthetic
    from saunetv2_lib.data.integrity import verify

    root = Path(root) if root else data_root()
    if is_synthetic(root):
        return "synthetic DRIVE stand-in (not the real datasets)"
    try:
        report = verify(root)
    except FileNotFoundError:
        return f"no dataset under {root}"
    if report.ok:
        return f"real {', '.join(report.datasets)}, {report.checked} files SHA-256 verified"
    bad = len(report.missing) + len(report.mismatched)
    return f"real {', '.join(report.datasets)}, {bad} files missing or differing from SHA256SUMS"


def provenance(repo_root: str | Path, profile: str, data_root: str | Path | None) -> dict[str, Any]:
    """The facts a notebook page states about its own execution (stored in its metadata)."""
    import keras

    from saunetv2_lib import __version__

    repo_root = Path(repo_root)
    versions = {"saunetv2_lib": __version__, "keras": keras.__version__}
    try:
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    except ImportError:
        pass
    commit = _git(repo_root, "rev-parse", "--short=12", "HEAD")
    dirty = _git(repo_root, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "uncommitted_changes": bool(dirty) if dirty is not None else None,
        "executed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="minutes"),
        "profile": profile,
        "backend": keras.backend.backend(),
        "versions": versions,
        "data": data_description(data_root),
    }


def record_provenance(notebook: dict[str, Any], facts: dict[str, Any]) -> None:
    """Store ``facts`` in a notebook's metadata and hide papermill's injected parameters cell.

    The injected cell also loses papermill's trailing newline, so an executed notebook stays as
    ``ruff format`` (part of the test command) writes it. ``notebook`` is the notebook's JSON (a
    dict, or an ``nbformat`` node), changed in place.
    """
    notebook.setdefault("metadata", {})[METADATA_KEY] = facts
    for cell in notebook.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if INJECTED_TAG not in tags:
            continue
        if HIDE_TAG not in tags:
            tags.append(HIDE_TAG)
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        cell["source"] = source.rstrip("\n")


def provenance_line(notebook: dict[str, Any]) -> str:
    """One sentence saying what produced the page, from the notebook's metadata."""
    facts = notebook.get("metadata", {}).get(METADATA_KEY)
    if facts:
        versions = ", ".join(f"{k} {v}" for k, v in facts.get("versions", {}).items())
        commit = facts.get("commit") or "an unknown commit"
        if facts.get("uncommitted_changes"):
            commit += " with uncommitted changes"
        return (
            f"Produced by the <code>{facts.get('profile')}</code> profile on "
            f"{facts.get('executed')} from commit <code>{commit}</code>, with {versions} "
            f"({facts.get('backend')} backend); data: {facts.get('data')}."
        )
    papermill = notebook.get("metadata", {}).get("papermill", {})
    profile = papermill.get("parameters", {}).get("profile", "an unrecorded")
    when = (papermill.get("end_time") or "an unrecorded date")[:16].replace("T", " ")
    return (
        f"Produced by the <code>{profile}</code> profile on {when} UTC; this execution predates "
        "the provenance record, so its commit, library versions and data were not stored."
    )


def colab_url(repo_url: str | None, notebook: str, branch: str = "main") -> str | None:
    """The "Open in Colab" address of ``notebook`` (path in the repository), for a GitHub URL."""
    if not repo_url:
        return None
    match = re.match(r"https?://github\.com/([^/]+)/([^/#?]+?)(?:\.git)?/?$", repo_url.strip())
    if not match:
        return None
    owner, repo = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch}/{notebook}"


def _site_settings(project: Path) -> tuple[str | None, str]:
    import yaml

    config = yaml.safe_load((project / "_quarto.yml").read_text("utf-8")) or {}
    website = config.get("website") or {}
    return website.get("repo-url"), str(website.get("repo-branch") or "main")


def decorate_site(project: str | Path) -> list[str]:
    """Add the links and provenance to every rendered notebook page of ``project``; copy the .ipynb.

    Returns the decorated pages (relative to ``_site``).
    """
    project = Path(project)
    site = project / "_site"
    repo_url, branch = _site_settings(project)
    decorated = []
    for source in sorted((project / "notebooks").glob("*.ipynb")):
        page = site / "notebooks" / f"{source.stem}.html"
        if not page.is_file():
            continue
        shutil.copy2(source, page.with_suffix(".ipynb"))
        notebook = json.loads(source.read_text("utf-8"))
        links = [
            f'<a href="{source.name}" download>Download this notebook (<code>{source.name}</code>)</a>'
        ]
        colab = colab_url(repo_url, f"notebooks/{source.name}", branch)
        if colab:
            links.append(f'<a href="{html.escape(colab)}">Open in Colab</a>')
        bar = f'<p class="notebook-links">{" · ".join(links)}</p>'
        footer = f'<p class="provenance"><small>{provenance_line(notebook)}</small></p>'
        text = page.read_text("utf-8")
        text, found = TITLE_BLOCK_END.subn(lambda m, bar=bar: m.group(1) + bar, text, count=1)
        if not found:
            text = text.replace('<main class="content"', f'{bar}<main class="content"', 1)
        text = text.replace("</main>", f"{footer}</main>", 1)
        page.write_text(text, "utf-8")
        decorated.append(str(page.relative_to(site)))
    return decorated
