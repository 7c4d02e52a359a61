"""Checksums: the shipped table, verify() on fake and real trees, the verify CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil

import pytest

from saunetv2_lib.cli import main
from saunetv2_lib.data.datasets import DATASETS, _fields
from saunetv2_lib.data.integrity import (
    checksum_table,
    parse_sha256sums,
    sha256_file,
    verify,
    write_checksum_table,
)
from saunetv2_lib.data.splits import split_names


def test_parse_sha256sums():
    digest = "ab" * 32
    text = f"{digest}  DRIVE/a b.tif\n\n{digest.upper()} *./STARE/x.ppm\n"
    assert parse_sha256sums(text) == {"DRIVE/a b.tif": digest, "STARE/x.ppm": digest}
    with pytest.raises(ValueError, match="line 1"):
        parse_sha256sums("not a checksum line\n")


def test_write_checksum_table_round_trip(tmp_path):
    digest = "cd" * 32
    (tmp_path / "SUMS").write_text(f"{digest}  B/y\n{digest}  A/x\n")
    table = write_checksum_table(tmp_path / "SUMS", tmp_path / "t.json")
    assert list(table) == ["A/x", "B/y"]
    assert json.loads((tmp_path / "t.json").read_text())["files"] == table


def test_shipped_table_covers_exactly_the_expected_layout():
    """Every file the readers expect (templates x split names) is in the table, nothing else."""
    table = checksum_table()
    expected = set()
    for name, info in DATASETS.items():
        for split in ("train", "test"):
            templates = [info.image_template, info.label_templates["reference"]]
            if split in info.second_label_splits:
                templates.append(info.label_templates["second"])
            if info.fov_template:
                templates.append(info.fov_template)
            for sample in split_names(name, split):
                expected |= {f"{info.folder}/{t.format(**_fields(sample))}" for t in templates}
    assert set(table) == expected
    assert len(table) == 284  # MANIFEST.md: 140 DRIVE + 60 STARE + 84 CHASE_DB1
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in table.values())


def _fake_tree(root):
    """Three small files with their SHA-256 computed independently by hashlib."""
    contents = {
        "DRIVE/test/images/01_test.tif": b"drive image bytes",
        "STARE/stare-images/im0001.ppm": b"P6 stare bytes" * 50,
        "STARE/labels-ah/im0001.ah.ppm": b"P5 label",
    }
    for relative, data in contents.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in contents.items()}


def test_verify_fake_tree_ok_corrupt_missing_and_gz(tmp_path):
    table = _fake_tree(tmp_path)
    report = verify(tmp_path, table=table)
    assert report.ok and report.checked == 3 and report.datasets == ["DRIVE", "STARE"]

    # A .gz twin is checked by its decompressed content.
    ppm = tmp_path / "STARE/stare-images/im0001.ppm"
    (ppm.parent / "im0001.ppm.gz").write_bytes(gzip.compress(ppm.read_bytes()))
    ppm.unlink()
    assert sha256_file(ppm.parent / "im0001.ppm.gz") == table["STARE/stare-images/im0001.ppm"]
    assert verify(tmp_path, table=table).ok

    # One changed byte -> named as corrupt; a deleted file -> named as missing.
    image = tmp_path / "DRIVE/test/images/01_test.tif"
    data = bytearray(image.read_bytes())
    data[3] ^= 0x01
    image.write_bytes(bytes(data))
    (tmp_path / "STARE/labels-ah/im0001.ah.ppm").unlink()
    report = verify(tmp_path, table=table)
    assert not report.ok
    assert report.mismatched == ["DRIVE/test/images/01_test.tif"]
    assert report.missing == ["STARE/labels-ah/im0001.ah.ppm"]
    text = "\n".join(report.lines())
    assert "corrupt (SHA-256 mismatch): DRIVE/test/images/01_test.tif" in text
    assert "missing: STARE/labels-ah/im0001.ah.ppm" in text

    # A truncated .gz is corrupt, not a crash.
    gz = ppm.parent / "im0001.ppm.gz"
    gz.write_bytes(gz.read_bytes()[:20])
    assert "STARE/stare-images/im0001.ppm" in verify(tmp_path, table=table).mismatched


def test_verify_missing_dataset_folder_and_bad_root(tmp_path):
    table = _fake_tree(tmp_path)
    report = verify(tmp_path, datasets=["CHASE_DB1", "drive"], table=table)
    assert report.missing_datasets == ["CHASE_DB1"] and not report.ok
    assert any(
        "missing dataset folder: CHASE_DB1/ (84 files expected)" in x for x in report.lines()
    )
    with pytest.raises(FileNotFoundError, match="not a folder"):
        verify(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="No dataset folder"):
        verify(tmp_path / "DRIVE")


def test_verify_cli_exit_codes(tmp_path, capsys):
    (tmp_path / "DRIVE").mkdir()
    assert main(["data", "verify", "--root", str(tmp_path), "--dataset", "DRIVE", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert len(report["missing"]) == 140 and "DRIVE/test/images/01_test.tif" in report["missing"]
    assert main(["data", "verify", "--root", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.real_data
def test_verify_real_data(real_data_root, capsys):
    report = verify(real_data_root)
    assert report.ok, report.lines()
    assert report.checked == 284 and not report.synthetic
    assert main(["data", "verify", "--root", str(real_data_root), "--dataset", "STARE"]) == 0
    assert "OK: 60 files checked" in capsys.readouterr().out


@pytest.mark.real_data
def test_verify_copied_real_files_with_one_changed_byte(real_data_root, tmp_path):
    relatives = [
        "DRIVE/test/1st_manual/01_manual1.gif",
        "DRIVE/test/mask/01_test_mask.gif",
        "CHASE_DB1/Image_01L_1stHO.png",
    ]
    for relative in relatives:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real_data_root / relative, tmp_path / relative)
    table = {rel: checksum_table()[rel] for rel in relatives}
    assert verify(tmp_path, table=table).ok
    target = tmp_path / relatives[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    (tmp_path / relatives[2]).unlink()
    report = verify(tmp_path, table=table)
    assert report.mismatched == [relatives[0]] and report.missing == [relatives[2]]
