"""How each clinical column is to be read: its type, missing-value rule, level order, separator.

The study file writes a column either as its type (``age: continuous``) or as a
mapping (``birads: {type: ordinal, order: [2, 3, 4a, 4b, 4c, 5]}``,
``margin: {type: multilabel, separator: "&"}``, ``age: {type: continuous,
missing: exclude}``). :func:`column_specs` turns either form into
:class:`ColumnSpec` objects with the encoder's global settings filled in.

Hospital exports write "not available", "NA", "unknown" or "-" where a value was
not recorded. A column's ``na_values`` (``cohort.na_values`` for every column
unless a column names its own) are read as blank cells: :func:`blank_markers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError, shown_items
from dlrn.io import DEFAULT_NA_VALUES

__all__ = ["COLUMN_TYPES", "DEFAULT_NA_VALUES", "MISSING_POLICIES", "ColumnSpec", "as_text",
           "blank_markers", "column_specs"]

COLUMN_TYPES = ("continuous", "categorical", "ordinal", "multilabel")
MISSING_POLICIES = ("impute", "exclude", "stop")
NA_VALUES_SETTING = "cohort.na_values"
#: The settings a user changes (named in error messages so that the study can go on).
MISSING_SETTING = "cohort.missing"
COLUMNS_SETTING = "cohort.clinical"
MIN_LEVEL_SETTING = "cohort.min_level_count"


@dataclass(frozen=True)
class ColumnSpec:
    """One clinical column as the user declared it (``None`` = the encoder's global setting)."""

    name: str
    type: str = "continuous"
    missing: str | None = None
    order: tuple[str, ...] = ()
    separator: str | None = None
    reference: str | None = None
    na_values: tuple[str, ...] | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "missing": self.missing,
                "order": list(self.order), "separator": self.separator,
                "reference": self.reference,
                "na_values": None if self.na_values is None else list(self.na_values)}


def _one_spec(name: str, declared: object) -> ColumnSpec:
    if isinstance(declared, ColumnSpec):
        return declared
    if isinstance(declared, str):
        declared = {"type": declared}
    if not isinstance(declared, Mapping):
        raise DlrnError(f"{COLUMNS_SETTING}.{name}: expected a type or a mapping with 'type', "
                        f"got {declared!r}")
    known = {f.name for f in fields(ColumnSpec)} - {"name"}
    unknown = sorted(set(declared) - known)
    if unknown:
        raise DlrnError(f"{COLUMNS_SETTING}.{name}: unknown key(s) {unknown}; "
                        f"known: {sorted(known)}")
    values = dict(declared)
    values["order"] = tuple(text_of(v) for v in values.get("order") or ())
    if values.get("reference") is not None:
        values["reference"] = text_of(values["reference"])
    if values.get("na_values") is not None:
        values["na_values"] = _markers(values["na_values"], f"{COLUMNS_SETTING}.{name}.na_values")
    return ColumnSpec(name=name, **values)


def _markers(values: object, where: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise DlrnError(f"{where}: expected a list of texts, e.g. ['not available', '-'], "
                        f"got {values!r}")
    return tuple(str(v).strip() for v in values)


def column_specs(columns: Mapping[str, object] | Sequence[ColumnSpec], *, missing: str,
                 separator: str, reference: Mapping[str, object] | None = None,
                 na_values: Sequence[str] = DEFAULT_NA_VALUES) -> list[ColumnSpec]:
    """Checked specs with the global ``missing``, ``separator``, ``reference`` and
    ``na_values`` filled in."""
    if isinstance(columns, Mapping):
        specs = [_one_spec(str(name), declared) for name, declared in columns.items()]
    else:
        specs = [_one_spec(spec.name, spec) for spec in columns]
    if missing not in MISSING_POLICIES:
        raise DlrnError(f"{MISSING_SETTING} is {missing!r}; choose one of {list(MISSING_POLICIES)}")
    markers = _markers(na_values, NA_VALUES_SETTING)
    resolved = []
    for spec in specs:
        given_reference = (reference or {}).get(spec.name)
        resolved.append(ColumnSpec(
            name=spec.name, type=spec.type, missing=spec.missing or missing, order=spec.order,
            separator=spec.separator or separator,
            reference=spec.reference if given_reference is None else text_of(given_reference),
            na_values=markers if spec.na_values is None else spec.na_values))
    for spec in resolved:
        _check_spec(spec)
    return resolved


def _check_spec(spec: ColumnSpec) -> None:
    where = f"{COLUMNS_SETTING}.{spec.name}"
    if spec.type not in COLUMN_TYPES:
        raise DlrnError(f"{where}: unknown column type {spec.type!r}; "
                        f"choose one of {list(COLUMN_TYPES)}")
    if spec.missing not in MISSING_POLICIES:
        raise DlrnError(f"{where}: missing is {spec.missing!r}; "
                        f"choose one of {list(MISSING_POLICIES)}")
    if spec.type == "ordinal" and len(spec.order) < 2:
        raise DlrnError(f"{where}: an ordinal column needs 'order', its levels from lowest "
                        "to highest (e.g. order: [2, 3, 4a, 4b, 4c, 5])")
    if spec.type == "ordinal" and len(set(spec.order)) != len(spec.order):
        raise DlrnError(f"{where}: 'order' repeats a level: {list(spec.order)}")
    if spec.order and spec.type != "ordinal":
        raise DlrnError(f"{where}: 'order' applies to ordinal columns only (type: ordinal)")
    if spec.reference is not None and spec.type != "categorical":
        raise DlrnError(f"{where}: 'reference' applies to categorical columns only")
    if spec.type == "multilabel" and not spec.separator:
        raise DlrnError(f"{where}: a multilabel column needs a non-empty separator")


def text_of(value: object) -> str:
    """A level as text; 1.0 read from a table with blanks is the level '1'."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def as_text(values: pd.Series) -> pd.Series:
    """Levels as text (object dtype), blanks and empty strings as NaN."""
    text = values.map(lambda v: np.nan if pd.isna(v) else text_of(v)).astype(object)
    return text.where(text != "", np.nan)


def as_number(values: pd.Series, column: str) -> pd.Series:
    """Numbers of a continuous column; text that is not a number is an error naming the cases."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = values.index[numbers.isna() & values.notna() & (as_text(values).notna())]
    if len(bad):
        examples = sorted({str(v) for v in values[bad]})[:5]
        raise DlrnError(f"continuous column {column!r} holds non-numeric value(s) {examples} "
                        f"for case(s) {shown_items(bad)}; correct them or declare the column "
                        f"categorical in {COLUMNS_SETTING}")
    return numbers


def _marker_test(markers: Sequence[str]):
    """value -> whether it is one of ``markers`` (text, without case or surrounding spaces)."""
    folded = {m.casefold() for m in markers}
    return lambda value: isinstance(value, str) and value.strip().casefold() in folded


def blank_markers(table: pd.DataFrame, specs: Sequence[ColumnSpec]
                  ) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """``table`` with each column's missing-value markers made blank, and what was blanked.

    Returns the new table and, per column, marker text -> number of cells (for the
    notes). Markers match without regard to case or surrounding spaces.
    """
    table = table.copy()
    blanked = {}
    for spec in specs:
        if spec.name not in table.columns or not spec.na_values:
            continue
        values = table[spec.name]
        hit = values.map(_marker_test(spec.na_values))
        if hit.any():
            blanked[spec.name] = values[hit].str.strip().value_counts().to_dict()
            column = table[spec.name].astype(object)
            column[hit] = np.nan
            table[spec.name] = column
    return table, blanked
