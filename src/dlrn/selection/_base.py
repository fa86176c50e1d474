"""Shared plumbing of the selection steps: input checks, the empty-selection guard, ``removed_``.

Every step records what it removed and why in ``removed_`` (feature, statistic,
value, reason) so a report can show the funnel. Guard: a step that would leave
no feature keeps its single best one and notes it, rather than crash or hand an
empty matrix to the classifier.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from dlrn.errors import DlrnError
from dlrn.notes import Note

REMOVED_COLUMNS = ["feature", "statistic", "value", "reason"]


class SelectionWarning(Note):
    """A selection step kept its best feature because it would otherwise have kept none.

    A caution (:class:`dlrn.notes.Note`): the feature was kept without passing the step.
    """

    def __init__(self, kind: str, reason: str = "", **details: object) -> None:
        super().__init__(kind, reason, **{"caution": True, **details})


def _binary_target(y: object) -> np.ndarray:
    labels = np.asarray(y)
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1} or len(values) < 2:
        raise DlrnError(
            f"the label must be 0/1 with both classes present; got values {sorted(values)}"
        )
    return labels.astype(int)


def _label_relevance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|point-biserial r| with the label: the same order as Student t-test p (smallest first)."""
    centred = X - X.mean(axis=0)
    label = y - y.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (centred * label[:, None]).sum(axis=0) / np.sqrt(
            (centred**2).sum(axis=0) * (label**2).sum()
        )
    return np.nan_to_num(np.abs(r), nan=0.0)


def _abs_correlation(X: np.ndarray) -> np.ndarray:
    """|Pearson r| between columns; constant columns correlate with nothing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.corrcoef(X, rowvar=False)
    r = np.nan_to_num(np.abs(np.atleast_2d(r)), nan=0.0)
    np.fill_diagonal(r, 0.0)
    return r


class _RecordingSelector(SelectorMixin, BaseEstimator):
    """Shared plumbing: input checks, feature names, the empty-selection guard, ``removed_``."""

    def _check_input(
        self, X: object, y: object, *, needs_y: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if needs_y and y is None:
            raise DlrnError(f"{type(self).__name__} needs the label y to fit")
        values = self._values(X, reset=True)
        labels = None if y is None else _binary_target(y)
        if labels is not None and len(labels) != len(values):
            raise DlrnError(
                f"{type(self).__name__}: {len(values)} rows in X but {len(labels)} labels"
            )
        return values, labels

    def _values(self, X: object, *, reset: bool) -> np.ndarray:
        """X as a float array, feature names checked, without sklearn's per-column pandas checks.

        ``validate_data`` inspects the dtype of every DataFrame column, which costs more
        than the selection itself on 1500 columns refitted in every fold; a DataFrame's
        names are checked as they are, then its values are checked as one array.
        """
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            X = X.to_numpy(dtype=float)
            return check_array(X, dtype=float, ensure_min_features=1)
        return validate_data(self, X, dtype=float, ensure_min_features=1, reset=reset)

    def _names(self) -> np.ndarray:
        return np.asarray(
            getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)]),
            dtype=object,
        )

    def _record(
        self,
        keep: np.ndarray,
        values: np.ndarray,
        statistic: str,
        reasons: Sequence[str],
        best: int,
    ) -> None:
        """Store support_ and removed_, keeping ``best`` if nothing survived."""
        keep = np.asarray(keep, dtype=bool).copy()
        names = self._names()
        if not keep.any():
            keep[best] = True
            warnings.warn(SelectionWarning(
                f"{type(self).__name__} would keep no feature; its best one is kept",
                message=f"{type(self).__name__} would keep no feature; keeping the best one "
                        f"({names[best]}, {statistic} = {values[best]:.4g})"), stacklevel=3)
        self.support_ = keep
        dropped = np.flatnonzero(~keep)
        self.removed_ = pd.DataFrame(
            {
                "feature": names[dropped],
                "statistic": statistic,
                "value": np.asarray(values, dtype=float)[dropped],
                "reason": [reasons[i] for i in dropped],
            },
            columns=REMOVED_COLUMNS,
        )

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_

    @property
    def selected_features_(self) -> list[str]:
        return list(self._names()[self._get_support_mask()])
