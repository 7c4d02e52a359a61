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


def test_page_reads_speed_and_curves_reports_only(bench, tmp_path):
    results = tmp_path / "results"
    for name in ("20261201T0000Z_training_speed", "20261201T0001Z_training_curves"):
        (results / f"{name}.json").write_text(json.dumps({"name": name}), "utf-8")
    # bench_memory.py writes beside them under the same prefix, in another format.
    (results / "20261201T0002Z_training_memory.json").write_text("{}", "utf-8")
    assert [r["name"] for r in bench._training_reports()] == [
        "20261201T0000Z_training_speed",
        "20261201T0001Z_training_curves",
    ]


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


def test_a_malloc_row_is_compared_with_the_same_step_on_the_systems_malloc(bench):
    def row(variant, env, s_per_image):
        fields = {"precision": "float32", "group_norm_statistics": "two_stage"}
        return {"dataset": "drive", "variant": variant, "fields": fields, "env": env,
                "images_per_epoch": 18, "s_per_image": s_per_image, "speedup": 1.0,
                "speedup_against": "two_stage_gn", "load": 2.0}  # fmt: skip

    report = {
        "host": {
            "cpu": "Some CPU",
            "cores": 2,
            "usable_cores": 2,
            "memory_gb": 25.3,
            "python": "3.11.7",
            "versions": {},
        },
        "command": "python benchmarks/bench_training.py speed",
        "measured": "2026-12-06T20:00+00:00",
        "rows": [
            row("two_stage_gn", {}, 3.0),
            row("tcmalloc", {"LD_PRELOAD": "tcmalloc"}, 2.0),
            row("inter_op_1", {"TF_NUM_INTEROP_THREADS": "1"}, 2.9),
        ],
    }
    page = bench.speed_markdown([report])
    assert (
        "`tcmalloc` runs at 1.50x `two_stage_gn`'s speed on drive (Some CPU, 2026-12-06; "
        "3.00 -> 2.00 s/image)" in page
    )
    assert "`inter_op_1` runs at" not in page
