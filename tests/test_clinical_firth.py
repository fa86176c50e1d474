"""Firth's penalised logistic regression against R's logistf (tests/data/firth), and in use."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.special import expit

from dlrn.clinical import fit_firth, logistic_analysis, regression_methods_text
from dlrn.clinical.firth import firth_interval, firth_lrt_p

FIRTH = Path(__file__).parent / "data" / "firth"
EXPECTED = json.loads((FIRTH / "expected.json").read_text())
LOGISTF = 1e-6  # logistf's printed values have 7-9 significant digits


def _example(name: str) -> tuple[pd.Series, pd.DataFrame]:
    cases = pd.read_csv(FIRTH / f"{name}.csv")
    outcome = EXPECTED[name]["outcome"]
    design = cases.drop(columns=outcome)
    design.insert(0, "(Intercept)", 1.0)
    return cases[outcome], design


@pytest.mark.parametrize("name", ["sex2", "endometrial"])
def test_coefficients_and_profile_intervals_match_logistf(name):
    y, design = _example(name)
    reference = EXPECTED[name]
    assert list(design.columns) == reference["terms"]
    fit = fit_firth(y, design)
    np.testing.assert_allclose(fit.params, reference["coef"], rtol=LOGISTF)
    intervals = np.array([firth_interval(y, design, fit, term) for term in design.columns])
    np.testing.assert_allclose(intervals[:, 0], reference["ci_lower"], rtol=LOGISTF)
    np.testing.assert_allclose(intervals[:, 1], reference["ci_upper"], rtol=LOGISTF)


def _penalised_loglik(beta: np.ndarray, y: np.ndarray, X: np.ndarray) -> float:
    risk = expit(X @ beta)
    fisher = X.T @ (X * (risk * (1 - risk))[:, None])
    return float(np.sum(y * np.log(risk) + (1 - y) * np.log(1 - risk))
                 + 0.5 * np.linalg.slogdet(fisher)[1])


def test_likelihood_ratio_p_is_that_of_the_restricted_penalised_maximum():
    # an independent optimiser (BFGS on l*) for the model with oc held at 0
    y, design = _example("sex2")
    fit = fit_firth(y, design)
    X, labels = design.to_numpy(float), y.to_numpy(float)
    free = [c != "oc" for c in design.columns]

    def negative(beta_free: np.ndarray) -> float:
        beta = np.zeros(X.shape[1])
        beta[free] = beta_free
        return -_penalised_loglik(beta, labels, X)

    restricted = optimize.minimize(negative, np.zeros(sum(free)), method="BFGS",
                                   options={"gtol": 1e-9})
    expected = stats.chi2.sf(2 * (fit.loglik + restricted.fun), 1)
    np.testing.assert_allclose(firth_lrt_p(y, design, fit, ["oc"]), expected, rtol=1e-5)
    np.testing.assert_allclose(fit.loglik, _penalised_loglik(fit.params.to_numpy(), labels, X))


def test_firth_analysis_tables_show_logistf_values():
    y, design = _example("sex2")
    cases = design.drop(columns="(Intercept)").assign(case=y)
    predictors = EXPECTED["sex2"]["terms"][1:]
    result = logistic_analysis(cases, "case", predictors, regression="firth", p_threshold=1.0)
    table = result.multivariate.set_index("term")
    reference = EXPECTED["sex2"]
    np.testing.assert_allclose(table["beta"], reference["coef"], rtol=LOGISTF)
    np.testing.assert_allclose(table["ci_low"], np.exp(reference["ci_lower"]), rtol=LOGISTF)
    np.testing.assert_allclose(table["ci_high"], np.exp(reference["ci_upper"]), rtol=LOGISTF)
    assert result.regression == "firth" and result.selected == predictors
    assert regression_methods_text(result).startswith(
        "Logistic regression used Firth's penalised likelihood (as R's logistf)")


def _separated() -> pd.DataFrame:
    """80 cases; the 10 with calcification 'present' are all malignant (quasi-complete)."""
    rng = np.random.default_rng(7)
    y = np.r_[np.ones(10, int), rng.permutation(np.repeat([0, 1], 35))]
    level = np.r_[["present"] * 10, ["absent"] * 70]
    age = 50 + 10 * rng.standard_normal(y.size) + 3 * y
    return pd.DataFrame({"y": y, "calcification": level, "age": age})


def test_firth_gives_finite_estimates_under_separation_without_a_note():
    cases = _separated()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logistic_analysis(cases, "y", ["calcification", "age"],
                                   categorical=["calcification"], regression="firth",
                                   p_threshold=1.0)
    row = result.univariate.set_index("term").loc["calcification[present]"]
    assert 1 < row["odds_ratio"] < 1e3 and np.isfinite(row["ci_high"])
    assert row["p_value"] < 0.01 and row["note"] == ""
    standard = logistic_analysis(cases, "y", ["calcification"], categorical=["calcification"],
                                 regression="standard")
    note = standard.univariate.iloc[0]["note"]
    assert "evaluation.clinical_regression: auto (the default) or firth" in note


def test_a_term_held_by_one_case_still_reaches_the_penalised_maximum():
    # logistf-style Newton steps oscillate here; the fit must still find the maximum
    rng = np.random.default_rng(0)
    y = rng.permutation(np.r_[np.ones(40), np.zeros(100)])
    design = pd.DataFrame({"(Intercept)": 1.0, "a": rng.integers(0, 2, 140).astype(float),
                           "single": 0.0})
    design.loc[np.flatnonzero(y == 0)[0], "single"] = 1.0
    fit = fit_firth(y, design)
    X = design.to_numpy(float)
    best = optimize.minimize(lambda b: -_penalised_loglik(b, y, X), np.zeros(3),
                             method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(fit.params, best.x, atol=1e-5)
    assert fit.loglik >= -best.fun - 1e-9
