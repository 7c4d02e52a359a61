"""Tests of the evaluation protocol: pad/crop alignment, metrics, switchboard, writers, CLI.

A tiny fake dataset replaces ``load_split`` (images of 40x36 and 36x40 pixels, padded to 48), so
nothing here reads the real data except the shipped-weights check at the end.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import f1_score, matthews_corrcoef, roc_auc_score

from saunetv2_lib import evaluation, metrics
from saunetv2_lib.data import datasets
from saunetv2_lib.evaluation import Protocol, evaluate, protocol_switchboard
from saunetv2_lib.inference_test import green_model
from saunetv2_lib.models import get_model

SIDE = 48
SHAPES = [(40, 36), (36, 40), (48, 48)]


def _fake_samples(labels: str = "reference") -> list[datasets.Sample]:
    rng = np.random.default_rng(7)
    samples = []
    for i, (h, w) in enumerate(SHAPES):
        image = rng.random((h, w, 3), dtype=np.float32)
        image[::7, ::5, 1] = 0.5  # exactly at the threshold: p > 0.5 and p >= 0.5 differ here
        # The label follows the green channel (so a green-channel "model" is informative); the
        # second observer disagrees on a random 10 % of pixels.
        label = (image[..., 1] > 0.6).astype(np.uint8)
        if labels == "second":
            flip = np.random.default_rng(100 + i).random((h, w)) < 0.1
            label = np.where(flip, 1 - label, label).astype(np.uint8)
        yy, xx = np.mgrid[:h, :w]
        fov = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.45 * min(h, w)) ** 2).astype(np.uint8)
        samples.append(datasets.Sample(f"img{i}", image, label, fov))
    return samples


@pytest.fixture
def fake_data(monkeypatch):
    calls = []

    def fake_load_split(dataset, split, root=None, labels="reference", fov="official"):
        calls.append((dataset, split, labels, fov))
        return _fake_samples(labels)

    monkeypatch.setattr(datasets, "load_split", fake_load_split)
    return calls


@pytest.mark.parametrize("anchor", ["top_left", "center"])
@pytest.mark.parametrize("input_shape", [(None, None, 3), (SIDE, SIDE, 3), (64, 64, 3)])
def test_crop_returns_exactly_the_input_region(fake_data, anchor, input_shape):
    # Fixed side == SIDE uses the model as is; 64 and None go through the fully convolutional twin.
    result = evaluate(
        green_model(input_shape), "DRIVE", protocol=Protocol(anchor=anchor, side=SIDE)
    )
    for sample, probability in zip(_fake_samples(), result.probabilities, strict=True):
        assert probability.shape == sample.image.shape[:2]
        np.testing.assert_array_equal(probability, sample.image[..., 1])
    assert fake_data[0] == ("DRIVE", "test", "reference", "official")


def test_metrics_equal_direct_computation_on_cropped_maps(fake_data):
    model = get_model("sa_unet_v2", (None, None, 3), seed=3)
    result = evaluate(model, "drive", protocol=Protocol(side=SIDE), runtime="keras")
    samples = _fake_samples()
    # Independent pipeline: numpy pad (top-left), predict as one batch (as evaluate does, so
    # oneDNN takes the same code path), slice.
    padded = [
        np.pad(s.image, ((0, SIDE - s.label.shape[0]), (0, SIDE - s.label.shape[1]), (0, 0)))
        for s in samples
    ]
    predicted = model.predict_on_batch(np.stack(padded))
    expected_maps = [
        out[: s.label.shape[0], : s.label.shape[1], 0]
        for out, s in zip(predicted, samples, strict=True)
    ]
    for got, want in zip(result.probabilities, expected_maps, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    labels = [s.label for s in samples]
    direct = metrics.segmentation_metrics(result.probabilities, labels)
    assert result.summary == direct
    # And against scikit-learn, per image then averaged (the paper's aggregation).
    f1 = np.mean(
        [f1_score(y.ravel(), (p > 0.5).ravel()) for p, y in zip(expected_maps, labels, strict=True)]
    )
    mcc = np.mean(
        [
            matthews_corrcoef(y.ravel(), (p > 0.5).ravel())
            for p, y in zip(expected_maps, labels, strict=True)
        ]
    )
    auc = np.mean(
        [roc_auc_score(y.ravel(), p.ravel()) for p, y in zip(expected_maps, labels, strict=True)]
    )
    assert result.summary["f1"] == pytest.approx(f1, abs=1e-6)
    assert result.summary["mcc"] == pytest.approx(mcc, abs=1e-6)
    assert result.summary["auc"] == pytest.approx(auc, abs=1e-6)
    assert [row["name"] for row in result.per_image] == ["img0", "img1", "img2"]
    assert result.dataset == "DRIVE"


def test_fov_region_uses_masks_and_inclusive_rule(fake_data):
    result = evaluate(green_model(), "DRIVE", protocol=Protocol(region="fov", side=SIDE))
    samples = _fake_samples()
    assert result.protocol.strict is False  # the notebook's FOV evaluation: p >= 0.5
    want = metrics.segmentation_metrics(
        [s.image[..., 1] for s in samples],
        [s.label for s in samples],
        [s.fov for s in samples],
        strict=False,
    )
    assert result.summary == want
    strict = metrics.segmentation_metrics(
        [s.image[..., 1] for s in samples],
        [s.label for s in samples],
        [s.fov for s in samples],
        strict=True,
    )
    assert result.summary["f1"] < strict["f1"]  # the pixels at exactly 0.5 became false positives
    # At the label's own cut (green > 0.6), the green channel is a perfect classifier.
    perfect = evaluate(
        green_model(),
        "DRIVE",
        protocol=Protocol(region="fov", threshold=0.6, inclusive=False, side=SIDE),
    )
    assert perfect.summary["f1"] == 1.0 and perfect.summary["auc"] == 1.0


def test_switchboard_shape_and_paper_cell(fake_data):
    model = get_model("sa_unet_v2", (None, None, 3), seed=5)
    default = evaluate(model, "DRIVE", protocol=Protocol(side=SIDE))
    rows = protocol_switchboard(
        default.probabilities, default.samples, chosen_threshold=0.42, dataset="DRIVE"
    )
    assert len(rows) == 2 * 2 * 2  # region x aggregate x threshold
    combos = {(r["region"], r["aggregate"], r["threshold_source"]) for r in rows}
    assert len(combos) == 8
    paper = [r for r in rows if r["paper"]]
    assert len(paper) == 1 and paper[0]["protocol"] == "whole/per_image/>0.5/top_left"
    for key in metrics.METRIC_NAMES:
        assert paper[0][key] == default.summary[key]
    pooled_fov_train = next(
        r
        for r in rows
        if (r["region"], r["aggregate"], r["threshold_source"]) == ("fov", "pooled", "train")
    )
    want = metrics.segmentation_metrics(
        default.probabilities,
        [s.label for s in default.samples],
        [s.fov for s in default.samples],
        threshold=0.42,
        aggregate="pooled",
        strict=False,
    )
    assert {k: pooled_fov_train[k] for k in metrics.METRIC_NAMES} == want
    assert json.loads(json.dumps(rows)) == rows  # JSON-ready for model cards


def test_write_outputs(fake_data, tmp_path):
    result = evaluate(green_model(), "DRIVE", protocol=Protocol(side=SIDE))
    written = result.write(tmp_path)
    with open(written["per_image"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == result.names
    assert float(rows[1]["f1"]) == pytest.approx(result.per_image[1]["f1"])
    with open(written["summary"]) as handle:
        summary = next(csv.DictReader(handle))
    assert float(summary["mcc"]) == pytest.approx(result.summary["mcc"])
    assert summary["paper"] == "True"
    roc = np.loadtxt(written["roc"], delimiter=",", skiprows=1)
    assert roc[0, 0] == 0 and roc[-1, 0] == 1 and roc[-1, 1] == 1
    assert np.all(np.diff(roc[:, 0]) >= 0) and np.all(np.diff(roc[:, 1]) >= 0)
    assert np.trapezoid(roc[:, 1], roc[:, 0]) == pytest.approx(
        metrics.roc_curve_data(result.probabilities, result.labels)["auc"], abs=2e-3
    )
    pr = np.loadtxt(written["pr"], delimiter=",", skiprows=1)
    assert pr.shape[1] == 3 and np.all((pr[:, :2] >= 0) & (pr[:, :2] <= 1))
    png = np.asarray(Image.open(tmp_path / "prob" / "img0.png"))
    np.testing.assert_array_equal(png, np.round(result.probabilities[0] * 255).astype(np.uint8))


def test_inter_observer_row(fake_data):
    row = evaluation.inter_observer_row("DRIVE")
    reference, second = _fake_samples("reference"), _fake_samples("second")
    f1 = np.mean(
        [f1_score(r.label.ravel(), s.label.ravel()) for r, s in zip(reference, second, strict=True)]
    )
    assert row["method"] == "2nd observer"
    assert row["f1"] == pytest.approx(f1, abs=1e-12)
    assert row["auc"] == pytest.approx((row["sensitivity"] + row["specificity"]) / 2, abs=1e-12)
    # Same numbers as the dataset statistics' observer agreement (its fixed protocol).
    from saunetv2_lib.data.stats import observer_agreement

    agreement = observer_agreement([s.label for s in second], [r.label for r in reference])
    assert {k: row[k] for k in metrics.METRIC_NAMES} == pytest.approx(agreement, abs=1e-12)
    pooled = evaluation.inter_observer_row("DRIVE", Protocol(aggregate="pooled"))
    assert pooled["f1"] == pytest.approx(
        f1_score(
            np.concatenate([r.label.ravel() for r in reference]),
            np.concatenate([s.label.ravel() for s in second]),
        ),
        abs=1e-12,
    )


def test_protocol_validation_and_labels():
    assert Protocol().is_paper and Protocol().strict
    assert not Protocol(aggregate="pooled").is_paper
    assert not Protocol(inclusive=True).is_paper
    assert Protocol(region="fov").describe() == "fov/per_image/>=0.5/top_left"
    with pytest.raises(ValueError, match="Protocol.region"):
        Protocol(region="disc")
    with pytest.raises(ValueError, match="threshold"):
        Protocol(threshold=1.5)


def test_image_larger_than_side_is_a_clear_error(fake_data):
    with pytest.raises(ValueError, match="does not fit"):
        evaluate(green_model(), "DRIVE", protocol=Protocol(side=40))


def test_evaluate_cli_json_and_out(fake_data, tmp_path, capsys):
    from saunetv2_lib.cli import main

    path = tmp_path / "green.keras"
    green_model().save(path)
    code = main(
        ["evaluate", "--dataset", "DRIVE", "--weights", str(path), "--side", str(SIDE), "--json"]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    want = evaluate(green_model(), "DRIVE", protocol=Protocol(side=SIDE)).summary
    assert set(printed) == set(metrics.METRIC_NAMES)
    assert printed == pytest.approx(want, abs=1e-12)

    out = tmp_path / "ev"
    code = main(
        ["evaluate", "--dataset", "DRIVE", "--weights", str(path), "--side", str(SIDE)]
        + ["--fov", "--pooled", "--threshold", "0.4", "--switchboard", "--out", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "fov/pooled/>=0.4/top_left" in text and "whole/per_image/>0.5/top_left *" in text
    with open(out / "switchboard.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    assert (out / "prob" / "img2.png").is_file()


def test_evaluate_cli_unshipped_weights_is_one_line_error(fake_data, monkeypatch, tmp_path, capsys):
    from saunetv2_lib import weights
    from saunetv2_lib.cli import main

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    assert main(["evaluate", "--dataset", "DRIVE", "--weights", "drive"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not shipped yet" in err[0]


@pytest.mark.real_data
@pytest.mark.parametrize("name,dataset", [("drive", "DRIVE"), ("stare", "STARE")])
def test_shipped_weights_reproduce_their_model_card(name, dataset, real_data_root):
    from saunetv2_lib import weights

    if not weights.list_weights().get(name):
        pytest.skip(f"the {name!r} weights are not shipped yet (saunetv2_lib/weights/{name}.keras)")
    card = weights.read_model_card(name)
    row = weights.paper_row(card)
    assert row is not None, f"model card {name}.json has no metric row flagged 'paper'"
    fields = {
        k: row[k] for k in ("anchor", "threshold", "region", "aggregate", "labels") if k in row
    }
    protocol = Protocol(**fields, inclusive=row.get("inclusive"))
    assert protocol.is_paper
    result = evaluate(weights.load_weights(name), dataset, protocol=protocol, root=real_data_root)
    assert result.summary["f1"] == pytest.approx(row["f1"], abs=1e-4)
    assert result.summary["auc"] == pytest.approx(row["auc"], abs=1e-4)


def test_train_threshold_is_chosen_on_the_training_split(fake_data):
    threshold = evaluation.train_threshold(green_model(), "DRIVE", Protocol(side=SIDE))
    assert fake_data[-1][1] == "train"  # never the test split
    samples = _fake_samples()
    green = np.concatenate([s.image[..., 1].ravel() for s in samples])
    labels = np.concatenate([s.label.ravel() for s in samples])
    # The fake label is green > 0.6, so the F1-best cut separates the classes exactly.
    assert green[labels == 0].max() < threshold < green[labels == 1].min()
