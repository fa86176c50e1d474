"""ROC/AUC/DeLong against pROC 1.18 (../shared/stats-refs) and bad-input behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _stats_refs import assert_close, data, expected

from dlrn.errors import DlrnError
from dlrn.evaluation import roc

SCORES = ["s1", "s2", "s3", "s4"]


def _score_cases():
    scores, ties = data("binary_scores"), data("small_ties")
    reference = expected("roc_auc_youden")
    for name in SCORES:
        yield name, scores["y"], scores[name], reference["binary_scores"][name]
    yield "ties", ties["y"], ties["score"], reference["small_ties"]["score"]


@pytest.mark.parametrize("case", list(_score_cases()), ids=lambda c: c[0])
def test_auc_and_delong_ci_match_proc(case):
    _, y, score, reference = case
    result = roc.auc_ci(y, score)
    assert_close(result.auc, reference["auc"])
    assert_close(result.variance, reference["delong_var"])
    assert_close(result.se, reference["delong_se"])
    assert_close([result.ci_low, result.ci_high],
                 [reference["ci95_delong"]["lower"], reference["ci95_delong"]["upper"]])


@pytest.mark.parametrize("case", list(_score_cases()), ids=lambda c: c[0])
def test_roc_curve_lists_every_proc_threshold(case):
    _, y, score, reference = case
    curve = roc.roc_curve(y, score)
    table = pd.DataFrame(reference["roc_curve"])
    assert len(curve) == len(table)
    for column in ["threshold", "sensitivity", "specificity", "tp", "fp", "tn", "fn"]:
        assert_close(curve[column], table[column], what=column)


def test_paired_delong_matches_roc_test():
    scores = data("binary_scores")
    reference = expected("delong_tests")["paired"]
    pairwise = roc.delong_pairwise(scores["y"], scores[SCORES]).set_index(["model_1", "model_2"])
    assert len(pairwise) == len(reference) == 6
    for ref in reference.values():
        row = pairwise.loc[(ref["roc1"], ref["roc2"])]
        assert_close([row.auc_diff, row.se_diff, row.z, row.p_value],
                     [ref["auc_diff"], ref["se_diff"], ref["Z"], ref["p_value"]])
        single = roc.delong_paired(scores["y"], scores[ref["roc1"]], scores[ref["roc2"]])
        assert_close([single.statistic, single.p_value], [ref["Z"], ref["p_value"]])


def test_delong_covariance_matches_placement_covariance():
    scores = data("binary_scores")
    reference = expected("delong_tests")["paired"]["s1_vs_s2"]
    _, covariance = roc.delong_covariance(scores["y"], scores[["s1", "s2"]])
    assert_close(covariance[0, 1], reference["covariance"])


def test_unpaired_delong_is_a_welch_t_test_like_proc():
    scores = data("binary_scores")
    ref = expected("delong_tests")["unpaired"]
    first, second = scores.iloc[:150], scores.iloc[150:]
    test = roc.delong_unpaired(first["y"], first["s1"], second["y"], second["s2"])
    assert_close([test.auc1, test.auc2, test.statistic, test.df, test.p_value],
                 [ref["auc1"], ref["auc2"], ref["statistic_D"], ref["df"], ref["p_value_pROC_t"]])
    assert abs(test.p_value - ref["p_value_normal"]) > 1e-4  # not the normal approximation


def test_delong_matrix_is_symmetric_with_unit_diagonal():
    scores = data("binary_scores")
    matrix = roc.delong_matrix(scores["y"], scores[SCORES])
    assert list(matrix.index) == SCORES
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T)
    assert (np.diag(matrix) == 1).all()
    assert_close(matrix.loc["s2", "s1"], expected("delong_tests")["paired"]["s1_vs_s2"]["p_value"])


def test_bootstrap_ci_is_seeded_stratified_and_close_to_delong():
    scores = data("binary_scores")
    first = roc.auc_ci(scores["y"], scores["s3"], method="bootstrap", n_bootstrap=500, seed=1)
    again = roc.auc_ci(scores["y"], scores["s3"], method="bootstrap", n_bootstrap=500, seed=1)
    delong = roc.auc_ci(scores["y"], scores["s3"])
    assert first == again
    assert first.n_bootstrap == 500 and first.method == "bootstrap"
    assert first.auc == delong.auc
    assert abs(first.ci_low - delong.ci_low) < 0.02 and abs(first.ci_high - delong.ci_high) < 0.02


def test_direction_is_fixed_not_flipped():
    y = np.array([0, 0, 1, 1])
    assert roc.auc_ci(y, [4.0, 3.0, 2.0, 1.0]).auc == 0.0


@pytest.mark.parametrize(
    ("y", "score", "message"),
    [
        ([0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4], "not binary"),
        ([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4], "NaN or infinite"),
        ([0, 1, 0, 1], [0.1, np.inf, 0.3, 0.4], "NaN or infinite"),
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "both classes"),
        ([0, 1, 0], [0.1, 0.2, 0.3, 0.4], "3 labels"),
    ],
)
def test_bad_input_is_a_clear_error(y, score, message):
    with pytest.raises(DlrnError, match=message):
        roc.auc_ci(y, score)


def test_constant_scores_warn_and_give_half():
    with pytest.warns(UserWarning, match="all scores are equal"):
        result = roc.auc_ci([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3])
    assert (result.auc, result.ci_low, result.ci_high) == (0.5, 0.5, 0.5)


def test_identical_models_give_p_one_with_warning():
    y, score = [0, 1, 0, 1, 1], [0.1, 0.7, 0.4, 0.3, 0.9]
    with pytest.warns(UserWarning, match="zero-variance"):
        test = roc.delong_paired(y, score, score)
    assert (test.statistic, test.p_value) == (0.0, 1.0)
