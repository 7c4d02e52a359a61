"""Tests of saunetv2_lib.companion.sitepages: notebook links, Colab address, provenance record and line."""

from __future__ import annotations

import json

from saunetv2_lib.companion import sitepages

PAGE = (
    '<html><body><main class="content" id="quarto-document-content">'
    '<header id="title-block-header" class="quarto-title-block default"><h1 class="title">3 · Loss'
    "</h1></header><p>Text.</p></main><footer>site footer</footer></body></html>"
)
FACTS = {
    "commit": "0123456789ab",
    "uncommitted_changes": False,
    "executed": "2026-12-02T07:00+00:00",
    "profile": "full",
    "backend": "tensorflow",
    "versions": {"saunetv2_lib": "0.1.0", "keras": "3.15.1"},
    "data": "real DRIVE, 3 files SHA-256 verified",
}


def test_colab_address_is_built_from_a_github_repository_url_only():
    assert sitepages.colab_url("https://github.com/me/saunetv2.git", "notebooks/03_loss.ipynb") == (
        "https://colab.research.google.com/github/me/saunetv2/blob/main/notebooks/03_loss.ipynb"
    )
    assert sitepages.colab_url("https://github.com/me/saunetv2/", "n.ipynb", "dev").endswith(
        "/me/saunetv2/blob/dev/n.ipynb"
    )
    assert sitepages.colab_url(None, "n.ipynb") is None
    assert sitepages.colab_url("https://gitlab.com/me/saunetv2", "n.ipynb") is None


def test_provenance_is_recorded_and_the_injected_parameters_cell_hidden():
    notebook = {
        "metadata": {},
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "profile = 'x'"},
            {
                "cell_type": "code",
                "metadata": {"tags": ["injected-parameters"]},
                "source": ["# Parameters\n", "profile = 'full'\n"],
            },
        ],
    }
    sitepages.record_provenance(notebook, FACTS)
    assert notebook["cells"][1]["source"] == "# Parameters\nprofile = 'full'"  # as ruff formats it
    assert notebook["metadata"]["saunetv2"] == FACTS
    assert notebook["cells"][0]["metadata"]["tags"] == ["parameters"]
    assert notebook["cells"][1]["metadata"]["tags"] == ["injected-parameters", "remove-cell"]
    line = sitepages.provenance_line(notebook)
    assert "<code>full</code> profile on 2026-12-02T07:00+00:00" in line
    assert "<code>0123456789ab</code>" in line and "keras 3.15.1" in line
    assert "SHA-256 verified" in line
    older = {"metadata": {"papermill": {"end_time": "2026-11-24T10:20:42.8+00:00",
                                        "parameters": {"profile": "full"}}}}  # fmt: skip
    assert "on 2026-11-24 10:20 UTC; this execution predates" in sitepages.provenance_line(older)


def test_notebook_pages_get_their_ipynb_links_and_provenance(tmp_path):
    (tmp_path / "_quarto.yml").write_text("website:\n  repo-url: https://github.com/me/saunetv2\n")
    (tmp_path / "notebooks").mkdir()
    notebook = {"metadata": {"saunetv2": FACTS}, "cells": [], "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "notebooks" / "03_loss.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "notebooks" / "99_unrendered.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "_site" / "notebooks").mkdir(parents=True)
    (tmp_path / "_site" / "notebooks" / "03_loss.html").write_text(PAGE)
    assert sitepages.decorate_site(tmp_path) == ["notebooks/03_loss.html"]
    page = (tmp_path / "_site" / "notebooks" / "03_loss.html").read_text()
    assert page.index("</header>") < page.index('class="notebook-links"') < page.index("Text.")
    assert '<a href="03_loss.ipynb" download>' in page
    assert "colab.research.google.com/github/me/saunetv2/blob/main/notebooks/03_loss.ipynb" in page
    assert page.index('class="provenance"') < page.index("</main>") < page.index("site footer")
    assert (tmp_path / "_site" / "notebooks" / "03_loss.ipynb").is_file()


def test_a_synthetic_data_root_is_named_as_such(tmp_path):
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    root = write_synthetic_drive(tmp_path, n_train=1, n_test=1, size=(32, 32), seed=0)
    assert sitepages.data_description(root).startswith("synthetic")
