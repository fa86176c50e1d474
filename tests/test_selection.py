"""Selection transformers on data whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from dlrn.errors import DlrnError
from dlrn.selection import (
    CorrelationFilter,
    GreedyCorrelationDeletion,
    LassoSelector,
    ReproducibilityFilter,
    SelectionWarning,
    UnivariateFilter,
    ZScore,
    intraclass_correlation,
    make_selection_pipeline,
    pipeline_radscore,
    plot_lasso_coefficients,
    plot_lasso_cv,
    plot_lasso_path,
    removed_features,
    repeat_icc,
    selection_funnel,
)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)


def _judges() -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    ids = [f"t{i}" for i in range(6)]
    frames = [pd.DataFrame({"feature": SHROUT_FLEISS[:, j]}, index=ids) for j in range(4)]
    return frames[0], frames[1:]


@pytest.mark.parametrize(
    ("form", "expected"),
    # Shrout & Fleiss (1979) report .17, .29, .71; pingouin's docs (same data) 0.166, 0.290,
    # 0.715; the exact values follow from the ANOVA mean squares (test below).
    [("ICC(1,1)", 0.166), ("ICC(2,1)", 0.290), ("ICC(3,1)", 0.715)],
)
def test_icc_matches_shrout_fleiss_example(form: str, expected: float) -> None:
    first, others = _judges()
    icc = intraclass_correlation(first, others, form=form)["feature"]
    assert icc == pytest.approx(expected, abs=5e-4)


def test_icc_two_readings_equals_textbook_anova_formula() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=40)
    a = truth + rng.normal(scale=0.3, size=40)
    b = truth + 0.5 + rng.normal(scale=0.3, size=40)  # reader 2 reads systematically higher
    ratings = np.column_stack([a, b])
    n, k = ratings.shape
    grand = ratings.mean()
    msr = k * ((ratings.mean(1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((ratings.mean(0) - grand) ** 2).sum() / (k - 1)
    sse = ((ratings - ratings.mean(1, keepdims=True) - ratings.mean(0) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    icc3 = (msr - mse) / (msr + (k - 1) * mse)
    ids = [f"c{i}" for i in range(n)]
    first, second = pd.DataFrame({"f": a}, index=ids), pd.DataFrame({"f": b}, index=ids)
    assert intraclass_correlation(first, second)["f"] == pytest.approx(icc2, rel=1e-12)
    assert intraclass_correlation(first, second, form="ICC(3,1)")["f"] == pytest.approx(icc3)
    assert icc3 > icc2  # the systematic offset only costs absolute agreement


def test_repeat_icc_and_filter_keep_features_passing_every_repeat() -> None:
    rng = np.random.default_rng(2)
    n = 60
    ids = [f"c{i}" for i in range(n)]
    first = pd.DataFrame(rng.normal(size=(n, 3)), index=ids, columns=["stable", "shaky", "noise"])

    def reread(noise_shaky: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "stable": first["stable"] + rng.normal(scale=0.05, size=n),
                "shaky": first["shaky"] + rng.normal(scale=noise_shaky, size=n),
                "noise": rng.normal(size=n),
            },
            index=ids,
        )[:30]

    icc = repeat_icc(first, {"intra": reread(0.05), "inter": reread(1.0)})
    assert list(icc.columns) == ["intra", "inter"]
    selector = ReproducibilityFilter(icc, threshold=0.85).fit(first)
    assert selector.get_feature_names_out().tolist() == ["stable"]
    assert set(selector.removed_["feature"]) == {"shaky", "noise"}
    assert (selector.removed_["statistic"] == "icc_min").all()


def test_icc_names_missing_cases_and_features() -> None:
    first = pd.DataFrame({"f": [1.0, 2.0]}, index=["a", "b"])
    with pytest.raises(DlrnError, match="not in the first reading"):
        intraclass_correlation(first, pd.DataFrame({"f": [1.0, 2.0]}, index=["a", "z"]))
    with pytest.raises(DlrnError, match="missing for case"):
        intraclass_correlation(first, pd.DataFrame({"f": [1.0, np.nan]}, index=["a", "b"]))
    with pytest.raises(DlrnError, match="ICC form"):
        intraclass_correlation(first, first, form="ICC(9,9)")


def test_zscore_uses_training_statistics_and_drops_constants() -> None:
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "const": 5.0})
    scaler = ZScore().fit(train)
    out = scaler.transform(train)
    assert out.shape == (4, 1) and np.allclose(out.mean(0), 0) and np.allclose(out.std(0), 1)
    assert scaler.transform(pd.DataFrame({"a": [2.5], "const": [9.0]}))[0, 0] == pytest.approx(0)
    assert scaler.removed_["feature"].tolist() == ["const"]


def _planted(n: int = 200, noise: int = 30, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = pd.DataFrame(rng.normal(size=(n, noise)), columns=[f"noise{i}" for i in range(noise)])
    X["strong"] = rng.normal(size=n) + 1.5 * y
    X["skewed"] = np.exp(rng.normal(size=n) + 1.0 * y)  # log-normal: needs Mann-Whitney
    return X, y


def test_univariate_filter_finds_planted_features_with_the_right_test() -> None:
    X, y = _planted()
    selector = UnivariateFilter(p_threshold=0.001, test="auto").fit(X, y)
    assert {"strong", "skewed"} <= set(selector.get_feature_names_out())
    assert selector.tests_.loc["skewed", "test"] == "Mann-Whitney"
    assert selector.tests_.loc["strong", "test"] == "t-test"
    from scipy import stats

    expected = stats.ttest_ind(X["strong"][y == 0], X["strong"][y == 1]).pvalue
    assert selector.tests_.loc["strong", "p_value"] == pytest.approx(expected, rel=1e-12)


def test_guard_keeps_best_feature_and_warns() -> None:
    X, y = _planted()
    X = X.drop(columns=["skewed"])
    with pytest.warns(SelectionWarning, match="keeping the best one"):
        selector = UnivariateFilter(p_threshold=1e-300).fit(X, y)
    assert selector.get_feature_names_out().tolist() == ["strong"]


def test_correlation_filter_keeps_the_more_relevant_of_a_pair() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    base = rng.normal(size=300) + y
    X = pd.DataFrame(
        {
            "copy": base + rng.normal(scale=0.2, size=300),  # noisier copy: less relevant
            "original": base,
            "other": rng.normal(size=300),
        }
    )
    selector = CorrelationFilter(0.9).fit(X, y)
    assert selector.get_feature_names_out().tolist() == ["original", "other"]
    (reason,) = selector.removed_["reason"]
    assert "with kept original" in reason


def test_greedy_deletion_drops_the_hub_while_pairwise_keeps_it() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    hub = (x1 + x2) / np.sqrt(2)  # |r| = 0.71 with x1 and with x2; x1, x2 uncorrelated
    y = (hub + rng.normal(scale=0.5, size=n) > 0).astype(int)
    X = pd.DataFrame({"x1": x1, "hub": hub, "x2": x2})
    greedy = GreedyCorrelationDeletion(0.6).fit(X, y)
    assert greedy.get_feature_names_out().tolist() == ["x1", "x2"]
    assert greedy.removed_.loc[0, "value"] == 2
    pairwise = CorrelationFilter(0.6).fit(X, y)
    assert pairwise.get_feature_names_out().tolist() == ["hub"]


def test_lasso_selects_planted_features_and_records_path() -> None:
    X, y = _planted(n=300)
    lasso = LassoSelector(seed=0, lambda_rule="min").fit(ZScore().fit_transform(X), y)
    selected = set(lasso.get_feature_names_out())
    assert {"x30", "x31"} <= selected  # arrays in: default names x<i>; strong and skewed
    assert len(selected) < 20
    assert lasso.coef_path_.shape == (32, len(lasso.alphas_))
    assert lasso.alpha_ == lasso.alphas_[np.argmin(lasso.cv_error_mean_)]
    assert lasso.alpha_1se_ >= lasso.alpha_
    table = lasso.path_table()
    assert table["chosen"].sum() == 1 and "x30" in table.columns


def test_lasso_radscore_is_the_linear_predictor_and_logistic_option_works() -> None:
    X, y = _planted(n=300)
    pipeline = make_selection_pipeline(p_threshold=None, seed=0).fit(X, y)
    lasso = pipeline[-1]
    z = pipeline[:-1].transform(X)
    expected = lasso.intercept_ + z.to_numpy() @ lasso.coef_
    assert np.allclose(pipeline_radscore(pipeline, X), expected)
    logistic = LassoSelector(method="logistic", n_alphas=15, seed=0).fit(z, y)
    assert {"strong", "skewed"} <= set(logistic.get_feature_names_out())
    assert logistic.cv_error_name_ == "log loss"


def test_pipeline_is_cloneable_deterministic_and_reports_a_funnel(tmp_path) -> None:
    X, y = _planted(n=200, noise=60)
    X["strong_copy"] = X["strong"] + 0.01
    first = clone(make_selection_pipeline(seed=3)).fit(X, y)
    second = make_selection_pipeline(seed=3).fit(X, y)
    assert first.get_feature_names_out().tolist() == second.get_feature_names_out().tolist()
    funnel = selection_funnel(first)
    assert funnel["step"].tolist() == ["zscore", "univariate", "correlation", "greedy", "lasso"]
    assert funnel["features_in"].iloc[0] == 63
    assert (funnel["features_in"] - funnel["features_out"] == funnel["removed"]).all()
    assert (funnel["features_out"].iloc[:-1].to_numpy() == funnel["features_in"].iloc[1:]).all()
    removed = removed_features(first)
    assert len(removed) == 63 - funnel["features_out"].iloc[-1]
    assert len({"strong", "strong_copy"} & set(removed["feature"])) == 1  # planted duplicate
    written = plot_lasso_path(first[-1], tmp_path / "path")
    written += plot_lasso_cv(first[-1], tmp_path / "cv")
    written += plot_lasso_coefficients(first[-1], tmp_path / "coef")
    assert all(path.stat().st_size > 1000 for path in written) and len(written) == 6


def test_lasso_guard_keeps_one_feature_when_nothing_can_enter() -> None:
    X = np.ones((40, 3))  # no feature can ever enter the path
    y = np.array([0, 1] * 20)
    with pytest.warns(SelectionWarning, match="LassoSelector would keep no feature"):
        lasso = LassoSelector(seed=0).fit(X, y)
    assert lasso.support_.sum() == 1
    assert np.allclose(lasso.radscore(X), y.mean())  # intercept-only linear predictor
