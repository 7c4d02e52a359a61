"""Training configurations: the profiles as the paper's schedules, JSON round trips, validation."""

from __future__ import annotations

import json

import pytest

from saunetv2_lib.training import TrainConfig, list_profiles, load_profile


def test_drive_full_profile_is_the_papers_schedule():
    config = load_profile("drive/full")
    # Spec 4.1, value by value.
    assert (config.model, config.dataset, config.side, config.anchor) == (
        "sa_unet_v2",
        "drive",
        592,
        "top_left",
    )
    assert (config.lr, config.adam_epsilon, config.batch_size, config.epochs) == (
        1e-3,
        1e-7,
        8,
        150,
    )
    assert (config.bce_weight, config.mcc_weight) == (0.5, 0.5)
    assert (
        config.plateau_monitor,
        config.plateau_factor,
        config.plateau_patience,
        config.plateau_min_lr,
    ) == ("val_loss", 0.5, 10, 1e-6)
    assert (config.early_stop_monitor, config.early_stop_patience, config.restore_best_weights) == (
        "val_loss",
        20,
        True,
    )
    assert (config.checkpoint_monitor, config.checkpoint_mode) == ("val_accuracy", "max")
    assert (config.val_count, config.augment, config.epoch_repeats, config.patch_size) == (
        2,
        True,
        1,
        None,
    )


def test_stare_and_chase_profiles_override_their_fields():
    stare = load_profile("stare/full")
    assert (stare.dataset, stare.side, stare.batch_size) == ("stare", 704, 2)
    assert (stare.plateau_patience, stare.plateau_min_lr, stare.early_stop_patience) == (
        20,
        1e-8,
        30,
    )
    assert stare.lr == load_profile("drive/full").lr  # inherited through "extends"
    chase = load_profile("chase/full")
    assert (chase.dataset, chase.side, chase.batch_size, chase.anchor) == (
        "chase",
        1008,
        2,
        "center",
    )


def test_every_profile_loads_and_quick_profiles_use_patches():
    names = list_profiles()
    assert {f"{d}/{p}" for d in ("drive", "stare", "chase") for p in ("quick", "full")} <= set(
        names
    )
    for name in names:
        config = load_profile(name)
        assert config.profile == name and config.notes
        if name.endswith("/quick"):
            assert config.patch_size is not None and config.epochs <= 20


def test_config_round_trips_through_json_and_rejects_bad_values():
    config = load_profile("drive/quick", epochs=3, seed=1)
    assert (config.epochs, config.seed) == (3, 1)
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="multiple of 8"):
        TrainConfig(side=100)
    with pytest.raises(ValueError, match="checkpoint_monitor"):
        TrainConfig(checkpoint_monitor="val_f1")
    with pytest.raises(ValueError, match="available: drive/full"):
        load_profile("drive/fast")
