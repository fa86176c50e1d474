"""The study's selection recipe as one Pipeline, its settings, and what it kept and removed.

Order: reproducibility (ICC, when given) -> z-score -> univariate test ->
correlation -> greedy deletion -> LASSO. :class:`SelectionPipeline` refits the
steps before the LASSO inside every LASSO CV fold (``nested``), so the CV error
that picks lambda is measured on features chosen without the fold's validation
labels: with the filters fitted once on all rows, the t-test has already seen
every label and the CV error keeps falling as noise features enter (issue 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from dlrn.errors import ConfigError
from dlrn.selection._base import REMOVED_COLUMNS
from dlrn.selection.filters import (
    CorrelationFilter,
    GreedyCorrelationDeletion,
    UnivariateFilter,
    ZScore,
)
from dlrn.selection.icc import ReproducibilityFilter
from dlrn.selection.lasso import LassoSelector


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class SelectionSettings:
    """Every knob of the selection recipe; ``None`` for a threshold skips that step."""

    icc_threshold: float = field(
        default=0.85,
        metadata=_help(
            "keep features with ICC >= this in every repeat reading (only with an ICC table)"
        ),
    )
    zscore: bool = field(
        default=True,
        metadata=_help("standardise with the training mean and SD; drops constant features"),
    )
    p_threshold: float | None = field(
        default=0.05,
        metadata=_help(
            "keep features whose univariate test p-value is below this; null skips the test"
        ),
    )
    univariate_test: Literal["t", "mannwhitney", "auto"] = field(
        default="t",
        metadata=_help(
            "t = Student t-test; mannwhitney = Mann-Whitney U; auto = Shapiro-Wilk in both "
            "classes picks the t-test, else Mann-Whitney"
        ),
    )
    normality_alpha: float = field(
        default=0.05, metadata=_help("Shapiro-Wilk level of univariate_test: auto")
    )
    correlation_threshold: float | None = field(
        default=0.9,
        metadata=_help(
            "of two features with |Pearson r| above this keep the more label-relevant one"
        ),
    )
    greedy_threshold: float | None = field(
        default=0.9,
        metadata=_help(
            "then drop the feature with most partners at |r| above this until none is left"
        ),
    )
    lasso: Literal["lasso", "logistic"] | None = field(
        default="lasso",
        metadata=_help(
            "lasso = least squares on the 0/1 label (CV error: MSE); logistic = L1 logistic "
            "regression (CV error: log loss); null skips the LASSO"
        ),
    )
    lasso_folds: int = field(
        default=10,
        metadata=_help("cross-validation folds choosing lambda (stratified, grouped by patient)"),
    )
    lasso_lambda: Literal["min", "1se"] = field(
        default="1se",
        metadata=_help(
            "1se = largest lambda within one SE of the lowest mean CV error (glmnet's "
            "lambda.1se, fewer false features); min = the lambda with the lowest mean CV error"
        ),
    )
    lasso_alphas: int = field(
        default=100,
        metadata=_help(
            "lambdas on the path, log-spaced from the largest useful one down 1000-fold"
        ),
    )
    max_features: int | None = field(
        default=None,
        metadata=_help(
            "the LASSO path stops before more than this many non-zero coefficients "
            "(glmnet's dfmax); null = no cap"
        ),
    )
    nested: bool = field(
        default=True,
        metadata=_help(
            "refit the steps before the LASSO inside each LASSO CV fold (honest lambda)"
        ),
    )
    seed: int = field(default=0, metadata=_help("seed of the LASSO CV folds"))


class SelectionPipeline(Pipeline):
    """A Pipeline whose final LASSO picks lambda on folds with the earlier steps refitted.

    ``fit(X, y, groups=None)``: ``groups`` (patient ids) groups the LASSO CV folds.
    When the LASSO is ``nested``, the steps before it are cloned and fitted on each
    fold's training rows, and the LASSO gets each fold's filtered features; the
    steps themselves are then fitted on all rows as in a plain Pipeline.
    """

    def fit(self, X: Any, y: Any = None, groups: Any = None, **params: Any) -> SelectionPipeline:
        return super().fit(X, y, **self._lasso_params(X, y, groups), **params)

    def fit_transform(self, X: Any, y: Any = None, groups: Any = None, **params: Any) -> Any:
        return super().fit_transform(X, y, **self._lasso_params(X, y, groups), **params)

    def _lasso_params(self, X: Any, y: Any, groups: Any) -> dict[str, Any]:
        name, lasso = self.steps[-1]
        if not isinstance(lasso, LassoSelector) or y is None:
            return {}
        params: dict[str, Any] = {f"{name}__groups": groups}
        if lasso.nested and len(self.steps) > 1:
            fixed, refitted = self._split_filters()
            values = np.asarray(fixed.fit_transform(X, y) if fixed else X, dtype=float)
            labels = np.asarray(y)
            params[f"{name}__fold_features"] = [
                (train, validation, *_fold_output(refitted, values, labels, train, validation))
                for train, validation in lasso.cv_folds(labels, groups)
            ]
        return params

    def _split_filters(self) -> tuple[Pipeline | None, Pipeline]:
        """Leading ICC steps (fixed lists, fitted once, by feature name) and the steps to refit.

        Inside the folds the refitted steps run on plain arrays: pandas output adds
        nothing there and its per-column checks would cost more than the fits.
        """
        steps = [(name, clone(step)) for name, step in self.steps[:-1]]
        n_fixed = 0
        while n_fixed < len(steps) and isinstance(steps[n_fixed][1], ReproducibilityFilter):
            n_fixed += 1
        fixed = Pipeline(steps[:n_fixed]).set_output(transform="default") if n_fixed else None
        return fixed, Pipeline(steps[n_fixed:]).set_output(transform="default")


def _fold_output(
    filters: Pipeline, values: np.ndarray, labels: np.ndarray, train: Any, validation: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``filters`` refitted on the fold's training rows; their output on both parts of the fold."""
    fitted = clone(filters)
    if not fitted.steps:
        return values[train], values[validation]
    return fitted.fit_transform(values[train], labels[train]), fitted.transform(values[validation])


def _settings(
    settings: SelectionSettings | Mapping[str, Any] | None, overrides: Mapping[str, Any]
) -> SelectionSettings:
    known = {item.name for item in fields(SelectionSettings)}
    given = dict(asdict(settings) if isinstance(settings, SelectionSettings) else settings or {})
    given.update(overrides)
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(
            f"unknown selection setting(s) {unknown}; known: {', '.join(sorted(known))}"
        )
    return replace(SelectionSettings(), **given)


def make_selection_pipeline(
    settings: SelectionSettings | Mapping[str, Any] | None = None,
    /,
    *,
    icc: pd.Series | pd.DataFrame | None = None,
    **overrides: Any,
) -> SelectionPipeline:
    """The study's selection recipe as one SelectionPipeline (pandas output).

    ``settings``: a :class:`SelectionSettings` or a mapping of its fields; keyword
    arguments override single fields (``make_selection_pipeline(seed=1)``). The ICC
    step runs only when ``icc`` (from :func:`~dlrn.selection.icc.repeat_icc`) is
    given. With equal thresholds the greedy step finds no pair left after the
    pairwise filter (it is kept as the study lists it).
    """
    s = _settings(settings, overrides)
    candidates = [
        ("reproducibility", icc is not None, lambda: ReproducibilityFilter(icc, s.icc_threshold)),
        ("zscore", s.zscore, ZScore),
        (
            "univariate",
            s.p_threshold is not None,
            lambda: UnivariateFilter(
                s.p_threshold, test=s.univariate_test, normality_alpha=s.normality_alpha
            ),
        ),
        (
            "correlation",
            s.correlation_threshold is not None,
            lambda: CorrelationFilter(s.correlation_threshold),
        ),
        (
            "greedy",
            s.greedy_threshold is not None,
            lambda: GreedyCorrelationDeletion(s.greedy_threshold),
        ),
        (
            "lasso",
            s.lasso is not None,
            lambda: LassoSelector(
                s.lasso,
                cv=s.lasso_folds,
                n_alphas=s.lasso_alphas,
                seed=s.seed,
                lambda_rule=s.lasso_lambda,
                max_features=s.max_features,
                nested=s.nested,
            ),
        ),
    ]
    steps = [(name, build()) for name, wanted, build in candidates if wanted]
    if not steps:
        raise ConfigError(
            "the selection pipeline has no step; pass selection=None to skip selection"
        )
    return SelectionPipeline(steps).set_output(transform="pandas")


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
