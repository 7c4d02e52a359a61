"""Tests of the notebooks' shared helpers."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest

from saunetv2_lib import companion
from saunetv2_lib.losses import binary_crossentropy_mean, soft_mcc
from saunetv2_lib.models.layers import CrossScaleSpatialAttention, SpatialAttention


def test_output_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv(companion.FIGURES_ENV, raising=False)
    assert companion.output_dir(tmp_path / "a") == tmp_path / "a"
    assert (tmp_path / "a").is_dir()
    monkeypatch.setenv(companion.FIGURES_ENV, str(tmp_path / "b"))
    assert companion.output_dir(tmp_path / "a") == tmp_path / "b"
    assert (tmp_path / "b").is_dir()


def test_save_figure_is_byte_stable_and_table_round_trips(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    def draw():
        figure, axis = plt.subplots()
        axis.plot([0, 1], [1, 0])
        return figure

    first = companion.save_figure(draw(), "f", tmp_path).read_bytes()
    second = companion.save_figure(draw(), "f", tmp_path).read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and first == second
    plt.close("all")
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1 / 3]})
    path = companion.save_table(frame, "t", tmp_path)
    assert path.read_text() == "a,b\n1,0.5\n2,0.333333\n"


def test_quiet_stderr_silences_the_descriptor(capfd):
    with companion.quiet_stderr():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_show_formats_hides_index_and_is_stable():
    import pandas as pd

    frame = pd.DataFrame({"model": ["a", "b"], "f1": [82.8234, None], "params": [260521, 8]})
    first, second = companion.show(frame).to_html(), companion.show(frame).to_html()
    assert first == second
    assert "82.82" in first and "82.8234" not in first and "–" in first and "260,521" in first
    assert "row_heading" not in first  # no index column
    assert "row_heading" in companion.show(frame, index=True).to_html()


def test_percent():
    assert companion.percent(0.82818) == "82.82"
    assert companion.percent(None) == "–" and companion.percent(float("nan")) == "–"


def test_find_histories_prefers_runs_then_kept_copies(tmp_path, monkeypatch):
    from saunetv2_lib import weights

    monkeypatch.setattr(weights, "list_weights", lambda: {"drive": False, "stare": False})
    run = tmp_path / "runs" / "drive_full"
    run.mkdir(parents=True)
    (run / "history.csv").write_text("epoch,loss,val_loss\n0,0.9,0.8\n1,0.7,0.75\n")
    (run / "summary.json").write_text(json.dumps({"epochs_run": 2}))
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "04_history_drive_full.csv").write_text("epoch,loss\n0,5.0\n")
    (figures / "04_history_stare_full.csv").write_text("epoch,loss\n0,0.6\n")
    found = companion.find_histories(tmp_path / "runs", figures)
    assert found["drive_full"]["history"][1] == {"epoch": 1.0, "loss": 0.7, "val_loss": 0.75}
    assert found["drive_full"]["summary"] == {"epochs_run": 2}
    assert found["stare_full"]["source"].startswith("04_history_stare_full.csv")
    assert companion.find_histories(tmp_path / "nothing", tmp_path / "none") == {}


def test_attention_maps_match_numpy():
    inputs = keras.Input((16, 16, 3))
    encoder = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    attended = SpatialAttention(name="sa")(encoder)
    decoder = keras.layers.Conv2D(4, 1)(attended)
    skip = CrossScaleSpatialAttention(name="csa")([encoder, decoder])
    model = keras.Model(inputs, skip)
    image = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    maps = companion.attention_maps(model, image)
    assert list(maps) == ["sa", "csa"]
    features = keras.Model(inputs, encoder).predict_on_batch(image[None])[0]
    pooled = np.stack([features.mean(-1), features.max(-1)], -1)
    kernel = model.get_layer("sa").conv.kernel.numpy()[..., 0]  # (7, 7, 2)
    padded = np.pad(pooled, ((3, 3), (3, 3), (0, 0)))
    logits = np.array(
        [[np.sum(padded[i : i + 7, j : j + 7] * kernel) for j in range(16)] for i in range(16)]
    )
    np.testing.assert_allclose(maps["sa"], 1 / (1 + np.exp(-logits)), atol=1e-5)
    assert maps["csa"].shape == (16, 16) and 0 <= maps["csa"].min() <= maps["csa"].max() <= 1


def test_paper_comparison_adds_difference_rows():
    ours = {"SA-UNetv2 (ours)": {"f1": 0.8, "mcc": 0.79}, "2nd observer": {"f1": 0.7}}
    frame = companion.paper_comparison("stare", ours, models=["SA-UNetv2"], columns=["f1", "mcc"])
    assert list(frame.model) == [
        "SA-UNetv2",
        "SA-UNetv2 (ours)",
        "SA-UNetv2: ours - paper",
        "2nd observer",
    ]
    difference = frame.set_index("model").loc["SA-UNetv2: ours - paper"]
    assert difference.f1 == pytest.approx(80.0 - 82.81) and difference.mcc == pytest.approx(-2.79)
    assert np.isnan(frame.set_index("model").loc["2nd observer", "mcc"])


def test_loss_gradient_of_bce_matches_the_closed_form():
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[0.8, 0.3], [0.6, 0.1]], np.float32)
    gradient = companion.loss_gradient(binary_crossentropy_mean, y, p)
    expected = (-(y / p) + (1 - y) / (1 - p)) / y.size
    np.testing.assert_allclose(gradient, expected, rtol=1e-5)
    assert companion.loss_gradient(soft_mcc, y, p).shape == (2, 2)


def test_fit_logistic_recovers_a_separable_threshold():
    x = np.linspace(-3, 3, 200, dtype=np.float32)
    y = (x > 0.5).astype(np.float32)
    a, b = companion.fit_logistic(binary_crossentropy_mean, x, y)
    assert a > 0 and -b / a == pytest.approx(0.5, abs=0.05)


def test_trained_model_says_when_there_is_none(tmp_path, monkeypatch):
    from saunetv2_lib import weights

    monkeypatch.setattr(weights, "list_weights", lambda: {"drive": False, "stare": False})
    model, reason = companion.trained_model(tmp_path, "drive")
    assert model is None and "not in saunetv2_lib/weights/ yet" in reason
    with pytest.raises(ValueError, match="prefer"):
        companion.trained_model(tmp_path, prefer="newest")


def test_schedule_table_puts_configurations_side_by_side_and_marks_differences():
    from saunetv2_lib.training import load_profile

    full, quick = load_profile("drive/full"), load_profile("drive/quick")
    table = companion.schedule_table({"full": full, "quick": quick}, exclude=("model",))
    assert list(table.columns) == ["full", "quick", "differs"]
    assert "notes" not in table.index and "data_root" not in table.index
    assert "model" not in table.index and "epochs" in table.index
    assert table.loc["epochs", "differs"] == "◀" and table.loc["lr", "differs"] == ""
    assert table.loc["epochs", "quick"] == quick.epochs


def test_table_finding_states_differences_from_the_paper_and_flags_provisional_sources():
    from saunetv2_lib import paper

    claimed = paper.table("drive_without_fov").row("SA-UNetv2")
    summary = {m: claimed[m] / 100 + 0.001 for m in paper.METRICS}  # 0.1 point above the paper
    shipped = companion.table_finding(
        {"ours": summary}, "drive_without_fov", "Table 1A", "the shipped weights 'drive'"
    )
    assert shipped.startswith(
        "**Table 1A, ours (difference from the paper, points):** F1 82.92 (+0.10)"
    )
    assert "Provisional" not in shipped
    quick = companion.table_finding(
        {"ours": summary}, "drive_without_fov", "Table 1A", "the quick run"
    )
    assert "*Provisional: this is the quick run" in quick
    pending = companion.table_finding({}, "stare", "Table 2", "no STARE run yet")
    assert pending.startswith("**Table 2: ours pending.** No STARE run yet.")


def test_ablation_section_shows_trained_rows_their_verdicts_and_the_budget_gap(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from saunetv2_lib import paper

    names = [f"{k:02d}_test" for k in range(1, 21)]

    def finished(level, seed):
        values = [level + (k - 9.5) / 1000 + seed / 1000 for k in range(20)]
        rows = [{"name": n, "f1": v} for n, v in zip(names, values, strict=True)]
        return {"result": {"per_image": rows}}

    runs = {f"t1a_sa_unet_s{s}": finished(0.78, s) for s in (1, 2, 3)}
    runs |= {f"t4_bce_mcc_s{s}": finished(0.80, s) for s in (1, 2, 3)}
    milestones = [{"steps": steps, "kind": "best", "wall_time_s": 1.0, "epoch": 1,
                   **{m: value for m in paper.METRICS}}
                  for steps, value in ((300, 0.79), (2010, 0.826))]  # fmt: skip
    bundles = {"ablation": {"runs": runs},
               "paper": {"runs": {"drive_paper": {"milestones": milestones}}}}  # fmt: skip
    monkeypatch.setattr(companion, "_bundle", bundles.__getitem__)
    frame, figure, text = companion.ablation_section("drive_without_fov")
    assert list(frame["row"]) == ["SA-UNet", "SA-UNetv2"]
    assert list(frame["seeds"]) == [3, 3]
    assert frame["ours F1"].tolist() == pytest.approx([78.2, 80.2])
    assert frame["ours − against"].iloc[0] == pytest.approx(-2.0)
    assert frame["verdict"].iloc[0] == "holds beyond the noise"
    assert "2 of 2 configurations trained" in text
    assert "300 steps score 3.60 F1 points below its latest checkpoint (2,010 steps)" in text
    assert "SA-UNet vs SA-UNetv2: -2.00 points, holds beyond the noise." in text
    assert figure.axes[0].get_yticklabels()[0].get_text() == "SA-UNet"
    _, _, pending = companion.ablation_section("architecture_ablation")
    assert pending.startswith("**Ours pending.** None of the 5 configurations")


def test_saturation_section_names_the_extremes_and_their_rank_correlation(monkeypatch):
    from saunetv2_lib.metrics import SATURATION_FIELDS

    def finished(saturated, missed, auc):
        per_image = [{"name": f"{k:02d}_test", "auc": auc} for k in range(1, 21)]
        saturation = {**dict.fromkeys(SATURATION_FIELDS, 0.0), "margin": 0.01,
                      "saturated": saturated, "vessel_low": missed}  # fmt: skip
        return {"result": {"per_image": per_image, "saturation": saturation}}

    runs = {f"t4_mcc_s{s}": finished(0.9 + s / 100, 0.1 + s / 100, 0.96 - s / 1000)
            for s in (1, 2, 3)}  # fmt: skip
    runs |= {f"t3_csa_bce_s{s}": finished(0.4 - s / 10, (4 - s) / 1000, 0.975 + s / 1000)
             for s in (1, 2, 3)}  # fmt: skip
    monkeypatch.setattr(companion, "_bundle", {"ablation": {"runs": runs}}.__getitem__)
    frame, text = companion.saturation_section()
    assert list(frame["row"]) == ["BCE", "MCC"] and list(frame["seeds"]) == [3, 3]
    assert frame["saturated %"].tolist() == pytest.approx([20.0, 92.0])
    assert frame["saturated, seed range"].tolist() == ["10.0–30.0", "91.0–93.0"]
    assert frame["vessels < m %"].tolist() == pytest.approx([0.2, 12.0])
    assert frame["AUC"].tolist() == pytest.approx([97.7, 95.8])
    assert text.startswith("In the paper, MCC alone scores AUC 91.71 against 98.68–98.71 for")
    assert "Trained with MCC, 92.0 % of the test pixels lie below m or above 1 − m" in text
    assert "12.0 % of the vessel pixels score below m" in text
    assert "With BCE, 20.0 % of the pixels and 0.2 % of the vessel pixels; AUC 97.70." in text
    assert "Over all 6 runs, the Spearman rank correlation between AUC and the share" in text
    assert (
        "below m is -1.00 (p = 0): confident misses go with a lower AUC beyond the noise." in text
    )
    runs["t3_csa_bce_s1"]["result"]["per_image"][0]["auc"] = 0.5  # BCE s1 now has the lowest AUC
    runs["t3_csa_bce_s2"]["result"]["saturation"]["vessel_low"] = 0.2  # and s2 the most misses
    assert "not beyond the noise." in companion.saturation_section()[1]
    monkeypatch.setattr(companion, "_bundle", {"ablation": {"runs": {}}}.__getitem__)
    frame, text = companion.saturation_section()
    assert frame.empty and text.startswith("**Pending.**")


def test_campaign_run_section_covers_each_run_of_the_committed_bundle():
    from saunetv2_lib.companion import plots
    from saunetv2_lib.experiments import campaign as campaigns

    bundle = campaigns.load_campaign_bundle("paper")
    for run, dataset in (("drive_paper", "drive"), ("stare_paper", "stare")):
        section = companion.campaign_run_section(bundle, run)
        assert section["dataset"] == dataset
        milestones = section["milestones"]
        assert list(milestones.columns) == list(companion.MILESTONE_COLUMNS)
        assert len(milestones) == len(bundle["runs"][run]["milestones"])
        assert milestones["f1"].between(0, 1).all() and (milestones["hours"] > 0).all()
        # Three series (best so far, weights at the step, the short schedule) on two axes.
        steps_axes = section["steps_figure"].axes
        assert len(steps_axes) == 2 and len(steps_axes[0].get_lines()) == 3 + 1  # + the paper
        assert f"`{run}`" in section["markdown"]
        for figure in (section["steps_figure"], section["curves_figure"]):
            plots.pyplot().close(figure)
