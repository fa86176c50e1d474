"""Feature selection as scikit-learn transformers, so it refits inside every CV fold.

The study's recipe (ICC >= 0.85, z-score, t-test p < 0.05, Pearson |r| > 0.9
de-duplication, greedy recursive deletion, LASSO with 10-fold CV) is often run
on the whole cohort before the split, which leaks test information into every
AUC. Here each step is an estimator: ``fit`` sees training rows only, learned
state ends in ``_``, and every step records what it removed and why in
``removed_`` (feature, statistic, value, reason) so a report can show the funnel.

Guard: a step that would leave no feature keeps its single best one and warns,
rather than crash or hand an empty matrix to the classifier.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.linear_model import LassoCV, LogisticRegression, LogisticRegressionCV, lasso_path
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted, validate_data

from dlrn.errors import ConfigError, DlrnError

ICC_FORMS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)")
REMOVED_COLUMNS = ["feature", "statistic", "value", "reason"]


class SelectionWarning(UserWarning):
    """A selection step kept its best feature because it would otherwise have kept none."""


# --------------------------------------------------------------------------- ICC


def _rating_stack(first: pd.DataFrame, others: Sequence[pd.DataFrame]) -> np.ndarray:
    """Cases x raters x features array over the cases of the repeat readings."""
    cases = others[0].index
    for number, other in enumerate(others, start=1):
        if not other.index.equals(cases) and set(other.index) != set(cases):
            raise DlrnError(f"repeat reading {number} covers different cases than repeat reading 1")
        missing_columns = first.columns.difference(other.columns)
        if len(missing_columns):
            raise DlrnError(
                f"repeat reading {number} lacks {len(missing_columns)} feature(s) of the first "
                f"reading, e.g. {list(missing_columns[:5])}"
            )
    missing_cases = cases.difference(first.index)
    if len(missing_cases):
        raise DlrnError(
            f"{len(missing_cases)} case(s) of the repeat reading are not in the first reading: "
            f"{list(missing_cases[:10])}"
        )
    if len(cases) < 2:
        raise DlrnError(f"ICC needs at least 2 cases with repeat readings; got {len(cases)}")
    readings = [first.loc[cases]] + [other.loc[cases, first.columns] for other in others]
    for number, reading in enumerate(readings):
        _raise_on_missing(reading, what=f"reading {number} (0 = first)")
    return np.stack([reading.to_numpy(dtype=float) for reading in readings], axis=1)


def _raise_on_missing(table: pd.DataFrame, *, what: str) -> None:
    """Name the first feature and cases with missing values instead of a bare NaN error."""
    missing = table.isna()
    if missing.to_numpy().any():
        column = missing.any().idxmax()
        cases = list(table.index[missing[column]][:10])
        raise DlrnError(f"{what}: feature {column!r} is missing for case(s) {cases}")


def _icc_from_ratings(ratings: np.ndarray, form: str) -> np.ndarray:
    """Shrout & Fleiss (1979) single-rater ICCs from the two-way ANOVA mean squares."""
    n, k, _ = ratings.shape
    grand = ratings.mean(axis=(0, 1))
    ss_total = ((ratings - grand) ** 2).sum(axis=(0, 1))
    ss_rows = k * ((ratings.mean(axis=1) - grand) ** 2).sum(axis=0)
    ss_raters = n * ((ratings.mean(axis=0) - grand) ** 2).sum(axis=0)
    ss_error = ss_total - ss_rows - ss_raters
    ms_rows = ss_rows / (n - 1)
    ms_raters = ss_raters / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    ms_within = (ss_raters + ss_error) / (n * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "ICC(1,1)":
            return (ms_rows - ms_within) / (ms_rows + (k - 1) * ms_within)
        if form == "ICC(3,1)":
            return (ms_rows - ms_error) / (ms_rows + (k - 1) * ms_error)
        return (ms_rows - ms_error) / (
            ms_rows + (k - 1) * ms_error + k * (ms_raters - ms_error) / n
        )


def intraclass_correlation(
    first: pd.DataFrame,
    second: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    form: str = "ICC(2,1)",
) -> pd.Series:
    """ICC of every feature (column) between readings of the same cases (rows).

    ``form`` (Shrout & Fleiss 1979; McGraw & Wong 1996 names in brackets):
    ``"ICC(2,1)"`` (default) two-way random effects, absolute agreement, single
    rater [ICC(A,1)]; ``"ICC(3,1)"`` two-way mixed, consistency, single rater
    [ICC(C,1)]; ``"ICC(1,1)"`` one-way random, single rater. ``second`` is one
    repeat reading or several (all raters then enter one ANOVA). Cases are those
    of the repeat reading(s); all must be in ``first``. Constant features give NaN.
    """
    if form not in ICC_FORMS:
        raise ConfigError(f"ICC form {form!r} is not one of {', '.join(ICC_FORMS)}")
    others = [second] if isinstance(second, pd.DataFrame) else list(second)
    if not others:
        raise DlrnError("ICC needs at least one repeat reading")
    icc = _icc_from_ratings(_rating_stack(first, others), form)
    return pd.Series(icc, index=first.columns, name=form)


def repeat_icc(
    first: pd.DataFrame, repeats: Mapping[str, pd.DataFrame], *, form: str = "ICC(2,1)"
) -> pd.DataFrame:
    """ICC of the first reading against each repeat (intra- and/or inter-observer).

    One column per repeat (named by its key), one row per feature; a feature is
    reproducible when it passes the threshold in every column.
    """
    if not repeats:
        raise DlrnError("no repeat readings given for the ICC")
    table = pd.DataFrame(
        {
            name: intraclass_correlation(first, reading, form=form)
            for name, reading in repeats.items()
        }
    )
    table.index.name = "feature"
    return table


# ------------------------------------------------------------------ base class


def _binary_target(y: object) -> np.ndarray:
    labels = np.asarray(y)
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1} or len(values) < 2:
        raise DlrnError(
            f"the label must be 0/1 with both classes present; got values {sorted(values)}"
        )
    return labels.astype(int)


def _label_relevance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|point-biserial r| with the label: the same order as Student t-test p (smallest first)."""
    centred = X - X.mean(axis=0)
    label = y - y.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (centred * label[:, None]).sum(axis=0) / np.sqrt(
            (centred**2).sum(axis=0) * (label**2).sum()
        )
    return np.nan_to_num(np.abs(r), nan=0.0)


def _abs_correlation(X: np.ndarray) -> np.ndarray:
    """|Pearson r| between columns; constant columns correlate with nothing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.corrcoef(X, rowvar=False)
    r = np.nan_to_num(np.abs(np.atleast_2d(r)), nan=0.0)
    np.fill_diagonal(r, 0.0)
    return r


class _RecordingSelector(SelectorMixin, BaseEstimator):
    """Shared plumbing: input checks, feature names, the empty-selection guard, ``removed_``."""

    def _check_input(
        self, X: object, y: object, *, needs_y: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if needs_y and y is None:
            raise DlrnError(f"{type(self).__name__} needs the label y to fit")
        values = validate_data(self, X, dtype=float, ensure_min_features=1)
        labels = None if y is None else _binary_target(y)
        if labels is not None and len(labels) != len(values):
            raise DlrnError(
                f"{type(self).__name__}: {len(values)} rows in X but {len(labels)} labels"
            )
        return values, labels

    def _names(self) -> np.ndarray:
        return np.asarray(
            getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)]),
            dtype=object,
        )

    def _record(
        self,
        keep: np.ndarray,
        values: np.ndarray,
        statistic: str,
        reasons: Sequence[str],
        best: int,
    ) -> None:
        """Store support_ and removed_, keeping ``best`` if nothing survived."""
        keep = np.asarray(keep, dtype=bool).copy()
        names = self._names()
        if not keep.any():
            keep[best] = True
            warnings.warn(
                f"{type(self).__name__} would keep no feature; keeping the best one "
                f"({names[best]}, {statistic} = {values[best]:.4g})",
                SelectionWarning,
                stacklevel=3,
            )
        self.support_ = keep
        dropped = np.flatnonzero(~keep)
        self.removed_ = pd.DataFrame(
            {
                "feature": names[dropped],
                "statistic": statistic,
                "value": np.asarray(values, dtype=float)[dropped],
                "reason": [reasons[i] for i in dropped],
            },
            columns=REMOVED_COLUMNS,
        )

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_

    @property
    def selected_features_(self) -> list[str]:
        return list(self._names()[self._get_support_mask()])


# ---------------------------------------------------------------- the steps


class ReproducibilityFilter(_RecordingSelector):
    """Keep features whose ICC (minimum over all repeat readings) is >= ``threshold``.

    The ICC is decided once, from the repeat-segmentation subset, and passed in as
    ``icc`` (a Series, or a DataFrame with one column per repeat, as from
    :func:`repeat_icc`); fitting only applies it, so the kept list is fixed and
    recorded. It uses no label, so it cannot leak the outcome.
    """

    def __init__(self, icc: pd.Series | pd.DataFrame | None = None, threshold: float = 0.85):
        self.icc = icc
        self.threshold = threshold

    @classmethod
    def from_repeats(
        cls,
        first: pd.DataFrame,
        repeats: Mapping[str, pd.DataFrame],
        *,
        threshold: float = 0.85,
        form: str = "ICC(2,1)",
    ) -> ReproducibilityFilter:
        return cls(icc=repeat_icc(first, repeats, form=form), threshold=threshold)

    def fit(self, X: object, y: object = None) -> ReproducibilityFilter:
        self._check_input(X, y, needs_y=False)
        if self.icc is None:
            raise ConfigError("ReproducibilityFilter needs icc= (see repeat_icc / from_repeats)")
        icc = self.icc if isinstance(self.icc, pd.DataFrame) else self.icc.to_frame()
        names = self._names()
        missing = pd.Index(names).difference(icc.index)
        if len(missing):
            raise DlrnError(f"no ICC for {len(missing)} feature(s), e.g. {list(missing[:5])}")
        minimum = icc.loc[names].min(axis=1, skipna=False).to_numpy(dtype=float)
        self.icc_ = pd.Series(minimum, index=names, name="icc_min")
        reasons = [
            "ICC undefined (constant in the repeat subset)"
            if np.isnan(value)
            else f"ICC {value:.3f} < {self.threshold}"
            for value in minimum
        ]
        self._record(
            minimum >= self.threshold,
            minimum,
            "icc_min",
            reasons,
            best=int(np.nanargmax(np.nan_to_num(minimum, nan=-np.inf))),
        )
        return self


class ZScore(_RecordingSelector):
    """Standardise with the training mean and SD (ddof=0, as StandardScaler); drop constants."""

    def fit(self, X: object, y: object = None) -> ZScore:
        values, _ = self._check_input(X, y, needs_y=False)
        self.mean_ = values.mean(axis=0)
        self.scale_ = values.std(axis=0)
        constant = self.scale_ == 0
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
        values = validate_data(self, X, dtype=float, reset=False)
        return ((values - self.mean_) / self.scale_)[:, self.support_]


def univariate_tests(
    X: np.ndarray, y: np.ndarray, *, test: str = "auto", normality_alpha: float = 0.05
) -> pd.DataFrame:
    """Two-sample test per column between y == 0 and y == 1, R conventions.

    ``"auto"``: Student t-test (R ``t.test(var.equal=TRUE)``) when Shapiro-Wilk
    p > ``normality_alpha`` in both classes, else Mann-Whitney U with continuity
    correction (R ``wilcox.test(exact=FALSE, correct=TRUE)``). ``"t"`` or
    ``"mannwhitney"`` force one test.
    """
    if test not in ("auto", "t", "mannwhitney"):
        raise ConfigError(f"univariate test {test!r} is not one of auto, t, mannwhitney")
    negatives, positives = X[y == 0], X[y == 1]
    if min(len(negatives), len(positives)) < 3:
        raise DlrnError(
            f"the univariate filter needs at least 3 cases of each class; got "
            f"{len(negatives)} negatives and {len(positives)} positives"
        )
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))
        t_p = stats.ttest_ind(negatives, positives, axis=0).pvalue
        mw_p = stats.mannwhitneyu(
            negatives, positives, axis=0, use_continuity=True, method="asymptotic"
        ).pvalue
        if test == "auto":
            normal = (stats.shapiro(negatives, axis=0).pvalue > normality_alpha) & (
                stats.shapiro(positives, axis=0).pvalue > normality_alpha
            )
        else:
            normal = np.full(X.shape[1], test == "t")
    return pd.DataFrame(
        {"test": np.where(normal, "t-test", "Mann-Whitney"), "p_value": np.where(normal, t_p, mw_p)}
    )


class UnivariateFilter(_RecordingSelector):
    """Keep features that differ between classes: p < ``p_threshold`` (:func:`univariate_tests`)."""

    def __init__(
        self, p_threshold: float = 0.05, test: str = "auto", normality_alpha: float = 0.05
    ):
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


class LassoSelector(_RecordingSelector):
    """LASSO with K-fold CV at minimum CV error; selected = non-zero coefficients.

    ``method="lasso"`` (the study): ``LassoCV`` on the 0/1 label, CV error = mean
    squared error. ``method="logistic"``: L1 logistic regression, CV error = log
    loss, lambda reported as 1 / (C * n) (glmnet's scale). Folds are stratified
    and seeded. The radiomics score (:meth:`radscore`) is the LASSO linear
    predictor. The path is kept for plots: ``alphas_`` (lambda, decreasing),
    ``coef_path_`` (features x lambdas, fitted on all rows given), ``cv_error_mean_``,
    ``cv_error_se_`` (SD over folds / sqrt(K)), ``alpha_`` (chosen, minimum CV
    error) and ``alpha_1se_`` (largest lambda within one SE, for reference).
    """

    def __init__(
        self,
        method: str = "lasso",
        cv: int = 10,
        n_alphas: int = 100,
        seed: int = 0,
        max_iter: int = 10_000,
    ):
        self.method = method
        self.cv = cv
        self.n_alphas = n_alphas
        self.seed = seed
        self.max_iter = max_iter

    def fit(self, X: object, y: object = None) -> LassoSelector:
        values, labels = self._check_input(X, y, needs_y=True)
        if self.method not in ("lasso", "logistic"):
            raise ConfigError(f"LASSO method {self.method!r} is not one of lasso, logistic")
        smallest_class = int(np.bincount(labels).min())
        if smallest_class < self.cv:
            raise DlrnError(
                f"LASSO {self.cv}-fold CV needs at least {self.cv} cases of each class; "
                f"the smaller class has {smallest_class}"
            )
        folds = list(
            StratifiedKFold(self.cv, shuffle=True, random_state=self.seed).split(values, labels)
        )
        if self.method == "lasso":
            self._fit_lasso(values, labels, folds)
        else:
            self._fit_logistic(values, labels, folds)
        fold_errors = self.cv_errors_
        self.cv_error_mean_ = fold_errors.mean(axis=1)
        self.cv_error_se_ = fold_errors.std(axis=1, ddof=1) / np.sqrt(fold_errors.shape[1])
        best = int(np.argmin(self.cv_error_mean_))
        self.alpha_ = float(self.alphas_[best])
        within_se = self.cv_error_mean_ <= self.cv_error_mean_[best] + self.cv_error_se_[best]
        self.alpha_1se_ = float(self.alphas_[np.flatnonzero(within_se)[0]])
        self._guard_and_record()
        return self

    def _fit_lasso(self, values: np.ndarray, labels: np.ndarray, folds: list) -> None:
        model = LassoCV(alphas=self.n_alphas, cv=folds, max_iter=self.max_iter, n_jobs=1)
        model.fit(values, labels.astype(float))
        self.alphas_ = model.alphas_
        self.cv_errors_ = model.mse_path_
        self.cv_error_name_ = "mean squared error"
        self.coef_ = model.coef_.copy()
        self.intercept_ = float(model.intercept_)
        centred_x = values - values.mean(axis=0)
        centred_y = labels - labels.mean()
        _, path, _ = lasso_path(centred_x, centred_y, alphas=self.alphas_, max_iter=self.max_iter)
        self.coef_path_ = path
        self.intercept_path_ = labels.mean() - values.mean(axis=0) @ path

    def _fit_logistic(self, values: np.ndarray, labels: np.ndarray, folds: list) -> None:
        n = len(labels)
        model = LogisticRegressionCV(
            Cs=self.n_alphas,
            cv=folds,
            l1_ratios=(1.0,),
            solver="saga",
            scoring="neg_log_loss",
            max_iter=self.max_iter,
            random_state=self.seed,
            use_legacy_attributes=False,
            n_jobs=1,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.fit(values, labels)
        order = np.argsort(model.Cs_)  # increasing C = decreasing lambda
        cs = model.Cs_[order]
        self.alphas_ = 1.0 / (cs * n)
        self.cv_errors_ = -model.scores_[:, 0, order].T
        self.cv_error_name_ = "log loss"
        self.coef_ = model.coef_.ravel().copy()
        self.intercept_ = float(model.intercept_[0])
        singles = [
            LogisticRegression(
                C=c, l1_ratio=1.0, solver="saga", max_iter=self.max_iter, random_state=self.seed
            ).fit(values, labels)
            for c in cs
        ]
        self.coef_path_ = np.array([single.coef_.ravel() for single in singles]).T
        self.intercept_path_ = np.array([single.intercept_[0] for single in singles])

    def _guard_and_record(self) -> None:
        nonzero = self.coef_ != 0
        entered = np.flatnonzero((self.coef_path_ != 0).any(axis=0))
        if not nonzero.any() and entered.size:
            first = entered[0]
            self.coef_ = self.coef_path_[:, first].copy()
            self.intercept_ = float(self.intercept_path_[first])
        first_entry = np.array(
            [
                self.alphas_[np.flatnonzero(row)[0]] if row.any() else 0.0
                for row in self.coef_path_ != 0
            ]
        )
        reasons = [f"coefficient 0 at lambda.min = {self.alpha_:.4g}"] * len(self.coef_)
        self._record(
            self.coef_ != 0, self.coef_, "coefficient", reasons, best=int(np.argmax(first_entry))
        )

    def radscore(self, X: object) -> np.ndarray:
        """The LASSO linear predictor (intercept + X @ coefficients) on this step's input."""
        check_is_fitted(self, "coef_")
        values = validate_data(self, X, dtype=float, reset=False)
        return self.intercept_ + values @ self.coef_

    def coefficients(self) -> pd.Series:
        """Non-zero coefficients of the selected features, largest |coefficient| first."""
        check_is_fitted(self, "coef_")
        series = pd.Series(self.coef_, index=self._names(), name="coefficient")[self.support_]
        return series.reindex(series.abs().sort_values(ascending=False).index)

    def path_table(self) -> pd.DataFrame:
        """One row per lambda: lambda, log(lambda), CV error mean/SE, n non-zero, coefficients."""
        check_is_fitted(self, "coef_path_")
        table = pd.DataFrame(
            {
                "lambda": self.alphas_,
                "log_lambda": np.log(self.alphas_),
                "cv_error_mean": self.cv_error_mean_,
                "cv_error_se": self.cv_error_se_,
                "n_nonzero": (self.coef_path_ != 0).sum(axis=0),
                "chosen": self.alphas_ == self.alpha_,
            }
        )
        coefficients = pd.DataFrame(self.coef_path_.T, columns=self._names())
        return pd.concat([table, coefficients], axis=1)


# ------------------------------------------------------------ pipeline + funnel


def make_selection_pipeline(
    *,
    icc: pd.Series | pd.DataFrame | None = None,
    icc_threshold: float = 0.85,
    zscore: bool = True,
    p_threshold: float | None = 0.05,
    univariate_test: str = "auto",
    correlation_threshold: float | None = 0.9,
    greedy_threshold: float | None = 0.9,
    lasso: str | None = "lasso",
    lasso_folds: int = 10,
    seed: int = 0,
) -> Pipeline:
    """The study's selection recipe as one Pipeline (pandas output); ``None`` skips a step.

    Order: reproducibility (only when ``icc`` is given) -> z-score -> univariate
    -> correlation -> greedy -> LASSO. With equal thresholds the greedy step finds
    no pair left after the pairwise filter (it is kept as the study lists it); set
    ``correlation_threshold=None`` to de-duplicate by greedy deletion alone.
    """
    candidates = [
        ("reproducibility", icc is not None, lambda: ReproducibilityFilter(icc, icc_threshold)),
        ("zscore", zscore, ZScore),
        (
            "univariate",
            p_threshold is not None,
            lambda: UnivariateFilter(p_threshold, test=univariate_test),
        ),
        (
            "correlation",
            correlation_threshold is not None,
            lambda: CorrelationFilter(correlation_threshold),
        ),
        (
            "greedy",
            greedy_threshold is not None,
            lambda: GreedyCorrelationDeletion(greedy_threshold),
        ),
        ("lasso", lasso is not None, lambda: LassoSelector(lasso, cv=lasso_folds, seed=seed)),
    ]
    steps = [(name, build()) for name, wanted, build in candidates if wanted]
    if not steps:
        raise ConfigError(
            "the selection pipeline has no step; pass selection=None to skip selection"
        )
    return Pipeline(steps).set_output(transform="pandas")


def selection_funnel(pipeline: Pipeline) -> pd.DataFrame:
    """Features in and out of each fitted step: the 1562 -> ... -> 16 funnel."""
    rows = [
        {
            "step": name,
            "features_in": step.n_features_in_,
            "features_out": int(step.get_support().sum()),
            "removed": len(step.removed_),
        }
        for name, step in pipeline.steps
    ]
    return pd.DataFrame(rows, columns=["step", "features_in", "features_out", "removed"])


def removed_features(pipeline: Pipeline) -> pd.DataFrame:
    """Every feature removed by a fitted pipeline, with the step, statistic and reason."""
    tables = [step.removed_.assign(step=name) for name, step in pipeline.steps]
    return pd.concat(tables, ignore_index=True)[["step", *REMOVED_COLUMNS]]


def pipeline_radscore(pipeline: Pipeline, X: pd.DataFrame) -> pd.Series:
    """Radiomics score of raw features X through a fitted pipeline ending in LassoSelector."""
    lasso = pipeline.steps[-1][1]
    if not isinstance(lasso, LassoSelector):
        raise ConfigError("the radiomics score needs a selection pipeline ending with LASSO")
    before = pipeline[:-1].transform(X) if len(pipeline) > 1 else X
    return pd.Series(lasso.radscore(before), index=X.index, name="radscore")


# ------------------------------------------------------------------- figures
# House style and saving (PNG 300 dpi + SVG) come from dlrn.evaluation.figures.


def _styled() -> Any:
    """Context in which a whole figure is drawn, so titles and legends get the house style too."""
    import matplotlib.pyplot as plt

    from dlrn.evaluation.figures import STYLE

    return plt.rc_context(STYLE)


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, layout="constrained")


def _save(figure: Any, stem: str | Path) -> list[Path]:
    from dlrn.evaluation.figures import save_figure

    return save_figure(figure, stem)


def _mark_lambdas(axes: Any, lasso: LassoSelector) -> None:
    axes.axvline(
        np.log(lasso.alpha_),
        color="black",
        linewidth=1,
        label=f"lambda.min = {lasso.alpha_:.4g} (chosen)",
    )
    axes.axvline(
        np.log(lasso.alpha_1se_),
        color="grey",
        linestyle=":",
        linewidth=1,
        label=f"lambda.1se = {lasso.alpha_1se_:.4g}",
    )


def _finish_lambda_axes(figure: Any, axes: Any, lasso: LassoSelector) -> None:
    """glmnet's top axis (features with a non-zero coefficient) and a legend below the plot.

    The legend sits outside the axes so it never covers the lambda marks or the curves.
    """
    log_lambda = np.log(lasso.alphas_)
    counts = (lasso.coef_path_ != 0).sum(axis=0)
    picks = np.unique(np.linspace(0, len(log_lambda) - 1, 8).round().astype(int))
    top = axes.secondary_xaxis("top")
    top.set_xticks(log_lambda[picks], [str(count) for count in counts[picks]])
    top.set_xlabel("features with a non-zero coefficient")
    axes.set_xlabel("log(lambda)")
    figure.legend(loc="outside lower center", ncols=2)


def plot_lasso_path(lasso: LassoSelector, stem: str | Path) -> list[Path]:
    """Coefficients against log(lambda); selected features in colour, the chosen lambda marked."""
    with _styled():
        return _save(_draw_lasso_path(lasso), stem)


def _draw_lasso_path(lasso: LassoSelector) -> Any:
    from dlrn.evaluation.figures import OKABE_ITO

    colours = OKABE_ITO[:-1]  # the palette's black is kept for the lambda marks
    figure, axes = _figure((5.0, 4.0))
    log_lambda = np.log(lasso.alphas_)
    for row in lasso.coef_path_[~lasso.support_]:
        axes.plot(log_lambda, row, color="lightgrey", linewidth=0.6)
    for number, row in enumerate(lasso.coef_path_[lasso.support_]):
        axes.plot(log_lambda, row, color=colours[number % len(colours)], linewidth=0.9)
    _mark_lambdas(axes, lasso)
    axes.axhline(0, color="black", linewidth=0.5)
    axes.set_ylabel("coefficient (z-scored features)")
    axes.set_title(
        f"LASSO path: {int(lasso.support_.sum())} of {lasso.n_features_in_} features selected "
        "(grey: dropped)"
    )
    _finish_lambda_axes(figure, axes, lasso)
    return figure


def plot_lasso_cv(lasso: LassoSelector, stem: str | Path) -> list[Path]:
    """Cross-validated error (mean +/- SE) against log(lambda), the chosen lambda marked."""
    with _styled():
        return _save(_draw_lasso_cv(lasso), stem)


def _draw_lasso_cv(lasso: LassoSelector) -> Any:
    from dlrn.evaluation.figures import OKABE_ITO

    figure, axes = _figure((5.0, 4.0))
    axes.errorbar(
        np.log(lasso.alphas_),
        lasso.cv_error_mean_,
        yerr=lasso.cv_error_se_,
        fmt="o",
        markersize=2.5,
        color=OKABE_ITO[1],
        ecolor="lightgrey",
        elinewidth=0.8,
        capsize=1.2,
    )
    _mark_lambdas(axes, lasso)
    axes.set_ylabel(f"{lasso.cv}-fold CV {lasso.cv_error_name_}")
    axes.set_title("LASSO cross-validation (mean +/- SE over folds)")
    _finish_lambda_axes(figure, axes, lasso)
    return figure


def plot_lasso_coefficients(lasso: LassoSelector, stem: str | Path) -> list[Path]:
    """Horizontal bars of the selected features' coefficients, largest |coefficient| on top."""
    with _styled():
        return _save(_draw_lasso_coefficients(lasso), stem)


def _draw_lasso_coefficients(lasso: LassoSelector) -> Any:
    from dlrn.evaluation.figures import OKABE_ITO

    coefficients = lasso.coefficients().iloc[::-1]
    figure, axes = _figure((5.5, 1.0 + 0.2 * len(coefficients)))
    colours = np.where(coefficients > 0, OKABE_ITO[1], OKABE_ITO[0])
    axes.barh(range(len(coefficients)), coefficients.to_numpy(), color=colours)
    axes.set_yticks(range(len(coefficients)), coefficients.index)
    axes.axvline(0, color="black", linewidth=0.5)
    axes.set_xlabel("LASSO coefficient (z-scored features)")
    axes.set_title(f"{len(coefficients)} selected features, lambda = {lasso.alpha_:.4g}")
    return figure
