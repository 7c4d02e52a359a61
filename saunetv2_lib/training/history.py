"""The one reader (and the resume-time truncation) of a run's ``history.csv``."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of a run's ``history.csv`` (Keras ``CSVLogger``): ``epoch`` a 0-based int, the rest floats.

    ``[]`` when the file does not exist (a run that has not finished an epoch).
    """
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", None)}
        for row in rows
    ]


def truncate_history(path: Path, completed_epochs: int) -> None:
    """Drop rows of epochs that finished after the last saved state (killed in between)."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row and int(row[0]) < completed_epochs]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(kept)
    os.replace(tmp, path)
