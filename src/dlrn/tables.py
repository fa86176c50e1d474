"""Write result tables the way our users read them: one CSV each plus one Excel workbook."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

_EXCEL_SHEET_NAME_MAX = 31


def _sheet_name(name: str, used: set[str]) -> str:
    """Excel sheet names: at most 31 characters, no []:*?/\\, unique in the workbook."""
    base = re.sub(r"[\[\]:*?/\\]", "_", name)[:_EXCEL_SHEET_NAME_MAX] or "sheet"
    candidate, n = base, 1
    while candidate.lower() in used:
        suffix = f"_{n}"
        candidate = base[: _EXCEL_SHEET_NAME_MAX - len(suffix)] + suffix
        n += 1
    used.add(candidate.lower())
    return candidate


def write_tables(
    tables: Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    workbook: str | None = "tables.xlsx",
    index: bool = False,
) -> dict[str, Path]:
    """Write each table to ``out_dir/<name>.csv`` and all of them to one workbook.

    Returns the paths written, keyed by table name (the workbook under ``"workbook"``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, table in tables.items():
        path = out / f"{name}.csv"
        table.to_csv(path, index=index)
        written[name] = path
    if workbook and tables:
        path = out / workbook
        used: set[str] = set()
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            for name, table in tables.items():
                table.to_excel(writer, sheet_name=_sheet_name(name, used), index=index)
        written["workbook"] = path
    return written
