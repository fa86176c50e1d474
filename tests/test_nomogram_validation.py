"""The nomogram validated as rms validates it: validate and calibrate (method "boot"), equal to R.

References: tests/data/nomogram_validation (r/make_refs.R, rms 6.5.0) on the descriptor
cases of tests/data/descriptors: the apparent indexes and one resample (R's own rows)
exactly, B = 20000 within Monte Carlo error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _stats_refs import ITERATIVE, assert_close
from sklearn.base import BaseEstimator, ClassifierMixin

from dlrn.clinical import fit_glm
from dlrn.errors import DlrnError
from dlrn.nomogram import Nomogram
from dlrn.nomogram.validation import (
    INDEXES,
    ModelingProcedure,
    discrimination_indexes,
    validate_nomogram,
)

DATA = Path(__file__).resolve().parent / "data"
COLUMNS = {"score": "continuous", "Age": "continuous", "Shape": "categorical",
           "Halo": "categorical"}
RESAMPLED = [i for i in INDEXES if i not in ("C", "Emax")]


@pytest.fixture(scope="module")
def reference() -> dict:
    path = DATA / "nomogram_validation" / "expected.json"
    if not path.is_file():
        pytest.fail(f"R reference values not found at {path}")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def cases() -> tuple[pd.DataFrame, pd.Series]:
    table = pd.read_csv(DATA / "descriptors" / "descriptors.csv", index_col="case_id")
    return table[list(COLUMNS)], table["y"]


def _nomogram(chosen: list[str]) -> Nomogram:
    return Nomogram(columns={c: COLUMNS[c] for c in chosen}, regression="standard")


def _values(rows: dict, column: str, names: list[str]) -> list[float]:
    return [float(rows[name][column]) for name in names]


def test_apparent_indexes_and_one_resample_equal_rms(reference, cases):
    X, y = cases
    model = _nomogram(list(COLUMNS)).fit(X, y)
    rows = np.asarray(reference["one_sample"]["rows"]) - 1  # R's sample(), 1-based
    result = validate_nomogram(model, X, y, procedure=ModelingProcedure(_nomogram),
                               rows=[rows])
    apparent = reference["apparent"]
    assert_close(result.predicted, apparent["predicted"], ITERATIVE)
    assert_close(result.indexes.loc[RESAMPLED, "index.orig"],
                 [apparent["validate"][name] for name in RESAMPLED], ITERATIVE)
    one = reference["one_sample"]["validate"]
    for column in ("training", "test", "optimism", "index.corrected"):
        assert_close(result.indexes.loc[[*RESAMPLED, "Emax"], column],
                     _values(one, column, [*RESAMPLED, "Emax"]), ITERATIVE, what=column)
    calibration = reference["one_sample"]["calibrate"]
    assert_close(result.calibration["predicted"], calibration["predy"], ITERATIVE)
    assert_close(result.calibration["apparent"], calibration["calibrated_orig"], ITERATIVE)
    assert_close(result.calibration["bias_corrected"],
                 np.asarray(calibration["calibrated_corrected"], dtype=float), ITERATIVE)
    errors = reference["one_sample"]["calibrate_errors"]
    assert_close([result.mean_absolute_error, result.mean_squared_error, result.quantile_90],
                 [errors["mean_absolute_error"], errors["mean_squared_error"],
                  errors["quantile_90"]], ITERATIVE)
    c_row = result.indexes.loc["C"]
    assert c_row["index.orig"] == pytest.approx(apparent["validate"]["Dxy"] / 2 + 0.5)
    assert c_row["optimism"] == pytest.approx(one["Dxy"]["optimism"] / 2)


def _encoded(X: pd.DataFrame) -> pd.DataFrame:
    return pd.get_dummies(X, columns=["Shape", "Halo"], drop_first=True, dtype=float)


class _Logistic(ClassifierMixin, BaseEstimator):
    """R's glm on pre-encoded columns (fast: the test of the resampling itself)."""

    def fit(self, X: pd.DataFrame, y: pd.Series) -> _Logistic:
        self.params_ = fit_glm(y, X.assign(constant=1.0)).params.fillna(0.0)
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return X.assign(constant=1.0)[self.params_.index].to_numpy() @ self.params_.to_numpy()


def test_many_resamples_agree_with_rms_within_monte_carlo_error(reference, cases):
    X, y = cases
    design = _encoded(X)
    procedure = ModelingProcedure(lambda chosen: _Logistic())
    model = _Logistic().fit(design, y)
    result = validate_nomogram(model, design, y, procedure=procedure, B=400, seed=3)
    rms = reference["large_B"]
    assert result.failed == 0 and (result.indexes["n"] == 400).all()
    for name in ("Dxy", "R2", "Intercept", "Slope", "B", "g"):
        error = result.optimism_sd[name] * np.sqrt(1 / 400 + 1 / rms["B"])
        assert abs(result.corrected(name) - rms["validate"][name]["index.corrected"]) < 4 * error, \
            name
    corrected = np.asarray(rms["calibrate"]["calibrated_corrected"], dtype=float)
    assert np.nanmax(np.abs(result.calibration["bias_corrected"] - corrected)) < 0.02
    assert result.mean_absolute_error == pytest.approx(
        rms["calibrate_errors"]["mean_absolute_error"], abs=0.004)


def test_the_correction_covers_the_selection_of_predictors():
    """Noise predictors chosen by their univariate association: the apparent C is high, the
    corrected one near 0.5, and how often each column was chosen is reported."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 30)), columns=[f"x{i}" for i in range(30)])
    y = pd.Series((rng.random(120) < 0.4).astype(int))

    def strongest_five(rows: pd.DataFrame, labels: pd.Series) -> list[str]:
        association = rows.corrwith(labels.astype(float)).abs()
        return association.nlargest(5).index.tolist()

    procedure = ModelingProcedure(lambda chosen: _Logistic(), select=strongest_five)
    model, chosen = procedure.fit(X, y)
    fixed = validate_nomogram(model, X[chosen], y, procedure=ModelingProcedure(
        lambda columns: _Logistic()), B=60, seed=1)
    selected = validate_nomogram(model, X, y, procedure=procedure, columns=chosen, B=60,
                                 seed=1)
    assert selected.indexes.loc["C", "index.orig"] > 0.65
    assert selected.corrected("C") < 0.6 < fixed.corrected("C")
    assert selected.corrected("Slope") < fixed.corrected("Slope")
    assert set(selected.retained.index) - set(chosen)
    assert selected.retained.max() < 1


def test_failed_resamples_are_counted_and_left_out(cases):
    X, y = cases
    design = _encoded(X)
    calls = iter(range(1000))

    def sometimes_failing(chosen: list[str]) -> _Logistic:
        if next(calls) % 4 == 0:
            raise DlrnError("a level is absent from the sample")
        return _Logistic()

    model = _Logistic().fit(design, y)
    result = validate_nomogram(model, design, y, procedure=ModelingProcedure(sometimes_failing),
                               B=20, seed=0)
    assert result.failed == 5 and (result.indexes["n"] == 15).all()
    assert result.failures[0] == "a level is absent from the sample"
    with pytest.raises(DlrnError, match="failed in all 3 samples"):
        validate_nomogram(model, design, y, B=3, procedure=ModelingProcedure(
            lambda chosen: (_ for _ in ()).throw(DlrnError("never"))))


def test_test_indexes_recalibrate_the_linear_predictor():
    rng = np.random.default_rng(2)
    linear = rng.normal(0, 2, 300)
    y = (rng.random(300) < 1 / (1 + np.exp(-(0.5 + 0.5 * linear)))).astype(float)
    test = discrimination_indexes(linear, y, own_fit=False)
    fit = fit_glm(y, pd.DataFrame({"constant": 1.0, "lp": linear}))
    assert test["Intercept"] == pytest.approx(fit.params["constant"], rel=1e-7)
    assert test["Slope"] == pytest.approx(fit.params["lp"], rel=1e-7)
    assert test["Dxy"] == pytest.approx(discrimination_indexes(linear, y, own_fit=True)["Dxy"])
