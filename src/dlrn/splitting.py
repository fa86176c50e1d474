"""The train/test split: random by patient and stratified by label, or checked when given.

All images of a patient land on the same side: :func:`split_cohort` splits patients,
and :func:`patients_on_both_sides` finds the patients of a given split that are not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError, shown_items

_SPLIT_CANDIDATES = 50


def patients_on_both_sides(sets: pd.Series, patients: pd.Series, *,
                           train: str = "train") -> list[str]:
    """Patients with cases in the training set and in another set (leakage)."""
    in_training = sets.eq(train)
    sides = in_training.groupby(patients.loc[sets.index]).nunique()
    return [str(patient) for patient in sides.index[sides > 1]]


def split_cohort(cases: pd.DataFrame, *, test_size: float = 0.3, seed: int = 0) -> pd.Series:
    """Random train/test split by patient, stratified by label, deterministic from ``seed``.

    Patients are stratified by whether they have a positive case, a negative case or
    both, so all images of a patient land on the same side. Patients have different
    numbers of images, so of ``_SPLIT_CANDIDATES`` such random splits the one closest
    to ``test_size`` of the *cases* with the most similar positive rates is kept.
    """
    if not 0.0 < test_size < 1.0:
        raise DlrnError(f"test_size must be between 0 and 1, got {test_size}")
    missing = [name for name in ("label", "patient_id") if name not in cases.columns]
    if missing:
        raise DlrnError(f"split_cohort needs the columns {missing} in the cases table")
    strata = _patient_strata(cases)
    best = min(_candidate_test_sets(cases, strata, test_size, seed),
               key=lambda is_test: _split_imbalance(cases, is_test, test_size))
    return pd.Series(np.where(best, "test", "train"), index=cases.index, name="split")


def _candidate_test_sets(
    cases: pd.DataFrame, strata: pd.Series, test_size: float, seed: int
) -> Iterator[np.ndarray]:
    """Case-level test flags of stratified random patient splits (deterministic from seed)."""
    from sklearn.model_selection import StratifiedShuffleSplit

    splitter = StratifiedShuffleSplit(
        n_splits=_SPLIT_CANDIDATES, test_size=test_size, random_state=seed
    )
    try:
        for _, test_index in splitter.split(strata.index, strata):
            yield cases["patient_id"].isin(strata.index[test_index]).to_numpy()
    except ValueError as error:
        raise DlrnError(
            f"cannot split {len(strata)} patients ({strata.value_counts().to_dict()} by class) "
            f"with test_size={test_size}: {error}"
        ) from error


def _split_imbalance(cases: pd.DataFrame, is_test: np.ndarray, test_size: float) -> float:
    """Distance from ``test_size`` of the cases plus the gap between the sets' positive rates."""
    labels = cases["label"].to_numpy()
    rate_gap = abs(labels[is_test].mean() - labels[~is_test].mean())
    return abs(is_test.mean() - test_size) + rate_gap


def _patient_strata(cases: pd.DataFrame) -> pd.Series:
    """Per patient: 'positive', 'negative' or 'mixed' (merged into positive if rare)."""
    by_patient = cases.groupby("patient_id", sort=True)["label"].agg(["min", "max"])
    strata = pd.Series("negative", index=by_patient.index)
    strata[by_patient["min"] == 1] = "positive"
    mixed = (by_patient["min"] == 0) & (by_patient["max"] == 1)
    strata[mixed] = "mixed" if mixed.sum() >= 2 else "positive"
    return strata


def read_labelled_table(path: str | Path, columns: Any, *, test_size: float = 0.3,
                        seed: int = 0, keep: Sequence[str] = ()) -> pd.DataFrame:
    """A case table read without images: 0/1 ``label``, ``patient_id`` and ``set``.

    ``columns`` is a :class:`dlrn.cohort.CohortColumns` (case id, label, patient,
    split). The set comes from its split column (checked: no patient on both
    sides) or from :func:`split_cohort`; the ``keep`` columns come along as they
    are. For commands whose inputs are tables only (``dlrn model``, ``dlrn clinical``).
    """
    from dlrn.io import binary_labels, read_indexed_table

    if columns.label is None:
        raise DlrnError("an outcome column is needed here: --label none is not allowed")
    table = read_indexed_table(path, columns.case_id, what="cohort table")
    patient = columns.patient or ("patient_id" if "patient_id" in table.columns else None)
    for column in filter(None, (columns.label, patient, columns.split, *keep)):
        if column not in table.columns:
            raise DlrnError(f"cohort table {path} has no column {column!r} (columns: "
                            f"{list(table.columns[:12])})")
    label = binary_labels(table[columns.label],
                          what=f"cohort table {path}: column {columns.label!r}")
    cases = pd.DataFrame({"label": label,
                          "patient_id": table[patient].astype(str) if patient else table.index})
    if columns.split:
        cases["set"] = table[columns.split].astype(str).str.strip().str.lower()
        leaking = patients_on_both_sides(cases["set"], cases["patient_id"])
        if leaking:
            raise DlrnError(f"cohort table {path}: patient(s) {shown_items(leaking)} have "
                            "cases in the training set and in another set of column "
                            f"{columns.split!r} (leakage); keep each patient on one side")
    else:
        cases["set"] = split_cohort(cases, test_size=test_size, seed=seed)
    return cases.join(table[[c for c in keep if c not in cases.columns]])
