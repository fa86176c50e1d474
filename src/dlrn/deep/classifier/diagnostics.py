"""Diagnostics of the cross-fitted CNNs (nothing is fitted on them): whether their
scores pool onto one scale, and whether their features mean what the final CNN's do.
See :mod:`dlrn.deep.classifier.crossfit` and :mod:`dlrn.deep.classifier.calibration`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from dlrn.deep.classifier.crossfit import CrossfitResult


def pooling_check(crossfit: CrossfitResult, tolerance: float = 0.03) -> str:
    """The pooled out-of-fold AUC beside the fold CNNs' own held-out AUCs, in words.

    Within a fold the AUC compares one CNN's scores; pooled, it also compares the fold
    CNNs' scales. A pooled AUC more than ``tolerance`` below the folds' mean means the
    scales differ, and a cut-off chosen on the pooled scores will not carry over well.
    """
    folds = crossfit.fold_table["held_out_auc"]
    text = (f"Pooled out-of-fold AUC of the cross-fitted {crossfit.backbone} scores "
            f"{crossfit.auc:.3f}; each fold CNN on its own held-out fold "
            f"{folds.min():.3f}-{folds.max():.3f} (mean {folds.mean():.3f}).")
    if crossfit.auc < folds.mean() - tolerance:
        text += (" The pooled AUC is lower: the fold CNNs' scores sit on different scales, "
                 "so the cut-off chosen on them may transfer poorly to the test cases.")
    return text


def feature_agreement(crossfit: CrossfitResult, final_features: pd.DataFrame) -> pd.DataFrame:
    """Per fold: median correlation, feature by feature, of fold CNN and final CNN.

    Computed on each fold's held-out cases. Near 1: the fold CNNs' features mean what
    the final CNN's do, so a DLR model fitted on cross-fitted rows applies to the test
    cases' features; low values warn that it may not (e.g. long training from random
    initialisation). A diagnostic only: nothing is fitted on it.
    """
    final = final_features.set_axis(final_features.index.astype(str))
    rows = []
    for fold in sorted(crossfit.folds.unique()):
        ids = crossfit.folds.index[crossfit.folds == fold]
        left, right = crossfit.features.loc[ids], final.loc[ids, crossfit.features.columns]
        varying = (left.std() > 0) & (right.std() > 0)
        correlation = left.loc[:, varying].corrwith(right.loc[:, varying])
        rows.append({"fold": int(fold), "features_compared": int(varying.sum()),
                     "median_correlation": float(correlation.median())})
    return pd.DataFrame(rows)
