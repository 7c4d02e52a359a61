"""The run history reader and its resume-time truncation."""

from __future__ import annotations

import csv

from saunetv2_lib.training.history import truncate_history


def test_truncate_history_drops_epochs_after_the_saved_state(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n")
    truncate_history(path, 2)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
