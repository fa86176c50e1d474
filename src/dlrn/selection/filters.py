"""Label-free and univariate filters: z-score, two-sample tests, correlation de-duplication.

Each is an estimator fitted on training rows only (inside every CV fold of the
classifiers and, in a :class:`~dlrn.selection.pipeline.SelectionPipeline`,
inside every LASSO CV fold too).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from dlrn.errors import ConfigError, DlrnError
from dlrn.selection._base import _abs_correlation, _label_relevance, _RecordingSelector

UNIVARIATE_TESTS = ("t", "mannwhitney", "auto")
#: An SD at or below this fraction of the column's largest magnitude is rounding noise of a
#: constant (a column of 0.1s has SD 1.4e-17, not 0), so the column counts as constant.
CONSTANT_RTOL = 1e-10


class ZScore(_RecordingSelector):
    """Standardise with the training mean and SD (ddof=0, as StandardScaler); drop constants.

    Constant means SD <= :data:`CONSTANT_RTOL` x the column's largest |value| (or SD 0):
    a constant stored in floating point can have a tiny non-zero SD, which scaling
    would blow up to values of order 1e16.
    """

    def fit(self, X: object, y: object = None) -> ZScore:
        values, _ = self._check_input(X, y, needs_y=False)
        self.mean_ = values.mean(axis=0)
        self.scale_ = values.std(axis=0)
        constant = self.scale_ <= CONSTANT_RTOL * np.abs(values).max(axis=0)
        self._record(
            ~constant,
            self.scale_,
            "sd",
            ["constant in the training rows"] * len(constant),
            best=int(np.argmax(self.scale_)),
        )
        self.scale_[constant] = 1.0
        return self

    def transform(self, X: object) -> np.ndarray:
        check_is_fitted(self, "support_")
        values = self._values(X, reset=False)
        return ((values - self.mean_) / self.scale_)[:, self.support_]


def student_t_p(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two-sided Student t-test p per column (R ``t.test(var.equal=TRUE)``); NaN if constant.

    The pooled-variance formula on whole arrays: ``scipy.stats.ttest_ind`` gives the
    same p but its per-call checks cost more than the test on 1500 columns x 10 folds.
    """
    n1, n2 = len(first), len(second)
    dof = n1 + n2 - 2
    pooled = (first.var(axis=0) * n1 + second.var(axis=0) * n2) / dof
    t = (first.mean(axis=0) - second.mean(axis=0)) / np.sqrt(pooled * (1 / n1 + 1 / n2))
    return 2 * stats.t.sf(np.abs(t), dof)


def univariate_tests(
    X: np.ndarray, y: np.ndarray, *, test: str = "t", normality_alpha: float = 0.05
) -> pd.DataFrame:
    """Two-sample test per column between y == 0 and y == 1, R conventions.

    ``"t"`` (default, the test the study's methods name): Student t-test (R
    ``t.test(var.equal=TRUE)``). ``"mannwhitney"``: Mann-Whitney U with continuity
    correction (R ``wilcox.test(exact=FALSE, correct=TRUE)``). ``"auto"``: Shapiro-Wilk in
    both classes (p > ``normality_alpha``) picks the t-test, else Mann-Whitney.
    """
    if test not in UNIVARIATE_TESTS:
        raise ConfigError(f"univariate test {test!r} is not one of {', '.join(UNIVARIATE_TESTS)}")
    negatives, positives = X[y == 0], X[y == 1]
    if min(len(negatives), len(positives)) < 3:
        raise DlrnError(
            f"the univariate filter needs at least 3 cases of each class; got "
            f"{len(negatives)} negatives and {len(positives)} positives"
        )
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))
        if test == "auto":
            normal = (stats.shapiro(negatives, axis=0).pvalue > normality_alpha) & (
                stats.shapiro(positives, axis=0).pvalue > normality_alpha
            )
        else:
            normal = np.full(X.shape[1], test == "t")
        p_value = np.full(X.shape[1], np.nan)
        if normal.any():
            p_value[normal] = student_t_p(negatives[:, normal], positives[:, normal])
        if not normal.all():
            p_value[~normal] = stats.mannwhitneyu(
                negatives[:, ~normal],
                positives[:, ~normal],
                use_continuity=True,
                method="asymptotic",
            ).pvalue
    return pd.DataFrame({"test": np.where(normal, "t-test", "Mann-Whitney"), "p_value": p_value})


class UnivariateFilter(_RecordingSelector):
    """Keep features that differ between classes: p < ``p_threshold`` (:func:`univariate_tests`)."""

    def __init__(self, p_threshold: float = 0.05, test: str = "t", normality_alpha: float = 0.05):
        self.p_threshold = p_threshold
        self.test = test
        self.normality_alpha = normality_alpha

    def fit(self, X: object, y: object = None) -> UnivariateFilter:
        values, labels = self._check_input(X, y, needs_y=True)
        table = univariate_tests(
            values, labels, test=self.test, normality_alpha=self.normality_alpha
        )
        table.index = self._names()
        self.tests_ = table
        p = table["p_value"].to_numpy(dtype=float)
        reasons = [
            f"{name}: p undefined (constant)"
            if np.isnan(value)
            else f"{name} p = {value:.3g} >= {self.p_threshold}"
            for name, value in zip(table["test"], p, strict=True)
        ]
        self._record(
            p < self.p_threshold,
            p,
            "p_value",
            reasons,
            best=int(np.argmin(np.nan_to_num(p, nan=np.inf))),
        )
        return self


class CorrelationFilter(_RecordingSelector):
    """Of every pair with |Pearson r| > ``threshold`` keep one: the more label-relevant.

    Features are visited from most to least relevant (largest |point-biserial r|
    with the label, i.e. smallest Student t-test p; ties in column order); a
    feature is kept unless it is too correlated with one already kept. No
    remaining pair exceeds the threshold afterwards.
    """

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X: object, y: object = None) -> CorrelationFilter:
        values, labels = self._check_input(X, y, needs_y=False)
        abs_r = _abs_correlation(values)
        relevance = (
            np.zeros(values.shape[1]) if labels is None else _label_relevance(values, labels)
        )
        names = self._names()
        keep = np.zeros(values.shape[1], dtype=bool)
        strongest = np.zeros(values.shape[1])
        reasons = [""] * values.shape[1]
        for j in np.argsort(-relevance, kind="stable"):
            partners = np.flatnonzero(keep)
            r_with_kept = abs_r[j, partners]
            if r_with_kept.size and r_with_kept.max() > self.threshold:
                partner = partners[np.argmax(r_with_kept)]
                strongest[j] = r_with_kept.max()
                reasons[j] = (
                    f"|r| = {strongest[j]:.3f} > {self.threshold} with kept {names[partner]}"
                )
            else:
                keep[j] = True
        self._record(keep, strongest, "abs_r", reasons, best=int(np.argmax(relevance)))
        return self


class GreedyCorrelationDeletion(_RecordingSelector):
    """Repeatedly drop the feature with the most remaining partners at |r| > ``threshold``.

    Ties go to the less label-relevant feature (smaller |point-biserial r|).
    Stops when no remaining pair exceeds the threshold.
    """

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X: object, y: object = None) -> GreedyCorrelationDeletion:
        values, labels = self._check_input(X, y, needs_y=False)
        correlated = _abs_correlation(values) > self.threshold
        relevance = (
            np.zeros(values.shape[1]) if labels is None else _label_relevance(values, labels)
        )
        names = self._names()
        remaining = np.ones(values.shape[1], dtype=bool)
        partner_counts = correlated.sum(axis=1)
        dropped_counts = np.zeros(values.shape[1])
        reasons = [""] * values.shape[1]
        while True:
            counts = np.where(remaining, partner_counts, -1)
            if counts.max() <= 0:
                break
            tied = np.flatnonzero(counts == counts.max())
            drop = tied[np.argmin(relevance[tied])]
            partners = names[np.flatnonzero(correlated[drop] & remaining)]
            dropped_counts[drop] = counts[drop]
            reasons[drop] = (
                f"|r| > {self.threshold} with {counts[drop]} remaining feature(s): "
                + ", ".join(map(str, partners[:5]))
                + (" ..." if len(partners) > 5 else "")
            )
            remaining[drop] = False
            partner_counts = partner_counts - correlated[:, drop]
        self._record(
            remaining,
            dropped_counts,
            "correlated_partners",
            reasons,
            best=int(np.argmax(relevance)),
        )
        return self
