"""Tests of saunetv2_lib.experiments.ablation on bundles built here (the declared campaign, made-up scores)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from saunetv2_lib import paper
from saunetv2_lib.experiments import ablation
from saunetv2_lib.experiments.campaign import load_campaign
from saunetv2_lib.metrics import SATURATION_FIELDS

CAMPAIGN = load_campaign("ablation")
IMAGES = [f"{k:02d}_test" for k in range(1, 21)]


def _result(values) -> dict:
    return {"per_image": [{"name": name, "f1": float(v), "mcc": float(v) - 0.02}
                          for name, v in zip(IMAGES, values, strict=True)]}  # fmt: skip


def _bundle(levels: dict[str, float], seeds=(1, 2, 3), noise=0.01, seed=0) -> dict:
    """Finished runs of the configurations in ``levels``: F1 = level + image effect + noise."""
    rng = np.random.default_rng(seed)
    image_effect = rng.normal(0, 0.02, len(IMAGES))
    runs = {}
    for configuration, level in levels.items():
        for s in seeds:
            values = level + image_effect + rng.normal(0, noise, len(IMAGES))
            runs[f"{configuration}_s{s}"] = {"result": _result(values)}
    return {"runs": runs}


def test_scores_group_the_seeds_of_a_configuration_with_images_in_order():
    bundle = _bundle({"t3_gn_silu": 0.80}, seeds=(3, 1))
    bundle["runs"]["t3_compressed_s2"] = {"status": {"status": "in progress"}}  # no result yet
    scores = ablation.configuration_scores(bundle, CAMPAIGN)
    assert list(scores) == ["t3_gn_silu"]
    entry = scores["t3_gn_silu"]
    assert entry["seeds"] == [1, 3] and entry["images"] == IMAGES
    assert entry["scores"].shape == (2, 20)
    first = bundle["runs"]["t3_gn_silu_s1"]["result"]["per_image"]
    np.testing.assert_allclose(entry["scores"][0], [row["f1"] for row in first])
    mcc = ablation.configuration_scores(bundle, CAMPAIGN, metric="mcc")["t3_gn_silu"]["scores"]
    np.testing.assert_allclose(mcc, entry["scores"] - 0.02)


def test_runs_of_one_configuration_on_other_images_are_refused():
    bundle = _bundle({"t3_gn_silu": 0.80}, seeds=(1, 2))
    bundle["runs"]["t3_gn_silu_s2"]["result"]["per_image"][0]["name"] = "99_test"
    with pytest.raises(ValueError, match="seed 2 was scored on other test images"):
        ablation.configuration_scores(bundle, CAMPAIGN)


def test_table3_rows_follow_the_paper_with_intervals_and_the_paper_s_direction():
    levels = {"t3_sa_unet_bn_relu": 0.78, "t3_gn_silu": 0.80, "t3_compressed": 0.8005,
              "t3_plain_sa": 0.82, "t3_csa_bce": 0.80}  # fmt: skip
    bundle = _bundle(levels)
    rows = ablation.ablation_rows("architecture_ablation", bundle, CAMPAIGN)
    table = paper.table("architecture_ablation")
    assert [r["row"] for r in rows] == [r["model"] for r in table.rows]
    assert [r["paper"] for r in rows] == [r["f1"] for r in table.rows]
    assert "against" not in rows[0] and all(r["seeds"] == 3 for r in rows)
    assert [r["against"] for r in rows[1:]] == [r["row"] for r in rows[:-1]]
    # The paper's plain-SA row is lower than the row above it (82.65 < 82.70): claimed -1.
    assert [r["claimed"] for r in rows[1:]] == [1, 1, -1, 1]

    matrix = 100 * ablation.configuration_scores(bundle, CAMPAIGN)["t3_gn_silu"]["scores"]
    per_seed = matrix.mean(axis=1)
    low, high = stats.t.interval(0.95, 2, loc=per_seed.mean(), scale=stats.sem(per_seed))
    assert rows[1]["mean"] == pytest.approx(per_seed.mean())
    assert (rows[1]["seed_low"], rows[1]["seed_high"]) == pytest.approx((low, high))
    base = 100 * ablation.configuration_scores(bundle, CAMPAIGN)["t3_sa_unet_bn_relu"]["scores"]
    assert rows[1]["diff_mean"] == pytest.approx((matrix - base).mean())

    verdicts = [r["verdict"] for r in rows[1:]]
    # +2 pp holds; +0.05 pp is noise; +2 pp where the paper claims a drop is reversed;
    # -2 pp where the paper claims a gain is reversed.
    assert verdicts == ["holds beyond the noise", "within the noise", "reversed", "reversed"]


def test_loss_rows_are_compared_with_the_paper_s_loss():
    levels = {"t3_csa_bce": 0.80, "t4_mcc": 0.80, "t4_bce_mcc": 0.81}
    rows = ablation.ablation_rows("loss_ablation", _bundle(levels), CAMPAIGN)
    by_row = {r["row"]: r for r in rows}
    assert list(by_row) == [r["model"] for r in paper.table("loss_ablation").rows]
    reference = "BCE+MCC (0.5, 0.5)"
    assert "against" not in by_row[reference]
    assert {r["against"] for name, r in by_row.items() if name != reference} == {reference}
    # Every other loss scores below the paper's loss in the paper: claimed -1 against it.
    assert {r["claimed"] for name, r in by_row.items() if name != reference} == {-1}
    assert by_row["BCE"]["verdict"] == "holds beyond the noise"
    pending = by_row["BCE+MCC (0.7, 0.3)"]
    assert pending["seeds"] == 0 and "mean" not in pending and "verdict" not in pending


def test_saturation_rows_average_the_runs_beside_their_auc():
    bundle = _bundle({"t3_csa_bce": 0.80, "t4_mcc": 0.80, "t4_bce_mcc": 0.81}, seeds=(2, 1))
    for name, level in (("t4_mcc_s1", 0.9), ("t4_mcc_s2", 0.8), ("t3_csa_bce_s1", 0.4)):
        result = bundle["runs"][name]["result"]
        result["saturation"] = {**dict.fromkeys(SATURATION_FIELDS, level / 4),
                                "saturated": level, "vessel_high": level / 2, "margin": 0.01}  # fmt: skip
        for k, image in enumerate(result["per_image"]):
            image["auc"] = 0.95 + 0.001 * k
    rows = ablation.saturation_rows(bundle, CAMPAIGN)
    # Paper order (BCE before MCC); t4_bce_mcc has no saturation yet (written before it existed).
    assert [r["row"] for r in rows] == ["BCE", "MCC"]
    mcc = rows[1]
    assert mcc["seeds"] == [1, 2] and mcc["margin"] == 0.01
    assert mcc["saturated"] == pytest.approx([90.0, 80.0])
    assert mcc["saturated_mean"] == pytest.approx(85.0)
    assert mcc["vessel_high_mean"] == pytest.approx(42.5)
    assert mcc["auc_mean"] == pytest.approx(100 * (0.95 + 0.001 * 9.5))
    assert mcc["vessel_low_mean"] == pytest.approx(21.25)
    assert rows[0]["seeds"] == [1] and rows[0]["saturated_mean"] == pytest.approx(40.0)
    # A result with only some of the fields (written by an older version) is not read.
    del bundle["runs"]["t3_csa_bce_s1"]["result"]["saturation"]["vessel_low"]
    assert [r["row"] for r in ablation.saturation_rows(bundle, CAMPAIGN)] == ["MCC"]


def test_one_seed_gives_a_mean_but_no_verdict():
    levels = {"t1a_sa_unet": 0.80, "t4_bce_mcc": 0.81}
    rows = ablation.ablation_rows("drive_without_fov", _bundle(levels, seeds=(1,)), CAMPAIGN)
    assert [r["row"] for r in rows] == ["SA-UNet", "SA-UNetv2"]
    assert rows[0]["seeds"] == 1 and np.isnan(rows[0]["seed_low"])
    # SA-UNet against SA-UNetv2, which the paper puts above it.
    assert rows[0]["against"] == "SA-UNetv2" and rows[0]["claimed"] == -1
    assert "verdict" not in rows[0] and "against" not in rows[1]


def test_the_baselines_campaign_compares_u_net_and_attention_u_net_with_sa_unetv2():
    baselines = load_campaign("baselines")
    assert ablation.budget_steps(baselines) == 150
    levels = {"b_sa_unet_v2": 0.80, "b_unet": 0.77}
    rows = ablation.ablation_rows("drive_without_fov", _bundle(levels), baselines)
    assert [r["row"] for r in rows] == ["U-Net", "Attention U-Net", "SA-UNetv2"]
    assert rows[0]["against"] == "SA-UNetv2" and rows[0]["verdict"] == "holds beyond the noise"
    assert rows[1]["seeds"] == 0 and "verdict" not in rows[1]


def test_a_metric_the_table_does_not_report_is_an_error():
    with pytest.raises(ValueError, match="not 'auc'"):
        ablation.ablation_rows("architecture_ablation", {"runs": {}}, CAMPAIGN, metric="auc")


def _milestone(steps: int, f1: float) -> dict:
    metrics = {m: f1 for m in paper.METRICS}
    return {"steps": steps, "kind": "best", "wall_time_s": steps * 5.0, "epoch": steps // 30,
            **metrics}  # fmt: skip


def test_the_budget_gap_reads_the_paper_scale_curve():
    entry = {"milestones": [_milestone(300, 0.7914), _milestone(2010, 0.8261)]}
    entry["milestones"].append({**_milestone(2010, 0.8238), "kind": "current"})
    gap = ablation.budget_gap({"runs": {"drive_paper": entry}}, 300)
    assert gap["against_steps"] == 2010 and gap["final"] is False
    assert gap["gap"]["f1"] == pytest.approx(3.47)
    assert ablation.budget_gap({"runs": {"drive_paper": entry}}, 450) is None
    assert ablation.budget_gap({"runs": {}}, 300) is None


def test_the_declared_ablation_budget_is_300_steps():
    assert ablation.budget_steps(CAMPAIGN) == 300


def test_the_committed_paper_campaign_measures_the_budget_gap():
    from saunetv2_lib.experiments.campaign import load_campaign_bundle

    gap = ablation.budget_gap(load_campaign_bundle("paper"), ablation.budget_steps(CAMPAIGN))
    assert gap is not None and gap["against_steps"] > 300
    assert gap["gap"]["f1"] > 0  # the longer run scores higher
