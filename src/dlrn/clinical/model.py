"""The clinical analysis' logistic regression as a scikit-learn classifier.

The reference study's clinical model is a logistic regression of the clinical
predictors. :class:`LogisticModel` fits it exactly as the clinical analysis and
the nomogram do (:func:`dlrn.clinical.regression.fit_logistic_model`): R's glm,
aliased terms set aside (coefficient 0, as R's ``predict`` ignores an ``NA``
term), and with ``regression="auto"`` Firth's penalised regression where the
maximum-likelihood fit shows separation, so that its probabilities stay finite
and its cross-validated AUC is not that of a diverging fit. Being a scikit-learn
classifier, it is tuned, cross-validated and saved like the other six.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from dlrn.clinical.regression import INTERCEPT, check_regression, fit_logistic_model

__all__ = ["LogisticModel"]


class LogisticModel(ClassifierMixin, BaseEstimator):
    """Logistic regression by the rule ``regression`` ("auto", "standard" or "firth").

    Learned: ``coef_`` (1 x features), ``intercept_``, ``method_`` ("ML" or "Firth"),
    ``aliased_`` and ``separated_`` (feature names), ``notes_``.
    """

    def __init__(self, regression: str = "auto") -> None:
        self.regression = regression

    def _frame(self, X: object) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X.astype(float)
        values = np.asarray(X, dtype=float)
        return pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])

    def fit(self, X: object, y: object) -> LogisticModel:
        check_regression(self.regression)
        frame = self._frame(X)
        labels = pd.Series(np.asarray(y, dtype=int), index=frame.index)
        design = frame.copy()
        design.insert(0, INTERCEPT, 1.0)
        terms = {name: [name] for name in frame.columns}
        model = fit_logistic_model(labels, design, terms, {}, regression=self.regression,
                                   what="logistic model")
        params = model.fit.params.fillna(0.0)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.intercept_ = np.array([float(params[INTERCEPT])])
        self.coef_ = params[list(frame.columns)].to_numpy(dtype=float)[None, :]
        self.method_ = model.method
        self.aliased_ = list(model.fit.aliased)
        self.separated_ = [t for t in model.separated if t != INTERCEPT]
        self.notes_ = list(model.notes.values())
        self.classes_ = np.array([0, 1])
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
