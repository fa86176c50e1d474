"""Hosmer-Lemeshow, calibration bins/slope/CITL, Brier and decision curves against R."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _stats_refs import ITERATIVE, assert_close, data, expected
from scipy import stats

from dlrn.errors import DlrnError
from dlrn.evaluation import calibration
from dlrn.evaluation.decision_curve import decision_curve

SETS = {"insample": slice(0, 300), "holdout": slice(150, 300), "ties_s4": slice(0, 300)}
TABLE_COLUMNS = ["group", "n", "p_min", "p_max", "observed_events", "expected_events",
                 "observed_nonevents", "expected_nonevents", "mean_predicted", "observed_rate"]


def _prediction_set(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    reference = expected("calibration_hl_dca")[name]
    y = data("binary_scores")["y"].to_numpy()[SETS[name]]
    return y, np.asarray(reference["predicted"]), reference


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("grouping", calibration.GROUPINGS)
def test_hosmer_lemeshow_matches_r_for_every_grouping(name, grouping):
    y, p, reference = _prediction_set(name)
    ref = reference["hosmer_lemeshow"][grouping]
    result = calibration.hosmer_lemeshow(y, p, grouping=grouping)
    assert result.df == ref["df"]
    assert_close([result.statistic, result.p_value], [ref["statistic"], ref["p_value"]])
    table = pd.DataFrame(ref["table"])
    for column in TABLE_COLUMNS:
        assert_close(result.table[column], table[column], what=column)


def test_grouping_rules_really_differ_on_tied_predictions():
    y, p, _ = _prediction_set("ties_s4")
    p_values = {g: calibration.hosmer_lemeshow(y, p, grouping=g).p_value
                for g in calibration.GROUPINGS}
    assert len({round(v, 3) for v in p_values.values()}) == 3


@pytest.mark.parametrize("name", SETS)
def test_calibration_bins_match_r(name):
    y, p, reference = _prediction_set(name)
    for grouping, key in [("quantile_cut", "bins"),
                          ("quantile_cut_left_closed", "bins_left_closed_sklearn_style")]:
        bins = calibration.calibration_bins(y, p, grouping=grouping)
        table = pd.DataFrame(reference["calibration_bins"][key])
        for column in table.columns:
            assert_close(bins[column], table[column], what=f"{key}.{column}")


@pytest.mark.parametrize("name", SETS)
def test_calibration_slope_intercept_citl_and_brier_match_r(name):
    y, p, reference = _prediction_set(name)
    ref = reference["calibration"]
    result = calibration.calibration_intercept_slope(y, p)
    assert_close(
        [result["calibration_slope"], result["calibration_intercept"],
         result["calibration_in_the_large"]],
        [ref["slope"], ref["intercept_joint"], ref["calibration_in_the_large"]], rel=ITERATIVE,
    )
    assert_close(calibration.brier_score(y, p), ref["rms_val_prob"]["Brier"])


def test_holdout_calibration_is_not_trivial():
    y, p, _ = _prediction_set("holdout")
    result = calibration.calibration_intercept_slope(y, p)
    assert result["calibration_slope"] == pytest.approx(1.10577, abs=1e-5)


@pytest.mark.parametrize("name", SETS)
def test_decision_curve_matches_r(name):
    y, p, reference = _prediction_set(name)
    ref = reference["decision_curve"]
    curve = decision_curve(y, p)
    assert_close(curve["threshold"], ref["threshold"])
    assert_close(curve["tp"], ref["tp"])
    assert_close(curve["fp"], ref["fp"])
    assert_close(curve["net_benefit"], ref["net_benefit_model"])
    assert_close(curve["net_benefit_treat_all"], ref["net_benefit_treat_all"])
    assert (curve["net_benefit_treat_none"] == 0).all()


def test_fewer_cases_than_groups_is_a_clear_error():
    with pytest.raises(DlrnError, match="fewer than the 10"):
        calibration.hosmer_lemeshow([0, 1, 0, 1, 1], [0.1, 0.8, 0.3, 0.6, 0.7])


def test_tied_breaks_form_fewer_groups_but_df_stays_g_minus_2_as_resourceselection():
    """hoslem.test: PVAL = 1 - pchisq(chisq, g - 2) with g the groups asked for."""
    rng = np.random.default_rng(0)
    # 101 cases: the deciles are observed values (index 0, 10, ..., 100), no empty bin;
    # the first 41 tie at 0.1, so the breaks at index 0-40 coincide: 6 groups form
    p = np.concatenate([np.full(41, 0.1), np.linspace(0.15, 0.8, 60)])
    y = (rng.random(p.size) < p).astype(int)
    with pytest.warns(UserWarning, match="only 6 distinct quantile groups instead of 10"):
        result = calibration.hosmer_lemeshow(y, p)
    assert len(result.table) == 6 and result.df == 8
    breaks = np.unique(np.sort(p)[::10])  # (a, b] bins, the first closed
    group = np.maximum(np.searchsorted(breaks, p, side="left"), 1)
    observed = np.bincount(group, y)[1:]
    n, expected = np.bincount(group)[1:], np.bincount(group, p)[1:]
    statistic = np.sum((observed - expected) ** 2 / expected
                       + (observed - expected) ** 2 / (n - expected))
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(statistic, 8), rel=1e-12)


@pytest.mark.parametrize(
    ("p", "message"),
    [([0.1, 1.2, 0.3, 0.4], "outside"), ([0.1, np.nan, 0.3, 0.4], "NaN"),
     ([0.0, 0.5, 0.3, 0.4], "strictly between"), ([0.3, 0.3, 0.3, 0.3], "all predicted")],
)
def test_bad_probabilities_are_clear_errors(p, message):
    with pytest.raises(DlrnError, match=message):
        calibration.calibration_intercept_slope([0, 1, 0, 1], p)


def test_decision_curve_rejects_thresholds_outside_zero_one():
    with pytest.raises(DlrnError, match="strictly between"):
        decision_curve([0, 1], [0.2, 0.8], thresholds=[0.0, 0.5])


def _local_linear_tricube(x: np.ndarray, y: np.ndarray, at: float, frac: float) -> float:
    """R lowess at one x without robustness iterations, written out (Cleveland 1979)."""
    neighbours = int(frac * x.size + 1e-7)
    distance = np.abs(x - at)
    h = np.sort(distance)[neighbours - 1]
    weight = np.clip(1 - (distance / h) ** 3, 0, None) ** 3
    slope, intercept = np.polyfit(x, y, 1, w=np.sqrt(weight))
    return slope * at + intercept


def test_lowess_curve_is_r_lowess_without_robustness_iterations():
    y, p, _ = _prediction_set("holdout")
    curve = calibration.calibration_lowess(y, p)
    assert len(curve) == y.size and curve["predicted"].is_monotonic_increasing
    for at, fitted in [(p.min(), curve["observed"].iloc[0]), (p.max(), curve["observed"].iloc[-1])]:
        assert_close(fitted, _local_linear_tricube(p, y.astype(float), at, 2 / 3), rel=1e-6)


def test_lowess_one_class_curve_is_flat_at_that_class():
    curve = calibration.calibration_lowess(np.zeros(30), np.linspace(0.05, 0.6, 30))
    assert_close(curve["observed"], np.zeros(30))
