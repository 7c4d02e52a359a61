"""Tests of the runner: folders per profile, papermill execution, failure messages, site, comparison."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from saunetv2_lib.companion import reproduce
from saunetv2_lib.companion.reproduce import NotebookError


def _notebook(path: Path, cells: list[tuple[str, str, list[str]]]) -> None:
    notebook = nbformat.v4.new_notebook()
    for kind, source, tags in cells:
        cell = (
            nbformat.v4.new_markdown_cell(source)
            if kind == "md"
            else nbformat.v4.new_code_cell(source)
        )
        if tags:
            cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)


PARAMETERS = (
    "code",
    'profile = "full"\ndataset = "drive"\ndata_root = None\nseed = 0\n'
    'figures_dir = "../figures"\nruns_dir = "../runs"',
    ["parameters"],
)


def test_layouts_keep_quick_out_of_the_committed_folders(tmp_path):
    quick = reproduce.layout("quick", tmp_path)
    full = reproduce.layout("full", tmp_path)
    assert quick.notebook_dir == tmp_path / "build" / "quick" / "notebooks"
    assert quick.figures_dir == tmp_path / "build" / "quick" / "figures"
    assert quick.site_dir == tmp_path / "build" / "quick" / "_site"
    assert full.notebook_dir == tmp_path / "notebooks" == full.source_dir
    assert full.figures_dir == tmp_path / "figures"
    for where in (quick, full):
        parameters = reproduce.notebook_parameters(where, seed=7)
        # Relative to the executed notebook, so the same values work in both layouts.
        assert parameters["figures_dir"] == "../figures"
        # Only the quick profile reads run folders; the full one shows shipped artefacts only.
        assert parameters["runs_dir"] == ("../runs" if where.profile == "quick" else None)
        assert parameters["profile"] == where.profile and parameters["seed"] == 7
        assert parameters["data_root"] is None
    with pytest.raises(ValueError, match="profile must be one of"):
        reproduce.layout("medium", tmp_path)


def test_select_notebooks_by_number_or_name():
    assert reproduce.select_notebooks(None) == list(reproduce.NOTEBOOKS)
    assert reproduce.select_notebooks(["3", "01"]) == ["01_data_exploration", "03_loss"]
    assert reproduce.select_notebooks(["06_efficiency.ipynb"]) == ["06_efficiency"]
    with pytest.raises(ValueError, match="matches no notebook"):
        reproduce.select_notebooks(["9"])


def test_quick_run_writes_only_under_build_and_failure_names_the_cell(tmp_path):
    source = tmp_path / "notebooks" / "03_loss.ipynb"
    _notebook(
        source,
        [
            ("md", "# title", []),
            PARAMETERS,
            (
                "code",
                "from pathlib import Path\n"
                "Path(figures_dir).mkdir(parents=True, exist_ok=True)\n"
                "(Path(figures_dir) / 'out.txt').write_text(profile + str(seed))",
                [],
            ),
        ],
    )
    before = source.read_bytes()
    where = reproduce.layout("quick", tmp_path)
    parameters = reproduce.notebook_parameters(where, seed=5)
    output = reproduce.execute_notebook("03_loss", where, parameters)
    assert output == where.notebook_dir / "03_loss.ipynb"
    assert (where.figures_dir / "out.txt").read_text() == "quick5"
    assert source.read_bytes() == before  # the committed notebook is untouched
    assert (tmp_path / "build" / "logs" / "quick" / "03_loss.log").is_file()
    assert not (tmp_path / "figures").exists()
    executed = nbformat.read(output, as_version=4)
    assert executed.metadata.papermill["input_path"] == "notebooks/03_loss.ipynb"
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "quick"' in injected[0].source

    _notebook(
        source,
        [PARAMETERS, ("code", "x = 1", []), ("code", "raise ValueError('no data here')", [])],
    )
    with pytest.raises(NotebookError) as caught:
        reproduce.execute_notebook("03_loss", where, parameters)
    message = str(caught.value)
    assert "notebook 03_loss" in message
    assert "ValueError: no data here" in message
    assert "raise ValueError('no data here')" in message
    # Cells: parameters, injected parameters, x = 1, the failing one.
    assert caught.value.cell_index == 3


def test_missing_notebook_is_a_clear_error(tmp_path):
    where = reproduce.layout("quick", tmp_path)
    with pytest.raises(FileNotFoundError, match="01_data_exploration.ipynb does not exist"):
        reproduce.execute_notebook("01_data_exploration", where, {})


def test_stage_and_render_site_with_smalldocs(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no quarto: the offline renderer is used
    (tmp_path / "_quarto.yml").write_text(
        "project:\n  type: website\n  render: [index.qmd, notebooks/03_loss.ipynb]\n"
        "website:\n  title: T\n",
        encoding="utf-8",
    )
    (tmp_path / "index.qmd").write_text("---\ntitle: Home\n---\n\nhello\n", encoding="utf-8")
    _notebook(tmp_path / "notebooks" / "03_loss.ipynb", [("md", "# Loss page", [])])
    where = reproduce.layout("quick", tmp_path)
    logged: list[str] = []
    reproduce.stage_site(where, logged.append)
    assert (where.site_project / "_quarto.yml").is_file()
    assert (where.notebook_dir / "03_loss.ipynb").is_file()  # fallback to the committed one
    assert any("03_loss was not run" in line for line in logged)
    assert reproduce.render_site(where.site_project) == "smalldocs"
    assert "hello" in (where.site_dir / "index.html").read_text(encoding="utf-8")
    assert "Loss page" in (where.site_dir / "notebooks" / "03_loss.html").read_text("utf-8")
    with pytest.raises(FileNotFoundError, match="_quarto.yml does not exist"):
        reproduce.render_site(tmp_path / "nowhere")


def test_artefact_map_names_every_notebook():
    text = reproduce.artefact_map_markdown()
    for name in reproduce.NOTEBOOKS:
        assert f"`{name}`" in text
    assert "Figure 1" in text and "Table 4" in text


def test_reproduce_cli_reports_a_failing_notebook(tmp_path, monkeypatch, capsys):
    from saunetv2_lib.cli import main

    def failing(**kwargs):
        raise NotebookError("02_architecture", "KeyError: 'x'", 5, 3, "print(x)")

    monkeypatch.setattr(reproduce, "reproduce", failing)
    assert main(["reproduce", "--profile", "quick", "--only", "2"]) == 2
    error = capsys.readouterr().err
    assert "notebook 02_architecture, cell 5 (In [3]: 'print(x)') failed: KeyError" in error
