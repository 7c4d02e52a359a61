import json

import pytest

from saunetv2_lib.cli import main


@pytest.fixture
def synthetic_root(tmp_path, monkeypatch):
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    monkeypatch.delenv("SAUNETV2_DATA", raising=False)
    return write_synthetic_drive(tmp_path / "data", n_train=4, n_test=2, size=(64, 64), seed=1)


def test_compare_trains_times_and_bundles(tmp_path, synthetic_root, capsys):
    out, bundle = tmp_path / "cmp", tmp_path / "bundle.json"
    args = ["compare", "--out", str(out), "--profile", "drive/siblings_quick",
            "--models", "simple_unet_small", "--data-root", str(synthetic_root),
            "--max-test-images", "1"]  # fmt: skip
    assert main(args) == 0
    assert "simple_unet_small  F1" in capsys.readouterr().out
    assert main([*args, "--as-is"]) == 0  # scores the finished run again, no training
    assert "(unfinished)" not in capsys.readouterr().out
    assert main(["compare", "--out", str(out), "--skip-training", "--time", "--repeats", "1",
                 "--bundle", "--bundle-path", str(bundle)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "s per image" in printed and str(bundle) in printed
    assert [r["model"] for r in json.loads(bundle.read_text())["rows"]] == ["simple_unet_small"]


def test_compare_unknown_model_is_a_clear_error(tmp_path, capsys):
    assert main(["compare", "--out", str(tmp_path), "--models", "sa_unet_v3"]) == 2
    assert "Unknown model" in capsys.readouterr().err
