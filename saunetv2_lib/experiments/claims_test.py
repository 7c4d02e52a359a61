"""Tests of saunetv2_lib.experiments.claims against scipy and hand computations on known inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from saunetv2_lib.experiments import claims


def test_seed_interval_is_the_t_interval_of_the_per_seed_means():
    scores = np.array([[0.80, 0.82, 0.84], [0.81, 0.83, 0.85], [0.79, 0.80, 0.84]])
    per_seed = scores.mean(axis=1)
    result = claims.seed_interval(scores)
    half = stats.t.ppf(0.975, 2) * per_seed.std(ddof=1) / np.sqrt(3)  # by hand
    assert result["mean"] == pytest.approx(per_seed.mean())
    assert (result["low"], result["high"]) == pytest.approx(
        (per_seed.mean() - half, per_seed.mean() + half)
    )
    assert result["seeds"] == 3
    one = claims.seed_interval(scores[:1])
    assert one["mean"] == pytest.approx(0.82) and np.isnan(one["low"])
    with pytest.raises(ValueError, match="matrix"):
        claims.seed_interval([0.1, 0.2])


def test_image_bootstrap_interval_covers_the_mean_and_shrinks_with_more_images():
    rng = np.random.default_rng(0)
    few = rng.normal(0.8, 0.02, (3, 20))
    many = rng.normal(0.8, 0.02, (3, 2000))
    small, large = claims.image_bootstrap_interval(few), claims.image_bootstrap_interval(many)
    for result in (small, large):
        assert result["low"] < result["mean"] < result["high"]
    assert (large["high"] - large["low"]) < (small["high"] - small["low"]) / 5
    # The normal approximation of the mean's interval over images, as a cross-check.
    per_image = few.mean(axis=0)
    half = 1.96 * per_image.std(ddof=1) / np.sqrt(20)
    assert small["high"] - small["low"] == pytest.approx(2 * half, rel=0.35)
    constant = claims.image_bootstrap_interval(np.full((2, 5), 0.7))
    assert constant["low"] == constant["high"] == pytest.approx(0.7)


def test_paired_difference_and_verdicts():
    rng = np.random.default_rng(1)
    base = rng.normal(0.80, 0.03, (3, 20))  # image difficulty shared by both configurations
    better = base + 0.01 + rng.normal(0, 0.002, base.shape)
    same = base + rng.normal(0, 0.002, base.shape)
    up = claims.paired_difference(base, better)
    assert up["mean"] == pytest.approx(np.mean(better - base))
    assert up["better"] == 60 and up["pairs"] == 60
    assert up["wilcoxon_p"] == pytest.approx(stats.wilcoxon((better - base).ravel()).pvalue)
    assert claims.verdict(up) == "holds beyond the noise"
    assert claims.verdict(up, claimed=-1) == "reversed"
    assert claims.verdict(claims.paired_difference(base, same)) == "within the noise"
    assert claims.verdict(claims.paired_difference(base[:1], better[:1])) == "within the noise"
    assert claims.paired_difference(base, base)["wilcoxon_p"] is None
    with pytest.raises(ValueError, match="same"):
        claims.paired_difference(base, base[:, :5])


def test_claims_table_compares_each_row_with_the_one_before():
    rng = np.random.default_rng(2)
    base = rng.normal(0.80, 0.03, (3, 20))
    scores = {"a": base, "b": base + 0.01, "c": base + 0.01 + rng.normal(0, 0.001, base.shape)}
    rows = claims.claims_table(["a", "b", "c"], scores)
    assert [r["configuration"] for r in rows] == ["a", "b", "c"]
    assert "verdict" not in rows[0]
    assert rows[1]["against"] == "a" and rows[1]["verdict"] == "holds beyond the noise"
    assert rows[2]["verdict"] == "within the noise"
    assert rows[1]["diff_mean"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="one sign"):
        claims.claims_table(["a", "b"], scores, claimed=[1, 1])
