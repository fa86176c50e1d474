"""Decision curve analysis (Vickers & Elkin 2006): net benefit over threshold probabilities.

NB(pt) = TP/n - FP/n * pt/(1-pt), a case being treated when ``p >= pt``;
treat-all NB = prevalence - (1 - prevalence) * pt/(1-pt); treat-none NB = 0.
The default grid is pt = k/100, k = 1..99, built as exact doubles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError
from dlrn.evaluation._checks import binary_labels, probabilities

__all__ = ["DEFAULT_THRESHOLDS", "decision_curve", "treat_all_net_benefit"]

DEFAULT_THRESHOLDS = np.arange(1, 100) / 100


def _grid(thresholds: object) -> np.ndarray:
    grid = np.asarray(DEFAULT_THRESHOLDS if thresholds is None else thresholds, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or ((grid <= 0) | (grid >= 1)).any():
        raise DlrnError("decision-curve thresholds must be probabilities strictly between 0 and 1")
    return grid


def treat_all_net_benefit(y: object, thresholds: object = None) -> np.ndarray:
    """Net benefit of treating everybody at each threshold."""
    labels, grid = binary_labels(y), _grid(thresholds)
    prevalence = labels.mean()
    return prevalence - (1 - prevalence) * grid / (1 - grid)


def decision_curve(y: object, p: object, thresholds: object = None) -> pd.DataFrame:
    """Net benefit of the model with TP/FP counts, treat-all and treat-none, per threshold."""
    labels, probs, grid = binary_labels(y), probabilities(p), _grid(thresholds)
    if labels.shape != probs.shape:
        raise DlrnError(f"{probs.size} probabilities for {labels.size} labels")
    n = labels.size
    pos, neg = np.sort(probs[labels == 1]), np.sort(probs[labels == 0])
    tp = pos.size - np.searchsorted(pos, grid, side="left")
    fp = neg.size - np.searchsorted(neg, grid, side="left")
    odds = grid / (1 - grid)
    return pd.DataFrame(
        {
            "threshold": grid,
            "tp": tp,
            "fp": fp,
            "net_benefit": tp / n - fp / n * odds,
            "net_benefit_treat_all": treat_all_net_benefit(labels, grid),
            "net_benefit_treat_none": np.zeros_like(grid),
        }
    )
