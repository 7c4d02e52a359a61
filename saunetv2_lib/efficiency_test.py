"""Benchmark: timing summaries, memory measurement, host line, report structure and ratios."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from saunetv2_lib import efficiency
from saunetv2_lib.efficiency import (
    benchmark,
    format_report,
    summarize_times,
)
from saunetv2_lib.host import cpu_model


def test_summarize_times_per_image_against_numpy():
    calls = [0.3, 0.1, 0.2, 0.5]
    summary = summarize_times(calls, batch_size=2)
    per_image = np.array(calls) / 2
    assert summary["median_s"] == pytest.approx(np.median(per_image))
    assert summary["min_s"] == pytest.approx(0.05)
    assert summary["max_s"] == pytest.approx(0.25)
    assert summary["mean_s"] == pytest.approx(per_image.mean())
    assert summary["images_per_s"] == pytest.approx(1 / np.median(per_image))
    with pytest.raises(ValueError, match="runs >= 1"):
        summarize_times([])


def test_benchmark_report_structure_and_same_run_ratios():
    report = benchmark(
        models="sa_unet_v2,sa_unet",
        size=32,
        runs=3,
        warmup=1,
        paths=("keras", "tflite"),
        memory="inline",
    )
    json.dumps(report)  # serialisable as printed by --json
    rows = report["results"]
    assert [(r["model"], r["path"]) for r in rows] == [
        ("sa_unet_v2", "keras"),
        ("sa_unet_v2", "tflite"),
        ("sa_unet", "keras"),
        ("sa_unet", "tflite"),
    ]
    by_key = {(r["model"], r["path"]): r for r in rows}
    for row in rows:
        assert len(row["times_s"]) == 3
        assert row["min_s"] <= row["median_s"] <= row["max_s"]
        assert row["median_s"] == pytest.approx(np.median(row["times_s"]))
        assert row["images_per_s"] == pytest.approx(1 / row["median_s"])
        assert row["paper_s"] is None  # the paper's seconds are for 592 px only
        assert row["rss_delta_mb"] >= 0 and row["peak_rss_mb"] > 0
        reference = by_key[("sa_unet_v2", row["path"])]["times_s"]
        expected = np.median(np.array(row["times_s"]) / np.array(reference))
        assert row["ratio"] == pytest.approx(expected)
        keras_times = np.array(by_key[(row["model"], "keras")]["times_s"])
        assert row["vs_keras"] == pytest.approx(np.median(keras_times / row["times_s"]))
    assert by_key[("sa_unet_v2", "keras")]["ratio"] == 1.0
    assert report["settings"]["size"] == 32 and report["host"]["cpu"] == cpu_model()
    text = format_report(report)
    assert "sa_unet_v2" in text and "x v2" in text and cpu_model() in text


def test_benchmark_records_a_path_that_cannot_be_built(monkeypatch):
    real = efficiency.make_predictor

    def refusing(model, path, threads=None):
        if path == "onnx":
            raise ValueError("converter refused")
        return real(model, path, threads)

    monkeypatch.setattr(efficiency, "make_predictor", refusing)
    report = benchmark(
        models=["sa_unet_v2"], size=32, runs=1, warmup=1, paths="keras,onnx", memory="none"
    )
    keras_row, onnx_row = report["results"]
    assert "median_s" in keras_row and "rss_delta_mb" not in keras_row
    assert onnx_row == {
        "model": "sa_unet_v2",
        "path": "onnx",
        "error": "ValueError: converter refused",
    }
    assert "error: ValueError: converter refused" in format_report(report)


def test_benchmark_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Unknown model"):
        benchmark(models="sa_unet_v3", size=32)
    with pytest.raises(ValueError, match="Unknown inference path"):
        benchmark(models="sa_unet_v2", paths="cuda", size=32)
    with pytest.raises(ValueError, match="runs, warmup and batch_size"):
        benchmark(models="sa_unet_v2", size=32, runs=0)
    with pytest.raises(ValueError, match="memory must be"):
        benchmark(models="sa_unet_v2", size=32, memory="tracemalloc")
    with pytest.raises(ValueError, match="not divisible"):
        benchmark(models="sa_unet_v2", size=30, paths="keras")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux-only")
def test_isolated_memory_runs_in_a_fresh_process():
    # Make this (parent) process large: a child's own peak must stay below it (Linux copies the
    # parent's peak into a child's ru_maxrss across exec, which must not leak into the report).
    ballast = np.ones(1_000_000_000 // 8)
    report = benchmark(models="sa_unet_v2", size=32, runs=1, warmup=1, paths="keras")
    parent_rss_mb = efficiency._status_kb("VmRSS") * 1024 / 1e6
    del ballast
    row = report["results"][0]
    assert row["memory_method"] == "isolated-vmhwm"
    # A fresh process holding TensorFlow and a model is far above 100 MB; the inference delta at
    # 32x32 is small but its peak includes it.
    assert row["process_peak_mb"] > 100
    assert 0 <= row["rss_delta_mb"] <= row["peak_rss_mb"] <= row["process_peak_mb"]
    assert row["process_peak_mb"] < parent_rss_mb
    assert report["settings"]["memory"] == "isolated"


def test_isolated_memory_reports_a_failing_child():
    result = efficiency.isolated_memory("no_such_model", "keras", 32)
    assert "memory_error" in result and "exit 1" in result["memory_error"]


def test_paper_timing_report_is_found_and_its_diagnosis_computed(tmp_path):
    from saunetv2_lib.efficiency import latest_paper_timing, paper_timing_markdown

    assert latest_paper_timing(tmp_path) is None

    def row(model, paper_ratio, steady, first, repeat):  # noqa: E306
        return {"model": model, "paper_ratio": paper_ratio, "steady_ratio": steady / 0.2,
                "recipe_ratio": first / 0.5, "steady_state": {"median": steady},
                "official_recipe": {"seconds_per_image": first, "repeat_seconds_per_image": repeat}}  # fmt: skip

    report = {
        "measured": "2026-12-02T06:34+00:00",
        "images": 20,
        "rows": [
            row("sa_unet_v2", 1.0, 0.2, 0.5, 0.25),
            row("unet", 3.33, 0.7, 1.0, 0.8),
            row("attention_unet", 8.15, 2.2, 4.0, 2.5),
        ],  # fmt: skip
        "fit_steady": {"intercept_s": 0.5, "slope": 3.28, "r2": 0.995},
        "fit_recipe": {"intercept_s": 0.6, "slope": 1.77, "r2": 0.97},
    }
    (tmp_path / "20260101T0000Z_paper_timing.json").write_text("{}")
    (tmp_path / "20261202T0634Z_paper_timing.json").write_text(__import__("json").dumps(report))
    assert latest_paper_timing(tmp_path) == report  # the newest by its name
    text = paper_timing_markdown(report)
    assert "a = 0.50 s and b = 3.28 (R² = 0.995)" in text
    assert "U-Net 3.3× and Attention U-Net 8.2×" in text and "3.5× and 11.0×" in text
    assert "0.50 s per image instead of 0.20 s (+0.30 s)" in text
    assert "paid once" in text  # 0.25 s repeated: most of the extra went with the first call
    report["rows"][0]["official_recipe"]["repeat_seconds_per_image"] = 0.45
    assert "stays" in paper_timing_markdown(report)


def test_cpu_seconds_per_image_counts_calls():
    calls = []

    class Fake:
        def predict_on_batch(self, batch):
            calls.append(batch.shape)

    timing = efficiency.cpu_seconds_per_image(Fake(), 16, repeats=3, warmup=2)
    assert len(calls) == 5 and calls[0] == (1, 16, 16, 3)
    assert len(timing["runs"]) == 3 and timing["min"] <= timing["median"] <= timing["max"]
    with pytest.raises(ValueError, match="repeats"):
        efficiency.cpu_seconds_per_image(Fake(), 16, repeats=0)


def test_cpu_seconds_interleaved_takes_turns():
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def predict_on_batch(self, batch):
            calls.append(self.name)

    timing = efficiency.cpu_seconds_interleaved({"a": Fake("a"), "b": Fake("b")}, 8, repeats=2)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # warm-ups, then alternating rounds
    assert set(timing) == {"a", "b"} and len(timing["a"]["runs"]) == 2


def test_official_recipe_warms_up_on_one_image_then_times_the_whole_set():
    calls = []

    class Fake:
        def predict(self, batch, verbose=0):
            calls.append(batch.shape)

    images = np.zeros((5, 16, 16, 3), np.float32)
    timing = efficiency.official_recipe_seconds(Fake(), images)
    assert calls == [(1, 16, 16, 3), (5, 16, 16, 3), (5, 16, 16, 3)]
    assert timing["images"] == 5 and timing["repeat_seconds_per_image"] >= 0
    assert timing["seconds_per_image"] == pytest.approx(timing["total_s"] / 5)


def test_save_report_names_the_file_by_time_host_size_and_models(tmp_path):
    report = {
        "host": {"cpu": "AMD EPYC 7B13 (x)", "usable_cores": 2},
        "settings": {"size": 64},
        "results": [{"model": "sa_unet_v2"}, {"model": "sa_unet_v2"}, {"model": "unet"}],
    }
    path = efficiency.save_report(report, tmp_path / "results")
    assert path.parent == tmp_path / "results"
    assert path.name.endswith("_amd-epyc-7b13-x_2c_64_sa_unet_v2-unet.json")
    assert json.loads(path.read_text("utf-8")) == report


def test_speed_ratios_divide_by_the_reference():
    ratios = efficiency.speed_ratios({"a": 0.5, "b": 2.0, "ref": 0.25}, "ref")
    assert ratios == {"a": 2.0, "b": 8.0, "ref": 1.0}
    with pytest.raises(KeyError, match="reference"):
        efficiency.speed_ratios({"a": 1.0}, "ref")
