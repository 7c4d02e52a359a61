"""Tests of saunetv2_lib.experiments.campaign: declarations, selection, pause/pack/restore, kill and resume."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from saunetv2_lib.experiments import campaign as campaigns
from saunetv2_lib.experiments.campaign import Campaign, RunSpec
from saunetv2_lib.metrics import SATURATION_FIELDS


def _tiny_spec(root: Path, name: str = "tiny", epochs: int = 3, **overrides) -> RunSpec:
    """SA-UNetv2 on 64-px synthetic images: 4 training sources x 2 = 4 steps of 2 per epoch."""
    values = dict(
        data_root=str(root),
        side=64,
        patch_size=None,
        batch_size=2,
        epochs=epochs,
        max_train_images=6,
        epoch_repeats=2,
        plateau_patience=1,
        early_stop_patience=100,
        seed=5,
    )
    values.update(overrides)
    return RunSpec(name=name, profile="drive/quick", overrides=values, milestone_steps=(4, 8))


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    from saunetv2_lib.data.synthetic import write_synthetic_drive

    return write_synthetic_drive(
        tmp_path_factory.mktemp("data"), n_train=6, n_test=2, size=(64, 64), seed=3
    )


def test_paper_campaign_declares_drive_then_stare_at_the_papers_scale():
    paper = campaigns.load_campaign("paper")
    assert [spec.name for spec in paper.runs] == ["drive_paper", "stare_paper"]
    drive, stare = paper.runs
    # DRIVE: 18 training sources x 13 = 234 images = 30 steps of 8; 150 epochs = 4,500 steps.
    assert (drive.images_per_epoch(), drive.steps_per_epoch()) == (234, 30)
    # STARE: 14 training sources x 13 = 182 images = 91 steps of 2.
    assert (stare.images_per_epoch(), stare.steps_per_epoch()) == (182, 91)
    assert drive.config().epochs == stare.config().epochs == 150
    assert stare.config().batch_size == 2 and stare.config().side == 704
    assert {450, 1000, 2000, 4000} <= set(drive.milestone_steps)
    assert (drive.ship_as, stare.ship_as) == ("drive", "stare")


def test_ablation_campaign_expands_three_seeds_per_configuration_on_one_budget():
    ablation = campaigns.load_campaign("ablation")
    configurations = list(dict.fromkeys(spec.configuration for spec in ablation.runs))
    assert configurations[:5] == [
        "t3_sa_unet_bn_relu", "t3_gn_silu", "t3_compressed", "t3_plain_sa", "t3_csa_bce"
    ]  # fmt: skip
    assert len(ablation.runs) == 3 * len(configurations)
    first = ablation.run("t3_sa_unet_bn_relu_s2")
    assert first.configuration == "t3_sa_unet_bn_relu" and first.config().seed == 2
    assert (first.config().bce_weight, first.config().mcc_weight) == (1.0, 0.0)
    budgets = {(s.config().epochs * s.steps_per_epoch(), s.config().side) for s in ablation.runs}
    assert budgets == {(300, 592)}  # one budget: 300 optimizer steps on whole images
    assert ablation.run("t3_compressed_s1").config().model_kwargs == {"skip": "none"}


def test_every_declared_run_can_batch_its_epoch():
    """Each run's epoch (e.g. 234 DRIVE images at batch 8) splits into its micro-batches: the
    dataset's checks pass at the run's real sizes, so no run fails only once it starts."""
    import numpy as np

    from saunetv2_lib.data.pipeline import SegmentationDataset

    for name in campaigns.campaign_names():
        for spec in campaigns.load_campaign(name).runs:
            config, items = spec.config(), spec.images_per_epoch()
            tiny = np.zeros((items, 4, 4, 3), np.float32)
            batches = SegmentationDataset(
                tiny, np.zeros((items, 4, 4), np.uint8), batch_size=config.batch_size, side=4,
                micro_batches=config.micro_batches,
            )  # fmt: skip
            assert batches.batches_per_epoch == spec.steps_per_epoch(), spec.name


def test_selection_by_name_and_shards_cover_every_run_once(tmp_path):
    specs = tuple(_tiny_spec(tmp_path, name=f"r{i}") for i in range(5))
    campaign = Campaign("test", specs)
    assert [s.name for s in campaign.select(["r3", "r1"])] == ["r3", "r1"]
    shards = [[s.name for s in campaign.select(shard=f"{k}/2")] for k in (1, 2)]
    assert shards == [["r0", "r2", "r4"], ["r1", "r3"]]
    with pytest.raises(ValueError, match="no run 'nope'"):
        campaign.select(["nope"])
    for bad in ("3/2", "0/2", "two"):
        with pytest.raises(ValueError, match="K/N"):
            campaign.select(shard=bad)
    with pytest.raises(ValueError, match="Unknown campaign"):
        campaigns.load_campaign("no-such-campaign")


def _check_slim_pack(spec: RunSpec, run_dir: Path, packed: Path, tmp_path: Path) -> None:
    """After one epoch, the best checkpoint and EarlyStopping's best are the resume model's
    weights: packed once, compactly, split into parts, and rebuilt exactly by a restore."""
    import numpy as np

    from saunetv2_lib.experiments.packing import keras_file_arrays

    folder = packed / "test" / "tiny"
    state = campaigns.run_state(run_dir)
    model_file, es_file = (
        f"resume/{state['model_file']}",
        f"resume/{state['early_stopping']['weights_file']}",
    )
    manifest = json.loads((folder / campaigns.PACK_MANIFEST).read_text())
    assert manifest["weights_of"] == {"best.keras": model_file, es_file: model_file}
    assert list(manifest["split"]) == [model_file]
    record = manifest["split"][model_file]
    compact = manifest["compact"][model_file]
    assert list(manifest["compact"]) == [model_file]
    assert compact["bytes"] == (run_dir / model_file).stat().st_size
    assert record["bytes"] == compact["compact_bytes"] <= compact["bytes"]
    assert record["bytes"] > campaigns.PART_BYTES
    assert len(record["parts"]) == -(-record["bytes"] // campaigns.PART_BYTES)
    assert not (folder / "best.keras").exists() and not (folder / es_file).exists()
    assert max(p.stat().st_size for p in folder.rglob("*")) <= campaigns.PART_BYTES

    restored = tmp_path / "restored"
    assert campaigns.restore_packed(spec, "test", restored, packed)
    again = restored / "tiny"
    want = keras_file_arrays(run_dir / model_file)  # weights and optimizer state, bit for bit
    got = keras_file_arrays(again / model_file)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    restored_files = {p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file()}
    assert restored_files == {
        *campaigns.PACKED_FILES,
        "resume/state.json",
        model_file,
        es_file,
    }
    config = campaigns._saved_config(spec, run_dir)
    best = campaigns._float32_model(config, run_dir / "best.keras").get_weights()
    for got, want in zip(
        campaigns._float32_model(config, again / "best.keras").get_weights(), best, strict=True
    ):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(
        campaigns._npz_arrays(again / es_file),
        campaigns._npz_arrays(run_dir / es_file),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)

    # A corrupt part is named, and no half-restored run is left to resume from.
    broken = tmp_path / "broken"
    shutil.copytree(packed, broken)
    part = broken / "test" / "tiny" / "resume" / record["parts"][-1]
    part.write_bytes(part.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match=r"parts of resume/model_e0001.keras .*SHA-256"):
        campaigns.restore_packed(spec, "test", tmp_path / "restored_broken", broken)
    assert not (tmp_path / "restored_broken" / "tiny").exists()


def test_run_pauses_at_the_deadline_packs_restores_on_a_fresh_machine_and_finishes(
    tmp_path, synthetic_root, monkeypatch
):
    # Parts small enough that the tiny model's resume file is split, as a U-Net's is at 45 MB.
    monkeypatch.setattr(campaigns, "PART_BYTES", 100_000)
    spec = _tiny_spec(synthetic_root)
    campaign = Campaign("test", (spec,))
    runs, packed = tmp_path / "runs", tmp_path / "packed"
    bundle = tmp_path / "bundle.json"
    log = open(os.devnull, "w")  # noqa: SIM115

    # A deadline already past: the first epoch runs, then the run pauses (not finished).
    rows = campaigns.run_campaign(campaign, 1e-6, runs_root=runs, packed_root=packed, stream=log)
    state = campaigns.run_state(runs / "tiny")
    assert (state["completed_epochs"], state["optimizer_iterations"]) == (1, 4)
    assert state["paused"] and not state["finished"]
    assert rows[0]["status"] == "in progress" and rows[0]["steps_total"] == 12
    milestones = json.loads((runs / "tiny" / "milestones.json").read_text())
    assert [(m["milestone"], m["kind"]) for m in milestones] == [(4, "best"), (4, "current")]
    assert all(0 <= m["f1"] <= 1 and len(m["per_image_f1"]) == 2 for m in milestones)
    assert "milestone 4 steps" in (runs / "campaign.log").read_text()

    with pytest.raises(ValueError, match="only a finished run is shipped"):
        campaigns.ship_campaign_run(spec, runs, tmp_path / "weights")
    payload = campaigns.pack_campaign(campaign, runs, packed, bundle=bundle)
    entry = payload["runs"]["tiny"]
    assert "resume/state.json" in entry["packed"] and "best.keras" in entry["packed"]
    assert len(entry["segments"]) == 1 and entry["segments"][0]["epochs"] == [0, 1]
    assert (
        campaigns.campaign_status(campaign, tmp_path / "elsewhere", packed)[0]["epochs_done"] == 1
    )
    _check_slim_pack(spec, runs / "tiny", packed, tmp_path)

    # A fresh machine: no run folder, only the packed copy.
    shutil.rmtree(runs)
    rows = campaigns.run_campaign(campaign, 1.0, runs_root=runs, packed_root=packed, stream=log)
    assert rows[0]["status"] == "finished" and rows[0]["steps_done"] == 12
    history = (runs / "tiny" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]
    segments = json.loads((runs / "tiny" / "segments.json").read_text())
    assert [s["epochs"] for s in segments] == [[0, 1], [1, 3]]
    scored = json.loads((runs / "tiny" / "milestones.json").read_text())
    assert sorted({m["milestone"] for m in scored}) == [4, 8]
    # Step 4 was kept on the first machine; the second never re-keeps it with later weights.
    assert not (runs / "tiny" / "milestones" / "step_000004.json").exists()
    assert json.loads((runs / "tiny" / "milestones" / "step_000008.json").read_text())["steps"] == 8

    payload = campaigns.pack_campaign(campaign, runs, packed, bundle=bundle)
    shutil.copytree(runs, tmp_path / "kept_runs")  # the shipping below reads the run folder
    result = payload["runs"]["tiny"]["result"]
    assert result["optimizer_steps"] == 12 and not result["stopped_early"]
    assert any(row["paper"] for row in result["metrics"]) and len(result["per_image"]) == 2
    assert not (packed / "test" / "tiny").exists()  # a finished run leaves only its result
    assert json.loads(bundle.read_text())["runs"]["tiny"]["status"]["status"] == "finished"
    assert set(result["saturation"]) == {*SATURATION_FIELDS, "margin"}
    # A result written before `saturation` existed gains it from the best checkpoint, once.
    (runs / "tiny" / "result.json").write_text(
        json.dumps({k: v for k, v in result.items() if k != "saturation"})
    )
    upgraded = campaigns.finish_run(spec, runs / "tiny")
    assert upgraded["saturation"] == pytest.approx(result["saturation"])
    assert upgraded["finished"] == result["finished"]
    assert json.loads((runs / "tiny" / "result.json").read_text()) == upgraded

    # A fresh clone of that: neither a run folder nor a packed copy, only the result in the
    # bundle. The run is finished and never trained again.
    shutil.rmtree(runs)
    rows = campaigns.run_campaign(
        campaign, 1.0, runs_root=runs, packed_root=packed, stream=log, bundle=bundle
    )
    assert rows[0]["status"] == "finished" and rows[0]["steps_done"] == 12
    assert not (runs / "tiny").exists()
    assert "finished (its result is in the bundle)" in (runs / "campaign.log").read_text()
    assert campaigns.campaign_status(campaign, runs, packed, bundle)[0]["status"] == "finished"
    shutil.copytree(tmp_path / "kept_runs", runs, dirs_exist_ok=True)

    # Shipping keeps what was shipped under the name before, then installs the run with its record.
    from saunetv2_lib.weights import read_model_card, ship_weights

    weights = tmp_path / "weights"
    ship_weights(runs / "tiny", "tiny_model", [], directory=weights)  # "the 450-step weights"
    shipping = dataclasses.replace(spec, ship_as="tiny_model", keep_previous_as="tiny_short")
    card = campaigns.ship_campaign_run(shipping, runs, weights)
    assert card["name"] == "tiny_model" and card["campaign"]["optimizer_steps"] == 12
    assert [s["epochs"] for s in card["campaign"]["segments"]] == [[0, 1], [1, 3]]
    kept = read_model_card(weights / "tiny_short.keras")
    assert kept["name"] == "tiny_short" and kept["kept_from"] == "tiny_model"
    assert kept["metrics"] == [] and any(row["paper"] for row in card["metrics"])


@pytest.mark.slow
def test_a_run_whose_declaration_changed_is_trained_again_and_its_old_result_kept_aside(
    tmp_path, synthetic_root
):
    spec = _tiny_spec(synthetic_root, epochs=1)
    runs, packed, bundle = tmp_path / "runs", tmp_path / "packed", tmp_path / "bundle.json"
    log = open(os.devnull, "w")  # noqa: SIM115
    campaigns.run_campaign(
        Campaign("test", (spec,)), 1.0, runs_root=runs, packed_root=packed, stream=log
    )
    campaigns.pack_campaign(Campaign("test", (spec,)), runs, packed, bundle=bundle)
    shutil.copytree(runs / "tiny", packed / "test" / "tiny")  # as if a stale copy were committed

    # The declaration changes a field that changes the maths (not how the step is computed).
    changed = dataclasses.replace(spec, overrides={**spec.overrides, "lr": 5e-4})
    campaign = Campaign("test", (changed,))
    saved = json.loads((runs / "tiny" / "config.json").read_text())
    assert changed.changed_fields(saved) == ["lr"] and spec.changed_fields(saved) == []
    assert changed.changed_fields({**saved, "precision": "mixed_bfloat16", "notes": "x"}) == ["lr"]
    assert not campaigns.holds_run(changed, runs / "tiny")
    assert campaigns.bundled_status("test", changed, bundle) is None
    fresh = tmp_path / "fresh"
    assert not campaigns.restore_packed(changed, "test", fresh, packed)
    assert campaigns.campaign_status(campaign, fresh, packed, bundle)[0]["status"] == "not started"

    rows = campaigns.run_campaign(
        campaign, 1.0, runs_root=runs, packed_root=packed, stream=log, bundle=bundle
    )
    assert rows[0]["status"] == "finished"
    assert json.loads((runs / "tiny" / "config.json").read_text())["lr"] == 5e-4
    (aside,) = (runs / "superseded").iterdir()
    assert (
        aside.name.startswith("tiny-")
        and json.loads((aside / "config.json").read_text())["lr"] == 1e-3
    )
    assert "its configuration changed (lr)" in (runs / "campaign.log").read_text()

    payload = campaigns.pack_campaign(campaign, runs, packed, bundle=bundle)
    assert payload["runs"]["tiny"]["configuration"]["lr"] == 5e-4
    (old,) = payload["superseded"].values()
    assert (
        old["changed_fields"] == ["lr"] and old["configuration"]["lr"] == 1e-3 and "result" in old
    )
    assert not (packed / "test" / "tiny").exists()
    # Packing again keeps the superseded entry once.
    again = campaigns.pack_campaign(campaign, runs, packed, bundle=bundle, score=False)
    assert list(again["superseded"]) == list(payload["superseded"])


@pytest.mark.slow
def test_the_queue_goes_on_with_the_next_campaign_only_once_one_is_done(tmp_path, synthetic_root):
    first = Campaign("test_first", (_tiny_spec(synthetic_root, "a", epochs=2),))
    second = Campaign("test_second", (_tiny_spec(synthetic_root, "b", epochs=1),))
    runs, packed = tmp_path / "runs", tmp_path / "packed"
    log = open(os.devnull, "w")  # noqa: SIM115
    kwargs = dict(runs_root=runs, packed_root=packed, stream=log)

    # A deadline already past: one epoch of the first campaign, the second is not reached.
    rows = campaigns.run_queue([first, second], 1e-6, **kwargs)
    assert [(row["run"], row["epochs_done"]) for row in rows] == [("a", 1)]
    assert not (runs / "b").exists()

    rows = campaigns.run_queue([first, second], 1.0, **kwargs)
    assert [(row["run"], row["status"]) for row in rows] == [("a", "finished"), ("b", "finished")]
    assert campaigns.run_state(runs / "a")["completed_epochs"] == 2  # resumed, not restarted
    rows = campaigns.run_queue([first, second], 1.0, only=["b"], **kwargs)
    assert [row["run"] for row in rows] == ["b"]
    with pytest.raises(ValueError, match=r"no run \['c'\]"):
        campaigns.run_queue([first, second], 1.0, only=["c"], **kwargs)
    assert campaigns.campaign_names()[:3] == ["paper", "ablation", "baselines"]


def test_a_run_done_at_the_deadline_is_finished_and_a_fresh_seed_is_paced_by_another(
    tmp_path, synthetic_root
):
    first = dataclasses.replace(_tiny_spec(synthetic_root, "a_s1", epochs=1), configuration="a")
    second = dataclasses.replace(
        _tiny_spec(synthetic_root, "a_s2", epochs=1, seed=6), configuration="a"
    )
    other = _tiny_spec(synthetic_root, "b", epochs=1, seed=7)  # another configuration
    campaign = Campaign("test", (first, second, other))
    runs, packed = tmp_path / "runs", tmp_path / "packed"
    log = open(os.devnull, "w")  # noqa: SIM115

    # A deadline already past: a_s1's first epoch always runs, and it is its last, so the run
    # is finished, not paused; a_s2 has no epoch of its own timed, but a_s1's pace says no
    # epoch fits, so it does not start one that would end after the deadline.
    rows = campaigns.run_campaign(campaign, 1e-6, runs_root=runs, packed_root=packed, stream=log)
    assert [(row["run"], row["status"]) for row in rows] == [
        ("a_s1", "finished"),
        ("a_s2", "not started"),
        ("b", "not started"),
    ]
    assert not campaigns.run_state(runs / "a_s1")["paused"]
    assert "a_s1: paused" not in (runs / "campaign.log").read_text()
    assert "a_s2: no time left for an epoch" in (runs / "campaign.log").read_text()
    pace, paced_by = campaigns.seed_pace(second, campaign, runs, packed)
    assert paced_by == "a_s1" and pace == campaigns.run_status(first, runs / "a_s1")["epoch_s"]
    assert campaigns.seed_pace(other, campaign, runs, packed) == (None, None)
    assert not (runs / "a_s2").exists()


def test_two_trainings_never_run_at_once(tmp_path, synthetic_root):
    campaign = Campaign("test", (_tiny_spec(synthetic_root),))
    with campaigns.training_lock(tmp_path / "runs"):
        with pytest.raises(RuntimeError, match="already training"):
            campaigns.run_campaign(campaign, 1.0, runs_root=tmp_path / "runs")


_CHILD = """
import json, sys
from pathlib import Path
from saunetv2_lib.experiments.campaign import Campaign, RunSpec, run_campaign
spec = RunSpec(**json.loads(sys.argv[1]))
run_campaign(Campaign("test", (spec,)), 1.0, runs_root=Path(sys.argv[2]), packed_root=Path(sys.argv[3]))
"""


@pytest.mark.slow
def test_a_killed_campaign_loses_at_most_the_epoch_in_progress(
    tmp_path, synthetic_root, kill_inside_second_epoch
):
    spec = _tiny_spec(synthetic_root, epochs=4)
    runs = tmp_path / "runs"
    declared = {"name": spec.name, "profile": spec.profile, "overrides": dict(spec.overrides)}
    killed_at = kill_inside_second_epoch(
        _CHILD,
        [json.dumps(declared), str(runs), str(tmp_path / "p")],
        runs / "tiny" / "resume" / "state.json",
    )
    assert 1 <= killed_at < 4

    # The lock died with the process; the next call resumes after the last completed epoch.
    log = open(os.devnull, "w")  # noqa: SIM115
    rows = campaigns.run_campaign(
        Campaign("test", (spec,)), 1.0, runs_root=runs, packed_root=tmp_path / "p", stream=log
    )
    assert rows[0]["status"] == "finished" and rows[0]["steps_done"] == 16
    epochs = [line.split(",")[0] for line in (runs / "tiny" / "history.csv").read_text().split()]
    assert epochs[1:] == ["0", "1", "2", "3"]  # every epoch exactly once
    segments = json.loads((runs / "tiny" / "segments.json").read_text())
    # The killed session's segment is closed from its last saved epoch when the next one starts.
    assert [s["epochs"] for s in segments] == [[0, killed_at], [killed_at, 4]]
    assert segments[0]["ended_by"] == campaigns.KILLED and segments[0]["wall_time_s"] > 0
    assert segments[1]["ended_by"] == "returned" and segments[1]["steps"] == [4 * killed_at, 16]


def test_progress_markdown_states_the_run_and_its_latest_milestone():
    status = {"epochs_done": 40, "epochs_total": 150, "steps_done": 1200, "steps_total": 4500,
              "wall_time_s": 7783.0, "s_per_image": 0.736, "hours_left": 5.3}  # fmt: skip
    milestone = {"steps": 1020, "wall_time_s": 6743.0, "f1": 0.8206, "epoch": 34, "kind": "best"}
    bundle = {"runs": {"drive_paper": {"status": status, "milestones": [milestone]}}}
    card = {"name": "drive", "profile": "drive/full", "wall_time_s": 3880.0, "epochs_run": 150,
            "training": {"optimizer_iterations": 450},
            "metrics": [{"paper": True, "f1": 0.809}]}  # fmt: skip
    text = campaigns.progress_markdown(bundle, "drive_paper", card, 82.82)
    assert "run 40 of 150 epochs (1,200 of 4,500 optimizer steps) in 2.16 h" in text
    assert "At 1,020 steps, the best checkpoint so far scores F1 82.06" in text
    assert "`drive` weights (drive/full) score 80.90 after 450 steps" in text
    assert text.endswith("the paper reports 82.82.")
    bundle["runs"]["drive_paper"]["milestones"] = []
    assert campaigns.progress_markdown(bundle, "drive_paper", card, 82.82).endswith(
        "No milestone checkpoint has been scored yet."
    )
    status.update(status="stopped early", epochs_done=96, s_per_image=0.63)
    bundle["runs"]["drive_paper"]["result"] = {
        "epochs_run": 96, "optimizer_steps": 2880, "stopped_early": True, "best_epoch": 75,
        "wall_time_s": 17827.0, "metrics": [{"paper": True, "f1": 0.8268}],
    }  # fmt: skip
    text = campaigns.progress_markdown(bundle, "drive_paper", card, 82.82)
    assert "`drive_paper` is finished: early stopping ended it after 96 of 150 epochs" in text
    assert "(2,880 of 4,500 optimizer steps), in 4.95 h" in text
    assert "best checkpoint (epoch 75) scores F1 82.68" in text
    assert text.endswith("score 80.90 after 450 steps, and the paper reports 82.82.")


def test_a_bundle_not_packed_yet_is_an_error_or_empty_on_request(tmp_path):
    with pytest.raises(FileNotFoundError, match="saunetv2 campaign pack"):
        campaigns.load_campaign_bundle("ablation", tmp_path / "none.json")
    empty = campaigns.load_campaign_bundle("ablation", tmp_path / "none.json", missing_ok=True)
    assert empty == {"campaign": "ablation", "runs": {}}


def test_a_campaign_declares_how_its_steps_are_computed_and_a_session_may_override_it(
    tmp_path, synthetic_root
):
    spec = _tiny_spec(synthetic_root, epochs=2)
    campaign = Campaign("test", (spec,), speed={"precision": "mixed_bfloat16"})
    kwargs = dict(runs_root=tmp_path / "runs", packed_root=tmp_path / "packed")
    log = open(os.devnull, "w")  # noqa: SIM115

    # The first call's deadline has passed: one epoch; the second session finishes the run.
    campaigns.run_campaign(campaign, 1e-6, stream=log, **kwargs)
    campaigns.run_campaign(campaign, 1.0, stream=log, speed={"precision": "float32"}, **kwargs)
    segments = json.loads((tmp_path / "runs" / "tiny" / "segments.json").read_text())
    assert [(s["epochs"], s["precision"]) for s in segments] == [
        ([0, 1], "mixed_bfloat16"),
        ([1, 2], "float32"),
    ]
    with pytest.raises(ValueError, match="only how the step is computed"):
        campaigns.run_campaign(campaign, 1e-6, stream=log, speed={"seed": 2}, **kwargs)
    with pytest.raises(ValueError, match="precision must be one of"):
        campaigns.run_campaign(campaign, 1e-6, stream=log, speed={"precision": "fp16"}, **kwargs)


def test_declared_campaigns_state_only_valid_step_settings():
    for name in campaigns.campaign_names():
        campaign = campaigns.load_campaign(name)
        assert set(campaign.speed) <= {"precision", "group_norm_statistics"}
