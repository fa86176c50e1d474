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
* ``min_roi_mm`` applies to the ROI's maximum in-plane diameter where the
  spacing is known (DICOM calibration, NIfTI...); the study excluded lesions
  below 5 mm. ``min_roi_pixels`` always applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError
from dlrn.imaging import ImageReadError, read_image, read_mask, spacing_is_known, spacings_agree

logger = logging.getLogger(__name__)

DEFAULT_MIN_ROI_PIXELS = 16
"""Below this ROIs are too small for texture features to mean anything."""

SPLIT_VALUES = ("train", "test")
_SPLIT_CANDIDATES = 50
_TRUE_LABELS = {"1", "1.0", "true"}
_FALSE_LABELS = {"0", "0.0", "false"}
_EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
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


@dataclass(frozen=True)
class _Problem:
    row: int
    case_id: str
    column: str
    file: str
    problem: str


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
    file_problems, unknown_spacing = _file_problems(
        cases, columns, min_roi_mm=min_roi_mm, min_roi_pixels=min_roi_pixels,
        mask_label=mask_label, frame=frame, progress=progress,
    )
    problem_table = _problem_table(problems + file_problems)
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


# --- reading the table ----------------------------------------------------------------------


def _read_table(source: Path, columns: CohortColumns) -> pd.DataFrame:
    """The table with ids and paths as text and a ``_row`` column (spreadsheet row number)."""
    if not source.is_file():
        raise DlrnError(f"cohort table not found: {source}")
    text_columns = [columns.case_id, columns.image, columns.mask, columns.patient or "patient_id",
                    *columns.repeat_masks]
    text_columns += [name for name in (columns.label, columns.split) if name]
    as_text = dict.fromkeys(text_columns, str)
    try:
        if source.suffix.lower() in _EXCEL_SUFFIXES:
            table = pd.read_excel(source, dtype=as_text)
        else:
            separator = "\t" if source.suffix.lower() in (".tsv", ".tab") else ","
            table = pd.read_csv(source, sep=separator, dtype=as_text, skip_blank_lines=False)
    except Exception as error:  # pandas raises many types for malformed tables
        raise DlrnError(f"cannot read cohort table {source}: {error}") from error
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
            _problem_table([_Problem(1, "", name, "", "missing column") for name in missing]),
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
        cases[name] = [_absolute(value, folder) for value in _text(table[column])]
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


def _absolute(value: str | None, folder: Path) -> str | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute() and "\\" in value and not PureWindowsPath(value).is_absolute():
        path = Path(PurePosixPath(*PureWindowsPath(value).parts))
    return str(path if path.is_absolute() else folder / path)


# --- checks on the table --------------------------------------------------------------------


def _table_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[_Problem]:
    problems = _id_problems(cases, columns)
    if columns.label:
        problems += _label_problems(cases, columns)
    if columns.split:
        problems += _split_problems(cases, columns)
    problems += _shared_image_problems(cases, columns)
    return problems


def _id_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[_Problem]:
    problems = []
    for row, case_id, patient in cases[["_row", "case_id", "patient_id"]].itertuples(index=False):
        if case_id is None:
            problems.append(_Problem(row, "", columns.case_id, "", "case id is missing"))
        elif columns.patient and patient is None:
            problems.append(_Problem(row, case_id, columns.patient, "", "patient id is missing"))
    named = cases[cases["case_id"].notna()]
    for case_id, rows in named.groupby("case_id")["_row"]:
        if len(rows) > 1:
            listed = ", ".join(map(str, rows))
            problems += [
                _Problem(row, str(case_id), columns.case_id, "",
                         f"duplicate case id (rows {listed})")
                for row in rows
            ]
    return problems


def _label_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[_Problem]:
    """Convert ``cases['label']`` to 0/1 in place and report values that cannot be."""
    mapping = _label_mapping(cases["label"], columns.positive_label)
    seen = sorted({value.lower() for value in cases["label"].dropna()})
    problems, labels = [], []
    for row, case_id, value in cases[["_row", "case_id", "label"]].itertuples(index=False):
        label = None if value is None else mapping.get(value.lower())
        labels.append(label)
        if label is None:
            problems.append(_Problem(row, case_id or "", str(columns.label), "",
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


def _split_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[_Problem]:
    problems = [
        _Problem(row, case_id or "", str(columns.split), "",
                 f"split value {value!r} is not one of {', '.join(SPLIT_VALUES)}")
        for row, case_id, value in cases[["_row", "case_id", "split"]].itertuples(index=False)
        if value not in SPLIT_VALUES
    ]
    valid = cases[cases["split"].isin(SPLIT_VALUES)]
    sides = valid.groupby("patient_id")["split"].nunique()
    for patient in sides.index[sides > 1]:
        rows = valid[valid["patient_id"] == patient]
        problems += [
            _Problem(row, case_id or "", str(columns.split), "",
                     f"patient {patient!r} has cases in both train and test (leakage)")
            for row, case_id in rows[["_row", "case_id"]].itertuples(index=False)
        ]
    return problems


def _shared_image_problems(cases: pd.DataFrame, columns: CohortColumns) -> list[_Problem]:
    images = cases[cases["image"].notna()]
    resolved = images["image"].map(lambda path: str(Path(path).resolve()))
    problems = []
    for path, group in images.groupby(resolved):
        if len(group) > 1:
            ids = ", ".join(str(case_id) for case_id in group["case_id"])
            problems += [
                _Problem(row, case_id or "", columns.image, path,
                         f"the same image file is used by cases {ids}")
                for row, case_id in group[["_row", "case_id"]].itertuples(index=False)
            ]
    return problems


# --- checks on the files --------------------------------------------------------------------


def _file_problems(
    cases: pd.DataFrame,
    columns: CohortColumns,
    *,
    min_roi_mm: float | None,
    min_roi_pixels: int,
    mask_label: int | None,
    frame: int,
    progress: bool,
) -> tuple[list[_Problem], int]:
    """Problems of each case's files, and how many images lack a known spacing.

    Each case's files are read once and released: one case in memory at a time.
    """
    from tqdm.auto import tqdm

    mask_columns = [("mask", columns.mask)] + [(name, name) for name in columns.repeat_masks]
    problems: list[_Problem] = []
    unknown_spacing = 0
    rows = cases[["_row", "case_id", "image", *(name for name, _ in mask_columns)]]
    for record in tqdm(rows.to_dict("records"), desc="checking cases", disable=not progress,
                       unit="case"):
        case = _CaseCheck(record["_row"], record["case_id"] or "", min_roi_mm, min_roi_pixels)
        image = case.read(record["image"], columns.image, lambda p: read_image(p, frame=frame))
        for name, column in mask_columns:
            if pd.isna(record[name]) and name != "mask":
                continue  # repeat segmentations exist for a subset of cases only
            mask = case.read(record[name], column,
                             lambda p: read_mask(p, label=mask_label, frame=frame))
            if image is not None and mask is not None:
                case.check_mask(image, mask, record[name], column)
        if image is not None and not spacing_is_known(image):
            unknown_spacing += 1
        problems += case.problems
    return problems, unknown_spacing


@dataclass
class _CaseCheck:
    """The problems of one case, collected while its files are read."""

    row: int
    case_id: str
    min_roi_mm: float | None
    min_roi_pixels: int
    problems: list[_Problem] = field(default_factory=list)

    def report(self, column: str, file: str, problem: str) -> None:
        self.problems.append(_Problem(self.row, self.case_id, column, file, problem))

    def read(self, path: str | None, column: str, reader):
        if pd.isna(path):
            self.report(column, "", f"{column} path is missing")
            return None
        if not Path(path).is_file():
            self.report(column, path, "file not found")
            return None
        try:
            return reader(path)
        except ImageReadError as error:
            self.report(column, path, f"unreadable: {_without_path(str(error), path)}")
            return None

    def check_mask(self, image, mask, path: str, column: str) -> None:
        if mask.GetSize() != image.GetSize():
            self.report(column, path, f"mask size {_size(mask)} differs from image size "
                                      f"{_size(image)}")
            return
        if not spacings_agree(image, mask):
            self.report(column, path, f"mask spacing {_spacing(mask)} mm differs from image "
                                      f"spacing {_spacing(image)} mm")
            return
        for problem in _roi_problems(mask, image, self.min_roi_mm, self.min_roi_pixels):
            self.report(column, path, problem)


def _roi_problems(mask, image, min_roi_mm: float | None, min_roi_pixels: int) -> Iterator[str]:
    import SimpleITK as sitk

    roi = sitk.GetArrayViewFromImage(mask) != 0
    n_pixels = int(roi.sum())
    if n_pixels == 0:
        yield "empty mask (no ROI pixels)"
        return
    if n_pixels < min_roi_pixels:
        yield f"ROI has {n_pixels} pixels, fewer than min_roi_pixels={min_roi_pixels}"
    if min_roi_mm is not None and spacing_is_known(image):
        diameter = max_diameter_mm(roi, image.GetSpacing())
        if diameter < min_roi_mm:
            yield f"ROI maximum diameter {diameter:.2f} mm is below min_roi_mm={min_roi_mm:g}"


def max_diameter_mm(roi: np.ndarray, spacing: tuple[float, float]) -> float:
    """Largest distance between two points of the ROI (pixel corners), in mm (Feret diameter).

    ``roi`` is a (rows, cols) boolean array; ``spacing`` is (x, y) as SimpleITK gives it.
    """
    rows, cols = np.nonzero(roi)
    # Hull vertices are extreme in their row, so the left- and rightmost pixel per row suffice.
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    first = np.r_[True, rows[1:] != rows[:-1]]
    last = np.r_[rows[1:] != rows[:-1], True]
    ends = first | last
    corners = np.array([(0, 0), (0, 1), (1, 0), (1, 1)], dtype=float) - 0.5
    points = (np.c_[cols[ends], rows[ends]][:, None, :] + corners).reshape(-1, 2)
    points = points * np.asarray(spacing, dtype=float)
    points = _hull_points(points)
    differences = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((differences**2).sum(axis=2)).max())


def _hull_points(points: np.ndarray) -> np.ndarray:
    from scipy.spatial import ConvexHull, QhullError

    try:
        return points[ConvexHull(points).vertices]
    except QhullError:  # all points on one line
        return points


def _without_path(message: str, path: str) -> str:
    """The reader's message without the file name, shown in its own column of the list."""
    for mention in (f" '{path}'", f' "{path}"', f" {path}"):
        message = message.replace(mention, "")
    message = message.replace(path, "the file")
    for redundant in ("the file: ", "cannot read image file: "):
        message = message.removeprefix(redundant)
    return message.strip(" :")


def _size(image) -> str:
    return "x".join(map(str, image.GetSize()))


def _spacing(image) -> str:
    return " x ".join(f"{value:g}" for value in image.GetSpacing())


def _spacing_notes(min_roi_mm: float | None, unknown_spacing: int) -> list[str]:
    if min_roi_mm is None or unknown_spacing == 0:
        return []
    note = (f"min_roi_mm={min_roi_mm:g} was not applied to {unknown_spacing} case(s) whose "
            "images carry no pixel spacing (PNG/JPEG/BMP/TIFF or uncalibrated DICOM)")
    logger.warning(note)
    return [note]


# --- reporting and exclusion ----------------------------------------------------------------


def _problem_table(problems: list[_Problem]) -> pd.DataFrame:
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
        logger.warning("excluded row %s (case %r, %s): %s", row, case_id, column, problem)
    kept = cases[~cases["_row"].isin(bad_rows)].drop(columns="_row")
    if columns.label:
        kept["label"] = kept["label"].astype(int)
    exclusions = exclusions[["case_id", "file", "problem", "row", "column", "action"]]
    return kept, exclusions.reset_index(drop=True)
