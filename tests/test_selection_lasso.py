"""The glmnet-style LASSO, the nested pipeline and the selection settings (issue 10 items 5-6)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LassoCV

from dlrn.errors import ConfigError
from dlrn.selection import (
    LassoSelector,
    SelectionSettings,
    SelectionWarning,
    UnivariateFilter,
    ZScore,
    glmnet_stop,
    make_selection_pipeline,
)


def _sparse_signal(n: int = 200, p: int = 40, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three informative columns among noise; logistic labels."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{j}" for j in range(p)])
    logit = 1.2 * X["f0"] - 1.0 * X["f1"] + 0.8 * X["f2"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _noise(n: int, p: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"n{j}" for j in range(p)])
    return X, rng.integers(0, 2, n)


def test_zscore_drops_a_constant_stored_with_rounding_noise() -> None:
    X = pd.DataFrame({"signal": np.arange(7.0), "tenth": np.full(7, 0.1)})
    assert 0 < X["tenth"].to_numpy().std() < 1e-15  # float rounding: not exactly 0
    scaler = ZScore().fit(X)
    assert scaler.get_feature_names_out().tolist() == ["signal"]
    assert np.abs(scaler.transform(X)).max() < 2


def test_univariate_filter_defaults_to_the_t_test_the_methods_name() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    X = pd.DataFrame({"skewed": np.exp(rng.normal(size=100) + y)})
    tests = UnivariateFilter().fit(X, y).tests_
    assert tests.loc["skewed", "test"] == "t-test"
    assert UnivariateFilter(test="auto").fit(X, y).tests_.loc["skewed", "test"] == "Mann-Whitney"


def test_lasso_path_matches_lassocv_grid_folds_and_choice() -> None:
    X, y = _sparse_signal()
    z = ZScore().fit_transform(X, y)
    lasso = LassoSelector(seed=0, lambda_rule="min").fit(z, y)
    reference = LassoCV(alphas=100, cv=lasso.cv_folds(y), max_iter=100_000, tol=1e-10)
    reference.fit(z, y.astype(float))
    kept = len(lasso.alphas_)
    assert np.allclose(lasso.alphas_, reference.alphas_[:kept], rtol=1e-12)
    reached = lasso.fold_n_lambdas_.min()  # beyond, a stopped fold carries its last fit on
    assert np.allclose(
        lasso.cv_error_mean_[:reached], reference.mse_path_[:reached].mean(axis=1), atol=1e-8
    )
    assert lasso.alpha_min_ == pytest.approx(reference.alpha_, rel=1e-12)
    assert np.allclose(lasso.coef_, reference.coef_, atol=1e-6)
    assert set(np.flatnonzero(lasso.coef_)) == set(np.flatnonzero(reference.coef_))


def test_glmnet_stop_rules() -> None:
    rising = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 0.9995, 0.9999])
    assert glmnet_stop(rising, np.arange(7), 100, None)[0] == 6  # saturation kept, then stop
    flat = np.array([0.0, 0.5, 0.6, 0.65, 0.650001, 0.650002])
    assert glmnet_stop(flat, np.arange(6), 100, None)[0] == 5  # not before the 5th lambda
    assert glmnet_stop(rising, np.arange(7), 3, None)[0] == 4  # as many non-zero as cases
    assert glmnet_stop(rising, np.arange(7), 100, 2)[0] == 3  # dfmax: 3 non-zero not kept
    assert glmnet_stop(rising, np.arange(7) + 5, 100, 2)[0] == 1  # a fold keeps its first


def test_max_features_caps_the_path_like_glmnet_dfmax() -> None:
    X, y = _sparse_signal()
    pipeline = make_selection_pipeline(p_threshold=None, max_features=2).fit(X, y)
    lasso = pipeline[-1]
    assert lasso.support_.sum() <= 2
    assert (lasso.coef_path_ != 0).sum(axis=0).max() <= 2
    assert "max_features" in lasso.path_stop_
    uncapped = make_selection_pipeline(p_threshold=None).fit(X, y)[-1]
    assert uncapped.support_.sum() > 2


def test_lambda_min_without_features_is_reported_not_hidden() -> None:
    X, y = _noise(60, 8, seed=0)
    with pytest.warns(SelectionWarning, match="keeps no feature at lambda.min"):
        lasso = LassoSelector(seed=0, lambda_rule="min").fit(X, y)
    assert lasso.empty_at_rule_
    assert not (lasso.coef_path_[:, lasso.alphas_ == lasso.alpha_min_] != 0).any()
    assert lasso.alpha_ < lasso.alpha_min_ and "lambda.min keeps none" in lasso.lambda_used_
    used = lasso.coef_path_[:, lasso.alphas_ == lasso.alpha_].ravel()
    assert np.array_equal(lasso.coef_, used) and (used != 0).any()
    assert lasso.removed_["reason"].str.contains("first lambda with a feature").all()


def test_one_se_rule_is_glmnets_and_reported() -> None:
    X, y = _sparse_signal(seed=1)
    z = ZScore().fit_transform(X, y)
    at_min = LassoSelector(seed=0, lambda_rule="min").fit(z, y)
    at_1se = LassoSelector(seed=0).fit(z, y)
    best = np.argmin(at_1se.cv_error_mean_)
    bound = at_1se.cv_error_mean_[best] + at_1se.cv_error_se_[best]
    assert at_1se.alpha_ == at_1se.alphas_[np.flatnonzero(at_1se.cv_error_mean_ <= bound)[0]]
    assert at_1se.alpha_ == at_1se.alpha_1se_ >= at_min.alpha_ == at_min.alpha_min_
    assert at_1se.lambda_used_ == "lambda.1se" and at_min.lambda_used_ == "lambda.min"
    assert at_1se.support_.sum() <= at_min.support_.sum()
    with pytest.raises(ConfigError, match="lasso_lambda"):
        LassoSelector(lambda_rule="best").fit(z, y)


def test_nested_lasso_does_not_reward_noise_the_univariate_filter_let_through() -> None:
    """Random labels: a filter fitted on all rows makes noise look predictive to LassoCV."""
    X, y = _noise(120, 300, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SelectionWarning)
        plain = make_selection_pipeline(nested=False).fit(X, y)[-1]
        nested = make_selection_pipeline().fit(X, y)[-1]
    assert nested.nested_ and not plain.nested_
    assert plain.support_.sum() >= 5
    assert nested.empty_at_rule_ and nested.support_.sum() <= 3


def test_lasso_folds_are_grouped_by_patient() -> None:
    X, y = _sparse_signal(n=160)
    patients = np.repeat(np.arange(80), 2)
    y = np.repeat(y[::2], 2)  # both images of a patient share the label
    folds = LassoSelector(seed=0).cv_folds(y, patients)
    for train, validation in folds:
        assert not set(patients[train]) & set(patients[validation])
    grouped = make_selection_pipeline(p_threshold=None).fit(X, y, groups=patients)[-1]
    ungrouped = make_selection_pipeline(p_threshold=None).fit(X, y)[-1]
    assert not np.array_equal(grouped.cv_errors_, ungrouped.cv_errors_)


def test_selection_settings_build_the_pipeline_and_reject_unknown_knobs() -> None:
    settings = SelectionSettings(
        lasso_lambda="1se", max_features=3, univariate_test="mannwhitney", lasso_folds=5
    )
    pipeline = make_selection_pipeline(settings, seed=4)
    lasso = pipeline.named_steps["lasso"]
    assert (lasso.lambda_rule, lasso.max_features, lasso.cv, lasso.seed) == ("1se", 3, 5, 4)
    assert pipeline.named_steps["univariate"].test == "mannwhitney"
    from_mapping = make_selection_pipeline({"correlation_threshold": None, "lasso": None})
    assert [name for name, _ in from_mapping.steps] == ["zscore", "univariate", "greedy"]
    with pytest.raises(ConfigError, match="unknown selection setting"):
        make_selection_pipeline(lasso_lamda="1se")
