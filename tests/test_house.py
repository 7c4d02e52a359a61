"""The house's promises (ARCHITECTURE.md): an instant, silent command line, and nothing trained
before the redraw of issue 13 is lost: shipped weights and an interrupted run both load after it.

The import-linter contracts themselves run in the test command (``scripts/lint_imports.sh``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import keras
import pytest

from saunetv2_lib.cli import COMMAND_MODULES, build_parser
from saunetv2_lib.paths import REPO_ROOT, WEIGHTS_DIR

# A run of the old layout (commit b1ca14e: saunetv2_lib/siblings/simple_unet.py, training.py)
# killed after epoch 1 of 2: its resume state as the old code wrote it, on a synthetic DRIVE
# written with write_synthetic_drive(n_train=5, n_test=2, size=(30, 28), seed=1).
OLD_RUN = REPO_ROOT / "tests" / "fixtures" / "resume_before_redraw"

HEAVY = ("keras", "tensorflow", "jax", "numpy", "scipy", "sklearn")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT))


def test_the_parser_and_every_subcommands_help_start_no_backend():
    code = (
        "import sys\n"
        "from saunetv2_lib.cli import build_parser\n"
        "build_parser()\n"
        "import json\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout)
    # numpy is the one allowed: `bench` lists the efficiency module's defaults.
    assert set(loaded) <= {"numpy"}, loaded


def test_the_package_face_is_lazy_and_names_the_library_functions():
    code = (
        "import sys, json\n"
        "import saunetv2_lib\n"
        f"before = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "from saunetv2_lib import evaluation, models, training, weights\n"
        "same = [saunetv2_lib.get_model is models.get_model,\n"
        "        saunetv2_lib.Protocol is evaluation.Protocol,\n"
        "        saunetv2_lib.evaluate is evaluation.evaluate,\n"
        "        saunetv2_lib.train is training.loop.train,\n"
        "        saunetv2_lib.TrainConfig is training.config.TrainConfig,\n"
        "        saunetv2_lib.load_weights is weights.load_weights]\n"
        "print(json.dumps({'before': before, 'same': same, 'dir': dir(saunetv2_lib)}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["before"] == []
    assert answer["same"] == [True] * 6
    assert {"get_model", "Protocol", "evaluate", "train", "load_weights"} <= set(answer["dir"])


def test_help_is_silent_and_every_subcommand_answers():
    commands = sorted(build_parser()._subparsers._group_actions[0].choices)
    assert len(commands) >= len(COMMAND_MODULES)
    for argv in [["--help"]] + [[command, "--help"] for command in commands]:
        run = subprocess.run(
            [sys.executable, "-m", "saunetv2_lib.cli", *argv],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, (argv, run.stderr)
        assert run.stderr == "", (argv, run.stderr)
        assert run.stdout.startswith("usage: saunetv2"), argv


@pytest.mark.parametrize("name", ["drive", "stare"])
def test_weights_shipped_before_the_redraw_load_with_their_checksums(name):
    from saunetv2_lib.weights import load_weights, read_model_card

    card = read_model_card(WEIGHTS_DIR / f"{name}.keras")
    model = load_weights(name)  # verifies the file against the card's SHA-256
    assert card["name"] == name and len(card["sha256"]) == 64
    assert model.get_layer("skip1_csa").__class__.__module__ == "saunetv2_lib.models.layers"
    keras.backend.clear_session()


def test_a_run_interrupted_before_the_redraw_resumes_after_it(tmp_path):
    from saunetv2_lib.data.synthetic import write_synthetic_drive
    from saunetv2_lib.training import TrainConfig, train

    root = write_synthetic_drive(tmp_path / "data", n_train=5, n_test=2, size=(30, 28), seed=1)
    run = shutil.copytree(OLD_RUN, tmp_path / "run")
    saved = json.loads((run / "config.json").read_text("utf-8"))
    (run / "config.json").write_text(json.dumps({**saved, "data_root": str(root)}), "utf-8")
    config = TrainConfig.from_dict({**saved, "data_root": str(root), "epochs": 2})
    result = train(config, run, resume=True, verbose=0)
    assert result.epochs_run == 2
    assert [row["epoch"] for row in result.history] == [0, 1]
    state = json.loads((run / "resume" / "state.json").read_text("utf-8"))
    assert state["completed_epochs"] == 2 and state["optimizer_iterations"] == 4
    keras.backend.clear_session()
