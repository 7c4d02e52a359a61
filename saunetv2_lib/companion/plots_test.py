"""Tests of the notebooks' figures: the error overlay's colours and that every plot draws."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from saunetv2_lib.companion import plots  # noqa: E402
from saunetv2_lib.data.datasets import Sample  # noqa: E402


def test_error_overlay_colours_each_outcome():
    probability = np.array([[0.9, 0.9], [0.1, 0.5]])
    label = np.array([[1, 0], [1, 0]])
    rgb = plots.error_overlay(probability, label)
    assert tuple(rgb[0, 0]) == pytest.approx(plots.TP_COLOR)
    assert tuple(rgb[0, 1]) == pytest.approx(plots.FP_COLOR)
    assert tuple(rgb[1, 0]) == pytest.approx(plots.FN_COLOR)
    assert tuple(rgb[1, 1]) == (0.0, 0.0, 0.0)  # p = 0.5 is not > 0.5: a true negative
    inclusive = plots.error_overlay(probability, label, strict=False)
    assert tuple(inclusive[1, 1]) == pytest.approx(plots.FP_COLOR)  # p >= 0.5
    masked = plots.error_overlay(probability, label, region=np.array([[1, 0], [1, 1]]))
    assert tuple(masked[0, 1]) == pytest.approx(plots.OUTSIDE_COLOR)
    with pytest.raises(ValueError, match="differ"):
        plots.error_overlay(probability, label[:1])


def test_every_plot_draws_a_figure():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    image = rng.random((24, 20, 3), dtype=np.float32)
    label = (rng.random((24, 20)) > 0.8).astype(np.uint8)
    fov = np.ones_like(label)
    probability = rng.random((24, 20)).astype(np.float32)
    history = [{"epoch": i, "loss": 1 / (i + 1), "val_loss": 1.1 / (i + 1), "accuracy": 0.9,
                "val_accuracy": 0.91, "learning_rate": 1e-3} for i in range(3)]  # fmt: skip
    roc = {"fpr": np.array([0, 0.1, 1]), "tpr": np.array([0, 0.8, 1]), "auc": 0.9}
    pr = {"recall": np.array([1, 0.8, 0]), "precision": np.array([0.1, 0.8, 1]),
          "average_precision": 0.8}  # fmt: skip
    figures = [
        plots.dataset_samples([("A", Sample("a", image, label, fov))]),
        plots.intensity_histograms({"A": ([image], [fov])}),
        plots.lines([0.1, 0.01], {"x": [1, 2]}, "f", "loss", logx=True),
        plots.attention_panel(image, {"sa": probability[:6, :5]}, probability),
        plots.training_history({"run": history}),
        plots.roc_pr({"whole": (roc, pr)}, {"human": (0.02, 0.77, 0.77, 0.8)}),
        plots.qualitative([("a", image, label, probability)], crop=(slice(0, 10), slice(0, 10))),
        plots.per_image({"ours": [80, 82, 84]}, reference={"paper": 82.8}),
        plots.bubble_chart([{"model": "m", "params_m": 0.26, "f1": 82.8, "gflops": 21.2},
                            {"model": "n", "params_m": 7.0, "f1": 82.2, "gflops": None, "ours": True}]),
        plots.bars({"a": 1.0, "b": 2.0}, "s", {"a": 1.5}),
        plots.design_comparison([
            {"model": "a", "role": "reference", "params": 260521, "gflops": 21.2, "f1": 0.8,
             "cpu_s_per_image": 0.3},
            {"model": "b", "role": "design", "params": 16601, "gflops": 2.1, "f1": 0.7},
        ]),
        plots.validation_curves({"a": history, "b": history[:2]}),
        plots.f1_against_steps({"long": [{"steps": 450, "hours": 0.4, "f1": 0.78},
                                         {"steps": 900, "hours": 0.8, "f1": 0.8}],
                                "short": [{"steps": 450, "hours": 1.1, "f1": 0.809}]}, 82.82),
        plots.configuration_intervals(
            [{"configuration": "a", "mean": 0.80, "seed_low": 0.79, "seed_high": 0.81,
              "image_low": 0.78, "image_high": 0.82},
             {"configuration": "b", "mean": 0.81, "seed_low": float("nan"),
              "seed_high": float("nan"), "image_low": 0.80, "image_high": 0.82}],
            per_seed={"a": [0.79, 0.80, 0.81]}, paper={"a": 82.2, "b": 82.7}),
    ]  # fmt: skip
    for figure in figures:
        assert figure.axes and figure.get_size_inches().min() > 1
    lines_axis = figures[2].axes[0]
    assert [t.get_text() for t in lines_axis.get_xticklabels()] == ["0.1", "0.01"]
    steps_axis, hours_axis = figures[-2].axes
    assert [len(line.get_xdata()) for line in steps_axis.get_lines()] == [2, 1, 2]  # + paper line
    assert list(hours_axis.get_lines()[0].get_xdata()) == [0.4, 0.8]
    intervals = figures[-1].axes[0]
    assert [t.get_text() for t in intervals.get_yticklabels()] == ["a", "b"]
    plt.close("all")


def test_design_comparison_leaves_untimed_rows_out_of_the_time_panel():
    import matplotlib.pyplot as plt

    rows = [
        {"model": "a", "role": "reference", "params": 1e6, "gflops": 4.0, "f1": 0.8,
         "cpu_s_per_image": 0.5},
        {"model": "b", "role": "design", "params": 2e6, "gflops": 9.0, "f1": 0.75},
    ]  # fmt: skip
    size_axis, time_axis = plots.design_comparison(rows).axes
    assert [t.get_text() for t in size_axis.texts] == ["a", "b"]
    assert [t.get_text() for t in time_axis.texts] == ["a"]
    assert size_axis.collections[0].get_offsets()[0].tolist() == pytest.approx([1.0, 80.0])
    plt.close("all")
