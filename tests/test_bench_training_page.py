"""``benchmarks/training_speed.md`` keeps every measurement: a new report adds to the page."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_training", BENCHMARKS / "bench_training.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench(tmp_path, monkeypatch) -> ModuleType:
    """The benchmark script, writing its page and reading its reports under ``tmp_path``."""
    module = _load_bench()
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(module, "HERE", tmp_path)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    return module


def test_committed_page_tabulates_every_committed_report():
    module = _load_bench()
    page = (BENCHMARKS / "training_speed.md").read_text("utf-8")
    assert page == module.speed_markdown(module._training_reports())


def test_table_adds_a_new_report_and_keeps_the_earlier_ones(bench, tmp_path):
    speed = sorted((BENCHMARKS / "results").glob("*_training_speed*.json"))
    assert len(speed) >= 2, "needs two committed speed reports"
    older, newer = (
        json.loads(path.read_text("utf-8"))["command"] for path in (speed[0], speed[-1])
    )

    shutil.copy(speed[0], bench.RESULTS / speed[0].name)
    assert bench.main(["table"]) == 0
    first_page = (tmp_path / "training_speed.md").read_text("utf-8")
    shutil.copy(speed[-1], bench.RESULTS / speed[-1].name)
    assert bench.main(["table"]) == 0
    both_page = (tmp_path / "training_speed.md").read_text("utf-8")

    assert older in first_page and newer not in first_page
    assert both_page.index(older) < both_page.index(newer)
