"""Clinical statistics through the encoder: joint tests, token rows, missing rows, ordinal order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from dlrn.clinical import ClinicalEncoder, baseline_table, logistic_analysis

COLUMNS = {"age": "continuous", "tissue": "categorical", "margin": {"type": "multilabel"},
           "birads": {"type": "ordinal", "order": ["3", "4a", "4b", "5"]}}


def _cohort(n: int = 240, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)])
    tissue = rng.choice(["dense", "fatty", "mixed", "scattered"], n)
    positive, negative = np.flatnonzero(y)[:3], np.flatnonzero(y == 0)[:2]
    tissue[[positive[0], positive[1], negative[0]]] = "rare"  # 3 + 2 cases: 'other'
    tissue[[positive[2], negative[1]]] = "odd"
    angular = rng.random(n) < 0.25 + 0.3 * y
    indistinct = rng.random(n) < 0.4
    margin = np.where(angular & indistinct, "angular&indistinct",
                      np.where(angular, "angular",
                               np.where(indistinct, "indistinct", "circumscribed")))
    age = rng.normal(50 + 5 * y, 10).round()
    age[rng.random(n) < 0.1] = np.nan
    birads = np.array(["3", "4a", "4b", "5"])[np.clip(rng.integers(0, 3, n) + y, 0, 3)]
    return pd.DataFrame({"y": y, "age": age, "tissue": tissue, "margin": margin,
                         "birads": birads, "split": np.where(np.arange(n) < 160, "train",
                                                             "test")},
                        index=[f"c{i}" for i in range(n)])


@pytest.fixture(scope="module")
def analysis():
    cases = _cohort()
    encoder = ClinicalEncoder(COLUMNS).fit(cases)
    return cases, encoder, logistic_analysis(cases, "y", list(COLUMNS), encoder=encoder,
                                             p_threshold=0.2)


def _llf(cases: pd.DataFrame, design: pd.DataFrame) -> float:
    return sm.Logit(cases["y"], design).fit(disp=0, method="newton", tol=1e-12).llf


def test_odds_ratio_tables_show_every_level_token_and_indicator(analysis):
    _, encoder, result = analysis
    terms = result.univariate.groupby("variable", sort=False)["term"].apply(list).to_dict()
    assert terms == encoder.terms_
    cases = analysis[0]
    usual = cases["tissue"].value_counts().idxmax()  # the reference: the usual finding
    assert encoder.reference_levels_ == {"tissue": usual}
    levels = sorted({"dense", "fatty", "mixed", "scattered"} - {usual})
    assert terms["tissue"] == [f"tissue[{level}]" for level in levels] + ["tissue[other]"]
    assert terms["margin"] == ["margin[angular]", "margin[circumscribed]", "margin[indistinct]"]
    assert terms["age"] == ["age", "age[missing]"]


def test_univariate_significance_of_a_variable_is_its_joint_likelihood_ratio_test(analysis):
    cases, encoder, result = analysis
    design = encoder.transform(cases).assign(const=1.0)
    null = _llf(cases, design[["const"]])
    variables = result.variables.set_index("variable")
    for name in ("tissue", "margin", "age"):
        full = _llf(cases, design[["const", *encoder.terms_[name]]])
        expected = stats.chi2.sf(2 * (full - null), len(encoder.terms_[name]))
        np.testing.assert_allclose(variables.loc[name, "p_univariate"], expected, rtol=1e-6)
    wald = result.univariate.set_index("term").loc["birads", "p_value"]
    assert variables.loc["birads", "p_univariate"] == wald  # one term: its Wald p


def test_multivariate_joint_tests_decide_the_independent_predictors(analysis):
    cases, encoder, result = analysis
    design = encoder.transform(cases).assign(const=1.0)
    selected = result.selected
    full_terms = ["const", *[t for name in selected for t in encoder.terms_[name]]]
    full = _llf(cases, design[full_terms])
    variables = result.variables.set_index("variable")
    for name in selected:
        if len(encoder.terms_[name]) == 1:
            continue
        reduced = _llf(cases, design[[t for t in full_terms if t not in encoder.terms_[name]]])
        expected = stats.chi2.sf(2 * (full - reduced), len(encoder.terms_[name]))
        np.testing.assert_allclose(variables.loc[name, "p_multivariate"], expected, rtol=1e-6)
    independent = variables.index[variables["p_multivariate"] < 0.2].tolist()
    assert result.independent == independent and independent
    rows = result.multivariate.set_index("term")
    assert (rows.loc[encoder.terms_["margin"], "p_variable"]
            == variables.loc["margin", "p_multivariate"]).all()


def test_a_significant_level_alone_does_not_make_a_variable_independent():
    # 'tissue' has one level whose Wald p is small, but its joint test is not significant
    rng = np.random.default_rng(11)
    n = 200
    cases = pd.DataFrame({"tissue": rng.choice(["a", "b", "c", "d", "e", "f"], n)})
    for seed in range(200):  # the first labelling where a level's Wald p < 0.05 alone
        y = np.random.default_rng(seed).integers(0, 2, n)
        result = logistic_analysis(cases.assign(y=y), "y", ["tissue"], categorical=["tissue"])
        table = result.univariate
        if (table["p_value"] < 0.05).any() and table["p_variable"].iloc[0] >= 0.05:
            break
    else:
        pytest.fail("no labelling with a significant level and a non-significant variable")
    assert result.selected == [] and result.independent == []


def test_baseline_shows_tokens_missing_rows_and_ordinal_order():
    cases = _cohort()
    table = baseline_table(cases, "split", ["age", "margin", "birads"], columns=COLUMNS,
                           group_order=["train", "test"], missing_rows=True)
    margin = table[table["variable"] == "margin"]
    assert margin["level"].tolist() == ["", "angular", "circumscribed", "indistinct"]
    train = cases[cases["split"] == "train"]
    angular = train["margin"].str.contains("angular").sum()
    assert margin.iloc[1]["train (n=160)"] == f"{angular} ({100 * angular / 160:.1f}%)"
    assert margin.iloc[1:]["test"].notna().all()
    counts = pd.crosstab(cases["split"], cases["margin"].str.contains("angular")).loc[
        ["train", "test"]].to_numpy()
    np.testing.assert_allclose(margin.iloc[1]["p_value"],
                               stats.chi2_contingency(counts, correction=True)[1])
    birads = table[table["variable"] == "birads"]
    assert birads["level"].tolist() == ["", "3", "4a", "4b", "5"]
    age_missing = table[(table["variable"] == "age") & (table["level"] == "missing, n (%)")]
    n_missing = int(train["age"].isna().sum())
    assert age_missing.iloc[0]["train (n=160)"] == f"{n_missing} ({100 * n_missing / 160:.1f}%)"


def test_methods_text_of_the_analysis(analysis):
    from dlrn.clinical import regression_methods_text

    _, _, result = analysis
    text = regression_methods_text(result)
    assert text.startswith("Logistic regression used maximum likelihood (as R's glm)")
    assert "(age, tissue, margin) was tested by a likelihood-ratio test" in text
    assert "univariate p < 0.2 entered the multivariate model" in text
