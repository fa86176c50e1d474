"""The fold CNNs' deep features where no single fold CNN applies: the mean over the
fold CNNs for cases none of them trained on (the DLR's test, external and ``predict``
rows). See :mod:`dlrn.deep.classifier.crossfit`; how far fold and final CNN features
agree: :func:`dlrn.deep.classifier.diagnostics.feature_agreement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dlrn.deep.classifier.features import FeatureMode
    from dlrn.deep.data import CropCache


def mean_features(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Element-wise mean of same-shaped frames, in float32 like the features."""
    return (sum(frame.astype(np.float64) for frame in frames) / len(frames)).astype(np.float32)


def fold_mean_features(model_dirs: Sequence[str | Path], cache: CropCache,
                       case_ids: Sequence[str], *, mode: FeatureMode = "pooled",
                       batch_size: int = 32, device: str = "cpu") -> pd.DataFrame:
    """DLR features of new cases (``predict``): the mean over the saved fold CNNs.

    ``model_dirs``: the ``fold<k>`` folders that
    :func:`dlrn.deep.classifier.crossfit.crossfit_deep` wrote.
    """
    from dlrn.deep.classifier.features import extract_deep_features
    from dlrn.deep.classifier.train import load_trained_model

    frames = []
    for model_dir in model_dirs:
        model, card = load_trained_model(model_dir)
        frames.append(extract_deep_features(model, card["backbone"], cache, case_ids,
                                            normalization=card["normalization"], mode=mode,
                                            device=device, batch_size=batch_size))
    return mean_features(frames)
