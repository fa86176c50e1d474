"""The fold CNNs' deep features where no single fold CNN applies: the mean over the
fold CNNs for cases none of them trained on (the DLR's test, external and ``predict``
rows), and how far fold and final CNN features agree. See :mod:`dlrn.deep.crossfit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dlrn.deep.crossfit import CrossfitResult
    from dlrn.deep.data import CropCache
    from dlrn.deep.features import FeatureMode


def mean_features(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Element-wise mean of same-shaped frames, in float32 like the features."""
    return (sum(frame.astype(np.float64) for frame in frames) / len(frames)).astype(np.float32)


def fold_mean_features(model_dirs: Sequence[str | Path], cache: CropCache,
                       case_ids: Sequence[str], *, mode: FeatureMode = "pooled",
                       batch_size: int = 32, device: str = "cpu") -> pd.DataFrame:
    """DLR features of new cases (``predict``): the mean over the saved fold CNNs.

    ``model_dirs``: the ``fold<k>`` folders :func:`dlrn.deep.crossfit.crossfit_deep` wrote.
    """
    from dlrn.deep.features import extract_deep_features
    from dlrn.deep.train import load_trained_model

    frames = []
    for model_dir in model_dirs:
        model, card = load_trained_model(model_dir)
        frames.append(extract_deep_features(model, card["backbone"], cache, case_ids,
                                            normalization=card["normalization"], mode=mode,
                                            device=device, batch_size=batch_size))
    return mean_features(frames)


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
