"""The nomogram validated as R's rms validates a logistic model: ``validate`` and ``calibrate``.

Harrell's bootstrap (rms ``predab.resample``, ``method = "boot"``): the whole modelling
procedure, the choice of the predictors included, is repeated in each of B samples
drawn with replacement; each sample's model is scored on its own sample (training)
and on the original cases (test); the mean difference is the optimism, and
``index.corrected = apparent - optimism``. :func:`validate_nomogram` computes, from the
same resamples,

- rms ``validate.lrm``: Dxy (Somers' D), R2 (Nagelkerke), the calibration intercept and
  slope, Emax, D, U, Q, Brier (B), g and gp, with rms's rules (training indexes from the
  sample's own fit, intercept 0 and slope 1; test indexes from the logistic recalibration
  of the sample model's linear predictor on the original cases), plus the C index
  (Dxy / 2 + 0.5);
- rms ``calibrate.default``: lowess (``iter = 0``) of the outcome on the predicted
  probability, read at 50 points between the 5th smallest and 5th largest apparent
  probability; apparent and bias-corrected curves, and the mean absolute error, mean
  squared error and 0.9 quantile of the absolute error of the bias-corrected curve at
  the cases' predicted probabilities.

A sample whose procedure fails (e.g. a level absent from the sample that the original
cases need) is left out and counted, as rms counts "divergence or singularity".
The procedure is a parameter (:class:`ModelingProcedure`): a selection callable
``(rows, y) -> chosen columns`` and a model factory ``chosen columns -> unfitted
classifier`` whose ``decision_function`` is the linear predictor.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import rankdata
from statsmodels.nonparametric.smoothers_lowess import lowess

from dlrn.errors import DlrnError

__all__ = ["INDEXES", "BootstrapValidation", "ModelingProcedure", "calibration_errors",
           "discrimination_indexes", "gini_mean_difference", "somers_dxy",
           "validate_nomogram"]

#: rms validate.lrm's rows (Emax computed from the corrected intercept and slope), with the
#: C index beside Dxy.
INDEXES = ("Dxy", "C", "R2", "Intercept", "Slope", "Emax", "D", "U", "Q", "B", "g", "gp")
_RESAMPLED = ("Dxy", "R2", "Intercept", "Slope", "D", "U", "Q", "B", "g", "gp")
COLUMNS = ("index.orig", "training", "test", "optimism", "index.corrected", "n")
DESCRIPTIONS = {
    "Dxy": "Somers' Dxy rank correlation (2 (C - 0.5))",
    "C": "C index (ROC AUC), Dxy / 2 + 0.5",
    "R2": "Nagelkerke R2",
    "Intercept": "calibration intercept (0 ideal)",
    "Slope": "calibration slope (1 ideal; below 1: overfitting)",
    "Emax": "maximum absolute calibration error over risks 0-1",
    "D": "discrimination index (LR chi-square - 1) / n",
    "U": "unreliability index",
    "Q": "quality index D - U",
    "B": "Brier score",
    "g": "g index (Gini's mean difference of the linear predictor)",
    "gp": "gp index (Gini's mean difference of the predicted risk)",
}
CALIBRATION_POINTS = 50  # rms calibrate: predy = seq(p[5], p[n-4], length = 50)
_NEWTON_TOLERANCE = 1e-13  # rms refits the recalibration with lrm.fit(tol = 1e-13)


@dataclass(frozen=True)
class ModelingProcedure:
    """What every bootstrap sample repeats: choosing the predictors, then fitting the model.

    ``build(columns)`` returns an unfitted classifier on those columns (its
    ``decision_function`` is the linear predictor); ``select(rows, y)`` returns the
    columns chosen on a sample (``None``: every column, a pre-specified model).
    """

    build: Callable[[list[str]], Any]
    select: Callable[[pd.DataFrame, pd.Series], list[str]] | None = None

    def fit(self, X: pd.DataFrame, y: pd.Series) -> tuple[Any, list[str]]:
        chosen = list(X.columns) if self.select is None else list(self.select(X, y))
        return self.build(chosen).fit(X[chosen], y), chosen


@dataclass
class BootstrapValidation:
    """rms ``validate`` and ``calibrate`` of one model, from the same B resamples.

    ``indexes``: one row per :data:`INDEXES` name, rms's columns (``n``: the resamples
    that gave the index). ``calibration``: ``predicted`` (the grid), ``apparent``,
    ``bias_corrected`` and ``n``. ``optimism_sd``: the SD of each index' optimism over
    the resamples (its Monte Carlo error is ``sd / sqrt(n)``). ``retained``: how often
    each column was chosen (the selection's stability, rms's "factors retained").
    """

    indexes: pd.DataFrame
    calibration: pd.DataFrame
    predicted: np.ndarray
    mean_absolute_error: float
    mean_squared_error: float
    quantile_90: float
    B: int
    failed: int
    optimism_sd: pd.Series
    retained: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    failures: list[str] = field(default_factory=list)
    fitted_by: dict[str, int] = field(default_factory=dict)

    def corrected(self, index: str) -> float:
        return float(self.indexes.loc[index, "index.corrected"])

    def table(self) -> pd.DataFrame:
        """The validate table as papers print it: each index in words beside rms's columns."""
        table = self.indexes.reset_index(names="index")
        table.insert(1, "description", table["index"].map(DESCRIPTIONS))
        return table


def somers_dxy(score: np.ndarray, y: np.ndarray) -> float:
    """Hmisc ``somers2``: Dxy = 2 (C - 0.5), C from mid-ranks (ties count one half)."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return np.nan
    mean_rank = rankdata(score)[y == 1].mean()
    return 2 * ((mean_rank - (positives + 1) / 2) / negatives - 0.5)


def gini_mean_difference(values: np.ndarray) -> float:
    """Hmisc ``GiniMd``: the mean absolute difference over all pairs."""
    n = len(values)
    if n < 2:
        return np.nan
    weights = 4 * (np.arange(1, n + 1) - (n - 1) / 2) / n / (n - 1)
    return float(np.sum(weights * np.sort(values - values.mean())))


def _deviance(linear: np.ndarray, y: np.ndarray) -> float:
    return float(-2 * np.sum(y * linear - np.logaddexp(0, linear)))


def _null_deviance(y: np.ndarray) -> float:
    rate = y.mean()
    return _deviance(np.full(len(y), logit(rate)), y)


def _recalibration(linear: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of ``logit P(y) = a + b lp`` (rms: lrm.fit(lp, y, tol = 1e-13))."""
    design = np.column_stack([np.ones_like(linear), linear])
    beta = np.array([logit(y.mean()), 0.0])
    for _ in range(100):
        risk = expit(design @ beta)
        information = design.T @ (design * (risk * (1 - risk))[:, None])
        step = np.linalg.solve(information, design.T @ (y - risk))
        beta = beta + step
        if np.max(np.abs(step)) < _NEWTON_TOLERANCE:
            break
    return float(beta[0]), float(beta[1])


def _nagelkerke(lr: float, null_deviance: float, n: int) -> float:
    return (1 - np.exp(-lr / n)) / (1 - np.exp(-null_deviance / n))


def discrimination_indexes(linear: np.ndarray, y: np.ndarray, *, own_fit: bool
                           ) -> dict[str, float]:
    """rms validate.lrm's ``discrim`` for a linear predictor and 0/1 outcomes.

    ``own_fit`` (apparent and training): the model was fitted on these cases, so its
    intercept is 0 and slope 1, LR = null deviance - deviance, U = -2/n. Otherwise
    (test): the linear predictor is recalibrated on these cases (intercept, slope,
    LR and R2 of that refit; U from the deviance the uncalibrated lp has beyond it).
    """
    linear, y = np.asarray(linear, dtype=float), np.asarray(y, dtype=float)
    n = len(y)
    null_deviance = _null_deviance(y)
    if own_fit:
        intercept, slope = 0.0, 1.0
        lr = null_deviance - _deviance(linear, y)
        unreliability = -2 / n
        g, gp = gini_mean_difference(linear), gini_mean_difference(expit(linear))
    else:
        intercept, slope = _recalibration(linear, y)
        refit_deviance = _deviance(intercept + slope * linear, y)
        lr = null_deviance - refit_deviance
        unreliability = (_deviance(linear, y) - refit_deviance - 2) / n
        g = gini_mean_difference(slope * linear)
        gp = gini_mean_difference(expit(intercept + slope * linear))
    discrimination = (lr - 1) / n
    return {"Dxy": somers_dxy(linear, y), "R2": _nagelkerke(lr, null_deviance, n),
            "Intercept": intercept, "Slope": slope, "D": discrimination,
            "U": unreliability, "Q": discrimination - unreliability,
            "B": float(np.mean((y - expit(linear)) ** 2)), "g": g, "gp": gp}


def _approx(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """R ``approx(x, y, xout)``: linear interpolation, NA outside the range of x; tied x
    share the mean of their y (R ``ties = mean``; lowess gives tied x one value anyway)."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    distinct, start = np.unique(x, return_index=True)
    means = np.add.reduceat(y, start) / np.diff(np.append(start, len(x)))
    values = np.interp(at, distinct, means)
    values[(at < distinct[0]) | (at > distinct[-1])] = np.nan
    return values


def _smoothed_calibration(probability: np.ndarray, y: np.ndarray, grid: np.ndarray
                          ) -> np.ndarray:
    """rms cal.error: lowess(p, y, iter = 0) (R's delta = 1% of the range) read at the grid,
    minus the grid."""
    delta = 0.01 * float(np.ptp(probability))
    smooth = lowess(y, probability, frac=2 / 3, it=0, delta=delta, return_sorted=True)
    return _approx(smooth[:, 0], smooth[:, 1], grid) - grid


def calibration_errors(predicted: np.ndarray, grid: np.ndarray, corrected: np.ndarray
                       ) -> tuple[float, float, float]:
    """rms print.calibrate: mean absolute, mean squared and 0.9 quantile of the absolute
    difference between each case's predicted risk and the bias-corrected curve there."""
    kept = ~np.isnan(corrected)
    error = predicted - _approx(grid[kept], corrected[kept], predicted)
    absolute = np.abs(error)
    return (float(np.nanmean(absolute)), float(np.nanmean(error ** 2)),
            float(np.nanquantile(absolute, 0.9)))


def _calibration_grid(predicted: np.ndarray) -> np.ndarray:
    ordered = np.sort(predicted)
    if len(ordered) < 11:
        raise DlrnError("a calibration curve needs more than 10 cases")
    return np.linspace(ordered[4], ordered[-5], CALIBRATION_POINTS)


def _emax(intercept: float, slope: float) -> float:
    """rms validate.lrm: the largest |p - plogis(a + b logit p)| over p = 0, 0.0005, ..., 1."""
    p = np.linspace(0, 1, 2001)
    with np.errstate(divide="ignore"):
        recalibrated = expit(intercept + slope * logit(p))
    return float(np.nanmax(np.abs(p - recalibrated)))


def _resample(X: pd.DataFrame, y: pd.Series, rows: np.ndarray
              ) -> tuple[pd.DataFrame, pd.Series]:
    """A bootstrap sample with unique row labels (a case drawn twice is two rows)."""
    labels = pd.RangeIndex(len(rows))
    return X.iloc[rows].set_axis(labels), y.iloc[rows].set_axis(labels)


def _averaged(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """rms: the mean over the resamples that gave a value (NA elsewhere), and their count."""
    stacked = np.vstack(values)
    return np.nanmean(stacked, axis=0), np.sum(~np.isnan(stacked), axis=0)


def validate_nomogram(model: Any, X: pd.DataFrame, y: pd.Series, *,
                      procedure: ModelingProcedure, columns: Sequence[str] | None = None,
                      B: int = 200, seed: int = 0, rows: Sequence[np.ndarray] | None = None
                      ) -> BootstrapValidation:
    """Optimism-corrected indexes and calibration of a fitted ``model`` (rms validate and
    calibrate, ``method = "boot"``) by repeating ``procedure`` in B bootstrap samples.

    ``model`` is the procedure's result on (X, y) (the apparent model: its
    ``decision_function`` is read on its ``columns`` of X, by default all); X holds every
    column the procedure may choose.
    ``rows``: the samples' row positions when drawn elsewhere (e.g. R's ``sample``);
    otherwise B samples from ``numpy.random.default_rng(seed)``. Each sample's own notes
    are silenced: they describe resamples, not the cases.
    """
    labels = y.to_numpy(dtype=float)
    apparent_lp = np.asarray(model.decision_function(X[list(columns or X.columns)]),
                             dtype=float)
    apparent = discrimination_indexes(apparent_lp, labels, own_fit=True)
    predicted = expit(apparent_lp)
    grid = _calibration_grid(predicted)
    apparent_calibration = _smoothed_calibration(predicted, labels, grid)
    if rows is None:
        rng = np.random.default_rng(seed)
        rows = [rng.integers(0, len(X), len(X)) for _ in range(B)]
    B = len(rows)
    train, test, train_cal, test_cal = [], [], [], []
    failures: list[str] = []
    chosen_counts: Counter[str] = Counter()
    fitted_by: Counter[str] = Counter()
    for sample in rows:
        sample_X, sample_y = _resample(X, y, np.asarray(sample))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted, chosen = procedure.fit(sample_X, sample_y)
                original_lp = np.asarray(fitted.decision_function(X[chosen]), dtype=float)
        except (DlrnError, np.linalg.LinAlgError) as error:
            failures.append(str(error))
            continue
        chosen_counts.update(chosen)
        fitted_by[getattr(fitted, "method_", "ML")] += 1
        sample_labels = sample_y.to_numpy(dtype=float)
        sample_lp = original_lp[np.asarray(sample)]  # the encoding is case by case
        train.append(_row(discrimination_indexes(sample_lp, sample_labels, own_fit=True)))
        test.append(_row(discrimination_indexes(original_lp, labels, own_fit=False)))
        train_cal.append(_smoothed_calibration(expit(sample_lp), sample_labels, grid))
        test_cal.append(_smoothed_calibration(expit(original_lp), labels, grid))
    if not train:
        raise DlrnError(f"the bootstrap validation failed in all {B} samples: {failures[0]}")
    indexes, optimism_sd = _index_table(apparent, train, test)
    calibration = _calibration_table(grid, apparent_calibration, train_cal, test_cal)
    errors = calibration_errors(predicted, grid, calibration["bias_corrected"].to_numpy())
    done = len(train)
    retained = pd.Series({c: chosen_counts[c] / done for c in X.columns if chosen_counts[c]},
                         dtype=float)
    return BootstrapValidation(indexes, calibration, predicted, *errors, B, B - done,
                               optimism_sd, retained, failures, dict(fitted_by))


def _row(indexes: dict[str, float]) -> np.ndarray:
    return np.array([indexes[name] for name in _RESAMPLED], dtype=float)


def _index_table(apparent: dict[str, float], train: list[np.ndarray], test: list[np.ndarray]
                 ) -> tuple[pd.DataFrame, pd.Series]:
    """rms's validate matrix (with predab.resample's NA rule), the C index and Emax added."""
    both = [np.where(np.isnan(a + b), np.nan, a) for a, b in zip(train, test, strict=True)]
    tested = [np.where(np.isnan(a + b), np.nan, b) for a, b in zip(train, test, strict=True)]
    training, n = _averaged(both)
    testing, _ = _averaged(tested)
    optimism = training - testing
    original = np.array([apparent[name] for name in _RESAMPLED])
    table = pd.DataFrame({"index.orig": original, "training": training, "test": testing,
                          "optimism": optimism, "index.corrected": original - optimism,
                          "n": n}, index=list(_RESAMPLED))
    differences = np.vstack(both) - np.vstack(tested)
    spread = (np.nanstd(differences, axis=0, ddof=1) if len(differences) > 1
              else np.full(len(_RESAMPLED), np.nan))
    sd = pd.Series(spread, index=list(_RESAMPLED))
    c_row = table.loc["Dxy"] / 2 + pd.Series({"index.orig": 0.5, "training": 0.5, "test": 0.5,
                                              "optimism": 0.0, "index.corrected": 0.5})
    c_row["n"] = table.loc["Dxy", "n"]
    emax = _emax(table.loc["Intercept", "index.corrected"], table.loc["Slope", "index.corrected"])
    emax_row = pd.Series({"index.orig": 0.0, "training": 0.0, "test": emax, "optimism": emax,
                          "index.corrected": emax, "n": table.loc["Dxy", "n"]})
    table = pd.concat([table, c_row.to_frame("C").T, emax_row.to_frame("Emax").T])
    sd["C"], sd["Emax"] = sd["Dxy"] / 2, np.nan
    table["n"] = table["n"].astype(int)
    return table.loc[list(INDEXES), list(COLUMNS)], sd.loc[list(INDEXES)]


def _calibration_table(grid: np.ndarray, apparent: np.ndarray, train: list[np.ndarray],
                       test: list[np.ndarray]) -> pd.DataFrame:
    """rms calibrate: calibrated.orig = grid + apparent error; calibrated.corrected =
    calibrated.orig - optimism (the mean training minus test error, where both exist)."""
    stacked_train, stacked_test = np.vstack(train), np.vstack(test)
    both = ~np.isnan(stacked_train + stacked_test)
    n = both.sum(axis=0)
    with np.errstate(invalid="ignore"):
        optimism = (np.where(both, stacked_train, 0).sum(axis=0)
                    - np.where(both, stacked_test, 0).sum(axis=0)) / n
    observed = grid + apparent
    return pd.DataFrame({"predicted": grid, "apparent": observed,
                         "bias_corrected": observed - optimism, "n": n})
