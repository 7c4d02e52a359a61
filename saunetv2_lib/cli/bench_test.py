"""``saunetv2 bench`` and ``saunetv2 export`` through the CLI entry point."""

from __future__ import annotations

import json

from saunetv2_lib.cli import main


def test_bench_json_output(capsys):
    code = main(
        "bench --models sa_unet_v2 --size 32 --runs 2 --warmup 1 --paths keras,keras_fast "
        "--memory inline --json --quiet".split()
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"results", "host", "settings"}
    assert [row["path"] for row in report["results"]] == ["keras", "keras_fast"]
    for row in report["results"]:
        assert {"model", "path", "median_s", "min_s", "max_s", "images_per_s", "ratio"} <= set(row)
        assert row["model"] == "sa_unet_v2" and row["ratio"] == 1.0
    assert report["host"]["cpu"] and report["host"]["versions"]["tensorflow"]


def test_bench_bad_model_is_one_line_error(capsys):
    code = main("bench --models nope --size 32 --quiet".split())
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("saunetv2 bench: error: Unknown model(s) nope") and "\n" not in err


def test_export_formats_from_a_registry_model(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(f"export --model sa_unet_v2 --size 32 --out {out} --formats tflite,onnx".split())
    assert code == 0
    assert (out / "model.tflite").is_file() and (out / "model.onnx").is_file()
    manifest = json.loads((out / "export.json").read_text())
    assert set(manifest["files"]) == {"tflite", "onnx"}
    assert "random (untrained) weights" in capsys.readouterr().err


def test_export_errors(tmp_path, capsys):
    assert main(f"export --out {tmp_path}".split()) == 2
    assert "--weights" in capsys.readouterr().err
    missing = tmp_path / "missing.keras"
    assert main(f"export --weights {missing} --out {tmp_path}".split()) == 2
    assert "does not exist" in capsys.readouterr().err
    code = main(f"export --model sa_unet_v2 --size 32 --out {tmp_path} --formats pt".split())
    assert code == 2
    assert "Unknown export format(s) pt" in capsys.readouterr().err
