"""The cohort table: read it, validate every case before any long work, split it.

A cohort table (CSV, TSV or Excel) has one row per case: case id, image path,
mask path (relative to the table's folder, or absolute), label, optionally a
patient id, repeat segmentations (second reader / second session, for ICC) and
clinical columns. Column names are configurable with :class:`CohortColumns`.

:func:`read_cohort` checks the whole cohort and reports *all* problems in one
list (table row as seen in a spreadsheet, case id, file, problem) instead of
failing on the first: missing required columns, missing or duplicate case ids,
missing patient ids, labels that are not two classes, bad split values, one
image used by two cases, missing or unreadable files, image/mask size or
spacing mismatch, empty masks and ROIs below a minimum size. Images are read one
case at a time and released, so memory does not grow with the cohort. With
``on_error="stop"`` a :class:`CohortValidationError` lists every problem; with
``on_error="exclude"`` the bad cases are dropped and each is recorded with its
reason in :attr:`Cohort.exclusions` (a bad *repeat* mask only removes that
repeat mask from the ICC subset, not the case).

Rules worth knowing:

* ``patient=None``: a column named ``patient_id`` is used when present, else
  every case is its own patient.
* Labels must be 0/1 (or true/false) unless ``positive_label`` says which value
  is positive: a single value (the column must then hold exactly two values)
  or a mapping such as ``{"malignant": 1, "benign": 0}``.
* ``label=None`` reads a table without outcome (feature extraction, prediction).
* Backslashes in relative paths (tables written on Windows) are read as ``/``.
* A detached header (NRRD ``data file``, MetaImage ``ElementDataFile``) is followed only
  to a data file inside the table's folder tree; one naming a file elsewhere is a
  problem of its case (:mod:`dlrn.data_files`).
* ``Cohort.cases`` lists the cases by case id (text order), whatever the table's row
  order, so nothing downstream depends on how the table was sorted.
* ``min_roi_mm`` applies to the ROI's maximum in-plane diameter where the
  spacing is known (DICOM calibration, NIfTI...); the study excluded lesions
  below 5 mm. ``min_roi_pixels`` always applies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

import numpy as np
import pandas as pd

from dlrn.case_files import Problem, file_problems, max_diameter_mm
from dlrn.errors import DlrnError
from dlrn.io import in_case_order, read_table
from dlrn.splitting import patients_on_both_sides, split_cohort

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MIN_ROI_PIXELS", "Cohort", "CohortColumns", "CohortValidationError",
           "absolute_path", "max_diameter_mm", "patients_on_both_sides", "read_cohort",
           "split_cohort"]

DEFAULT_MIN_ROI_PIXELS = 16
"""Below this ROIs are too small for texture features to mean anything."""

SPLIT_VALUES = ("train", "test")
_TRUE_LABELS = {"1", "1.0", "true"}
_FALSE_LABELS = {"0", "0.0", "false"}
_FIRST_DATA_ROW = 2  # spreadsheet row of the first case (row 1 is the header)


class CohortValidationError(DlrnError):
    """The cohort has problems; ``problems`` lists all of them (row, case_id, file, problem)."""

    def __init__(self, message: str, problems: pd.DataFrame) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class CohortColumns:
    """Which table columns hold what (defaults: ``case_id, image, mask, label``)."""

    case_id: str = "case_id"
    image: str = "image"
    mask: str = "mask"
    label: str | None = "label"
    patient: str | None = None
    repeat_masks: tuple[str, ...] = ()
    clinical: tuple[str, ...] | None = None
    split: str | None = None
    positive_label: str | int | Mapping[str, int] | None = None


@dataclass
class Cohort:
    """A validated cohort: ``cases`` indexed by case id with canonical column names."""

    cases: pd.DataFrame
    repeat_masks: list[str]
    clinical: list[str]
    exclusions: pd.DataFrame
    source: Path
    given_split: pd.Series | None = None
    notes: list[str] = field(default_factory=list)


_PROBLEM_COLUMNS = ["row", "case_id", "column", "file", "problem"]


def read_cohort(
    path: str | Path,
    columns: CohortColumns = CohortColumns(),
    *,
    min_roi_mm: float | None = None,
    min_roi_pixels: int = DEFAULT_MIN_ROI_PIXELS,
    mask_label: int | None = None,
    frame: int = 0,
    on_error: Literal["stop", "exclude"] = "stop",
    progress: bool = True,
) -> Cohort:
    """Read and validate a cohort table (CSV/TSV/Excel); see the module doc for the rules."""
    if on_error not in ("stop", "exclude"):
        raise DlrnError(f"on_error must be 'stop' or 'exclude', got {on_error!r}")
    source = Path(path).absolute()
    table = _read_table(source, columns)
    columns = _resolve_patient_column(table, columns)
    _check_columns(table, columns, source)
    clinical = _clinical_columns(table, columns, source)
    cases = _canonical_cases(table, columns, clinical, source.parent)

    problems = _table_problems(cases, columns)
    mask_columns = [("mask", columns.mask)] + [(name, name) for name in columns.repeat_masks]
    file_problems_, unknown_spacing = file_problems(
        cases, columns.image, mask_columns, min_roi_mm=min_roi_mm, min_roi_pixels=min_roi_pixels,
        mask_label=mask_label, frame=frame, progress=progress, data_root=source.parent,
    )
    problem_table = _problem_table(problems + file_problems_)
    if len(problem_table) and on_error == "stop":
        raise CohortValidationError(_problem_message(source, problem_table), problem_table)

    cases, exclusions = _apply_exclusions(cases, problem_table, columns)
    if cases.empty:
        raise CohortValidationError(
            f"cohort table {source}: no valid cases remain after exclusions:\n"
            + _problem_lines(problem_table),
            problem_table,
        )
    given_split = cases.pop("split") if columns.split else None
    cases = cases.set_index("case_id")
    if given_split is not None:
        given_split.index = cases.index
    cases = in_case_order(cases)  # results must not depend on the table's row order
    if given_split is not None:
        given_split = given_split.loc[cases.index]
    notes = _spacing_notes(min_roi_mm, unknown_spacing)
    return Cohort(
        cases=cases,
        repeat_masks=list(columns.repeat_masks),
        clinical=clinical,
        exclusions=exclusions,
        source=source,
        given_split=given_split,
        notes=notes,
    )


# --- reading the table ----------------------------------------------------------------------


def _read_table(source: Path, columns: CohortColumns) -> pd.DataFrame:
    """The table with ids and paths as text and a ``_row`` column (spreadsheet row number)."""
    if not source.is_file():
        raise DlrnError(f"cohort table not found: {source}")
    text_columns = [columns.case_id, columns.image, columns.mask, columns.patient or "patient_id",
                    *columns.repeat_masks]
    text_columns += [name for name in (columns.label, columns.split) if name]
    table = read_table(source, what="cohort table", text_columns=text_columns,
                       skip_blank_lines=False)
    table.columns = [str(name).strip() for name in table.columns]
    table.insert(0, "_row", np.arange(len(table)) + _FIRST_DATA_ROW)
    return table.loc[table.drop(columns="_row").notna().any(axis=1)].reset_index(drop=True)


def _resolve_patient_column(table: pd.DataFrame, columns: CohortColumns) -> CohortColumns:
    if columns.patient is None and "patient_id" in table.columns:
        from dataclasses import replace

        return replace(columns, patient="patient_id")
    return columns


def _check_columns(table: pd.DataFrame, columns: CohortColumns, source: Path) -> None:
    required = [columns.case_id, columns.image, columns.mask, *columns.repeat_masks]
    required += [name for name in (columns.label, columns.patient, columns.split) if name]
    required += list(columns.clinical or ())
    missing = [name for name in dict.fromkeys(required) if name not in table.columns]
    if missing:
        found = [name for name in table.columns if name != "_row"]
        raise CohortValidationError(
            f"cohort table {source}: missing column(s) {', '.join(map(repr, missing))}; "
            f"columns found: {', '.join(map(repr, found))}",
            _problem_table([Problem(1, "", name, "", "missing column") for name in missing]),
        )


def _clinical_columns(table: pd.DataFrame, columns: CohortColumns, source: Path) -> list[str]:
    structural = _structural_columns(columns)
    if columns.clinical is not None:
        clinical = list(columns.clinical)
    else:
        clinical = [name for name in table.columns if name != "_row" and name not in structural]
    clash = [name for name in clinical if name in _canonical_names(columns) or name in structural]
    if clash:
        raise DlrnError(
            f"cohort table {source}: clinical column(s) {clash} clash with the names dlrn gives "
            "the case id, image, mask, label, patient and repeat-mask columns; rename them"
        )
    return clinical


def _structural_columns(columns: CohortColumns) -> list[str]:
    names = [columns.case_id, columns.image, columns.mask, *columns.repeat_masks]
    return names + [name for name in (columns.label, columns.patient, columns.split) if name]


def _canonical_names(columns: CohortColumns) -> set[str]:
    return {"case_id", "image", "mask", "label", "patient_id", "split", *columns.repeat_masks}


def _canonical_cases(
    table: pd.DataFrame, columns: CohortColumns, clinical: list[str], folder: Path
) -> pd.DataFrame:
    """Canonical columns; ids stripped text, paths absolute, label/split still raw."""
    cases = pd.DataFrame({"_row": table["_row"], "case_id": _text(table[columns.case_id])})
    for name, column in [("image", columns.image), ("mask", columns.mask)] + [
        (repeat, repeat) for repeat in columns.repeat_masks
    ]:
        cases[name] = [absolute_path(value, folder) for value in _text(table[column])]
    if columns.label:
        cases["label"] = _text(table[columns.label])
    patients = _text(table[columns.patient]) if columns.patient else cases["case_id"]
    cases["patient_id"] = patients
    if columns.split:
        cases["split"] = _text(table[columns.split]).str.lower()
    for name in clinical:
        cases[name] = table[name]
    return cases


def _text(values: pd.Series) -> pd.Series:
    """Stripped strings; blank cells become None."""
    return pd.Series([_clean_text(value) for value in values], index=values.index, dtype=object)


def _clean_text(value: object) -> str | None:
    if pd.isna(value):
        return None
    return str(value).strip() or None


def absolute_path(value: str | None, folder: Path) -> str | None:
    """A path from a cohort table made absolute against the table's folder (None stays None).

    A relative folder (a table named relative to the working directory) is made absolute
    too, so the path still names the file when it is written into a table elsewhere."""
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute() and "\\" in value and not PureWindowsPath(value).is_absolute():
        path = Path(PurePosixPath(*PureWindowsPath(value).parts))
    return str(path if path.is_absolute() else Path(folder).absolute() / path)


# --- checks on the table --------------------------------------------------------------------


def _table_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[Problem]:
    problems = _id_problems(cases, columns)
    if columns.label:
        problems += _label_problems(cases, columns)
    if columns.split:
        problems += _split_problems(cases, columns)
    problems += _shared_image_problems(cases, columns)
    return problems


def _id_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[Problem]:
    problems = []
    for row, case_id, patient in cases[["_row", "case_id", "patient_id"]].itertuples(index=False):
        if case_id is None:
            problems.append(Problem(row, "", columns.case_id, "", "case id is missing"))
        elif columns.patient and patient is None:
            problems.append(Problem(row, case_id, columns.patient, "", "patient id is missing"))
    named = cases[cases["case_id"].notna()]
    for case_id, rows in named.groupby("case_id")["_row"]:
        if len(rows) > 1:
            listed = ", ".join(map(str, rows))
            problems += [
                Problem(row, str(case_id), columns.case_id, "",
                         f"duplicate case id (rows {listed})")
                for row in rows
            ]
    return problems


def _label_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[Problem]:
    """Convert ``cases['label']`` to 0/1 in place and report values that cannot be."""
    mapping = _label_mapping(cases["label"], columns.positive_label)
    seen = sorted({value.lower() for value in cases["label"].dropna()})
    problems, labels = [], []
    for row, case_id, value in cases[["_row", "case_id", "label"]].itertuples(index=False):
        label = None if value is None else mapping.get(value.lower())
        labels.append(label)
        if label is None:
            problems.append(Problem(row, case_id or "", str(columns.label), "",
                                     _label_message(value, mapping, seen)))
    cases["label"] = pd.array(labels, dtype="Int64")
    return problems


def _label_mapping(values: pd.Series, positive: str | int | Mapping[str, int] | None) -> dict:
    """Lower-cased label text -> 0/1."""
    if positive is None:
        return dict.fromkeys(_TRUE_LABELS, 1) | dict.fromkeys(_FALSE_LABELS, 0)
    if isinstance(positive, Mapping):
        return {str(key).strip().lower(): int(value) for key, value in positive.items()}
    seen = {value.lower() for value in values.dropna()}
    positive_text = str(positive).strip().lower()
    if positive_text not in seen or len(seen) != 2:
        return {}  # every label is reported, with the values found
    return {value: int(value == positive_text) for value in seen}


def _label_message(value: str | None, mapping: dict, seen: list[str]) -> str:
    if value is None:
        return "label is missing"
    if not mapping:
        return (f"label {value!r}: with positive_label set, the label column must hold exactly "
                f"two values, one of them the positive label (found: {', '.join(seen)})")
    expected = ", ".join(sorted(mapping))
    return f"label {value!r} is not binary (expected one of: {expected}; or set positive_label)"


def _split_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[Problem]:
    problems = [
        Problem(row, case_id or "", str(columns.split), "",
                 f"split value {value!r} is not one of {', '.join(SPLIT_VALUES)}")
        for row, case_id, value in cases[["_row", "case_id", "split"]].itertuples(index=False)
        if value not in SPLIT_VALUES
    ]
    valid = cases[cases["split"].isin(SPLIT_VALUES)]
    for patient in patients_on_both_sides(valid["split"], valid["patient_id"]):
        rows = valid[valid["patient_id"] == patient]
        problems += [
            Problem(row, case_id or "", str(columns.split), "",
                     f"patient {patient!r} has cases in both train and test (leakage)")
            for row, case_id in rows[["_row", "case_id"]].itertuples(index=False)
        ]
    return problems


def _shared_image_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[Problem]:
    images = cases[cases["image"].notna()]
    resolved = images["image"].map(lambda path: str(Path(path).resolve()))
    problems = []
    for path, group in images.groupby(resolved):
        if len(group) > 1:
            ids = ", ".join(str(case_id) for case_id in group["case_id"])
            problems += [
                Problem(row, case_id or "", columns.image, path,
                         f"the same image file is used by cases {ids}")
                for row, case_id in group[["_row", "case_id"]].itertuples(index=False)
            ]
    return problems


def _spacing_notes(min_roi_mm: float | None, unknown_spacing: int) -> list[str]:
    if min_roi_mm is None or unknown_spacing == 0:
        return []
    note = (f"min_roi_mm={min_roi_mm:g} was not applied to {unknown_spacing} case(s) whose "
            "images carry no pixel spacing (PNG/JPEG/BMP/TIFF or uncalibrated DICOM)")
    logger.info(note)  # the caller reports the notes
    return [note]


# --- reporting and exclusion ----------------------------------------------------------------


def _problem_table(problems: list[Problem]) -> pd.DataFrame:
    table = pd.DataFrame([vars(problem) for problem in problems], columns=_PROBLEM_COLUMNS)
    return table.sort_values(["row", "column"], kind="stable").reset_index(drop=True)


def _problem_lines(problems: pd.DataFrame) -> str:
    lines = []
    for row, case_id, column, file, problem in problems.itertuples(index=False):
        where = f"row {row}" + (f", case {case_id!r}" if case_id else "")
        what = f"{column} {file}" if file else column
        lines.append(f"  {where}, {what}: {problem}")
    return "\n".join(lines)


def _problem_message(source: Path, problems: pd.DataFrame) -> str:
    n_cases = problems["row"].nunique()
    return (
        f"cohort table {source}: {len(problems)} problem(s) in {n_cases} row(s) "
        "(fix them, or exclude these cases with on_error 'exclude' / "
        "dlrn validate --exclusions FILE):\n"
        + _problem_lines(problems)
    )


def _apply_exclusions(
    cases: pd.DataFrame, problems: pd.DataFrame, columns: CohortColumns
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop cases with problems; a bad repeat mask only blanks that repeat mask."""
    is_repeat = problems["column"].isin(columns.repeat_masks)
    bad_rows = set(problems.loc[~is_repeat, "row"])
    for row, column in problems.loc[is_repeat, ["row", "column"]].itertuples(index=False):
        cases.loc[cases["_row"] == row, column] = None
    exclusions = problems.assign(
        action=np.where(is_repeat & ~problems["row"].isin(bad_rows), "repeat mask ignored",
                        "case excluded")
    )
    for row, case_id, column, problem in exclusions.loc[
        :, ["row", "case_id", "column", "problem"]
    ].itertuples(index=False):
        logger.info("excluded row %s (case %r, %s): %s", row, case_id, column, problem)
    kept = cases[~cases["_row"].isin(bad_rows)].drop(columns="_row")
    if columns.label:
        kept["label"] = kept["label"].astype(int)
    exclusions = exclusions[["case_id", "file", "problem", "row", "column", "action"]]
    return kept, exclusions.reset_index(drop=True)
