"""Two result folders compared file by file: every table cell and every figure.

``dlrn reproduce`` compares a re-run study with the original through this module, and
``benchmarks/compare_tables.py`` any two study folders. A table is compared as text
first (the same code on the same inputs and versions writes the same digits); cells
whose texts differ but read as numbers are equal within a relative tolerance (1e-12 by
default) or a difference of that size; other texts differ outright. Columns that
measure what a run cost (seconds, images per second, memory) are not results and are
left out, and so are the paths of each folder (a Grad-CAM file lies in its own run's
folder). Figures (PNG) are compared by their pixels. Caches are not results either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

RELATIVE_TOLERANCE = 1e-12
#: Columns measuring what a run cost rather than what it found: any two runs differ there.
COST_COLUMNS = frozenset({"train_time_s", "images_per_s", "peak_memory_mib", "train_seconds",
                          "seconds"})
#: Folders holding caches (PyRadiomics features, CNN crops), which only save time.
CACHE_FOLDER = "cache"
IDENTICAL = "identical"
WITHIN_TOLERANCE = "equal within tolerance"
DIFFERS = "differs"
ONLY_ORIGINAL = "only in the original"
ONLY_REPRODUCED = "only in the reproduction"
#: Differing cells listed per table (all are counted).
SHOWN_CELLS = 5
_FOLDER_MARK = "<study folder>"


@dataclass
class CellDifference:
    """One cell whose two values differ: its row (first column's value), column, values."""

    row: str
    column: str
    original: str
    reproduced: str
    relative: float | None  # |a - b| / max(|a|, |b|) of two numbers; None for texts


@dataclass
class FileComparison:
    """How one table or figure of the original compares with its reproduction.

    ``cells``: differing cells (a figure: differing pixels); ``largest``: the largest
    relative difference of two numbers (a figure: of two grey levels, out of 255;
    ``inf`` where a text differs).
    """

    path: str
    kind: str  # "table" or "figure"
    status: str
    cells: int = 0
    largest: float | None = None
    shown: list[CellDifference] = field(default_factory=list)
    detail: str = ""

    @property
    def same(self) -> bool:
        return self.status in (IDENTICAL, WITHIN_TOLERANCE)

    def line(self) -> str:
        """One line for a listing: the file, what differs and by how much."""
        if self.status != DIFFERS:
            return f"{self.path}: {self.status}"
        what = self.detail or f"{self.cells} {'pixel' if self.kind == 'figure' else 'cell'}(s)"
        size = "" if self.largest is None else (
            ", a text differs" if math.isinf(self.largest)
            else f", largest relative difference {self.largest:.3g}")
        cells = "; ".join(f"{c.row} / {c.column}: {c.original} -> {c.reproduced}"
                          for c in self.shown)
        return f"{self.path}: {what} differ{size}" + (f" ({cells})" if cells else "")


def result_files(folder: Path) -> set[str]:
    """The tables (CSV) and figures (PNG) under ``folder``, caches left out, as relative
    POSIX paths."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")
            if path.suffix in (".csv", ".png") and path.is_file()
            and CACHE_FOLDER not in path.relative_to(folder).parts}


#: Where each side's results were written (their paths are not compared).
Roots = tuple[tuple[Path, ...], tuple[Path, ...]]


def compare_folders(original: Path, reproduced: Path, *,
                    tolerance: float = RELATIVE_TOLERANCE,
                    roots: Roots | None = None) -> list[FileComparison]:
    """Every table and figure of the two folders, in path order.

    ``roots``: the folders each side's paths start with (default: the two folders; a
    study folder that was moved also wrote its former place into its tables).
    """
    before, after = result_files(original), result_files(reproduced)
    roots = roots or ((original,), (reproduced,))
    comparisons = []
    for name in sorted(before | after):
        kind = "figure" if name.endswith(".png") else "table"
        if name not in after:
            comparisons.append(FileComparison(name, kind, ONLY_ORIGINAL))
        elif name not in before:
            comparisons.append(FileComparison(name, kind, ONLY_REPRODUCED))
        elif kind == "figure":
            comparisons.append(compare_figure(original / name, reproduced / name, name))
        else:
            comparisons.append(compare_table(original / name, reproduced / name, name,
                                             tolerance=tolerance, roots=roots))
    return comparisons


def _read_text_table(path: Path, roots: tuple[Path, ...]) -> pd.DataFrame:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table = table.drop(columns=[c for c in table.columns if c in COST_COLUMNS])
    # a path into the run's own folder is the same path on both sides
    for prefix in sorted({str(root.resolve()) for root in roots}, key=len, reverse=True):
        table = table.apply(lambda column, prefix=prefix: column.str.replace(
            prefix, _FOLDER_MARK, regex=False))
    return table


def compare_table(original: Path, reproduced: Path, name: str, *,
                  tolerance: float = RELATIVE_TOLERANCE,
                  roots: Roots = ((), ())) -> FileComparison:
    """Cell by cell; ``roots``: the folders whose paths are not compared (see
    :func:`compare_folders`)."""
    a = _read_text_table(original, roots[0])
    b = _read_text_table(reproduced, roots[1])
    if list(a.columns) != list(b.columns):
        return FileComparison(name, "table", DIFFERS, detail=(
            f"columns {list(a.columns)} and {list(b.columns)}"))
    if len(a) != len(b):
        return FileComparison(name, "table", DIFFERS, detail=f"{len(a)} and {len(b)} rows")
    unequal = (a != b).to_numpy()
    if not unequal.any():
        return FileComparison(name, "table", IDENTICAL)
    differences = []
    for row, column in zip(*np.nonzero(unequal), strict=True):
        first, second = a.iat[row, column], b.iat[row, column]
        relative = relative_difference(first, second)
        if relative is None or relative > tolerance:
            label = f"row {row + 2} ({a.iat[row, 0]})" if column else f"row {row + 2}"
            differences.append(CellDifference(label, a.columns[column], first, second,
                                              relative))
    if not differences:
        return FileComparison(name, "table", WITHIN_TOLERANCE, cells=int(unequal.sum()))
    sizes = [math.inf if d.relative is None else d.relative for d in differences]
    return FileComparison(name, "table", DIFFERS, cells=len(differences), largest=max(sizes),
                          shown=differences[:SHOWN_CELLS])


def relative_difference(first: str, second: str) -> float | None:
    """|a - b| / max(|a|, |b|) of two numbers written as text (0 for equal values, NaN
    and NaN included); None where either is not a number."""
    try:
        a, b = float(first), float(second)
    except ValueError:
        return None
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def compare_figure(original: Path, reproduced: Path, name: str) -> FileComparison:
    """Identical files, else their decoded pixels: how many differ and by how much."""
    from PIL import Image

    if original.read_bytes() == reproduced.read_bytes():
        return FileComparison(name, "figure", IDENTICAL)
    with Image.open(original) as first, Image.open(reproduced) as second:
        a, b = np.asarray(first.convert("RGBA")), np.asarray(second.convert("RGBA"))
    if a.shape != b.shape:
        return FileComparison(name, "figure", DIFFERS,
                              detail=f"sizes {a.shape[1]}x{a.shape[0]} and "
                                     f"{b.shape[1]}x{b.shape[0]} pixels")
    gap = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
    if not gap.any():  # same pixels, other file metadata
        return FileComparison(name, "figure", IDENTICAL)
    return FileComparison(name, "figure", DIFFERS, cells=int((gap > 0).sum()),
                          largest=float(gap.max()) / 255)
