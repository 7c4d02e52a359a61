import json
import os

import keras
import numpy as np
import pytest

from saunetv2_lib.cli import main
from saunetv2_lib.data.synthetic import write_synthetic_drive
from saunetv2_lib.experiments.ship import ship_run
from saunetv2_lib.losses import BceMccLoss
from saunetv2_lib.metrics import segmentation_metrics
from saunetv2_lib.models import get_model
from saunetv2_lib.training.history import read_history
from saunetv2_lib.weights import load_weights


@pytest.fixture
def tiny_run(tmp_path):
    """A run folder as training writes it, for a 64-px model on a 64-px synthetic DRIVE."""
    root = write_synthetic_drive(tmp_path / "data", n_train=3, n_test=2, size=(60, 56), seed=1)
    run = tmp_path / "run"
    run.mkdir()
    model = get_model("sa_unet_v2", (64, 64, 3), seed=0)
    model.compile(optimizer="adam", loss=BceMccLoss())
    model.fit(np.zeros((2, 64, 64, 3)), np.zeros((2, 64, 64, 1)), epochs=1, verbose=0)
    model.save(run / "best.keras")
    config = {"dataset": "drive", "data_root": str(root), "anchor": "top_left", "side": 64}
    (run / "config.json").write_text(json.dumps(config))
    (run / "history.csv").write_text("epoch,loss,val_loss\n0,0.9,0.8\n1,0.7,0.6\n")
    return run, root


def test_ship_run_installs_an_optimizer_free_model_with_a_complete_card(tiny_run, tmp_path):
    run, root = tiny_run
    card = ship_run(run, "tiny", directory=tmp_path / "weights")
    shipped = tmp_path / "weights" / "tiny.keras"
    assert shipped.stat().st_size < (run / "best.keras").stat().st_size  # no optimizer state
    assert card["history"] == [
        {"epoch": 0.0, "loss": 0.9, "val_loss": 0.8},
        {"epoch": 1.0, "loss": 0.7, "val_loss": 0.6},
    ]
    assert 0.0 < card["train_threshold"] < 1.0
    paper_cells = [row for row in card["metrics"] if row.get("paper")]
    assert len(paper_cells) == 1
    # The card's paper-protocol F1 is what evaluating the shipped file gives.
    model = load_weights(shipped)
    from saunetv2_lib.evaluation import evaluate

    result = evaluate(model, "drive", root=root)
    assert result.summary["f1"] == pytest.approx(paper_cells[0]["f1"], abs=1e-6)
    direct = segmentation_metrics(result.probabilities, result.labels)
    assert direct["f1"] == pytest.approx(result.summary["f1"], abs=1e-9)
    assert len(card["per_image"]) == 2
    keras.backend.clear_session()


def test_read_history_without_a_file_is_empty(tmp_path):
    assert read_history(tmp_path / "history.csv") == []


def test_weights_list_command(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "drive:" in out and "stare:" in out


def test_ship_command_names_a_missing_run(tmp_path, capsys):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    assert main(["weights", "ship", "--run", str(tmp_path / "nope"), "--name", "x"]) == 2
    assert "nope" in capsys.readouterr().err
