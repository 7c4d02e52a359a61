"""Readers for DRIVE, STARE and CHASE_DB1 in their official layouts, and the dataset registry.

In-memory form (docs/CONTRACTS.md): images RGB ``float32`` in [0, 1], shape ``(H, W, 3)``;
labels and FOV masks ``uint8`` in {0, 1}, shape ``(H, W)``.

The data root (``$SAUNETV2_DATA``) holds one folder per dataset, exactly as distributed::

    DRIVE/training/images/21_training.tif         DRIVE/test/images/01_test.tif
    DRIVE/training/1st_manual/21_manual1.gif      DRIVE/test/1st_manual/01_manual1.gif
    DRIVE/training/mask/21_training_mask.gif      DRIVE/test/2nd_manual/01_manual2.gif
                                                  DRIVE/test/mask/01_test_mask.gif
    STARE/stare-images/im0001.ppm[.gz]            STARE/labels-ah/im0001.ah.ppm[.gz]  (Hoover)
                                                  STARE/labels-vk/im0001.vk.ppm[.gz]  (Kouznetsova)
    CHASE_DB1/Image_01L.jpg  CHASE_DB1/Image_01L_1stHO.png  CHASE_DB1/Image_01L_2ndHO.png

Every file may also be gzip-compressed with a ``.gz`` suffix (the official STARE distribution
ships ``*.ppm.gz``); the reader decompresses it in memory.

Label conventions: ``labels="reference"`` is DRIVE's 1st manual, STARE's ``ah`` (Hoover) set and
CHASE_DB1's 1stHO; ``labels="second"`` is the second observer (DRIVE 2nd manual, test split only;
STARE ``vk``; CHASE_DB1 2ndHO). Only DRIVE ships FOV masks; STARE and CHASE_DB1 masks are derived
from the image by :func:`saunetv2_lib.data.fov.derive_fov`.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saunetv2_lib.data.vocabulary import FOV_SOURCES, LABEL_SETS, SPLITS

ENV_DATA = "SAUNETV2_DATA"
ENV_CACHE = "SAUNETV2_CACHE"
SYNTHETIC_MARKER = "SYNTHETIC"
"""File at the root of a synthetic data root (written by ``synthetic.write_synthetic_drive``)."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the readers, the pipeline and the CLI need to know about one dataset.

    Templates are paths relative to ``root / folder`` with the fields ``{name}`` (the sample name,
    e.g. ``21_training``, ``im0001``, ``Image_01L``), ``{id}`` (the part before the first ``_``)
    and ``{kind}`` (the part after the last ``_``; DRIVE's ``training``/``test`` folder).
    """

    name: str
    folder: str
    model_side: int  # the paper's square input side: smallest multiple of 16 >= max(H, W)
    image_size: tuple[int, int]  # (H, W) of every image in the official distribution
    image_template: str
    label_templates: dict[str, str]  # "reference" / "second" -> template
    fov_template: str | None  # None: no official FOV masks, derive them
    second_label_splits: tuple[str, ...]  # splits that have second-observer labels
    discover_globs: dict[str, str]  # split -> glob of image files (synthetic roots only)
    obtain: str  # where to get the dataset
    citation: str

    @property
    def has_official_fov(self) -> bool:
        return self.fov_template is not None

    def layout(self) -> str:
        """The expected files as indented lines, first and last sample of each split."""
        from saunetv2_lib.data.splits import split_names

        lines = []
        # Datasets whose folders encode the split (DRIVE) list each split; flat ones list all.
        for split in ("train", "test") if "{kind}" in self.image_template else ("all",):
            names = split_names(self.name, split)
            templates = [self.image_template, self.label_templates["reference"]]
            if split in self.second_label_splits:
                templates.append(self.label_templates["second"])
            if self.fov_template:
                templates.append(self.fov_template)
            for template in templates:
                first, last = (template.format(**_fields(n)) for n in (names[0], names[-1]))
                line = f"  {self.folder}/{first} .. {last}  ({len(names)} files)"
                if line not in lines:
                    lines.append(line)
        return "\n".join(lines)


DATASETS: dict[str, DatasetInfo] = {
    "DRIVE": DatasetInfo(
        name="DRIVE",
        folder="DRIVE",
        model_side=592,  # spec 4.1: 584 x 565 zero-padded to 592 (16 * 37)
        image_size=(584, 565),
        image_template="{kind}/images/{name}.tif",
        label_templates={
            "reference": "{kind}/1st_manual/{id}_manual1.gif",
            "second": "{kind}/2nd_manual/{id}_manual2.gif",
        },
        fov_template="{kind}/mask/{name}_mask.gif",
        second_label_splits=("test",),
        discover_globs={
            "train": "training/images/*_training.tif",
            "test": "test/images/*_test.tif",
        },
        obtain=(
            "the DRIVE challenge site, https://drive.grand-challenge.org/ (free registration); "
            "unpack the training/ and test/ folders into <root>/DRIVE/"
        ),
        citation="Staal et al., IEEE TMI 23(4):501-509, 2004",
    ),
    "STARE": DatasetInfo(
        name="STARE",
        folder="STARE",
        model_side=704,  # spec 4.2: 700 -> 704 (16 * 44), so both orientations fit
        image_size=(605, 700),
        image_template="stare-images/{name}.ppm",
        label_templates={
            "reference": "labels-ah/{name}.ah.ppm",
            "second": "labels-vk/{name}.vk.ppm",
        },
        fov_template=None,
        second_label_splits=("train", "test", "all"),
        discover_globs={},
        obtain=(
            "Adam Hoover's STARE project page, https://cecas.clemson.edu/~ahoover/stare/ "
            "(the 20 vessel-labelled images and the labels-ah / labels-vk archives; the .ppm.gz "
            "files may stay compressed)"
        ),
        citation="Hoover, Kouznetsova, Goldbaum, IEEE TMI 19(3):203-210, 2000",
    ),
    "CHASE_DB1": DatasetInfo(
        name="CHASE_DB1",
        folder="CHASE_DB1",
        # SA-UNet v1's CHASE scripts pad to 1008 (clguo/SA-UNet Train_chase.py, desired_size).
        model_side=1008,
        image_size=(960, 999),
        image_template="{name}.jpg",
        label_templates={"reference": "{name}_1stHO.png", "second": "{name}_2ndHO.png"},
        fov_template=None,
        second_label_splits=("train", "test", "all"),
        discover_globs={},
        obtain=(
            "Kingston University's research data repository (CHASE_DB1, "
            "https://researchdata.kingston.ac.uk/96/); unpack the flat archive into <root>/CHASE_DB1/"
        ),
        citation="Fraz et al., IEEE TBME 59(9):2538-2548, 2012",
    ),
}

_ALIASES = {"CHASE": "CHASE_DB1", "CHASEDB1": "CHASE_DB1", "CHASE-DB1": "CHASE_DB1"}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (case-insensitive; ``chase`` and ``chasedb1`` accepted)."""
    key = str(name).upper()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return DATASETS[key]


@dataclass
class Sample:
    """One image with its label and FOV mask, in the in-memory form of docs/CONTRACTS.md."""

    name: str
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    label: np.ndarray  # (H, W) uint8 in {0, 1}
    fov: np.ndarray  # (H, W) uint8 in {0, 1}


# ---------------------------------------------------------------------------------------------
# Data root


def is_synthetic(root: Path | str) -> bool:
    """True when ``root`` is a synthetic data root (it holds the ``SYNTHETIC`` marker file)."""
    return (Path(root) / SYNTHETIC_MARKER).is_file()


def _cache_dir() -> Path:
    base = os.environ.get(ENV_CACHE)
    return Path(base) if base else Path.home() / ".cache" / "saunetv2"


def data_root() -> Path:
    """The data root: ``$SAUNETV2_DATA`` if set, else a synthetic DRIVE in the cache.

    The synthetic root is written once (20 train + 20 test images, seed 0) into
    ``$SAUNETV2_CACHE/synthetic`` (default ``~/.cache/saunetv2/synthetic``) and carries the
    ``SYNTHETIC`` marker; a warning says so, because no number computed on it is comparable to
    the paper.

    Raises:
        FileNotFoundError: ``$SAUNETV2_DATA`` is set but is not a folder.
    """
    value = os.environ.get(ENV_DATA)
    if value:
        root = Path(value).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(
                f"{ENV_DATA}={value} is not a folder. Point it at the folder that holds "
                "DRIVE/, STARE/ and/or CHASE_DB1/ (see `saunetv2 data verify --help`)."
            )
        return root
    root = _cache_dir() / "synthetic"
    if not (is_synthetic(root) and (root / "DRIVE").is_dir()):
        # Imported lazily: the generator is only needed when the real data is absent.
        from saunetv2_lib.data.synthetic import write_synthetic_drive

        root.parent.mkdir(parents=True, exist_ok=True)
        # Write into a temporary folder and rename, so a concurrent or interrupted writer never
        # leaves a half-written root that looks complete.
        tmp = Path(tempfile.mkdtemp(prefix="synthetic-", dir=root.parent))
        write_synthetic_drive(tmp)
        try:
            tmp.rename(root)
        except OSError:  # another process won the race; its root is as good as ours
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    warnings.warn(
        f"{ENV_DATA} is not set: using the SYNTHETIC DRIVE stand-in at {root}; numbers computed "
        "on it are not comparable to the paper.",
        UserWarning,
        stacklevel=2,
    )
    return root


# ---------------------------------------------------------------------------------------------
# Single files


def _with_data_root_hint(reader: Callable[[Path | str], np.ndarray], path: Path | str):
    """``reader(path)``, a decoding error naming the file and the data-root check to run."""
    try:
        return reader(path)
    except ValueError as error:
        raise ValueError(
            f"Cannot decode {error} The file is corrupt or truncated; check the data root with "
            "`saunetv2 data verify`."
        ) from error


def read_image(path: Path | str) -> np.ndarray:
    """Read a colour fundus image (TIFF, PPM, JPEG, PNG, ..., optionally ``.gz``).

    The decoding is :func:`saunetv2_lib.data.images.read_image`'s; this adds the data-root hint.

    Returns:
        ``(H, W, 3)`` float32 RGB in [0, 1] (8-bit values divided by 255).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded (corrupt or truncated); the message names it.
    """
    from saunetv2_lib.data.images import read_image as read_any_image

    return _with_data_root_hint(read_any_image, path)


def read_label(path: Path | str) -> np.ndarray:
    """Read a binary vessel label or FOV mask (GIF, PPM/PGM, PNG, ..., optionally ``.gz``).

    The file is converted to 8-bit grey through its palette or bit depth
    (:func:`saunetv2_lib.data.images.read_grey`) and thresholded at grey > 127. This handles
    grey {0, 255} files, 1-bit PNGs (CHASE_DB1) and palette GIFs whose indices {0, 1} map to
    dark/bright colours (DRIVE's 2nd manual).

    Returns:
        ``(H, W)`` uint8 in {0, 1}.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_image`.
    """
    from saunetv2_lib.data.images import read_grey

    return (_with_data_root_hint(read_grey, path) > 127).astype(np.uint8)


read_mask = read_label  # FOV masks use the same binary file formats


# ---------------------------------------------------------------------------------------------
# Splits


def _fields(name: str) -> dict[str, str]:
    return {"name": name, "id": name.split("_")[0], "kind": name.rsplit("_", 1)[-1]}


def resolve(root: Path | str, relative: str) -> Path | None:
    """``root / relative`` if it exists, else its ``.gz`` twin if that exists, else ``None``."""
    path = Path(root) / relative
    if path.is_file():
        return path
    compressed = path.with_name(path.name + ".gz")
    return compressed if compressed.is_file() else None


def _missing_dataset_message(info: DatasetInfo, root: Path) -> str:
    return (
        f"{info.name} was not found under the data root {root} (expected the folder "
        f"{root / info.folder}). Expected layout:\n{info.layout()}\n"
        f"Get {info.name} from {info.obtain}, then set {ENV_DATA} to the folder that contains "
        f"{info.folder}/."
    )


def dataset_dir(dataset: str, root: Path | str | None = None) -> Path:
    """The folder of ``dataset`` under ``root`` (default :func:`data_root`).

    Raises:
        FileNotFoundError: one message with the expected layout and where to get the dataset.
    """
    info = dataset_info(dataset)
    root = data_root() if root is None else Path(root)
    folder = root / info.folder
    if not folder.is_dir():
        raise FileNotFoundError(_missing_dataset_message(info, root))
    return folder


def sample_paths(
    dataset: str, name: str, root: Path | str, labels: str = "reference"
) -> dict[str, Path | None]:
    """Paths of one sample's ``image``, ``label`` and official ``fov`` (None when absent)."""
    info = dataset_info(dataset)
    if labels not in LABEL_SETS:
        raise ValueError(f"labels must be one of {LABEL_SETS}, got {labels!r}.")
    folder = Path(root) / info.folder
    fields = _fields(name)
    paths = {
        "image": resolve(folder, info.image_template.format(**fields)),
        "label": resolve(folder, info.label_templates[labels].format(**fields)),
        "fov": resolve(folder, info.fov_template.format(**fields)) if info.fov_template else None,
    }
    return paths


def _expected(info: DatasetInfo, name: str, key: str, labels: str) -> str:
    template = {
        "image": info.image_template,
        "label": info.label_templates[labels],
        "fov": info.fov_template or "",
    }[key]
    return f"{info.folder}/{template.format(**_fields(name))}"


def load_samples(
    dataset: str,
    names: list[str] | tuple[str, ...],
    root: Path | str | None = None,
    labels: str = "reference",
    fov: str = "official",
) -> list[Sample]:
    """Load the named samples of ``dataset`` (any subset, e.g. a fold or a validation split).

    Args:
        dataset: registry name (``DRIVE``, ``STARE``, ``CHASE_DB1``).
        names: sample names as in :mod:`saunetv2_lib.data.splits` (``21_training``, ``im0001``,
            ``Image_01L``).
        root: data root; default :func:`data_root`.
        labels: ``"reference"`` (1st observer) or ``"second"`` (2nd observer).
        fov: ``"official"`` uses the dataset's own masks where it ships them (DRIVE) and the
            derived mask otherwise (STARE, CHASE_DB1 have none, see
            ``DatasetInfo.has_official_fov``); ``"derived"`` derives every mask from the image
            with :func:`saunetv2_lib.data.fov.derive_fov`, DRIVE included.

    Raises:
        FileNotFoundError: the dataset folder or some of its files are missing (one message).
        ValueError: bad arguments, or a file that cannot be decoded or has the wrong size.
    """
    from saunetv2_lib.data.fov import derive_fov

    info = dataset_info(dataset)
    if fov not in FOV_SOURCES:
        raise ValueError(f"fov must be one of {FOV_SOURCES}, got {fov!r}.")
    root = data_root() if root is None else Path(root)
    dataset_dir(info.name, root)  # one clear message when the whole dataset is absent
    resolved = [sample_paths(info.name, name, root, labels) for name in names]
    missing = [
        _expected(info, name, key, labels)
        for name, paths in zip(names, resolved, strict=True)
        for key in ("image", "label", "fov")
        if paths[key] is None and (key != "fov" or info.has_official_fov)
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise FileNotFoundError(
            f"{info.name} under {root} is incomplete: missing {shown}. Expected layout:\n"
            f"{info.layout()}\nCheck the data root with `saunetv2 data verify --dataset "
            f"{info.name}`; get the dataset from {info.obtain}."
        )
    samples = []
    for name, paths in zip(names, resolved, strict=True):
        image = read_image(paths["image"])
        label = read_label(paths["label"])
        if fov == "official" and paths["fov"] is not None:
            mask = read_mask(paths["fov"])
        else:
            mask = derive_fov(image)
        for key, array in (("label", label), ("fov", mask)):
            if array.shape != image.shape[:2]:
                raise ValueError(
                    f"{paths[key] or key} has shape {array.shape}, but its image "
                    f"{paths['image']} has shape {image.shape[:2]}."
                )
        samples.append(Sample(name=name, image=image, label=label, fov=mask))
    return samples


def split_sample_names(dataset: str, split: str, root: Path | str | None = None) -> list[str]:
    """Sample names of a split: the data in :mod:`splits`, or the files of a synthetic root.

    On a synthetic root (``SYNTHETIC`` marker) the names are the image files actually present
    in the split's folder, because the generator may write any number of images.
    """
    from saunetv2_lib.data.splits import split_names

    info = dataset_info(dataset)
    if root is not None and is_synthetic(root) and info.discover_globs:
        folder = Path(root) / info.folder
        parts = ("train", "test") if split == "all" else (split,)
        names = []
        for part in parts:
            if part not in info.discover_globs:
                raise ValueError(f"Unknown split {split!r} for {info.name}; use one of {SPLITS}.")
            names += sorted(p.name.split(".")[0] for p in folder.glob(info.discover_globs[part]))
        return names
    return split_names(info.name, split)


def load_split(
    dataset: str,
    split: str,
    root: Path | str | None = None,
    labels: str = "reference",
    fov: str = "official",
) -> list[Sample]:
    """Load a split (``"train"``, ``"test"`` or ``"all"``) of ``dataset``; see :func:`load_samples`.

    The splits are data (``saunetv2_lib/data/splits.json``): DRIVE official 20/20, STARE 16/4
    (the paper's count), CHASE_DB1 20/8. DRIVE's second observer exists for the test split only.
    """
    info = dataset_info(dataset)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if labels == "second" and split not in info.second_label_splits:
        raise ValueError(
            f"{info.name} has second-observer labels only for the "
            f"{' / '.join(info.second_label_splits)} split, not {split!r}."
        )
    root = data_root() if root is None else Path(root)
    return load_samples(info.name, split_sample_names(info.name, split, root), root, labels, fov)
