import csv
import json

import numpy as np
import pytest

from saunetv2_lib.complexity import model_complexity
from saunetv2_lib.evaluation import Protocol
from saunetv2_lib.metrics import METRIC_NAMES
from saunetv2_lib.models import get_model
from saunetv2_lib.siblings.compare import DESIGNS, REFERENCES, compare_designs

# A budget of one epoch on 64-px synthetic images (2 training, 2 validation, 2 test sources).
BUDGET = {"side": 64, "patch_size": None, "batch_size": 2, "epochs": 1, "epoch_repeats": 1}


@pytest.fixture
def synthetic_root(tmp_path, monkeypatch):
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    monkeypatch.delenv("SAUNETV2_DATA", raising=False)
    return write_synthetic_drive(tmp_path / "data", n_train=4, n_test=2, size=(64, 64), seed=1)


def _compare(out, root, models, **kwargs):
    return compare_designs(
        out,
        models=models,
        overrides={**BUDGET, "data_root": str(root)},
        protocol=Protocol(side=64),
        complexity_side=64,
        **kwargs,
    )


def test_trains_evaluates_and_tabulates_under_one_budget(tmp_path, synthetic_root):
    out = tmp_path / "compare"
    rows = _compare(out, synthetic_root, ["simple_unet_small"])
    assert [(r["model"], r["role"]) for r in rows] == [("simple_unet_small", "design")]
    for row in rows:
        expected = model_complexity(get_model(row["model"], (64, 64, 3)), measure_file=False)
        assert (row["params"], row["gflops"]) == (expected["params"], expected["gflops"])
        assert all(-1.0 <= row[name] <= 1.0 for name in METRIC_NAMES), row  # MCC may be < 0
        assert row["epochs_run"] == 1 and row["epochs"] == 1 and row["side"] == 64
        assert row["synthetic_data"] is True and row["train_wall_s"] > 0
        assert (out / row["model"] / "best.keras").exists()
    saved = json.loads((out / "comparison.json").read_text())
    assert [r["model"] for r in saved["rows"]] == ["simple_unet_small"]
    assert "cpu" in json.dumps(saved["host"]).lower()
    with (out / "comparison.csv").open() as handle:
        assert [r["model"] for r in csv.DictReader(handle)] == ["simple_unet_small"]

    # A second call resumes the finished runs instead of training again, and scores the same.
    again = _compare(out, synthetic_root, ["simple_unet_small"])
    for first, second in zip(rows, again, strict=True):
        assert second["train_wall_s"] == first["train_wall_s"]
        assert all(np.isclose(first[k], second[k]) for k in METRIC_NAMES)


def test_bad_requests_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="Unknown model"):
        compare_designs(tmp_path, models=["sa_unet_v3"])
    with pytest.raises(ValueError, match="may not set 'model'"):
        compare_designs(tmp_path, models=["sa_unet_v2"], overrides={"model": "unet"})
    assert not (tmp_path / "sa_unet_v2").exists()


@pytest.mark.slow
def test_every_design_runs_the_protocol(tmp_path, synthetic_root):
    small_mamba = {"embed_dim": 8, "d_state": 4}
    rows = _compare(
        tmp_path / "all",
        synthetic_root,
        list(REFERENCES + DESIGNS),
        model_kwargs={"sa_umamba": small_mamba},
    )
    assert [r["model"] for r in rows] == list(REFERENCES + DESIGNS)
    assert [r["role"] for r in rows] == ["reference"] * 2 + ["design"] * 5
    mamba = rows[-1]
    assert "from scratch" in mamba["note"]
    assert json.loads(mamba["model_kwargs"]) == small_mamba
    expected = get_model("sa_umamba", (64, 64, 3), **small_mamba).count_params()
    assert mamba["params"] == expected
