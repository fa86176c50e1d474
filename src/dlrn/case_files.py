"""Checks on each case's files: readable image and mask, same geometry, a large enough ROI.

:func:`file_problems` reads one case at a time (one case in memory) and returns every
problem found as a :class:`Problem` (spreadsheet row, case id, column, file, problem);
:mod:`dlrn.cohort` turns them into its problem list and exclusions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dlrn.imaging import ImageReadError, read_image, read_mask, spacing_is_known, spacings_agree


@dataclass(frozen=True)
class Problem:
    row: int
    case_id: str
    column: str
    file: str
    problem: str

# --- checks on the files --------------------------------------------------------------------


def file_problems(
    cases: pd.DataFrame,
    image_column: str,
    mask_columns: list[tuple[str, str]],
    *,
    min_roi_mm: float | None,
    min_roi_pixels: int,
    mask_label: int | None,
    frame: int,
    progress: bool,
    data_root: Path | None = None,
) -> tuple[list[Problem], int]:
    """Problems of each case's files, and how many images lack a known spacing.

    ``mask_columns``: (column in ``cases``, column named in messages), reader 1's first.
    ``data_root``: the table's folder; a detached header (NRRD ``data file``, MetaImage
    ``ElementDataFile``) may name a data file only inside it (:mod:`dlrn.data_files`).
    Each case's files are read once and released: one case in memory at a time.
    """
    from tqdm.auto import tqdm

    problems: list[Problem] = []
    unknown_spacing = 0
    rows = cases[["_row", "case_id", "image", *(name for name, _ in mask_columns)]]
    for record in tqdm(rows.to_dict("records"), desc="checking cases", disable=not progress,
                       unit="case", leave=False):
        case = CaseCheck(record["_row"], record["case_id"] or "", min_roi_mm, min_roi_pixels)
        image = case.read(record["image"], image_column, lambda p: read_image(p, frame=frame,
                                                                   data_root=data_root))
        for name, column in mask_columns:
            if pd.isna(record[name]) and name != "mask":
                continue  # repeat segmentations exist for a subset of cases only
            mask = case.read(record[name], column,
                             lambda p: read_mask(p, label=mask_label, frame=frame,
                                                 data_root=data_root))
            if image is not None and mask is not None:
                case.check_mask(image, mask, record[name], column)
        if image is not None and not spacing_is_known(image):
            unknown_spacing += 1
        problems += case.problems
    return problems, unknown_spacing


@dataclass
class CaseCheck:
    """The problems of one case, collected while its files are read."""

    row: int
    case_id: str
    min_roi_mm: float | None
    min_roi_pixels: int
    problems: list[Problem] = field(default_factory=list)

    def report(self, column: str, file: str, problem: str) -> None:
        self.problems.append(Problem(self.row, self.case_id, column, file, problem))

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
        for problem in roi_problems(mask, image, self.min_roi_mm, self.min_roi_pixels):
            self.report(column, path, problem)


def roi_problems(mask, image, min_roi_mm: float | None, min_roi_pixels: int) -> Iterator[str]:
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


