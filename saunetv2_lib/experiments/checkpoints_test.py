"""Tests of saunetv2_lib.experiments.checkpoints: every kept checkpoint scored, and the diagnosis."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from saunetv2_lib.experiments import campaign as campaigns
from saunetv2_lib.experiments import checkpoints
from saunetv2_lib.experiments.campaign import Campaign, RunSpec


def _row(epoch, f1, val_accuracy, rules, per_image):
    return {"epoch": epoch, "f1": f1, "val_accuracy": val_accuracy, "val_loss": 0.1,
            "rules": rules, "per_image_f1": dict(zip("abcd", per_image, strict=True))}  # fmt: skip


def test_the_diagnosis_measures_the_checkpoint_spread_the_ranks_and_the_image_interval():
    from scipy import stats

    rows = [
        _row(5, 0.70, 0.90, ["weights at 450 steps"], [0.7, 0.7, 0.7, 0.7]),
        _row(20, 0.78, 0.95, [checkpoints.VAL_LOSS_RULE], [0.8, 0.8, 0.76, 0.76]),
        _row(30, 0.82, 0.96, ["weights at 2,000 steps"], [0.9, 0.8, 0.8, 0.78]),
        _row(40, 0.75, 0.97, [checkpoints.SHIPPED_RULE, checkpoints.LAST_RULE], [0.85, 0.8, 0.7, 0.65]),
    ]  # fmt: skip
    d = checkpoints.checkpoint_diagnosis(rows, paper_f1=0.80)
    assert d["shipped"] == {"epoch": 40, "f1": 0.75} and d["val_loss"] == {"epoch": 20, "f1": 0.78}
    assert d["best"] == {"epoch": 30, "f1": 0.82}
    assert d["late"] == {"epochs": [20, 30, 40], "f1_min": 0.75, "f1_max": 0.82}
    # val_accuracy ranks 1 2 3 4, test F1 ranks 1 3 4 2: rho = 1 - 6 * (0+1+1+4) / (4 * 15).
    assert d["rank"]["spearman"] == pytest.approx(0.4) and d["rank"]["checkpoints"] == 4
    values = np.array([0.85, 0.8, 0.7, 0.65])
    half = stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2
    assert d["images"]["sd"] == pytest.approx(values.std(ddof=1))
    assert (d["images"]["low"], d["images"]["high"]) == pytest.approx((0.75 - half, 0.75 + half))
    assert d["gap"] == pytest.approx(0.05) and d["paper_inside"]
    text = checkpoints.diagnosis_markdown(d, "STARE")
    assert "5.00 points of F1 short" in text and "epoch 40" in text and "75.00" in text
    assert "up to 7.00 points" in text and "which holds the paper's number" in text
    assert not checkpoints.checkpoint_diagnosis(rows, paper_f1=0.99)["paper_inside"]
    with pytest.raises(ValueError, match="no checkpoint row carries"):
        checkpoints.checkpoint_diagnosis(rows[:3], paper_f1=0.8)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    return write_synthetic_drive(
        tmp_path_factory.mktemp("data"), n_train=6, n_test=2, size=(64, 64), seed=3
    )


@pytest.mark.slow
def test_every_kept_checkpoint_is_scored_once_with_its_validation_scores(tmp_path, synthetic_root):
    overrides = dict(data_root=str(synthetic_root), side=64, patch_size=None, batch_size=2,
                     epochs=3, max_train_images=6, epoch_repeats=2, plateau_patience=1,
                     early_stop_patience=100, seed=5)  # fmt: skip
    spec = RunSpec(name="tiny", profile="drive/quick", overrides=overrides, milestone_steps=(4,))
    runs = tmp_path / "runs"
    with open(os.devnull, "w") as log:
        campaigns.run_campaign(
            Campaign("test", (spec,)), 1.0, runs_root=runs, packed_root=tmp_path / "p", stream=log
        )
    run_dir = runs / "tiny"
    rows = checkpoints.score_checkpoints(spec, run_dir)
    assert json.loads((run_dir / checkpoints.CHECKPOINTS_FILE).read_text()) == rows
    epochs = [row["epoch"] for row in rows]
    assert epochs == sorted(set(epochs)) and epochs[0] == 1 and epochs[-1] == 3
    rules = [rule for row in rows for rule in row["rules"]]
    assert rules.count(checkpoints.SHIPPED_RULE) == rules.count(checkpoints.LAST_RULE) == 1
    assert {"weights at 4 steps", "best val_accuracy at 4 steps"} <= set(rules)
    history = {line.split(",")[0] for line in (run_dir / "history.csv").read_text().split()[1:]}
    assert len(history) == 3
    for row in rows:
        assert row["steps"] == 4 * row["epoch"] and 0 <= row["f1"] <= 1
        assert 0 <= row["val_accuracy"] <= 1 and len(row["per_image_f1"]) == 2
    # The milestone row keeps the score it got while training.
    milestone = json.loads((run_dir / "milestones.json").read_text())
    current = next(m for m in milestone if m["kind"] == "current")
    assert next(r for r in rows if r["epoch"] == 1)["f1"] == current["f1"]
    # The shipped row agrees with the run's result, scored by another path (every protocol).
    result = campaigns.finish_run(spec, run_dir)
    shipped = next(r for r in rows if checkpoints.SHIPPED_RULE in r["rules"])
    paper_row = next(m for m in result["metrics"] if m["paper"])
    assert shipped["f1"] == pytest.approx(paper_row["f1"], abs=1e-6)
    # Weights given as arrays (EarlyStopping's .npz) score like the file they came from.
    import keras

    arrays = keras.saving.load_model(run_dir / "last.keras", compile=False).get_weights()
    by_file = campaigns.score_checkpoint(spec, run_dir, run_dir / "last.keras")
    by_arrays = campaigns.score_checkpoint(spec, run_dir, arrays)
    assert by_arrays["f1"] == pytest.approx(by_file["f1"], abs=1e-6)
    with pytest.raises(FileNotFoundError, match="no completed epoch"):
        checkpoints.score_checkpoints(spec, tmp_path / "empty")
