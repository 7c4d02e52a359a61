import csv
import json

import numpy as np
import pytest

from saunetv2_lib.complexity import model_complexity
from saunetv2_lib.evaluation import Protocol
from saunetv2_lib.experiments.compare import (
    DESIGNS,
    REFERENCES,
    bundle_comparison,
    compare_designs,
    load_bundle,
    measure_cpu_time,
    paired_against,
    read_comparison,
)
from saunetv2_lib.metrics import METRIC_NAMES
from saunetv2_lib.models import get_model

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
        assert row["budget_complete"] is True
        assert (out / row["model"] / "best.keras").exists()
    saved = json.loads((out / "comparison.json").read_text())
    assert [r["model"] for r in saved["rows"]] == ["simple_unet_small"]
    assert "cpu" in json.dumps(saved["host"]).lower()
    with (out / "comparison.csv").open() as handle:
        written = list(csv.DictReader(handle))
    assert [r["model"] for r in written] == ["simple_unet_small"]
    assert "per_image_f1" not in written[0]  # per-image scores stay in the JSON

    # A second call resumes the finished runs instead of training again, and scores the same.
    again = _compare(out, synthetic_root, ["simple_unet_small"])
    for first, second in zip(rows, again, strict=True):
        assert second["train_wall_s"] == first["train_wall_s"]
        assert all(np.isclose(first[k], second[k]) for k in METRIC_NAMES)


@pytest.mark.slow
def test_separate_calls_build_one_table_timed_and_bundled(tmp_path, synthetic_root):
    out = tmp_path / "compare"
    first = _compare(out, synthetic_root, ["simple_unet_small"], max_test_images=1)
    second = compare_designs(  # complexity counted at the dataset's side by default
        out,
        models=["sa_unet_v2"],
        overrides={**BUDGET, "data_root": str(synthetic_root)},
        protocol=Protocol(side=64),
        max_test_images=1,
    )
    assert first[0]["test_images"] == second[0]["test_images"] == 1
    assert list(first[0]["per_image_f1"].values()) == pytest.approx([first[0]["f1"]])
    assert (second[0]["complexity_side"], second[0]["params"]) == (592, 260_521)
    # The table keeps both calls' rows, references first, whatever order they ran in.
    assert [r["model"] for r in read_comparison(out)] == ["sa_unet_v2", "simple_unet_small"]

    # Another budget on the same folder is refused before anything trains.
    with pytest.raises(ValueError, match="another budget.*epochs=1.*epochs=2"):
        compare_designs(
            out,
            models=["simple_unet"],
            overrides={**BUDGET, "epochs": 2, "data_root": str(synthetic_root)},
        )
    assert not (out / "simple_unet").exists()

    timed = measure_cpu_time(out, side=96, repeats=2)  # trained at 64: rebuilt at 96
    assert all(r["cpu_s_per_image"] >= r["cpu_s_min"] > 0 for r in timed)
    assert {r["cpu_time_side"] for r in read_comparison(out)} == {96}

    bundle = load_bundle(bundle_comparison(out, tmp_path / "bundle.json"))
    assert [r["model"] for r in bundle["rows"]] == ["sa_unet_v2", "simple_unet_small"]
    assert bundle["budget"]["epochs"] == 1 and "model" not in bundle["budget"]
    for name, history in bundle["histories"].items():
        assert len(history) == 1 and history[0]["loss"] > 0, name
    with pytest.raises(FileNotFoundError, match="bundle it first"):
        load_bundle(tmp_path / "missing.json")


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


def test_paired_comparison_against_the_reference():
    from scipy.stats import wilcoxon

    names = [f"{i:02d}" for i in range(8)]
    base = {n: 0.70 + 0.01 * i for i, n in enumerate(names)}
    better = {n: v + 0.02 + 0.001 * i for i, (n, v) in enumerate(base.items())}
    rows = [
        {"model": "sa_unet_v2", "per_image_f1": base},
        {"model": "x", "per_image_f1": better},
        {"model": "few", "per_image_f1": {n: better[n] for n in names[:3]}},
    ]
    x, few = paired_against(rows)
    assert (x["model"], x["images"], x["better"]) == ("x", 8, 8)
    assert x["mean_f1_diff"] == pytest.approx(0.0235)
    diffs = [better[n] - base[n] for n in names]
    assert x["wilcoxon_p"] == pytest.approx(wilcoxon(diffs).pvalue)
    assert x["wilcoxon_p"] < 0.01
    assert (few["images"], few["wilcoxon_p"]) == (3, None)  # too few images for the test
    with pytest.raises(ValueError, match="reference 'sa_unet'"):
        paired_against(rows, reference="sa_unet")


def test_an_unfinished_run_is_scored_as_it_stands_and_says_so(tmp_path, synthetic_root):
    from saunetv2_lib.training import load_profile, train

    out = tmp_path / "compare"
    config = load_profile("drive/siblings_quick", model="simple_unet_small", **BUDGET)
    train(config.replace(data_root=str(synthetic_root), epochs=1), out / "simple_unet_small")
    with pytest.raises(FileNotFoundError, match="Cannot resume"):
        compare_designs(out, models=["simple_unet"], train_runs=False)
    row = compare_designs(
        out,
        models=["simple_unet_small"],
        profile="drive/siblings_quick",
        overrides={**BUDGET, "epochs": 3, "data_root": str(synthetic_root)},
        protocol=Protocol(side=64),
        complexity_side=64,
        train_runs=False,
    )[0]
    assert (row["epochs_run"], row["epochs"], row["budget_complete"]) == (1, 3, False)
    assert "unfinished: 1 of 3 epochs" in row["note"]
    assert len(read_comparison(out)) == 1


def test_findings_are_computed_from_the_rows():
    from saunetv2_lib import paper
    from saunetv2_lib.experiments.compare import findings_markdown

    names = [f"{i:02d}" for i in range(8)]
    history = [{"val_loss": 0.6}, {"val_loss": 0.5}]

    def row(model, role, f1, params, gflops, cpu, complete=True, shift=0.0):
        return {"model": model, "role": role, "f1": f1, "params": params, "gflops": gflops,
                "cpu_s_per_image": cpu, "cpu_time_load": 0.4, "budget_complete": complete,
                "epochs_run": 2 if complete else 1, "train_wall_s": 100.0,
                "per_image_f1": {n: f1 + shift + 0.001 * i for i, n in enumerate(names)}}  # fmt: skip

    results = {
        "budget": {"profile": "drive/siblings", "epochs": 2, "patch_size": 128},
        "rows": [row("sa_unet_v2", "reference", 0.70, 260_000, 21.0, 0.3),
                 row("wide", "design", 0.72, 520_000, 42.0, 0.6),
                 row("sa_umamba", "design", 0.60, 5_200_000, 140.0, 9.0, complete=False)],
        "histories": {"sa_unet_v2": history, "wide": history, "sa_umamba": history[:1]},
    }  # fmt: skip
    text = findings_markdown(results, shipped_f1=0.81)
    assert "`wide` 72.00, `sa_unet_v2` 70.00, `sa_umamba` 60.00" in text
    assert "`sa_umamba` ran 1 of 2 epochs" in text and "At epoch 1" in text
    assert "`wide` (+2.00 pp F1 for 2.0× the parameters and 2.0× the GFLOPs)" in text
    assert "**Per parameter** `sa_unet_v2` leads with 269" in text
    assert "`sa_umamba` the slowest at 9.00 s (30× SA-UNetv2's 0.300 s)" in text
    assert "trained from scratch" in text
    paper_f1 = paper.value("drive_without_fov", "SA-UNetv2", "f1")
    assert (
        f"81.00 with the shipped 150-epoch weights (notebook 5); the paper reports {paper_f1:.2f}"
        in text
    )
    assert "The budget is short" not in findings_markdown(results)
    assert "**Per training second**" not in text  # equal training times: nothing to say
    timed = {**results, "rows": [{**r, "train_wall_s": t} for r, t in
                                 zip(results["rows"], (100.0, 150.0, 4_000.0), strict=True)]}  # fmt: skip
    text = findings_markdown(timed, shipped_f1=0.81, shipped_train_s=3_000.0)
    assert "`sa_umamba` trained for 4,000 s, 40× SA-UNetv2's 100 s" in text
    assert "took 3,000 s to train (0.75× that, on whole images) and reach 81.00" in text


def test_markdown_table_formats_every_cell_from_the_rows():
    from saunetv2_lib.experiments.compare import comparison_markdown

    def row(model, complete, epochs_run, cpu):
        return {"model": model, "params": 260_521, "gflops": 21.187, "f1": 0.72034,
                "jaccard": 0.5639, "mcc": 0.69721, "auc": 0.96219, "train_wall_s": 3544.6,
                "cpu_s_per_image": cpu, "budget_complete": complete, "epochs_run": epochs_run,
                "epochs": 10}  # fmt: skip

    lines = comparison_markdown(
        [row("sa_unet_v2", True, 10, 0.3291), row("other", False, 6, None)]
    ).splitlines()
    assert len(lines) == 4 and lines[1].count("|") == 11
    assert lines[2] == (
        "| SA-UNetv2 (reference) | 260,521 | 21.19 | 72.03 | 56.39 | 69.72 | 96.22 | 3,545 "
        "| 0.329 | 10 |"
    )
    assert lines[3].startswith("| other |") and lines[3].endswith("|  | **6 of 10** |")
