"""Reproduce the companion: execute the notebooks with papermill, compare with the paper, render the site.

Two profiles (``PROFILES``):

* ``quick`` proves the code from scratch in minutes: short training, small samples. It writes
  the executed notebooks, figures, runs and site under ``build/quick/`` and never touches the
  committed ``notebooks/`` outputs or ``figures/``.
* ``full`` presents the long runs (shipped weights and their training histories; it trains
  nothing itself): the executed notebooks go back to ``notebooks/``, the figures and tables to
  ``figures/`` and the site to ``_site/``. The repository keeps the outputs of the last full run.

Each notebook gets the same parameters (its cell tagged ``parameters``): ``profile``,
``dataset``, ``data_root`` (``None``: ``$SAUNETV2_DATA`` or the synthetic fallback), ``seed``,
``figures_dir`` and ``runs_dir`` (relative to the executed notebook, which is also its working
directory). The site is rendered from the executed notebooks and is never executed again:
``quarto render`` when Quarto is on ``PATH``, otherwise the offline renderer smalldocs, which reads
the same ``_quarto.yml``.

Typical use::

    report = reproduce("quick")          # or: saunetv2 reproduce --profile quick
    report.renderer, report.site_dir
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saunetv2_lib.companion.paper_check import (
    PAPER_VS_REPRODUCED,
    paper_vs_reproduced,
    summarise,
    write_paper_vs_reproduced,
)
from saunetv2_lib.paths import REPO_ROOT

PROFILES = ("quick", "full")
NOTEBOOKS = (
    "01_data_exploration",
    "02_architecture",
    "03_loss",
    "04_training",
    "05_evaluation",
    "06_efficiency",
    "07_sibling_designs",
)
KERNEL_NAME = "python3"
# Files and folders of the site project besides the notebooks (copied when the quick site is staged).
SITE_FILES = ("_quarto.yml", "index.qmd", "site")

# Which notebook makes which table or figure of the paper ("which notebook makes Table N?").
ARTEFACTS: tuple[dict[str, str], ...] = (
    {"paper": "datasets (text)", "what": "sizes, vessel fraction, intensities, widths, 2nd observer",
     "notebook": "01_data_exploration", "files": "01_dataset_stats.csv"},
    {"paper": "Table 1A", "what": "DRIVE without FOV mask: F1, Jacc, Sen, Spe, Acc, MCC, AUC",
     "notebook": "05_evaluation", "files": "05_drive_without_fov.csv"},
    {"paper": "Table 1A", "what": "parameters and GFLOPs of SA-UNetv2, SA-UNet, U-Net, Attention U-Net",
     "notebook": "02_architecture", "files": "02_complexity.csv"},
    {"paper": "Table 1A", "what": "CPU seconds per image, weights MB",
     "notebook": "06_efficiency", "files": "06_efficiency.csv"},
    {"paper": "Table 1B", "what": "DRIVE with FOV mask",
     "notebook": "05_evaluation", "files": "05_drive_with_fov.csv"},
    {"paper": "Table 2", "what": "STARE (16 train / 4 test)",
     "notebook": "05_evaluation", "files": "05_stare.csv"},
    {"paper": "Table 2", "what": "STARE: test F1 of every checkpoint of the paper-scale run, and why it is short",
     "notebook": "05_evaluation", "files": "05_stare_checkpoints.csv"},
    {"paper": "Table 3", "what": "architecture ablation: parameters and GFLOPs of each step",
     "notebook": "02_architecture", "files": "02_ablation_complexity.csv"},
    {"paper": "Table 3", "what": "architecture ablation trained with seeds: intervals, paired tests, verdicts",
     "notebook": "02_architecture", "files": "02_ablation_seeds.csv"},
    {"paper": "Table 4", "what": "loss ablation (BCE, MCC, BCE+MCC)",
     "notebook": "03_loss", "files": "03_loss_ablation.csv"},
    {"paper": "Table 4", "what": "loss ablation trained with seeds: intervals, paired tests, verdicts",
     "notebook": "03_loss", "files": "03_loss_ablation_seeds.csv"},
    {"paper": "Table 1A", "what": "SA-UNet vs SA-UNetv2 trained with seeds under the ablation budget",
     "notebook": "05_evaluation", "files": "05_sa_unet_seeds.csv"},
    {"paper": "Table 1A", "what": "U-Net, Attention U-Net vs SA-UNetv2 with seeds at a smaller, flagged budget",
     "notebook": "05_evaluation", "files": "05_baselines_seeds.csv"},
    {"paper": "Figure 1", "what": "F1 against parameters, bubble size GFLOPs",
     "notebook": "06_efficiency", "files": "06_bubble_chart.png"},
    {"paper": "architecture figure", "what": "SA-UNetv2 layout, SA and CSA modules, attention maps",
     "notebook": "02_architecture", "files": "02_attention_maps.png"},
    {"paper": "training (text)", "what": "the schedule and the training curves",
     "notebook": "04_training", "files": "04_training_curves.png"},
    {"paper": "Table 1A (scale)", "what": "DRIVE: test F1 against optimizer steps and CPU hours, paper-scale run",
     "notebook": "04_training", "files": "04_f1_against_steps_drive.png"},
    {"paper": "Table 1B (scale)", "what": "STARE: test F1 against optimizer steps and CPU hours, paper-scale run",
     "notebook": "04_training", "files": "04_f1_against_steps_stare.png"},
    {"paper": "protocol (text)", "what": "whole image vs FOV, per image vs pooled, 0.5 vs tuned threshold",
     "notebook": "05_evaluation", "files": "05_switchboard.csv"},
    {"paper": "beyond the paper", "what": "sibling designs (DCA, SimpleUNet, SA-UMamba) under one protocol and budget",
     "notebook": "07_sibling_designs", "files": "07_sibling_designs.csv"},
    {"paper": "all tables", "what": "paper vs reproduced, with tolerances",
     "notebook": "runner", "files": "paper_vs_reproduced.csv"},
)  # fmt: skip


class NotebookError(RuntimeError):
    """A notebook failed: names the notebook, the cell and the error; ``output`` is the partial run."""

    def __init__(
        self,
        notebook: str,
        message: str,
        cell_index: int | None = None,
        exec_count: int | None = None,
        source: str = "",
        output: Path | None = None,
    ) -> None:
        self.notebook = notebook
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.source = source
        self.output = output
        where = f"notebook {notebook}"
        if cell_index is not None:
            first_line = next((line for line in source.splitlines() if line.strip()), "")
            where += f", cell {cell_index} (In [{exec_count}]: {first_line.strip()[:70]!r})"
        text = f"{where} failed: {message.rstrip('.')}"
        if output is not None:
            text += f". The partly executed notebook is {output}"
        super().__init__(text)


@dataclass(frozen=True)
class Layout:
    """Where one profile reads and writes (absolute paths).

    Attributes:
        profile: ``"quick"`` or ``"full"``.
        root: the repository root (holds ``notebooks/``, ``_quarto.yml``).
        source_dir: the notebooks to execute (``root/notebooks``).
        notebook_dir: where the executed notebooks go.
        figures_dir: where the notebooks write PNG figures and CSV tables.
        runs_dir: training runs (quick trains here; full only reads).
        site_project: the folder holding the ``_quarto.yml`` that is rendered.
        site_dir: the rendered website.
    """

    profile: str
    root: Path
    source_dir: Path
    notebook_dir: Path
    figures_dir: Path
    runs_dir: Path
    site_project: Path
    site_dir: Path


def layout(profile: str, root: str | Path = REPO_ROOT) -> Layout:
    """The folders of ``profile``: quick under ``root/build/quick/``, full in the repository."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}.")
    root = Path(root).resolve()
    if profile == "full":
        base = root
        notebook_dir = root / "notebooks"
    else:
        base = root / "build" / "quick"
        notebook_dir = base / "notebooks"
    return Layout(
        profile=profile,
        root=root,
        source_dir=root / "notebooks",
        notebook_dir=notebook_dir,
        figures_dir=base / "figures",
        runs_dir=base / "runs",
        site_project=base,
        site_dir=base / "_site",
    )


def select_notebooks(only: Sequence[str] | None = None) -> list[str]:
    """The notebooks to run, in order; ``only`` holds numbers (``"2"``, ``"02"``) or names."""
    if not only:
        return list(NOTEBOOKS)
    chosen = set()
    for item in only:
        key = str(item).strip().removesuffix(".ipynb")
        matches = [
            name
            for name in NOTEBOOKS
            if name == key or (key.isdigit() and int(name[:2]) == int(key))
        ]
        if not matches:
            raise ValueError(
                f"--only {item!r} matches no notebook; choose from {', '.join(NOTEBOOKS)} "
                f"(or their numbers 1-{len(NOTEBOOKS)})."
            )
        chosen.update(matches)
    return [name for name in NOTEBOOKS if name in chosen]


def notebook_parameters(
    where: Layout,
    dataset: str = "drive",
    seed: int = 42,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """The papermill parameters: profile, dataset, data root, seed and the output folders.

    Output folders are relative to the executed notebook's folder (its working directory), so
    the executed notebooks stay valid wherever the repository is cloned.
    """
    return {
        "profile": where.profile,
        "dataset": dataset,
        "data_root": None if data_root is None else str(Path(data_root).resolve()),
        "seed": int(seed),
        "figures_dir": os.path.relpath(where.figures_dir, where.notebook_dir),
        # The full profile presents shipped, checksummed artefacts only, so that the committed
        # notebooks are exactly what a clean clone (and nbval in CI) reproduces; run folders
        # of unfinished trainings never leak into them.
        "runs_dir": (
            None if where.profile == "full" else os.path.relpath(where.runs_dir, where.notebook_dir)
        ),
    }


def _relative_metadata(path: Path, where: Layout, parameters: dict[str, Any]) -> None:
    """Record repository-relative paths in the executed notebook (papermill stores absolute ones),
    and its provenance (:func:`saunetv2_lib.companion.sitepages.record_provenance`)."""
    import nbformat

    from saunetv2_lib.companion.sitepages import provenance, record_provenance

    notebook = nbformat.read(path, as_version=4)
    meta = notebook.metadata.get("papermill", {})
    meta["input_path"] = os.path.relpath(where.source_dir / path.name, where.root)
    meta["output_path"] = os.path.relpath(path, where.root)
    meta["parameters"] = parameters
    record_provenance(notebook, provenance(where.root, where.profile, parameters.get("data_root")))
    nbformat.write(notebook, path)


def execute_notebook(
    name: str,
    where: Layout,
    parameters: dict[str, Any],
    kernel_name: str = KERNEL_NAME,
    cell_timeout: int | None = 1800,
) -> Path:
    """Execute ``source_dir/name.ipynb`` into ``notebook_dir`` with ``parameters``.

    The kernel runs in the output folder. Raises :class:`NotebookError` naming the failing cell.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = where.source_dir / f"{name}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"notebook {source} does not exist.")
    output = where.notebook_dir / f"{name}.ipynb"
    where.notebook_dir.mkdir(parents=True, exist_ok=True)
    log = where.root / "build" / "logs" / where.profile / f"{name}.log"
    try:
        with _stderr_to(log):  # the kernel's own start-up noise (TF, ipykernel) goes to the log
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=parameters,
                kernel_name=kernel_name,
                language="python",
                cwd=str(where.notebook_dir),
                progress_bar=False,
                log_output=False,
                execution_timeout=cell_timeout,
            )
    except PapermillExecutionError as error:
        raise NotebookError(
            name,
            f"{error.ename}: {error.evalue}",
            cell_index=error.cell_index,
            exec_count=error.exec_count,
            source=error.source,
            output=output,
        ) from None
    except Exception as error:  # kernel death, timeouts, missing kernels
        message = f"{type(error).__name__}: {error} (kernel log: {log})"
        raise NotebookError(name, message, output=output) from None
    _relative_metadata(output, where, parameters)
    return output


def _stderr_to(path: Path) -> contextlib.AbstractContextManager[None]:
    """Send file descriptor 2 (this process and the kernels it starts) to ``path`` in the block."""
    from saunetv2_lib.quiet import stderr_redirected

    path.parent.mkdir(parents=True, exist_ok=True)
    return stderr_redirected(path)


def stage_site(where: Layout, log: Callable[[str], None] = print) -> None:
    """Copy the site's project files next to the quick run's notebooks (quick profile only).

    Notebooks that this profile did not execute are taken from ``notebooks/`` (the last full
    run) so the navigation has no dead links; each one is logged.
    """
    if where.site_project == where.root:
        return
    where.site_project.mkdir(parents=True, exist_ok=True)
    for item in SITE_FILES:
        source = where.root / item
        target = where.site_project / item
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, target)
    where.notebook_dir.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        target = where.notebook_dir / f"{name}.ipynb"
        if not target.exists() and (where.source_dir / target.name).exists():
            shutil.copy2(where.source_dir / target.name, target)
            log(f"site: {name} was not run in this profile; its page shows notebooks/{name}.ipynb")


def render_site(project: str | Path, renderer: str = "auto") -> str:
    """Render the website of ``project`` (a folder with ``_quarto.yml``) without executing code.

    ``renderer="auto"`` uses ``quarto render --no-execute`` when ``quarto`` is on ``PATH`` and the
    offline smalldocs otherwise; ``"quarto"`` or ``"smalldocs"`` force one. Either way the maths
    is then typeset to MathML in the pages (no CDN needed). Returns the name of the renderer
    used. Raises ``RuntimeError`` with the renderer's message when it fails.
    """
    project = Path(project)
    if not (project / "_quarto.yml").is_file():
        raise FileNotFoundError(f"{project / '_quarto.yml'} does not exist: no site to render.")
    if renderer not in ("auto", "quarto", "smalldocs"):
        raise ValueError(f"renderer must be auto, quarto or smalldocs, got {renderer!r}.")
    quarto = shutil.which("quarto")
    if renderer == "quarto" or (renderer == "auto" and quarto):
        if not quarto:
            raise FileNotFoundError("quarto is not on PATH; install Quarto or use smalldocs.")
        done = subprocess.run(
            [quarto, "render", str(project), "--no-execute"], capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"quarto render failed:\n{done.stderr[-3000:]}")
        _typeset_math(project)
        return "quarto"
    from smalldocs.config import BuildError, ConfigError
    from smalldocs.site import build

    try:
        build(project, quiet=True)
    except (BuildError, ConfigError) as error:
        raise RuntimeError(f"smalldocs could not render {project}: {error}") from None
    _typeset_math(project)
    return "smalldocs"


def _typeset_math(project: Path) -> None:
    """Finish the rendered pages: notebook links and provenance (:mod:`saunetv2_lib.companion.sitepages`),
    maths as MathML at build time (:mod:`saunetv2_lib.companion.sitemath`), so pages read offline."""
    from saunetv2_lib.companion.sitemath import typeset_site
    from saunetv2_lib.companion.sitepages import decorate_site

    decorate_site(project)  # the .ipynb, a Colab link and the provenance on each notebook page
    problems = typeset_site(project / "_site")
    if problems:
        listed = "; ".join(
            f"{page}: {', '.join(tex[:40] for tex in texs)}" for page, texs in problems.items()
        )
        raise RuntimeError(f"maths that latex2mathml cannot typeset: {listed}")


def artefact_map_markdown(notebook_link: Callable[[str], str] | None = None) -> str:
    """The table-to-notebook map as a Markdown table (``notebook_link`` turns a name into a link)."""
    link = notebook_link or (lambda name: f"`{name}`")
    lines = ["| paper | what | made by | file in `figures/` |", "|---|---|---|---|"]
    for item in ARTEFACTS:
        maker = item["notebook"]
        shown = "`saunetv2 reproduce`" if maker == "runner" else link(maker)
        lines.append(f"| {item['paper']} | {item['what']} | {shown} | `{item['files']}` |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------- the runner
@dataclass
class ReproduceReport:
    """What :func:`reproduce` did: timings per notebook, the site and the paper comparison."""

    profile: str
    layout: Layout
    seconds: dict[str, float] = field(default_factory=dict)
    renderer: str | None = None
    comparison: dict[str, int] = field(default_factory=dict)
    total_seconds: float = 0.0


def reproduce(
    profile: str = "quick",
    only: Sequence[str] | None = None,
    site: bool = True,
    dataset: str = "drive",
    seed: int = 42,
    data_root: str | Path | None = None,
    root: str | Path = REPO_ROOT,
    renderer: str = "auto",
    log: Callable[[str], None] = print,
) -> ReproduceReport:
    """Execute the notebooks of ``profile`` in order, write the paper comparison, render the site.

    Stops at the first failing notebook with a :class:`NotebookError` naming it and its cell.
    ``only`` restricts the notebooks (numbers or names); ``site=False`` skips rendering.
    """
    start = time.perf_counter()
    where = layout(profile, root)
    names = select_notebooks(only)
    parameters = notebook_parameters(where, dataset=dataset, seed=seed, data_root=data_root)
    for folder in (where.notebook_dir, where.figures_dir, where.runs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    report = ReproduceReport(profile=profile, layout=where)
    log(f"reproduce --profile {profile}: notebooks -> {_shown(where.notebook_dir, where.root)}, "
        f"figures -> {_shown(where.figures_dir, where.root)}")  # fmt: skip
    for index, name in enumerate(names, 1):
        tick = time.perf_counter()
        log(f"[{index}/{len(names)}] {name} ...")
        execute_notebook(name, where, parameters)
        report.seconds[name] = time.perf_counter() - tick
        log(f"[{index}/{len(names)}] {name} done in {report.seconds[name]:.0f} s")
    with _stderr_to(where.root / "build" / "logs" / profile / f"{PAPER_VS_REPRODUCED}.log"):
        rows = paper_vs_reproduced(where.figures_dir)  # builds models: TensorFlow's start-up noise
    paths = write_paper_vs_reproduced(rows, where.figures_dir)
    (where.figures_dir / "table_map.md").write_text(
        artefact_map_markdown(lambda n: f"[{n}](notebooks/{n}.ipynb)"), encoding="utf-8"
    )
    report.comparison = summarise(rows)
    counts = report.comparison
    log(f"paper vs reproduced: {counts['within']}/{counts['total']} within tolerance, "
        f"{counts['outside']} outside, {counts['pending']} pending -> "
        f"{_shown(paths['csv'], where.root)}")  # fmt: skip
    if site:
        stage_site(where, log)
        report.renderer = render_site(where.site_project, renderer)
        log(f"site: rendered with {report.renderer} into {_shown(where.site_dir, where.root)}")
    report.total_seconds = time.perf_counter() - start
    log(f"reproduce --profile {profile}: finished in {report.total_seconds / 60:.1f} min")
    return report


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
