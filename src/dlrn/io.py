"""Case tables in, results out: one reader, one case order, one output-folder guard, one
0/1 label check.

Every command and stage reads cohort, feature and prediction tables through
:func:`read_table` (CSV, TSV/TAB with a tab separator, Excel), puts their cases in
one order through :func:`in_case_order`, refuses to write into a folder holding
something else through :func:`check_output_folder`, and checks outcome labels
through :func:`binary_labels`, so the same mistake gets the same message wherever it
is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError, shown_items

EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
#: Cell texts hospital exports write where no value was recorded: read as a blank cell in
#: the clinical columns (compared without case and surrounding spaces; cohort.na_values).
DEFAULT_NA_VALUES = ("NA", "N/A", "not available", "unknown", "-", "?")
TAB_SUFFIXES = (".tsv", ".tab")


def read_table(path: str | Path, *, what: str = "table", text_columns: Iterable[str] = (),
               nrows: int | None = None, **options: Any) -> pd.DataFrame:
    """A CSV/TSV/Excel table; ``text_columns`` are read as text (ids, paths, labels).

    A file that is missing or that pandas cannot parse is a DlrnError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DlrnError(f"{what} not found: {path}")
    dtype = dict.fromkeys(text_columns, str)
    try:
        if path.suffix.lower() in EXCEL_SUFFIXES:
            return pd.read_excel(path, dtype=dtype, nrows=nrows)
        separator = "\t" if path.suffix.lower() in TAB_SUFFIXES else ","
        return pd.read_csv(path, sep=separator, dtype=dtype, nrows=nrows, **options)
    except Exception as error:  # pandas raises many types for malformed files
        raise DlrnError(f"cannot read {what} {path}: {error}") from error


def table_columns(path: str | Path, *, what: str = "table") -> list[str]:
    """The header of a case table, without reading its rows."""
    return [str(name).strip() for name in read_table(path, what=what, nrows=0).columns]


def in_case_order(table: pd.DataFrame) -> pd.DataFrame:
    """The table's rows sorted by case id (its index, compared as text).

    Splits, CV folds, bootstraps, trees and CNN batches all draw on row positions, so
    the same cases in another row order (a re-export, a sort in a spreadsheet) would
    give other numbers. Readers put every case table in this one order, so results
    depend on the cases alone.
    """
    order = np.argsort(table.index.astype(str).to_numpy(), kind="stable")
    return table.iloc[order]


def read_indexed_table(path: str | Path, id_column: str, *, what: str) -> pd.DataFrame:
    """A case table indexed by its case id column (stripped text, unique), named ``case_id``,
    in case order (:func:`in_case_order`)."""
    table = read_table(path, what=what, text_columns=[id_column])
    if id_column not in table.columns:
        raise DlrnError(f"{what} {path} has no case id column {id_column!r} "
                        f"(columns: {list(table.columns[:10])})")
    table[id_column] = table[id_column].astype(str).str.strip()
    duplicated = table[id_column][table[id_column].duplicated()].unique()
    if len(duplicated):
        raise DlrnError(f"{what} {path}: duplicate case id(s) {list(duplicated[:10])}")
    return in_case_order(table.set_index(id_column).rename_axis("case_id"))


RUN_LOGS = "logs"
"""The folder of a command's run logs in its output folder (``logs/run-<timestamp>.log``)."""


def check_output_folder(folder: str | Path, *, overwrite: bool = False,
                        what: str = "output folder",
                        remedy: str = "choose another or pass --overwrite") -> Path:
    """Refuse a folder that exists and holds files, unless told to overwrite.

    Run logs (:data:`RUN_LOGS`) are no results: a command opens its log before it writes.
    """
    folder = Path(folder)
    held = [path for path in folder.iterdir() if path.name != RUN_LOGS] if folder.is_dir() else []
    if held and not overwrite:
        raise DlrnError(f"{what} {folder} is not empty; {remedy}")
    return folder


def binary_labels(values: pd.Series, *, what: str) -> pd.Series:
    """The labels as int 0/1; any other value (2, NaN, 'yes') is an error naming its cases."""
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values.index[~numeric.isin([0, 1])]
    if len(bad):
        raise DlrnError(f"{what} is not 0/1 for case(s) {shown_items(bad)}")
    return numeric.astype(int)
