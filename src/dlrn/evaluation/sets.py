"""The sets a predictions table is evaluated on, with honest names for the training rows.

A predictions table is indexed by case id with a 0/1 label column, an optional
set column ("train", "test", ...) and one score column per model. Given
out-of-fold predictions of the training cases (``oof``: same case ids, one column
per model that has them), a model's training-set numbers come from them, in a
set named ``"train (out-of-fold)"``; a model without them keeps its refitted
training predictions, in a set named ``"train (apparent)"`` (optimistic). The
apparent numbers of every model can also be asked for on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError, shown_items

__all__ = [
    "ALL_CASES",
    "TRAIN_APPARENT",
    "TRAIN_OOF",
    "EvaluationSet",
    "apparent_training_set",
    "check_predictions",
    "evaluation_sets",
    "one_class_note",
]

ALL_CASES = "all"
TRAIN_OOF = "train (out-of-fold)"
TRAIN_APPARENT = "train (apparent)"
APPARENT_NOTE = ("no out-of-fold predictions: training-set numbers are apparent (the model "
                 "scored the cases it was fitted on) and optimistic")


@dataclass(frozen=True)
class EvaluationSet:
    """One set's rows (label + scores), the models evaluated on it and, if given, patient ids."""

    name: str
    rows: pd.DataFrame
    models: tuple[str, ...]
    patients: pd.Series | None = None
    note: str = ""


def check_predictions(
    predictions: pd.DataFrame,
    scores: list[str],
    *,
    label: str = "label",
    set_column: str | None = "set",
) -> None:
    """Raise one DlrnError naming the columns and case ids of bad input (labels, scores, sets)."""
    wanted = [label, *scores] + ([set_column] if set_column else [])
    missing = [c for c in wanted if c not in predictions.columns]
    if missing:
        raise DlrnError(
            f"predictions lack column(s) {missing}; present: {list(predictions.columns)}"
        )
    if not scores:
        raise DlrnError("no score columns given")
    labels = pd.to_numeric(predictions[label], errors="coerce")
    bad = predictions.index[~labels.isin([0, 1])]
    if len(bad):
        raise DlrnError(f"label column {label!r} is not 0/1 for case(s) {shown_items(bad)}")
    for column in scores:
        values = pd.to_numeric(predictions[column], errors="coerce").to_numpy(dtype=float)
        bad = predictions.index[~np.isfinite(values)]
        if len(bad):
            raise DlrnError(
                f"score column {column!r} is missing, NaN or infinite "
                f"for case(s) {shown_items(bad)}"
            )
    if set_column and predictions[set_column].isna().any():
        bad = predictions.index[predictions[set_column].isna()]
        raise DlrnError(f"set column {set_column!r} is empty for case(s) {shown_items(bad)}")


def one_class_note(y: pd.Series) -> str:
    """'only negatives (0) among n cases' for a set without both classes, else ''."""
    n_positive = int(y.sum())
    if 0 < n_positive < len(y):
        return ""
    return f"only {'positives (1)' if n_positive else 'negatives (0)'} among {len(y)} cases"


def _by_set(
    predictions: pd.DataFrame, set_column: str | None, train_set: str
) -> dict[str, pd.DataFrame]:
    """Rows of each set, training set first; one set "all" when there is no set column."""
    if set_column is None:
        return {ALL_CASES: predictions}
    names = list(pd.unique(predictions[set_column].astype(str)))
    if train_set not in names:
        raise DlrnError(
            f"training set {train_set!r} not found in column {set_column!r} (sets: {names}); "
            "the cut-off must be chosen on the training set"
        )
    ordered = [train_set] + [n for n in names if n != train_set]
    labels = predictions[set_column].astype(str)
    return {name: predictions[labels == name] for name in ordered}


def _patients_of(rows: pd.DataFrame, patients: pd.Series | None) -> pd.Series | None:
    return None if patients is None else patients.loc[rows.index]


def _checked_oof(oof: pd.DataFrame, training: pd.DataFrame, scores: list[str],
                 label: str) -> tuple[pd.DataFrame, list[str]]:
    """Out-of-fold rows in the training rows' order with their label; the models they cover."""
    models = [m for m in scores if m in oof.columns]
    if not models:
        raise DlrnError(f"the out-of-fold predictions have none of the score columns {scores} "
                        f"(columns: {list(oof.columns)})")
    missing, extra = training.index.difference(oof.index), oof.index.difference(training.index)
    if len(missing) or len(extra) or oof.index.has_duplicates:
        raise DlrnError(
            "the out-of-fold predictions must hold each training case once: "
            + "; ".join(part for part in (
                f"missing {shown_items(missing)}" if len(missing) else "",
                f"not in the training set {shown_items(extra)}" if len(extra) else "",
                "duplicated case ids" if oof.index.has_duplicates else "") if part))
    rows = oof.loc[training.index, models].assign(**{label: training[label]})
    if label in oof.columns:
        differ = training.index[oof.loc[training.index, label].to_numpy() !=
                                training[label].to_numpy()]
        if len(differ):
            raise DlrnError(f"out-of-fold labels differ from the predictions' labels for "
                            f"case(s) {shown_items(differ)}")
    check_predictions(rows, models, label=label, set_column=None)
    return rows[[label, *models]], models


def evaluation_sets(
    predictions: pd.DataFrame,
    scores: list[str],
    *,
    label: str = "label",
    set_column: str | None = "set",
    train_set: str = "train",
    oof: pd.DataFrame | None = None,
    patients: pd.Series | None = None,
) -> list[EvaluationSet]:
    """The sets to evaluate, training set first (see the module docstring for ``oof``).

    ``patients``: patient id of every case (indexed like ``predictions``), or None.
    """
    by_set = _by_set(predictions, set_column, train_set)
    if oof is None:
        return [EvaluationSet(name, rows, tuple(scores), _patients_of(rows, patients))
                for name, rows in by_set.items()]
    if set_column is None:
        raise DlrnError("out-of-fold predictions need a set column to tell the training cases")
    training = by_set.pop(train_set)
    oof_rows, with_oof = _checked_oof(oof, training, scores, label)
    sets = [EvaluationSet(TRAIN_OOF, oof_rows, tuple(with_oof), _patients_of(training, patients))]
    apparent = tuple(m for m in scores if m not in with_oof)
    if apparent:
        sets.append(EvaluationSet(TRAIN_APPARENT, training, apparent,
                                  _patients_of(training, patients), APPARENT_NOTE))
    return sets + [EvaluationSet(name, rows, tuple(scores), _patients_of(rows, patients))
                   for name, rows in by_set.items()]


def apparent_training_set(
    predictions: pd.DataFrame,
    scores: list[str],
    *,
    set_column: str = "set",
    train_set: str = "train",
    patients: pd.Series | None = None,
) -> EvaluationSet:
    """Every model's apparent (refitted, in-sample) training predictions, labelled so."""
    training = _by_set(predictions, set_column, train_set)[train_set]
    return EvaluationSet(TRAIN_APPARENT, training, tuple(scores), _patients_of(training, patients))
