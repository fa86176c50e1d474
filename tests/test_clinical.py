"""Baseline table and logistic regression against R (../shared/stats-refs)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _stats_refs import ITERATIVE, assert_close, data, expected

from dlrn.clinical import baseline_table, logistic_analysis
from dlrn.errors import DlrnError

VARIABLES = ["age", "sex", "smoking", "drinking", "diameter", "shape", "margin",
             "echogenicity", "cystic", "calcification", "pae", "dlr_score"]
CONTINUOUS = ["age", "diameter", "dlr_score"]
BINARY = ["y", "sex", "smoking", "drinking", "shape", "margin", "echogenicity", "cystic",
          "calcification", "pae"]
# dlrn.clinical.fit_glm is R's glm.fit step for step (same IRLS, same stopping rule, SEs from
# the weights of the last least-squares step), so its SEs equal glm's to rounding.
GLM_SE = 1e-9


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    table = baseline_table(data("clinical"), "split", CONTINUOUS + BINARY, categorical=BINARY,
                           group_order=["train", "test"])
    return table[table["test"].notna()].set_index("variable")


def test_baseline_continuous_tests_match_r(baseline):
    reference = expected("baseline_tests")["continuous"]
    for name in CONTINUOUS:
        ref, row = reference[name], baseline.loc[name]
        assert row["test"] == ("Student t-test" if ref["chosen_test"] == "student_t"
                               else "Mann-Whitney U")
        statistic = (ref["student_t"]["t"] if ref["normal_both_groups"]
                     else ref["mann_whitney"]["W_U_train"])
        assert_close([row["statistic"], row["p_value"]], [statistic, ref["chosen_p"]])
        assert_close([row["shapiro_p_1"], row["shapiro_p_2"]],
                     [ref["shapiro_train"]["p"], ref["shapiro_test"]["p"]], rel=ITERATIVE)


def test_baseline_descriptives_match_r(baseline):
    age = expected("baseline_tests")["continuous"]["age"]["train"]
    assert baseline.loc["age", "train (n=280)"] == f"{age['mean']:.2f} ± {age['sd']:.2f}"
    diameter = expected("baseline_tests")["continuous"]["diameter"]["test"]
    assert baseline.loc["diameter", "test (n=120)"] == (
        f"{diameter['median']:.2f} ({diameter['q1']:.2f}, {diameter['q3']:.2f})")


def test_baseline_binary_tests_match_r(baseline):
    reference = expected("baseline_tests")["binary"]
    for name in BINARY:
        ref, row = reference[name], baseline.loc[name]
        assert row["test"] == "chi-square (Yates)"  # every min expected count is >= 5
        assert_close([row["statistic"], row["p_value"], row["min_expected"]],
                     [ref["chisq_yates"]["X2"], ref["chisq_yates"]["p"], ref["min_expected"]])


def test_baseline_counts_and_percentages():
    table = baseline_table(data("clinical"), "split", ["sex"], categorical=["sex"],
                           group_order=["train", "test"])
    levels = table[table["level"] == "1"].iloc[0]
    assert levels["train (n=280)"] == "140 (50.0%)" and levels["test (n=120)"] == "65 (54.2%)"


def test_small_expected_counts_use_fisher_and_multilevel_categories_work():
    cases = pd.DataFrame({
        "group": ["a"] * 12 + ["b"] * 12,
        "rare": [1, 0] + [0] * 10 + [1, 1, 1] + [0] * 9,
        "birads": ["3", "4", "5"] * 8,
    })
    table = baseline_table(cases, "group", ["rare", "birads"], categorical=["rare", "birads"])
    header = table[table["level"] == ""].set_index("variable")
    assert header.loc["rare", "test"] == "Fisher exact"
    from scipy import stats
    counts = pd.crosstab(cases["group"], cases["rare"]).to_numpy()
    assert_close(header.loc["rare", "p_value"], stats.fisher_exact(counts).pvalue)
    assert (table["variable"] == "birads").sum() == 4  # header + 3 levels


def test_baseline_errors_name_the_problem():
    cases = pd.DataFrame({"group": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(DlrnError, match="exactly two values"):
        baseline_table(cases, "group", ["x"])
    cases = pd.DataFrame({"group": ["a", None] * 3, "x": [1.0, 2.0, 3.0, 4, 5, 6]},
                         index=[f"c{i}" for i in range(6)])
    with pytest.raises(DlrnError, match=r"'group'.*c1"):
        baseline_table(cases, "group", ["x"])
    cases = pd.DataFrame({"group": ["a", "b"] * 3, "x": [1.0, np.nan] * 3})
    with pytest.raises(DlrnError, match=r"'x' is missing for all 3 case.*group 'b'"):
        baseline_table(cases, "group", ["x"])
    with pytest.raises(DlrnError, match=r"'x' is missing for all 3 case.*group 'b'"):
        baseline_table(cases, "group", ["x"], categorical=["x"])


def _with_blanks(cases: pd.DataFrame, blanks: dict[str, list[int]]) -> pd.DataFrame:
    blanked = cases.copy()
    for column, rows in blanks.items():
        blanked.loc[rows, column] = np.nan
    return blanked


def test_baseline_missing_values_are_counted_and_left_out_of_tests():
    cases = data("clinical")
    train = cases.index[cases["split"] == "train"]
    test = cases.index[cases["split"] == "test"]
    blanks = {"age": [*train[:7], *test[:3]], "diameter": list(test[:4]),
              "sex": [*train[10:15], *test[5:7]]}
    table = baseline_table(_with_blanks(cases, blanks), "split", ["age", "diameter", "sex"],
                           categorical=["sex"], group_order=["train", "test"],
                           missing_rows=True)
    first = table[table["test"].notna()].set_index("variable")
    assert first.loc["age", ["train missing", "test missing"]].tolist() == [7, 3]
    assert first.loc["diameter", ["train missing", "test missing"]].tolist() == [0, 4]
    assert first.loc["sex", ["train missing", "test missing"]].tolist() == [5, 2]
    for name, rows in blanks.items():  # = the table of the cases that have the value
        alone = baseline_table(cases.drop(index=rows), "split", [name],
                               categorical=["sex"], group_order=["train", "test"])
        mine = table[(table["variable"] == name) & (table["level"] != "missing, n (%)")]
        assert mine["level"].tolist() == alone["level"].tolist()
        assert_close(mine["p_value"].dropna(), alone["p_value"].dropna())
        assert mine.iloc[:, 2:4].to_numpy().tolist() == alone.iloc[:, 2:4].to_numpy().tolist()
    missing_rows = table[table["level"] == "missing, n (%)"].set_index("variable")
    assert missing_rows.loc["age", ["train (n=280)", "test (n=120)"]].tolist() == [
        "7 (2.5%)", "3 (2.5%)"]
    assert missing_rows.loc["diameter", "train (n=280)"] == "0 (0.0%)"
    assert "missing, n (%)" not in baseline_table(cases, "split", ["age"])["level"].tolist()
    levels = table[(table["variable"] == "sex") & (table["level"] == "1")].iloc[0]
    n_train_male = int((cases.drop(index=blanks["sex"]).loc[train.difference(blanks["sex"]),
                                                          "sex"] == 1).sum())
    assert levels["train (n=280)"] == f"{n_train_male} ({100 * n_train_male / 275:.1f}%)"


def test_baseline_complete_data_has_zero_missing_and_no_notes(baseline):
    assert (baseline[["train missing", "test missing"]] == 0).all().all()
    assert (baseline["note"] == "").all()


def test_baseline_tiny_group_is_tested_non_parametrically_with_a_note():
    cases = pd.DataFrame({"group": ["a"] * 6 + ["b"] * 4,
                          "x": [1.0, 2, 3, 4, 5, 6, 7, np.nan, np.nan, 8]})
    row = baseline_table(cases, "group", ["x"]).iloc[0]
    assert row["test"] == "Mann-Whitney U" and row["b missing"] == 2
    assert "fewer than 3 values" in row["note"]
    from scipy import stats
    expected_p = stats.mannwhitneyu([1, 2, 3, 4, 5, 6], [7, 8], method="asymptotic").pvalue
    assert_close(row["p_value"], expected_p)


@pytest.fixture(scope="module")
def analysis():
    return logistic_analysis(data("clinical"), "y", VARIABLES, profile_ci=True)


def test_univariate_logistic_matches_r(analysis):
    reference = expected("logistic_nomogram")["univariate"]
    table = analysis.univariate.set_index("term")
    for name in VARIABLES:
        ref, row = reference[name], table.loc[name]
        assert_close([row["beta"], row["odds_ratio"]], [ref["beta"], ref["OR"]], rel=ITERATIVE)
        assert_close([row["se"], row["p_value"], row["ci_low"], row["ci_high"]],
                     [ref["se"], ref["p_wald"], ref["OR_wald_lower"], ref["OR_wald_upper"]],
                     rel=GLM_SE)
        assert_close(row["p_lrt"], ref["p_lrt"], rel=ITERATIVE)
        # R's confint interpolates a spline through a profile grid; ours is the exact root
        assert_close([row["profile_ci_low"], row["profile_ci_high"]],
                     [ref["OR_profile_lower"], ref["OR_profile_upper"]], rel=1e-4)


def test_selection_and_multivariate_match_r(analysis):
    reference = expected("logistic_nomogram")
    assert analysis.selected == reference["selected_variables"]
    table = analysis.multivariate.set_index("term")
    for term, ref in reference["multivariable"].items():
        row = table.loc[term]
        assert_close([row["beta"], row["odds_ratio"]], [ref["beta"], ref["OR"]], rel=ITERATIVE)
        assert_close([row["ci_low"], row["ci_high"], row["p_value"]],
                     [ref["OR_wald_lower"], ref["OR_wald_upper"], ref["p_wald"]], rel=GLM_SE)
        assert_close(row["se"], ref["se"], rel=GLM_SE)


def test_threshold_is_configurable(analysis):
    strict = logistic_analysis(data("clinical"), "y", ["pae", "dlr_score"], p_threshold=0.01)
    assert strict.selected == ["dlr_score"]


def test_the_default_reference_is_the_most_frequent_level():
    cases = data("clinical").assign(
        shape=lambda t: t["shape"].map({0: "regular", 1: "irregular"}))
    usual = cases["shape"].value_counts().idxmax()
    result = logistic_analysis(cases, "y", ["shape"], categorical=["shape"])
    assert result.reference_levels == {"shape": usual}
    row = result.univariate.iloc[0]
    assert row["reference"] == f"shape = {usual}"


def test_categorical_predictor_with_stated_reference():
    cases = data("clinical").assign(
        shape=lambda t: t["shape"].map({0: "regular", 1: "irregular"}))
    result = logistic_analysis(cases, "y", ["shape"], categorical=["shape"],
                               reference={"shape": "regular"})
    assert result.reference_levels == {"shape": "regular"}
    row = result.univariate.set_index("term").loc["shape[irregular]"]
    assert_close(row["beta"], expected("logistic_nomogram")["univariate"]["shape"]["beta"],
                 rel=ITERATIVE)


def test_constant_predictor_is_an_error_and_complete_separation_a_noted_row():
    cases = pd.DataFrame({"y": [0, 1] * 10, "flat": 1.0, "leak": [0.0, 1.0] * 10})
    with pytest.raises(DlrnError, match="'flat' is constant"):
        logistic_analysis(cases, "y", ["flat"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a note in the table, not a Python warning
        result = logistic_analysis(cases, "y", ["leak"], regression="standard")
    row = result.univariate.iloc[0]
    assert row["note"].startswith("leak: (quasi-)complete separation (all 10 cases with leak = "
                                  "0 are negative (0); all 10 cases with leak = 1 are positive "
                                  "(1)); the maximum-likelihood odds ratio is not finite")
    assert "evaluation.clinical_regression: auto (the default) or firth" in row["note"]
    assert row["p_value"] > 0.9 and row["method"] == "ML"  # R's glm: Wald p near 1 too
    assert row["p_variable"] == row["p_lrt"] < 1e-6  # the likelihood-ratio p decides
    auto = logistic_analysis(cases, "y", ["leak"]).univariate.iloc[0]
    assert auto["method"] == "Firth" and np.isfinite(auto["ci_high"])
    assert "fitted by Firth's penalised regression instead" in auto["note"]


def _calcified(reference_level_one_class: bool = False) -> pd.DataFrame:
    """80 cases; the 10 with calcification 'present' are all malignant (quasi-complete)."""
    rng = np.random.default_rng(7)
    y = np.r_[np.ones(10, int), rng.permutation(np.repeat([0, 1], 35))]
    level = np.r_[["present"] * 10, ["absent"] * 70].astype(object)
    if reference_level_one_class:  # 'absent' all benign, the other levels mixed
        level = np.where(y == 0, "absent", rng.choice(["present", "coarse"], y.size))
        level[np.flatnonzero(y == 0)[:6]] = "coarse"
    age = 50 + 10 * rng.standard_normal(y.size) + 3 * y
    return pd.DataFrame({"y": y, "calcification": level, "age": age},
                        index=[f"case{i}" for i in range(y.size)])


def test_quasi_complete_separation_is_noted_in_univariate_and_multivariate_rows():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logistic_analysis(_calcified(), "y", ["calcification", "age"],
                                   categorical=["calcification"], p_threshold=1.0,
                                   profile_ci=True, regression="standard")
    assert [n.split(":")[0] for n in result.notes] == ["univariate model of calcification",
                                                       "multivariate model"]
    for table in (result.univariate, result.multivariate):
        rows = table.set_index("term")
        flagged = rows.loc["calcification[present]"]
        assert flagged["odds_ratio"] > 1e6 and flagged["ci_high"] == np.inf  # as R's glm
        assert flagged["reference"] == "calcification = absent"
        assert flagged["note"].startswith(
            "calcification: (quasi-)complete separation (all 10 cases with calcification = "
            "present are positive (1)); the maximum-likelihood odds ratio is not finite")
        assert flagged["note"].endswith("; profile CI not computed")
        assert np.isnan(flagged["profile_ci_low"]) and rows.loc["age", "note"] == ""
        assert np.isfinite(rows.loc["age", ["profile_ci_low", "profile_ci_high"]]).all()
    univariate = result.univariate.set_index("term").loc["calcification[present]"]
    assert univariate["p_variable"] == univariate["p_lrt"] < 1e-3 < univariate["p_value"]


def test_auto_fits_firth_only_where_the_glm_separates():
    result = logistic_analysis(_calcified(), "y", ["calcification", "age"],
                               categorical=["calcification"], p_threshold=1.0)
    methods = result.variables.set_index("variable")["method"]
    assert methods.to_dict() == {"calcification": "Firth", "age": "ML"}
    assert (result.multivariate["method"] == "Firth").all()
    firth = logistic_analysis(_calcified(), "y", ["calcification", "age"],
                              categorical=["calcification"], p_threshold=1.0,
                              regression="firth")
    pd.testing.assert_frame_equal(result.multivariate.drop(columns="note"),
                                  firth.multivariate.drop(columns="note"))
    assert result.notes[1].startswith("multivariate model: calcification: (quasi-)complete "
                                      "separation (all 10 cases with calcification = present")
    assert result.notes[1].endswith("fitted by Firth's penalised regression instead "
                                    "(evaluation.clinical_regression: auto), which keeps the "
                                    "estimate finite")


def test_reference_level_and_numeric_binary_separation_are_named():
    table = logistic_analysis(_calcified(True), "y", ["calcification"],
                              categorical=["calcification"], reference={"calcification": "absent"},
                              regression="standard").univariate
    assert table["note"].str.contains(
        r"all \d+ cases with calcification = absent \(reference level\) are negative \(0\)"
    ).all() and len(table) == 2
    numeric = _calcified().assign(calcification=lambda t: (t["calcification"] == "present")
                                  .astype(int))
    row = logistic_analysis(numeric, "y", ["calcification"],
                            regression="standard").univariate.iloc[0]
    assert "all 10 cases with calcification = 1 are positive (1)" in row["note"]


def test_separation_by_a_continuous_predictor_is_noted():
    # x < 0 benign, x > 0 malignant, both classes at x = 0: quasi-complete separation
    cases = pd.DataFrame({"y": [0, 0, 0, 0, 1, 1, 1, 1], "x": [-3, -2, -1, 0, 0, 1, 2, 3]})
    result = logistic_analysis(cases, "y", ["x"], regression="standard")
    row = result.univariate.iloc[0]
    assert row["note"].startswith("its estimate diverges: it separates the outcome")
    assert result.notes[0] == (
        "univariate model of x: (quasi-)complete separation by x: it predicts the outcome "
        "perfectly for some cases, so its maximum-likelihood estimate is not finite: "
        "evaluation.clinical_regression: auto (the default) or firth fits Firth's penalised "
        "logistic regression (as R's logistf) where this happens")


def test_separation_notes_leave_ordinary_predictors_alone(analysis):
    assert (analysis.univariate["note"] == "").all()
    assert (analysis.multivariate["note"] == "").all()
