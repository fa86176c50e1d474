"""Reproducibility of features between repeat segmentations: ICC and the ICC filter.

The ICC is decided once, on the cases with repeat readings, and handed to
:class:`ReproducibilityFilter`; it uses no label, so it cannot leak the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dlrn.errors import ConfigError, DlrnError
from dlrn.selection._base import _RecordingSelector

ICC_FORMS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)")


def _rating_stack(first: pd.DataFrame, others: Sequence[pd.DataFrame]) -> np.ndarray:
    """Cases x raters x features array over the cases of the repeat readings."""
    cases = others[0].index
    for number, other in enumerate(others, start=1):
        if not other.index.equals(cases) and set(other.index) != set(cases):
            raise DlrnError(f"repeat reading {number} covers different cases than repeat reading 1")
        missing_columns = first.columns.difference(other.columns)
        if len(missing_columns):
            raise DlrnError(
                f"repeat reading {number} lacks {len(missing_columns)} feature(s) of the first "
                f"reading, e.g. {list(missing_columns[:5])}"
            )
    missing_cases = cases.difference(first.index)
    if len(missing_cases):
        raise DlrnError(
            f"{len(missing_cases)} case(s) of the repeat reading are not in the first reading: "
            f"{list(missing_cases[:10])}"
        )
    if len(cases) < 2:
        raise DlrnError(f"ICC needs at least 2 cases with repeat readings; got {len(cases)}")
    readings = [first.loc[cases]] + [other.loc[cases, first.columns] for other in others]
    for number, reading in enumerate(readings):
        _raise_on_missing(reading, what=f"reading {number} (0 = first)")
    return np.stack([reading.to_numpy(dtype=float) for reading in readings], axis=1)


def _raise_on_missing(table: pd.DataFrame, *, what: str) -> None:
    """Name the first feature and cases with missing values instead of a bare NaN error."""
    missing = table.isna()
    if missing.to_numpy().any():
        column = missing.any().idxmax()
        cases = list(table.index[missing[column]][:10])
        raise DlrnError(f"{what}: feature {column!r} is missing for case(s) {cases}")


def _icc_from_ratings(ratings: np.ndarray, form: str) -> np.ndarray:
    """Shrout & Fleiss (1979) single-rater ICCs from the two-way ANOVA mean squares."""
    n, k, _ = ratings.shape
    grand = ratings.mean(axis=(0, 1))
    ss_total = ((ratings - grand) ** 2).sum(axis=(0, 1))
    ss_rows = k * ((ratings.mean(axis=1) - grand) ** 2).sum(axis=0)
    ss_raters = n * ((ratings.mean(axis=0) - grand) ** 2).sum(axis=0)
    ss_error = ss_total - ss_rows - ss_raters
    ms_rows = ss_rows / (n - 1)
    ms_raters = ss_raters / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    ms_within = (ss_raters + ss_error) / (n * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "ICC(1,1)":
            return (ms_rows - ms_within) / (ms_rows + (k - 1) * ms_within)
        if form == "ICC(3,1)":
            return (ms_rows - ms_error) / (ms_rows + (k - 1) * ms_error)
        return (ms_rows - ms_error) / (
            ms_rows + (k - 1) * ms_error + k * (ms_raters - ms_error) / n
        )


def intraclass_correlation(
    first: pd.DataFrame,
    second: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    form: str = "ICC(2,1)",
) -> pd.Series:
    """ICC of every feature (column) between readings of the same cases (rows).

    ``form`` (Shrout & Fleiss 1979; McGraw & Wong 1996 names in brackets):
    ``"ICC(2,1)"`` (default) two-way random effects, absolute agreement, single
    rater [ICC(A,1)]; ``"ICC(3,1)"`` two-way mixed, consistency, single rater
    [ICC(C,1)]; ``"ICC(1,1)"`` one-way random, single rater. ``second`` is one
    repeat reading or several (all raters then enter one ANOVA). Cases are those
    of the repeat reading(s); all must be in ``first``. Constant features give NaN.
    """
    if form not in ICC_FORMS:
        raise ConfigError(f"ICC form {form!r} is not one of {', '.join(ICC_FORMS)}")
    others = [second] if isinstance(second, pd.DataFrame) else list(second)
    if not others:
        raise DlrnError("ICC needs at least one repeat reading")
    icc = _icc_from_ratings(_rating_stack(first, others), form)
    return pd.Series(icc, index=first.columns, name=form)


def repeat_icc(
    first: pd.DataFrame, repeats: Mapping[str, pd.DataFrame], *, form: str = "ICC(2,1)"
) -> pd.DataFrame:
    """ICC of the first reading against each repeat (intra- and/or inter-observer).

    One column per repeat (named by its key), one row per feature; a feature is
    reproducible when it passes the threshold in every column.
    """
    if not repeats:
        raise DlrnError("no repeat readings given for the ICC")
    table = pd.DataFrame(
        {
            name: intraclass_correlation(first, reading, form=form)
            for name, reading in repeats.items()
        }
    )
    table.index.name = "feature"
    return table


class ReproducibilityFilter(_RecordingSelector):
    """Keep features whose ICC (minimum over all repeat readings) is >= ``threshold``.

    The ICC is decided once, from the repeat-segmentation subset, and passed in as
    ``icc`` (a Series, or a DataFrame with one column per repeat, as from
    :func:`repeat_icc`); fitting only applies it, so the kept list is fixed and
    recorded. It uses no label, so it cannot leak the outcome.
    """

    def __init__(self, icc: pd.Series | pd.DataFrame | None = None, threshold: float = 0.85):
        self.icc = icc
        self.threshold = threshold

    @classmethod
    def from_repeats(
        cls,
        first: pd.DataFrame,
        repeats: Mapping[str, pd.DataFrame],
        *,
        threshold: float = 0.85,
        form: str = "ICC(2,1)",
    ) -> ReproducibilityFilter:
        return cls(icc=repeat_icc(first, repeats, form=form), threshold=threshold)

    def fit(self, X: object, y: object = None) -> ReproducibilityFilter:
        self._check_input(X, y, needs_y=False)
        if self.icc is None:
            raise ConfigError("ReproducibilityFilter needs icc= (see repeat_icc / from_repeats)")
        icc = self.icc if isinstance(self.icc, pd.DataFrame) else self.icc.to_frame()
        names = self._names()
        missing = pd.Index(names).difference(icc.index)
        if len(missing):
            raise DlrnError(f"no ICC for {len(missing)} feature(s), e.g. {list(missing[:5])}")
        minimum = icc.loc[names].min(axis=1, skipna=False).to_numpy(dtype=float)
        self.icc_ = pd.Series(minimum, index=names, name="icc_min")
        reasons = [
            "ICC undefined (constant in the repeat subset)"
            if np.isnan(value)
            else f"ICC {value:.3f} < {self.threshold}"
            for value in minimum
        ]
        self._record(
            minimum >= self.threshold,
            minimum,
            "icc_min",
            reasons,
            best=int(np.nanargmax(np.nan_to_num(minimum, nan=-np.inf))),
        )
        return self
