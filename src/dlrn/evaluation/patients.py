"""Patient ids of the images, and the patient-level predictions table.

Several images of one patient (BUS-BRA: views of one lesion) are not independent
cases. :func:`patient_ids` reads the patient id of every row; with a repeated
patient the statistics switch to cluster-aware methods. :func:`patient_predictions`
aggregates the images of each patient into one row (mean score by default, max as
an option), in the same wide shape as the image-level table, so every image-level
statistic has a patient-level counterpart.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError, shown_items
from dlrn.notes import Note

__all__ = [
    "AGGREGATIONS",
    "patient_ids",
    "patient_level_possible",
    "patient_oof_predictions",
    "patient_predictions",
    "several_images",
]

AGGREGATIONS = ("mean", "max")


def patient_ids(predictions: pd.DataFrame, groups: object,
                set_column: str | None = None) -> pd.Series | None:
    """Patient id of every row (indexed like ``predictions``), or None without ``groups``.

    ``groups`` is a column name of ``predictions``, a Series indexed by case id, or
    one value per row. A missing id, or a patient whose images lie in two sets (the
    split must keep a patient on one side), is an error naming the cases.
    """
    if groups is None:
        return None
    if isinstance(groups, str):
        if groups not in predictions.columns:
            raise DlrnError(f"patient id column {groups!r} not found; columns: "
                            f"{list(predictions.columns)}")
        ids = predictions[groups]
    elif isinstance(groups, pd.Series):
        if predictions.index.has_duplicates:
            raise DlrnError("patient ids given as a Series need unique case ids in the index")
        absent = predictions.index.difference(groups.index)
        if len(absent):
            raise DlrnError(f"no patient id for case(s) {shown_items(absent)}")
        ids = groups.loc[predictions.index]
    else:
        values = np.asarray(groups, dtype=object).ravel()
        if values.size != len(predictions):
            raise DlrnError(f"{values.size} patient ids for {len(predictions)} cases")
        ids = pd.Series(values, index=predictions.index)
    ids = pd.Series(ids.to_numpy(), index=predictions.index, name="patient_id")
    if ids.isna().any():
        raise DlrnError(f"patient id missing for case(s) {shown_items(ids.index[ids.isna()])}")
    ids = ids.astype(str)
    if set_column is not None:
        _check_one_set_per_patient(ids, predictions[set_column].astype(str))
    return ids


def _check_one_set_per_patient(ids: pd.Series, sets: pd.Series) -> None:
    spans = sets.groupby(ids).nunique()
    mixed = spans.index[spans > 1]
    if len(mixed):
        raise DlrnError(
            f"patient(s) {shown_items(mixed)} have images in more than one set; a patient "
            "must be on one side of the split (re-split the cohort by patient)")


def several_images(patients: pd.Series | None) -> bool:
    """True when some patient has more than one image (clustered methods are needed)."""
    return patients is not None and bool(patients.duplicated().any())


def patient_level_possible(predictions: pd.DataFrame, patients: pd.Series | None,
                           label: str = "label") -> bool:
    """True when some patient has several images, all with one label (one lesion per
    patient). A patient with both labels (several lesions) keeps the clustered CIs and
    tests but gets no patient-level tables: a note names the patients."""
    if not several_images(patients):
        return False
    mixed = _mixed_label_patients(predictions[label].astype(int), patients)
    if len(mixed):
        warnings.warn(Note("patient-level tables skipped",
                           f"patient(s) {shown_items(mixed)} have images labelled both 0 and 1 "
                           "(several lesions?); CIs and tests still count patients"),
                      stacklevel=3)
    return not len(mixed)


def _mixed_label_patients(labels: pd.Series, ids: pd.Series) -> pd.Index:
    spans = labels.groupby(ids, sort=False).nunique()
    return spans.index[spans > 1]


def patient_predictions(
    predictions: pd.DataFrame,
    scores: list[str],
    groups: object,
    *,
    label: str = "label",
    set_column: str | None = "set",
    how: str = "mean",
) -> pd.DataFrame:
    """One row per patient: label, set, the mean (or max) score of each model, n_images.

    The label must agree within a patient (one lesion per patient, several views);
    a patient with both labels is an error naming the patient. Rows keep the order
    in which the patients first appear.
    """
    if how not in AGGREGATIONS:
        raise DlrnError(f"patient-level aggregation {how!r}: use one of {', '.join(AGGREGATIONS)}")
    ids = patient_ids(predictions, groups, set_column)
    if ids is None:
        raise DlrnError("patient-level predictions need patient ids (groups)")
    labels = predictions[label].astype(int).groupby(ids, sort=False)
    mixed = _mixed_label_patients(predictions[label].astype(int), ids)
    if len(mixed):
        raise DlrnError(
            f"patient(s) {shown_items(mixed)} have images labelled both 0 and 1; a "
            "patient-level label needs one label per patient (check the labels, or use "
            "lesion ids as groups when a patient has several lesions)")
    grouped = predictions[scores].astype(float).groupby(ids, sort=False)
    table = pd.DataFrame({label: labels.first()})
    if set_column is not None:
        table[set_column] = predictions[set_column].groupby(ids, sort=False).first()
    table = table.join(grouped.agg(how))
    table["n_images"] = ids.groupby(ids, sort=False).size()
    table.index.name = "patient_id"
    return table


def patient_oof_predictions(predictions: pd.DataFrame, oof: pd.DataFrame | None,
                            scores: list[str], patients: pd.Series, *, label: str = "label",
                            how: str = "mean") -> pd.DataFrame | None:
    """Out-of-fold training predictions aggregated per patient (labels from ``predictions``)."""
    if oof is None:
        return None
    rows = oof.assign(**{label: predictions.loc[oof.index, label]})
    return patient_predictions(rows, [m for m in scores if m in oof.columns],
                               patients.loc[oof.index], label=label, set_column=None, how=how)
