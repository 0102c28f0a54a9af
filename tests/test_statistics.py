"""evaluation.statistics against scipy.stats, statsmodels and hand examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from maskcycle.evaluation import statistics as st


def test_t_interval_matches_scipy():
    x = [48.4, 52.1, 50.3, 61.0]
    got = st.t_interval(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert got["n"] == 4 and got["mean"] == pytest.approx(np.mean(x))
    assert (got["lo"], got["hi"]) == pytest.approx((lo, hi), rel=1e-12)


def test_t_interval_by_hand_and_single_seed():
    # mean 2, sd 1, n 3: half-width = t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    got = st.t_interval([1.0, 2.0, 3.0])
    assert got["lo"] == pytest.approx(2 - 2.484138, abs=1e-6) and got["hi"] == pytest.approx(2 + 2.484138, abs=1e-6)
    one = st.t_interval([5.0, None, math.nan])
    assert one["n"] == 1 and one["mean"] == 5.0 and math.isnan(one["lo"]) and math.isnan(one["hi"])


def test_welch_matches_scipy():
    a, b = [20.1, 22.5, 19.8, 25.0, 21.7], [30.2, 27.9, 35.1]
    got = st.welch_difference(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert got["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert got["df"] == pytest.approx(ref.df, rel=1e-10)
    assert (got["lo"], got["hi"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert got["diff"] == pytest.approx(np.mean(a) - np.mean(b))


def test_welch_needs_two_seeds_each_and_handles_constant_samples():
    assert math.isnan(st.welch_difference([1.0], [2.0, 3.0])["p"])
    assert st.welch_difference([1.0, 1.0], [2.0, 2.0])["p"] == 0.0
    assert st.welch_difference([1.0, 1.0], [1.0, 1.0])["p"] == 1.0


def test_z_difference_by_hand():
    # se = hypot(0.3, 0.4) = 0.5, z = 2: two-sided p = 0.0455003, interval 1 +- 1.959964 * 0.5
    got = st.z_difference(1.0, 0.3, 0.0, 0.4)
    assert got["p"] == pytest.approx(0.0455003, abs=1e-6)
    assert (got["lo"], got["hi"]) == pytest.approx((1 - 0.979982, 1 + 0.979982), abs=1e-6)
    assert math.isnan(st.z_difference(1.0, None, 0.0, 0.4)["p"])


def test_holm_matches_statsmodels_and_hand_example():
    p = [0.01, 0.04, 0.03, 0.005, 0.2]
    ref = multipletests(p, method="holm")[1]
    assert st.holm(p) == pytest.approx(list(ref), rel=1e-12)
    # by hand: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> max so far 0.06
    got = st.holm([0.01, math.nan, 0.03, 0.005, 0.04])
    assert got[0] == pytest.approx(0.03) and math.isnan(got[1])
    assert got[2:] == pytest.approx([0.06, 0.02, 0.06])


def test_bootstrap_mean_interval_covers_and_shrinks_to_constant():
    rng = np.random.default_rng(1)
    x = rng.normal(10, 2, 400)
    got = st.bootstrap_mean(x, seed=0)
    # the bootstrap se of a mean approximates sd / sqrt(n)
    assert got["se"] == pytest.approx(x.std(ddof=1) / 20, rel=0.15)
    assert got["lo"] < x.mean() < got["hi"]
    const = st.bootstrap_mean([3.0] * 10)
    assert const["lo"] == const["hi"] == const["value"] == 3.0


def test_bootstrap_two_sample_of_mean_difference_against_normal_theory():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, (300, 1)), rng.normal(0.5, 1, (200, 1))
    got = st.bootstrap_two_sample(lambda a, b: float(a.mean() - b.mean()), x, y, n_boot=400, seed=3)
    se = math.sqrt(x.var(ddof=1) / 300 + y.var(ddof=1) / 200)
    assert got["value"] == pytest.approx(float(x.mean() - y.mean()))
    assert got["se"] == pytest.approx(se, rel=0.2)


def test_subsample_curve_shows_frechet_bias_with_sample_count():
    from maskcycle.evaluation.fid import fid_from_features

    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, (400, 8)), rng.normal(0, 1, (400, 8))  # same distribution: true distance 0
    curve = st.subsample_curve(fid_from_features, x, y, [20, 50, 400, 1000], repeats=4)
    assert [c["n"] for c in curve] == [20, 50, 400]  # 1000 is more than the sets hold
    means = [c["mean"] for c in curve]
    assert means[0] > means[1] > means[2] > 0  # biased upwards, less so with more samples
    assert st.at_reference_size(fid_from_features, x, y, 1000) is None
