"""Youden cut-off and 2x2 metrics against pROC coords(x="best"), and train -> test use."""

from __future__ import annotations

import numpy as np
import pytest
from _stats_refs import assert_close, data, expected
from scipy import stats

from dlrn.errors import DlrnError
from dlrn.evaluation.threshold import (
    YoudenThreshold,
    cutoff_metrics,
    infinite_cutoff_note,
    youden_threshold,
)


def _cases():
    scores, ties = data("binary_scores"), data("small_ties")
    reference = expected("roc_auc_youden")
    for name in ["s1", "s2", "s3", "s4"]:
        yield name, scores["y"], scores[name], reference["binary_scores"][name]["youden_best"][0]
    yield "ties", ties["y"], ties["score"], reference["small_ties"]["score"]["youden_best"][0]


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: c[0])
def test_youden_threshold_and_metrics_match_proc(case):
    _, y, score, best = case
    threshold = youden_threshold(y, score)
    assert_close(threshold, best["threshold"])
    metrics = cutoff_metrics(y, score, threshold)
    for key in ["sensitivity", "specificity", "accuracy", "ppv", "npv", "tp", "fp", "tn", "fn"]:
        assert_close(metrics[key], best[key], what=key)
    assert_close(metrics["sensitivity"] + metrics["specificity"] - 1, best["youden"])
    tp, fp, fn = best["tp"], best["fp"], best["fn"]
    assert_close(metrics["f1"], 2 * tp / (2 * tp + fp + fn))


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: c[0])
def test_observed_threshold_option_gives_the_same_table(case):
    _, y, score, best = case
    observed = youden_threshold(y, score, thresholds="observed")
    assert_close(observed, best["threshold_observed_ge"])
    assert cutoff_metrics(y, score, observed)["tp"] == best["tp"]


def test_wilson_and_clopper_pearson_intervals_follow_their_textbook_formulas():
    ties = data("small_ties")  # sensitivity at 3.5 is 8/12
    wilson = cutoff_metrics(ties["y"], ties["score"], 3.5)
    exact = cutoff_metrics(ties["y"], ties["score"], 3.5, ci_method="clopper-pearson")
    x, n, z = 8, 12, stats.norm.ppf(0.975)
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert_close([wilson["sensitivity_ci_low"], wilson["sensitivity_ci_high"]],
                 [centre - half, centre + half])
    assert_close([exact["sensitivity_ci_low"], exact["sensitivity_ci_high"]],
                 [stats.beta.ppf(0.025, x, n - x + 1), stats.beta.ppf(0.975, x + 1, n - x)],
                 rel=1e-10)


def test_threshold_is_learned_on_training_rows_only():
    scores = data("binary_scores")
    train, test = scores.iloc[:150], scores.iloc[150:]
    cutoff = YoudenThreshold().fit(train["s2"], train["y"])
    assert cutoff.threshold_ == youden_threshold(train["y"], train["s2"])
    assert cutoff.threshold_ != youden_threshold(test["y"], test["s2"])
    on_test = cutoff.metrics(test["s2"], test["y"])
    assert on_test["threshold"] == cutoff.threshold_
    assert on_test["tp"] == int(((test["s2"] >= cutoff.threshold_) & (test["y"] == 1)).sum())
    np.testing.assert_array_equal(cutoff.predict(test["s2"]), test["s2"] >= cutoff.threshold_)


def test_undefined_ppv_is_warned_not_silent():
    with pytest.warns(UserWarning, match="ppv"):
        metrics = cutoff_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], threshold=0.9)
    assert np.isnan(metrics["ppv"]) and metrics["tp"] == 0 and metrics["fn"] == 2


def test_tied_youden_maxima_pick_the_lowest_threshold_with_a_warning():
    with pytest.warns(UserWarning, match="tie for the best"):
        threshold = youden_threshold([0, 1, 0, 1], [1.0, 2.0, 3.0, 4.0])
    assert threshold == 1.5


def test_unknown_options_are_errors():
    with pytest.raises(DlrnError, match="thresholds"):
        youden_threshold([0, 1], [0.1, 0.2], thresholds="closest")
    with pytest.raises(DlrnError, match="ci_method"):
        cutoff_metrics([0, 1], [0.1, 0.2], 0.15, ci_method="wald")


def test_midpoint_cutoff_lies_between_two_training_scores_even_when_saturated():
    # An overconfident MLP (lbfgs) puts out-of-fold probabilities near 0; its Youden
    # cut-off is then tiny (the demo study's 1.93e-05, printed "1.93e-05"), never above
    # the largest score: pROC's thresholds are -inf, midpoints and +inf only.
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 30)
    score = np.concatenate([10.0 ** rng.uniform(-12, -4, 30), 10.0 ** rng.uniform(-6, 0, 30)])
    threshold = youden_threshold(y, score)
    below, above = score[score < threshold].max(), score[score >= threshold].min()
    assert below < threshold < above <= score.max() <= 1
    assert threshold == (below + above) / 2
    assert youden_threshold([0, 1, 0, 1], [1.73e-05, 2.13e-05, 1.0e-09, 1.0]) == (
        (1.73e-05 + 2.13e-05) / 2)


@pytest.mark.parametrize("score", [[0.3, 0.3, 0.3, 0.3], [0.9, 0.1, 0.8, 0.2]],
                         ids=["constant", "inverted"])
def test_no_separating_cutoff_is_minus_infinity_with_a_note(score):
    with pytest.warns(UserWarning, match="no cut-off separates"):
        threshold = youden_threshold([0, 1, 0, 1], score)
    assert threshold == -np.inf
    assert infinite_cutoff_note(threshold).startswith(
        "Youden cut-off \u2212\u221e: no threshold separates the training cases better than "
        "calling every case positive")
    assert "every case is called negative" in infinite_cutoff_note(np.inf)
    assert infinite_cutoff_note(0.5) == ""
