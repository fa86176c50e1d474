"""R parity on a descriptor table with aliased tokens and separated levels (tests/data/descriptors).

The table has the traits of real breast-ultrasound descriptor exports: Margin tokens
that add up to the intercept (``circumscribed`` + ``not circumscribed - ...``), and
levels whose cases are all benign (Echogenicity ``anechoic``, ``hyperechoic``; the
token ``not circumscribed - microlobulated``). R's values (glm, anova, a logistf
re-implementation checked against brglm2 and logistf's published examples, rms
nomogram) were computed by ``tests/data/descriptors/r/make_refs.R``; see its README
for the conventions. Coefficients of separated terms under maximum likelihood depend
on where the iterations stop; ours stop where R's do, and are compared too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrn.clinical import ClinicalEncoder, fit_firth, fit_glm, logistic_analysis
from dlrn.clinical.firth import firth_interval, firth_lrt_p
from dlrn.nomogram import Nomogram

FOLDER = Path(__file__).parent / "data" / "descriptors"
ITERATIVE = 1e-6  # the README's tolerance for iterative fits
COLUMNS = {"score": "continuous", "Age": "continuous", "Shape": "categorical",
           "Margin": {"type": "multilabel", "separator": "&"}, "Echogenicity": "categorical",
           "Halo": "categorical"}
ALIASED = "Margin[not circumscribed - spiculated]"


def _r(value: object) -> float:
    return math.nan if value == "NA" else float(value)


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((FOLDER / "expected.json").read_text())


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    return pd.read_csv(FOLDER / "descriptors.csv", index_col="case_id")


@pytest.fixture(scope="module")
def design(cases) -> pd.DataFrame:
    encoder = ClinicalEncoder(COLUMNS, min_level_count=1).fit(cases)
    encoded = encoder.transform(cases)
    encoded.insert(0, "(Intercept)", 1.0)
    return encoded


def _assert_coefficients(fit, reference: dict, *, rel: float = ITERATIVE) -> None:
    for name, ref in reference.items():
        actual = [fit.params[name], fit.bse[name]]
        wanted = [_r(ref["estimate"]), _r(ref["se"])]
        if math.isnan(wanted[0]):
            assert name in fit.aliased and np.isnan(actual).all()
            continue
        np.testing.assert_allclose(actual, wanted, rtol=rel, atol=1e-10, err_msg=name)


def test_the_encoder_builds_r_s_design_and_foresees_the_aliased_token(cases, design):
    r_design = pd.read_csv(FOLDER / "design.csv", index_col="case_id")
    pd.testing.assert_frame_equal(design, r_design, check_dtype=False)
    notes = ClinicalEncoder(COLUMNS, min_level_count=1).fit(cases).notes_
    assert notes == [
        f"Margin: {ALIASED} = (Intercept) - Margin[circumscribed] - Margin[not circumscribed - "
        "angular] - Margin[not circumscribed - indistinct] - Margin[not circumscribed - "
        "microlobulated] in every training case: its tokens are exhaustive (every training "
        f"case holds one of them), so {ALIASED} is aliased and the regressions give it no "
        "estimate of its own (NA, as R's glm does)"]


@pytest.mark.parametrize("variable", list(COLUMNS))
def test_univariate_glm_and_likelihood_ratio_test_equal_r(cases, design, expected, variable):
    reference = expected["A"][variable]
    fit = fit_glm(cases["y"], design[reference["columns"]])
    _assert_coefficients(fit, reference["coefficients"])
    assert fit.aliased == reference["aliased"] and fit.rank == reference["rank"]
    assert fit.iterations == reference["iter"] and fit.converged == reference["converged"]
    np.testing.assert_allclose([fit.deviance, fit.null_deviance],
                               [reference["deviance"], reference["null_deviance"]], rtol=1e-10)
    analysis = logistic_analysis(cases, "y", [variable],
                                 encoder=ClinicalEncoder(COLUMNS, min_level_count=1),
                                 regression="standard")
    lrt = reference["lrt_vs_null"]
    np.testing.assert_allclose(analysis.univariate["p_lrt"].iloc[0], lrt["p"], rtol=ITERATIVE)


def test_multivariate_glm_and_drop_one_tests_equal_r_under_separation(cases, design, expected):
    reference = expected["B"]
    fit = fit_glm(cases["y"], design[reference["columns"]])
    _assert_coefficients(fit, reference["coefficients"])
    assert fit.aliased == [ALIASED] == reference["aliased"]
    np.testing.assert_allclose(fit.deviance, reference["deviance"], rtol=1e-10)
    analysis = logistic_analysis(cases, "y", list(COLUMNS),
                                 encoder=ClinicalEncoder(COLUMNS, min_level_count=1),
                                 regression="standard", p_threshold=1.0)
    p_multivariate = analysis.variables.set_index("variable")["p_multivariate"]
    for variable in ("Shape", "Margin", "Echogenicity"):  # several terms: the joint LRT
        np.testing.assert_allclose(p_multivariate[variable],
                                   reference["drop_one"][variable]["p"], rtol=ITERATIVE)
    table = analysis.multivariate.set_index("term")
    assert np.isnan(table.loc[ALIASED, "beta"]) and "is aliased" in table.loc[ALIASED, "note"]
    assert "separation" in table.loc["Echogenicity[anechoic]", "note"]


def test_firth_fits_the_aliased_design_as_the_logistf_reference(cases, design, expected):
    reference = expected["C"]["multivariate"]
    y = cases["y"]
    columns = [*reference["columns"][:12], ALIASED, *reference["columns"][12:]]
    fit = fit_firth(y, design[columns])
    assert fit.aliased == [ALIASED] and fit.method == "Firth"
    np.testing.assert_allclose(fit.loglik, reference["penalized_loglik"], rtol=1e-9)
    for name, ref in reference["coefficients"].items():
        np.testing.assert_allclose([fit.params[name], fit.bse[name]],
                                   [ref["estimate"], ref["se"]], rtol=ITERATIVE, err_msg=name)
        np.testing.assert_allclose(firth_lrt_p(y, design[columns], fit, [name]), ref["p"],
                                   rtol=ITERATIVE, atol=1e-12, err_msg=name)
    for name in ("score", "Echogenicity[anechoic]", "Margin[circumscribed]"):
        ref = reference["coefficients"][name]
        np.testing.assert_allclose(firth_interval(y, design[columns], fit, name),
                                   [ref["ci_lower"], ref["ci_upper"]], rtol=ITERATIVE)
    for variable, ref in reference["variables"].items():
        p = firth_lrt_p(y, design[columns], fit, ref["columns"])
        np.testing.assert_allclose(p, ref["p"], rtol=ITERATIVE, err_msg=variable)


def test_auto_regression_selects_the_descriptors_with_firth_where_they_separate(cases):
    analysis = logistic_analysis(cases, "y", list(COLUMNS),
                                 encoder=ClinicalEncoder(COLUMNS, min_level_count=1))
    variables = analysis.variables.set_index("variable")
    assert variables.loc[["Margin", "Echogenicity"], "method"].tolist() == ["Firth", "Firth"]
    assert variables.loc[["score", "Age", "Shape", "Halo"], "method"].eq("ML").all()
    assert {"Margin", "Echogenicity"} <= set(analysis.independent)
    assert np.isfinite(analysis.multivariate.drop(
        index=analysis.multivariate.index[analysis.multivariate["term"] == ALIASED])["beta"]
    ).all()


def test_the_firth_nomogram_equals_rms_points(cases, expected):
    reference = expected["D"]
    columns = {"score": "continuous", "Margin": COLUMNS["Margin"], "Echogenicity": "categorical"}
    nomogram = Nomogram(columns=columns, regression="firth").fit(cases[list(columns)],
                                                                 cases["y"])
    params = nomogram.model_.params
    for name, value in reference["coefficients"].items():
        np.testing.assert_allclose(params[name], value, rtol=ITERATIVE, err_msg=name)
    sc = nomogram.points_per_unit_
    np.testing.assert_allclose(sc, reference["points_per_lp_unit"], rtol=ITERATIVE)
    ticks = nomogram.scale_table().set_index("predictor")
    for name, axis in reference["axes"].items():
        if name.startswith("Echogenicity"):  # one axis of levels here, a 0/1 axis per level in R
            level = name[len("Echogenicity["):-1]
            rows = ticks.loc["Echogenicity"].set_index("value")["points"]
            np.testing.assert_allclose(rows[level] - rows["hypoechoic"],
                                       axis["points"][1] - axis["points"][0], rtol=ITERATIVE)
            continue
        points = ticks.loc[name, "points"].to_numpy(dtype=float)
        np.testing.assert_allclose(points, axis["points"], rtol=ITERATIVE, atol=1e-9, err_msg=name)
    first = reference["first_rows"]
    probability = nomogram.points(cases.loc[first["case_id"], list(columns)])["probability"]
    np.testing.assert_allclose(probability, first["probability"], rtol=ITERATIVE)
    assert nomogram.readability_notes(len(cases)) == []  # the score keeps the widest axis
