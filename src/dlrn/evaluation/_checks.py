"""Input checks shared by the evaluation functions: one clear error per kind of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError


def binary_labels(y: object, *, what: str = "label") -> np.ndarray:
    """Labels as an int array of 0/1; anything else (2, NaN, 'yes') is an error naming the value."""
    values = pd.Series(np.asarray(y).ravel())
    if values.isna().any():
        raise DlrnError(f"{what}: {int(values.isna().sum())} missing value(s); labels must be 0/1")
    if values.dtype == bool:
        return values.to_numpy(dtype=int)
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values[numeric.isna() | ~numeric.isin([0, 1])]
    if len(bad):
        shown = ", ".join(repr(v) for v in pd.unique(bad)[:5])
        raise DlrnError(f"{what} is not binary: found {shown}; labels must be 0 (negative) or 1")
    return numeric.to_numpy(dtype=int)


def finite_scores(score: object, *, what: str = "score") -> np.ndarray:
    """Scores as a float array; NaN or inf is an error giving how many and where."""
    values = np.asarray(score, dtype=float).ravel()
    bad = ~np.isfinite(values)
    if bad.any():
        positions = np.flatnonzero(bad)[:5].tolist()
        raise DlrnError(
            f"{what}: {int(bad.sum())} value(s) are NaN or infinite (positions {positions}); "
            "every case needs a finite score"
        )
    return values


def labels_and_scores(
    y: object, score: object, *, what: str = "score"
) -> tuple[np.ndarray, np.ndarray]:
    """Checked labels and scores of equal length with both classes present (needed for any ROC)."""
    labels = binary_labels(y)
    scores = finite_scores(score, what=what)
    if labels.shape != scores.shape:
        raise DlrnError(f"{what}: {scores.size} scores for {labels.size} labels")
    n_positive = int(labels.sum())
    if n_positive == 0 or n_positive == labels.size:
        present = "positives (1)" if n_positive else "negatives (0)"
        raise DlrnError(
            f"{what}: only {present} among {labels.size} cases; ROC/AUC needs both classes"
        )
    return labels, scores


def probabilities(p: object, *, what: str = "probability") -> np.ndarray:
    """Predicted probabilities in [0, 1] (calibration and decision curves need that scale)."""
    values = finite_scores(p, what=what)
    outside = (values < 0) | (values > 1)
    if outside.any():
        raise DlrnError(
            f"{what}: {int(outside.sum())} value(s) outside [0, 1] (e.g. {values[outside][0]:g}); "
            "calibration and decision curves need predicted probabilities"
        )
    return values
