"""The DLRN: a nomogram stacked on the best DLR model's score and the clinical predictors.

:func:`nomogram_inputs` lays the predictors out (the DLR score first);
:class:`NomogramClassifier` is the nomogram as a scikit-learn classifier, so the
training cases' out-of-fold DLRN probabilities come from
``sklearn.model_selection.cross_val_predict`` with the DLR models' own folds
(:func:`out_of_fold_probability`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import PredefinedSplit, cross_val_predict

from dlrn.clinical_predictors import encode_clinical

DLR_SCORE = "DLR_score"


def nomogram_inputs(cases: pd.DataFrame, score: pd.Series, clinical: list[str],
                    levels: dict[str, list[str]]) -> pd.DataFrame:
    """The DLRN predictors: the DLR score beside the significant clinical features."""
    encode_clinical(cases, clinical, levels)  # names the case and column of bad values
    X = cases[clinical].copy()
    for column in clinical:
        if column in levels:
            X[column] = X[column].astype(str)
    X.insert(0, DLR_SCORE, score.loc[cases.index].astype(float))
    return X


class NomogramClassifier(ClassifierMixin, BaseEstimator):
    """:class:`dlrn.nomogram.Nomogram` behind ``fit`` / ``predict_proba``.

    ``nomogram_`` is the fitted nomogram (points, drawing, ``to_dict``).
    """

    def __init__(self, categorical: Sequence[str] = ()) -> None:
        self.categorical = categorical

    def fit(self, X: pd.DataFrame, y: pd.Series) -> NomogramClassifier:
        from dlrn.nomogram import Nomogram

        self.nomogram_ = Nomogram(categorical=list(self.categorical)).fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        probability = self.nomogram_.points(X)["probability"].to_numpy(float)
        return np.column_stack([1 - probability, probability])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the probability is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def out_of_fold_probability(X: pd.DataFrame, y: pd.Series, folds: pd.Series,
                            categorical: Sequence[str]) -> pd.Series:
    """Each training case's DLRN probability from the nomogram fitted without its fold.

    With the DLR models' folds, a case's DLR score and DLRN probability both come from
    models that never saw it. (The fitting cases' DLR scores come from fold models that
    did see the held-out fold, as in any stacking of out-of-fold predictions.)
    """
    split = PredefinedSplit(folds.loc[X.index].to_numpy())
    probability = cross_val_predict(NomogramClassifier(categorical), X, y, cv=split,
                                    method="predict_proba")[:, 1]
    return pd.Series(probability, index=X.index, name="DLRN")
