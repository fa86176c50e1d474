"""The nomogram stacked on an image score: the DLRN, or the radiomics nomogram without DL.

:func:`nomogram_inputs` lays the predictors out (the image score first, then the
clinical columns as they are in the table: the nomogram encodes them with the
study's clinical rules). :func:`out_of_fold_probability` gives the training cases'
out-of-fold nomogram probabilities with ``sklearn.model_selection.cross_val_predict``
over the image models' own folds, :class:`dlrn.nomogram.Nomogram` being a
scikit-learn classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import PredefinedSplit, cross_val_predict

DLR_SCORE = "DLR_score"
RAD_SCORE = "Rad_score"


@dataclass(frozen=True)
class NomogramKind:
    """Which nomogram a study builds: its name, its score, the stage the score comes from."""

    name: str
    title: str
    score: str
    score_stage: str
    score_model: str  # what the score is, in words


DLRN = NomogramKind("DLRN", "DLR nomogram (DLRN)", DLR_SCORE, "dlr_models", "DLR model")
RADIOMICS_NOMOGRAM = NomogramKind("RadN", "radiomics nomogram (RadN)", RAD_SCORE, "hcr_models",
                                  "HCR model")
NOMOGRAMS = {kind.name: kind for kind in (DLRN, RADIOMICS_NOMOGRAM)}
#: Where ``dlrn clinical --score`` puts an image score made elsewhere (a model stage's files).
GIVEN_SCORE_STAGE = "image_score"


def given_score_nomogram(column: str) -> NomogramKind:
    """The nomogram of an image score made elsewhere (a column of the table)."""
    return NomogramKind("Nomogram", f"nomogram of {column}", column, GIVEN_SCORE_STAGE,
                        f"image score {column!r}")


def nomogram_inputs(cases: pd.DataFrame, score: pd.Series, clinical: list[str],
                    score_name: str = DLR_SCORE) -> pd.DataFrame:
    """The nomogram's predictors: the image score beside the clinical columns (raw values)."""
    X = cases[clinical].copy()
    X.insert(0, score_name, score.loc[cases.index].astype(float))
    return X


def out_of_fold_probability(nomogram: object, X: pd.DataFrame, y: pd.Series,
                            folds: pd.Series, name: str = "DLRN") -> pd.Series:
    """Each training case's nomogram probability from the nomogram fitted without its fold.

    ``nomogram``: an unfitted :class:`dlrn.nomogram.Nomogram` (cloned per fold, so its
    clinical rules are learned on each fold's training part). With the image models'
    folds, a case's score and nomogram probability both come from models that never
    saw it. (The fitting cases' scores come from fold models that did see the held-out
    fold, as in any stacking of out-of-fold predictions.)
    """
    split = PredefinedSplit(folds.loc[X.index].to_numpy())
    probability = cross_val_predict(nomogram, X, y, cv=split, method="predict_proba")[:, 1]
    return pd.Series(probability, index=X.index, name=name)
