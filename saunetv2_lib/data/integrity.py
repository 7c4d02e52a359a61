"""SHA-256 checks of the dataset files against the checksums shipped with the package.

``checksums.json`` (package data) maps every expected file, as a path relative to the data root
in the official layout (``DRIVE/training/images/21_training.tif``), to the SHA-256 of its
content. These are facts about the public files; the table was generated once from the data
folder's ``SHA256SUMS`` by :func:`write_checksum_table`.

STARE is officially distributed as ``*.ppm.gz``. The table holds the hashes of the decompressed
``.ppm`` files; when only ``name.ppm.gz`` is present, :func:`verify` hashes its *decompressed*
content, so a compressed and an uncompressed copy of the same file both pass.

Known benign mismatch: copies of DRIVE's ``test/images/01_test.tif`` circulate in two TIFF
containers with identical pixels (4-row strips, as in the table, or a single strip; see the data
MANIFEST). A mismatch on that one file alone is worth a look at the pixels before re-downloading.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from saunetv2_lib.data.datasets import DATASETS, dataset_info, is_synthetic, resolve

TABLE_NAME = "checksums.json"
_CHUNK = 1 << 20
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def parse_sha256sums(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <path>`` per line) into ``{path: hex}``.

    Raises:
        ValueError: a non-empty line that is not in that format (the message quotes it).
    """
    table = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _SUM_LINE.match(line.rstrip("\n"))
        if not match:
            raise ValueError(f"SHA256SUMS line {number} is not '<sha256>  <path>': {line!r}")
        table[match.group(2).removeprefix("./")] = match.group(1).lower()
    return table


def write_checksum_table(sha256sums: Path | str, out: Path | str) -> dict[str, str]:
    """Write the package's checksum table (JSON) from a ``SHA256SUMS`` file; returns the table."""
    table = dict(sorted(parse_sha256sums(Path(sha256sums).read_text()).items()))
    payload = {
        "algorithm": "sha256",
        "note": (
            "SHA-256 of every file of the public DRIVE, STARE and CHASE_DB1 distributions, by "
            "path relative to the data root. STARE entries are the decompressed .ppm files; "
            "verify() hashes the decompressed content of a .ppm.gz."
        ),
        "files": table,
    }
    Path(out).write_text(json.dumps(payload, indent=1) + "\n")
    return table


@cache
def checksum_table() -> dict[str, str]:
    """The shipped table ``{relative path: sha256 hex}``."""
    text = resources.files("saunetv2_lib.data").joinpath(TABLE_NAME).read_text()
    return dict(json.loads(text)["files"])


def sha256_file(path: Path | str) -> str:
    """SHA-256 hex digest of a file's content; of the decompressed content for ``*.gz``."""
    path = Path(path)
    digest = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError) as error:  # a truncated or corrupt .gz
        raise ValueError(f"Cannot read {path}: {error}") from error
    return digest.hexdigest()


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`. Paths are relative to the root, as in the checksum table."""

    root: str
    datasets: list[str]
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # wrong hash, or an unreadable .gz
    missing_datasets: list[str] = field(default_factory=list)  # whole dataset folder absent
    synthetic: bool = False

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.missing_datasets)

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "datasets": self.datasets,
            "ok": self.ok,
            "checked": self.checked,
            "missing": self.missing,
            "mismatched": self.mismatched,
            "missing_datasets": self.missing_datasets,
            "synthetic": self.synthetic,
        }

    def lines(self) -> list[str]:
        """Human-readable summary, one problem per line."""
        table = checksum_table()
        out = []
        if self.synthetic:
            out.append(f"note: {self.root} is a SYNTHETIC data root; its files cannot match.")
        for name in self.missing_datasets:
            folder = dataset_info(name).folder
            count = sum(path.startswith(folder + "/") for path in table)
            out.append(f"missing dataset folder: {folder}/ ({count} files expected)")
        out += [f"missing: {path}" for path in self.missing]
        out += [f"corrupt (SHA-256 mismatch): {path}" for path in self.mismatched]
        status = "OK" if self.ok else "FAILED"
        out.append(
            f"{status}: {self.checked} files checked under {self.root} "
            f"({', '.join(self.datasets)}); {len(self.missing)} missing, "
            f"{len(self.mismatched)} corrupt, {len(self.missing_datasets)} dataset folders missing."
        )
        return out


def verify(
    root: Path | str,
    datasets: list[str] | tuple[str, ...] | str | None = None,
    table: dict[str, str] | None = None,
) -> VerifyReport:
    """Check every expected file of ``datasets`` under ``root`` against its SHA-256.

    Args:
        root: the data root (the folder that holds ``DRIVE/``, ``STARE/``, ``CHASE_DB1/``).
        datasets: names to check; ``None`` checks every registered dataset whose folder exists
            under ``root`` (a named dataset whose folder is absent is reported as missing).
        table: ``{relative path: sha256}``; default the shipped :func:`checksum_table`.

    A file ``x`` that is absent but has a twin ``x.gz`` is checked by the SHA-256 of the
    decompressed ``x.gz`` content (the official STARE distribution is gzip-compressed).

    Raises:
        FileNotFoundError: ``root`` is not a folder, or ``datasets=None`` and no dataset folder
            exists under it.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Data root {root} is not a folder.")
    table = checksum_table() if table is None else table
    if datasets is None:
        names = [n for n, info in DATASETS.items() if (root / info.folder).is_dir()]
        if not names:
            raise FileNotFoundError(
                f"No dataset folder ({', '.join(i.folder for i in DATASETS.values())}) under {root}."
            )
    else:
        names = [
            dataset_info(n).name for n in ([datasets] if isinstance(datasets, str) else datasets)
        ]
    report = VerifyReport(root=str(root), datasets=names, synthetic=is_synthetic(root))
    for name in names:
        folder = dataset_info(name).folder
        if not (root / folder).is_dir():
            report.missing_datasets.append(name)
            continue
        for relative, expected in table.items():
            if not relative.startswith(folder + "/"):
                continue
            path = resolve(root, relative)
            if path is None:
                report.missing.append(relative)
                continue
            report.checked += 1
            try:
                actual = sha256_file(path)
            except ValueError:
                actual = ""
            if actual != expected:
                report.mismatched.append(relative)
    return report
