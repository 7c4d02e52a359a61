"""Splits: the shipped definitions, cross-validation generators, source-level validation split."""

from __future__ import annotations

import pytest

from saunetv2_lib.data.integrity import checksum_table
from saunetv2_lib.data.splits import (
    k_fold,
    leave_one_out,
    split_names,
    split_source,
    train_val_split,
)


def _images_in_table(prefix: str, suffix: str) -> list[str]:
    return sorted(
        p.rsplit("/", 1)[-1].removesuffix(suffix)
        for p in checksum_table()
        if p.startswith(prefix) and p.endswith(suffix)
    )


@pytest.mark.parametrize(
    ("dataset", "n_train", "n_test"), [("DRIVE", 20, 20), ("STARE", 16, 4), ("CHASE_DB1", 20, 8)]
)
def test_split_sizes_disjoint_and_cover_the_images(dataset, n_train, n_test):
    train, test = split_names(dataset, "train"), split_names(dataset, "test")
    assert (len(train), len(test)) == (n_train, n_test)
    assert not set(train) & set(test)
    assert split_names(dataset, "all") == sorted(train + test)
    if dataset == "DRIVE":  # the split is the official folder
        assert train == _images_in_table("DRIVE/training/images/", ".tif")
        assert test == _images_in_table("DRIVE/test/images/", ".tif")
    elif dataset == "STARE":
        assert sorted(train + test) == _images_in_table("STARE/stare-images/", ".ppm")
    else:
        assert sorted(train + test) == _images_in_table("CHASE_DB1/", ".jpg")
    assert split_source(dataset)


def test_stare_and_chase_split_rules():
    everything = split_names("STARE", "all")
    assert split_names("STARE", "test") == ["im0255", "im0291", "im0319", "im0324"]
    assert split_names("STARE", "test") == everything[-4:]
    # The official notebook's "fold4 val set": fold 4 of 5 contiguous folds over sorted names.
    assert k_fold(everything, 5)[4][1] == split_names("STARE", "test")
    assert {"im0001", "im0002", "im0003", "im0004", "im0005"} <= set(split_names("STARE", "train"))
    chase = split_names("CHASE_DB1", "all")
    assert split_names("CHASE_DB1", "train") == chase[:20]
    patients = {name[6:8] for name in split_names("CHASE_DB1", "test")}
    assert patients == {"11", "12", "13", "14"}
    with pytest.raises(ValueError, match="split must be"):
        split_names("DRIVE", "val")


def test_leave_one_out():
    names = ["c", "a", "b"]
    folds = leave_one_out(names)
    assert folds == [(["b", "c"], ["a"]), (["a", "c"], ["b"]), (["a", "b"], ["c"])]


def test_k_fold_partitions():
    names = [f"n{i:02d}" for i in range(10)]
    for shuffle in (False, True):
        folds = k_fold(names, 3, shuffle=shuffle, seed=1)
        tests = [t for _, t in folds]
        assert sorted(sum(tests, [])) == names  # every name tested exactly once
        assert sorted(len(t) for t in tests) == [3, 3, 4]
        for train, test in folds:
            assert sorted(train + test) == names and not set(train) & set(test)
    assert k_fold(names, 3)[0][1] == ["n00", "n01", "n02", "n03"]  # contiguous when unshuffled
    assert k_fold(names, 3, shuffle=True, seed=1) == k_fold(names, 3, shuffle=True, seed=1)
    with pytest.raises(ValueError, match="k must be"):
        k_fold(names, 11)


def test_train_val_split():
    names = split_names("STARE", "train")
    train, val = train_val_split(names, val_fraction=0.1, seed=42)
    assert len(val) == 2 and len(train) == 14  # ceil(1.6) = 2
    assert sorted(train + val) == sorted(names) and not set(train) & set(val)
    assert train_val_split(names, val_fraction=0.1, seed=42) == (train, val)
    assert train_val_split(names, n_val=2, seed=42) == (train, val)
    assert train_val_split(names, n_val=2, seed=7) != (train, val)
    for bad in (
        {},
        {"val_fraction": 0.1, "n_val": 2},
        {"n_val": 0},
        {"n_val": 16},
        {"val_fraction": 1.0},
    ):
        with pytest.raises(ValueError):
            train_val_split(names, **bad)
    with pytest.raises(ValueError, match="distinct"):
        train_val_split(["a", "a", "b"], n_val=1)
