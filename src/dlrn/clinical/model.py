"""The clinical analysis' logistic regression as a scikit-learn classifier, or an L2 one.

The reference study's clinical model is a logistic regression of the clinical
predictors. :class:`LogisticModel` with ``C=None`` fits it exactly as the clinical
analysis and the nomogram do (:func:`dlrn.clinical.fitting.fit_logistic_model`):
R's glm, aliased terms set aside (coefficient 0, as R's ``predict`` ignores an
``NA`` term), and with ``regression="auto"`` Firth's penalised regression where the
maximum-likelihood fit shows separation, so that its probabilities stay finite.
With a number ``C`` it is scikit-learn's L2-penalised logistic regression (the
penalty keeps it finite under separation). The clinical models tune ``C`` over
``None`` and the usual penalties by cross-validation: on 177 training cases with
~15 descriptor terms the unpenalised fit overfits (benchmarks/README.md, "Clinical
statistics"), and the grid lets the data say so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from dlrn.clinical.fitting import INTERCEPT, check_regression, fit_logistic_model

__all__ = ["LogisticModel"]


class LogisticModel(ClassifierMixin, BaseEstimator):
    """Logistic regression by the rule ``regression`` ("auto", "standard" or "firth"), or,
    with a number ``C``, L2-penalised with that inverse strength (scikit-learn's, with
    ``class_weight``; the unpenalised fits weight every case alike, as R's glm).

    Learned: ``coef_`` (1 x features), ``intercept_``, ``method_`` ("ML", "Firth" or
    "L2"), ``aliased_`` and ``separated_`` (feature names, unpenalised fits), ``notes_``.
    """

    def __init__(self, regression: str = "auto", C: float | None = None,
                 class_weight: str | None = None) -> None:
        self.regression = regression
        self.C = C
        self.class_weight = class_weight

    def _frame(self, X: object) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X.astype(float)
        values = np.asarray(X, dtype=float)
        return pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])

    def fit(self, X: object, y: object) -> LogisticModel:
        check_regression(self.regression)
        frame = self._frame(X)
        labels = np.asarray(y, dtype=int)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.classes_ = np.array([0, 1])
        if self.C is not None:
            return self._fit_l2(frame, labels)
        design = frame.copy()
        design.insert(0, INTERCEPT, 1.0)
        terms = {name: [name] for name in frame.columns}
        model = fit_logistic_model(pd.Series(labels, index=frame.index), design, terms, {},
                                   regression=self.regression, what="logistic model")
        params = model.fit.params.fillna(0.0)
        self.intercept_ = np.array([float(params[INTERCEPT])])
        self.coef_ = params[list(frame.columns)].to_numpy(dtype=float)[None, :]
        self.method_ = model.method
        self.aliased_ = list(model.fit.aliased)
        self.separated_ = [t for t in model.separated if t != INTERCEPT]
        self.notes_ = list(model.notes.values())
        return self

    def _fit_l2(self, frame: pd.DataFrame, labels: np.ndarray) -> LogisticModel:
        from sklearn.linear_model import LogisticRegression

        penalised = LogisticRegression(C=float(self.C), class_weight=self.class_weight,
                                       max_iter=5000).fit(
            frame.to_numpy(dtype=float), labels)
        self.intercept_, self.coef_ = penalised.intercept_, penalised.coef_
        self.method_, self.aliased_, self.separated_, self.notes_ = "L2", [], [], []
        return self

    def decision_function(self, X: object) -> np.ndarray:
        check_is_fitted(self, "coef_")
        values = self._frame(X).to_numpy(dtype=float)
        return values @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: object) -> np.ndarray:
        probability = expit(self.decision_function(X))
        return np.column_stack([1 - probability, probability])

    def predict(self, X: object) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
