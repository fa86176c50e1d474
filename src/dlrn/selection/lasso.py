"""LASSO selection with glmnet's cross-validated lambda, fast enough to nest.

The path is solved exactly by LARS (``sklearn.linear_model.lars_path``) and read
off at the lambda grid: coordinate descent crawls near the interpolating end of
the path when features are about as many as cases (45 s for one fit on 177 x 176
features), LARS takes a fraction of a second for the same solutions (to CD's
tolerance, checked in benchmarks/bench_selection.py). The path then stops where
glmnet stops it (``glmnet.control``: deviance ratio > 0.999, its change < 1e-5
of itself after the first 5 lambdas, or as many non-zero coefficients as cases),
and a fold's shorter path carries its last fit forward, as ``cv.glmnet`` does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, lars_path, lasso_path
from sklearn.utils.validation import check_is_fitted

from dlrn.errors import ConfigError, DlrnError
from dlrn.selection._base import SelectionWarning, _RecordingSelector

LASSO_METHODS = ("lasso", "logistic")
LAMBDA_RULES = ("min", "1se")
#: glmnet.control() defaults: devmax, fdev, mnlam.
DEVIANCE_RATIO_MAX = 0.999
DEVIANCE_CHANGE_MIN = 1e-5
MIN_LAMBDAS = 5
#: Smallest lambda of the grid as a fraction of the largest (sklearn's LassoCV eps).
LAMBDA_RATIO = 1e-3


@dataclass
class LassoPath:
    """Coefficients (features x lambdas) and intercepts at ``alphas``, and why the path ended."""

    alphas: np.ndarray
    coefs: np.ndarray
    intercepts: np.ndarray
    stop: str


def lambda_grid(values: np.ndarray, labels: np.ndarray, n_alphas: int) -> np.ndarray:
    """``n_alphas`` lambdas, log-spaced from the smallest that keeps every coefficient 0.

    lambda_max = max |x_j' (y - mean y)| / n on centred features (LassoCV's and
    glmnet's definition) down to :data:`LAMBDA_RATIO` x lambda_max.
    """
    centred = values - values.mean(axis=0)
    largest = np.abs(centred.T @ (labels - labels.mean())).max() / len(labels)
    if not largest > 0:  # no feature covaries with the label: every lambda gives no feature
        largest = 1.0
    return np.geomspace(largest, largest * LAMBDA_RATIO, n_alphas)


def glmnet_stop(
    deviance_ratio: np.ndarray, nonzero: np.ndarray, n_samples: int, max_features: int | None
) -> tuple[int, str]:
    """Number of lambdas glmnet keeps, and why it stopped there ("" = the whole grid).

    Stops after the first lambda with deviance ratio > 0.999, or (from the 5th lambda)
    a ratio that grew by less than 1e-5 of itself, or n non-zero coefficients; a lambda
    with more than ``max_features`` non-zero coefficients is not kept (glmnet's dfmax),
    except the first (a CV fold whose path starts above the cap still gets an error).
    """
    for m in range(len(deviance_ratio)):
        if max_features is not None and nonzero[m] > max_features:
            return max(m, 1), f"more than max_features = {max_features} non-zero coefficients"
        if deviance_ratio[m] > DEVIANCE_RATIO_MAX:
            return m + 1, f"deviance ratio {deviance_ratio[m]:.4f} > {DEVIANCE_RATIO_MAX}"
        if nonzero[m] >= n_samples:
            return m + 1, f"{nonzero[m]} non-zero coefficients for {n_samples} cases"
        grown = deviance_ratio[m] - deviance_ratio[m - 1] if m else np.inf
        if m + 1 >= MIN_LAMBDAS and grown < DEVIANCE_CHANGE_MIN * deviance_ratio[m]:
            return m + 1, f"deviance ratio grew by less than {DEVIANCE_CHANGE_MIN:g} of itself"
    return len(deviance_ratio), ""


def _lars_at(centred: np.ndarray, target: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Exact LASSO coefficients at ``alphas`` (decreasing): LARS breakpoints, linear in between.

    Where LARS ends early (degenerate regressors), coordinate descent continues
    from its last solution.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        knots, _, path = lars_path(
            centred, target, method="lasso", alpha_min=alphas[-1], max_iter=100_000
        )
    coefs = np.zeros((centred.shape[1], len(alphas)))
    last = np.searchsorted(-knots, -alphas, side="right") - 1  # last knot >= alpha
    inside = (last >= 0) & (last < len(knots) - 1)
    k = last[inside]
    weight = (knots[k] - alphas[inside]) / (knots[k] - knots[k + 1])
    coefs[:, inside] = path[:, k] + weight * (path[:, k + 1] - path[:, k])
    at_end = (last == len(knots) - 1) & (alphas >= knots[-1])
    coefs[:, at_end] = path[:, [-1]]
    beyond = alphas < knots[-1]
    if beyond.any():
        _, rest, _ = lasso_path(
            centred, target, alphas=alphas[beyond], coef_init=path[:, -1], max_iter=10_000
        )
        coefs[:, beyond] = rest
    return coefs


def gaussian_path(
    values: np.ndarray, labels: np.ndarray, alphas: np.ndarray, max_features: int | None
) -> LassoPath:
    """Least-squares LASSO of the 0/1 label (sklearn's Lasso objective), stopped as glmnet."""
    x_mean, y_mean = values.mean(axis=0), labels.mean()
    centred, target = values - x_mean, labels - y_mean
    coefs = _lars_at(centred, target, alphas)
    residual = target[:, None] - centred @ coefs
    ratio = 1.0 - (residual**2).sum(axis=0) / (target**2).sum()
    end, stop = glmnet_stop(ratio, (coefs != 0).sum(axis=0), len(labels), max_features)
    coefs = coefs[:, :end]
    return LassoPath(alphas[:end], coefs, y_mean - x_mean @ coefs, stop)


def _binomial_deviance(labels: np.ndarray, probability: np.ndarray) -> float:
    probability = np.clip(probability, 1e-15, 1 - 1e-15)
    return float(-2 * np.sum(labels * np.log(probability) + (1 - labels) * np.log1p(-probability)))


def logistic_path(
    values: np.ndarray,
    labels: np.ndarray,
    alphas: np.ndarray,
    max_features: int | None,
    *,
    max_iter: int,
    seed: int,
) -> LassoPath:
    """L1 logistic regression (SAGA, warm starts) at C = 1 / (n lambda), stopped as glmnet."""
    n = len(labels)
    null = _binomial_deviance(labels, np.full(n, labels.mean()))
    model = LogisticRegression(
        l1_ratio=1.0, solver="saga", warm_start=True, max_iter=max_iter, random_state=seed
    )
    coefs, intercepts, ratios = [], [], []
    for alpha in alphas:
        model.set_params(C=1.0 / (n * alpha)).fit(values, labels)
        coefs.append(model.coef_.ravel().copy())
        intercepts.append(float(model.intercept_[0]))
        ratios.append(1.0 - _binomial_deviance(labels, model.predict_proba(values)[:, 1]) / null)
        nonzero = np.count_nonzero(coefs, axis=1)
        end, stop = glmnet_stop(np.asarray(ratios), nonzero, n, max_features)
        if end < len(ratios) or stop:
            break
    coefs_array = np.array(coefs[:end]).T.reshape(values.shape[1], end)
    return LassoPath(alphas[:end], coefs_array, np.asarray(intercepts[:end]), stop)


def _fold_errors(
    path: LassoPath, n_lambdas: int, values: np.ndarray, labels: np.ndarray, method: str
) -> np.ndarray:
    """Validation error at each of ``n_lambdas``; past the fold's stop its last fit carries on."""
    linear = path.intercepts + values @ path.coefs
    linear = np.column_stack([linear] + [linear[:, -1]] * (n_lambdas - linear.shape[1]))
    if method == "lasso":
        return ((labels[:, None] - linear) ** 2).mean(axis=0)
    probability = np.clip(1.0 / (1.0 + np.exp(-linear)), 1e-15, 1 - 1e-15)
    return -(
        labels[:, None] * np.log(probability) + (1 - labels[:, None]) * np.log1p(-probability)
    ).mean(axis=0)


class LassoSelector(_RecordingSelector):
    """LASSO with K-fold CV (glmnet's lambda.min or lambda.1se); selected = non-zero coefficients.

    ``method="lasso"`` (the study): least squares on the 0/1 label (LassoCV's
    objective), CV error = mean squared error. ``method="logistic"``: L1 logistic
    regression, CV error = log loss. Both share the lambda grid of
    :func:`lambda_grid` (lambda on glmnet's per-case scale) and glmnet's path stop
    (:func:`glmnet_stop`). Folds are stratified, seeded and grouped by patient when
    ``groups`` has repeats. ``lambda_rule``: ``"1se"`` (default: largest lambda within
    one SE of the lowest mean CV error, what glmnet's ``coef()`` uses) or ``"min"``.
    ``max_features``: the path stops before the first lambda with more than that many
    non-zero coefficients (glmnet's ``dfmax``), so the rule picks among lambdas keeping
    at most ``max_features``.
    ``max_iter`` bounds SAGA's iterations (``method="logistic"``); LARS needs none.

    ``fold_features`` (given by :class:`~dlrn.selection.pipeline.SelectionPipeline`
    when ``nested``): per fold (train index, validation index, train features,
    validation features) from the preceding steps refitted on the fold's training
    rows, so lambda is chosen on features the fold's labels did not pick.

    Kept for plots and reports: ``alphas_`` (decreasing), ``coef_path_`` (features x
    lambdas, all rows), ``cv_errors_`` (lambdas x folds), ``cv_error_mean_``,
    ``cv_error_se_`` (SD over folds / sqrt(K)), ``alpha_min_``, ``alpha_1se_``,
    ``alpha_`` (the lambda whose coefficients are used), ``lambda_used_`` (which rule
    gave it), ``empty_at_rule_`` (the rule's lambda kept no feature), ``path_stop_``,
    ``fold_n_lambdas_`` (lambdas each fold's path reached before glmnet's stop).
    """

    def __init__(
        self,
        method: str = "lasso",
        cv: int = 10,
        n_alphas: int = 100,
        seed: int = 0,
        max_iter: int = 10_000,
        lambda_rule: str = "1se",
        max_features: int | None = None,
        nested: bool = True,
    ):
        self.method = method
        self.cv = cv
        self.n_alphas = n_alphas
        self.seed = seed
        self.max_iter = max_iter
        self.lambda_rule = lambda_rule
        self.max_features = max_features
        self.nested = nested

    def cv_folds(self, y: object, groups: object = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The LASSO's CV folds: stratified, seeded, grouped by patient when patients repeat."""
        from dlrn.classifiers import make_cv

        labels = np.asarray(y).astype(int)
        smallest_class = int(np.bincount(labels).min())
        if smallest_class < self.cv:
            raise DlrnError(
                f"LASSO {self.cv}-fold CV needs at least {self.cv} cases of each class; "
                f"the smaller class has {smallest_class}"
            )
        return make_cv(labels, groups, n_splits=self.cv, seed=self.seed)

    def fit(
        self, X: object, y: object = None, groups: object = None, fold_features: object = None
    ) -> LassoSelector:
        values, labels = self._check_input(X, y, needs_y=True)
        self._check_settings()
        self.nested_ = fold_features is not None
        if fold_features is None:
            fold_features = [
                (train, validation, values[train], values[validation])
                for train, validation in self.cv_folds(labels, groups)
            ]
        full = self._path(values, labels, lambda_grid(values, labels, self.n_alphas))
        self.alphas_, self.coef_path_ = full.alphas, full.coefs
        self.intercept_path_, self.path_stop_ = full.intercepts, full.stop
        fold_paths = [
            (self._path(train_x, labels[train], self.alphas_), validation_x, labels[validation])
            for train, validation, train_x, validation_x in fold_features
        ]
        self.fold_n_lambdas_ = np.array([len(path.alphas) for path, _, _ in fold_paths])
        self.cv_errors_ = np.column_stack(
            [
                _fold_errors(path, len(self.alphas_), validation_x, validation_y, self.method)
                for path, validation_x, validation_y in fold_paths
            ]
        )
        self.cv_error_name_ = "mean squared error" if self.method == "lasso" else "log loss"
        self._choose_lambda()
        return self

    def _check_settings(self) -> None:
        if self.method not in LASSO_METHODS:
            raise ConfigError(f"LASSO method {self.method!r} is not one of lasso, logistic")
        if self.lambda_rule not in LAMBDA_RULES:
            raise ConfigError(f"lasso_lambda {self.lambda_rule!r} is not one of min, 1se")
        if self.max_features is not None and self.max_features < 1:
            raise ConfigError(f"max_features must be at least 1 (or null); got {self.max_features}")

    def _path(self, values: np.ndarray, labels: np.ndarray, alphas: np.ndarray) -> LassoPath:
        if self.method == "lasso":
            return gaussian_path(values, labels.astype(float), alphas, self.max_features)
        return logistic_path(
            values, labels, alphas, self.max_features, max_iter=self.max_iter, seed=self.seed
        )

    def _choose_lambda(self) -> None:
        """glmnet's lambda.min / lambda.1se; an empty model at the rule's lambda is said aloud."""
        errors = self.cv_errors_
        self.cv_error_mean_ = errors.mean(axis=1)
        self.cv_error_se_ = errors.std(axis=1, ddof=1) / np.sqrt(errors.shape[1])
        best = int(np.argmin(self.cv_error_mean_))
        within_se = self.cv_error_mean_ <= self.cv_error_mean_[best] + self.cv_error_se_[best]
        one_se = int(np.flatnonzero(within_se)[0])
        self.alpha_min_ = float(self.alphas_[best])
        self.alpha_1se_ = float(self.alphas_[one_se])
        chosen = best if self.lambda_rule == "min" else one_se
        self.lambda_used_ = f"lambda.{self.lambda_rule}"
        nonzero = (self.coef_path_ != 0).any(axis=0)
        self.empty_at_rule_ = not nonzero[chosen]
        if self.empty_at_rule_ and nonzero.any():
            entered = int(np.argmax(nonzero))
            warnings.warn(SelectionWarning(
                "LASSO keeps no feature at its lambda rule (no feature predicts the label out "
                "of fold); the first lambda on the path with a feature is used",
                message=f"LASSO keeps no feature at {self.lambda_used_} = "
                        f"{self.alphas_[chosen]:.4g}: the cross-validated error is lowest "
                        "without any feature, i.e. no feature predicts the label out of fold; "
                        "using the first lambda on the path with a non-zero coefficient "
                        f"({self.alphas_[entered]:.4g}) instead"), stacklevel=3)
            self.lambda_used_ = f"first lambda with a feature ({self.lambda_used_} keeps none)"
            chosen = entered
        self.alpha_ = float(self.alphas_[chosen])
        self.coef_ = self.coef_path_[:, chosen].copy()
        self.intercept_ = float(self.intercept_path_[chosen])
        first_entry = np.array(
            [self.alphas_[np.argmax(row)] if row.any() else 0.0 for row in self.coef_path_ != 0]
        )
        reasons = [f"coefficient 0 at {self.lambda_used_} = {self.alpha_:.4g}"] * len(self.coef_)
        self._record(
            self.coef_ != 0, self.coef_, "coefficient", reasons, best=int(np.argmax(first_entry))
        )

    def radscore(self, X: object) -> np.ndarray:
        """The LASSO linear predictor (intercept + X @ coefficients) on this step's input."""
        check_is_fitted(self, "coef_")
        values = self._values(X, reset=False)
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
