"""Names for people: the study file's ``labels:`` map (column -> name, unit, levels'
wording), read by the report, the nomogram figure and the calculator.

Tables and files keep the column names (they are the study's identifiers); only what a
reader sees changes: ``max_diameter_mm`` becomes "Largest diameter (mm)", a level ``1``
"present". The nomogram's image scores have built-in names, which the map may replace
(key ``DLR_score`` or ``Rad_score``); a missing-value term reads "<name>: unknown" and a
multilabel token "<name>: <token's wording>".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_SCORES = {"DLR_score": "Deep-learning radiomics score",
           "Rad_score": "Radiomics score"}
_KEYS = ("name", "unit", "levels")
_UNITS = {"mm": "mm", "cm": "cm", "ml": "mL", "years": "years", "yr": "years", "kg": "kg",
          "pct": "%", "percent": "%"}
_UNIT_SUFFIX = r"[_ ]\(?([A-Za-z%]+)\)?$"


@dataclass(frozen=True)
class DisplayLabels:
    """The ``labels:`` map; a column it does not name keeps its own name."""

    columns: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> DisplayLabels:
        return cls(dict(data or {}))

    def readable(self, columns: list[str]) -> DisplayLabels:
        """The map with each of ``columns`` it does not name made readable, for a page:
        "max_diameter_mm" -> "Max diameter", unit "mm" (read from the name's end)."""
        added = {column: {"name": _readable(column), "unit": unit_in_name(column)}
                 for column in columns if column not in self.columns}
        return DisplayLabels({**added, **self.columns})

    def name(self, column: str) -> str:
        """The column's name for people (no unit)."""
        given = self.columns.get(column, {}).get("name")
        return str(given) if given else _SCORES.get(column, column)

    def unit(self, column: str) -> str:
        return str(self.columns.get(column, {}).get("unit") or "")

    def titled(self, column: str) -> str:
        """Name and unit: "Largest diameter (mm)"."""
        unit = self.unit(column)
        return f"{self.name(column)} ({unit})" if unit else self.name(column)

    def level(self, column: str, value: object) -> str:
        """A level's (or token's) wording; the level itself where the map gives none."""
        levels = self.columns.get(column, {}).get("levels") or {}
        words = {str(key): str(text) for key, text in levels.items()}
        return words.get(str(value), str(value))

    def axis(self, axis: str) -> str:
        """A nomogram axis' title: a column (with its unit), a score, ``col[missing]``
        ("<name>: unknown") or a multilabel token ``col[token]``."""
        match = re.fullmatch(r"(.+)\[(.+)\]", axis)
        if match is None:
            return self.titled(axis)
        column, token = match.groups()
        return f"{self.name(column)}: " + ("unknown" if token == "missing"
                                           else self.level(column, token))

    def axes(self, names: list[str]) -> dict[str, str]:
        return {name: self.axis(name) for name in names}


def unit_in_name(column: str) -> str:
    """The unit a column's name ends with ("size_mm": "mm"), "" for none known."""
    match = re.search(_UNIT_SUFFIX, column)
    return _UNITS.get(match.group(1).lower(), "") if match else ""


def _readable(column: str) -> str:
    words = re.sub(_UNIT_SUFFIX, "", column) if unit_in_name(column) else column
    words = words.replace("_", " ").strip() or column
    return words[0].upper() + words[1:]


def label_problems(data: Any) -> list[tuple[str, str]]:
    """(path under ``labels``, problem) for each malformed entry of the study's map."""
    if not isinstance(data, Mapping):
        return [("", "must be a map {column: {name, unit, levels}}")]
    problems = []
    for column, entry in data.items():
        if not isinstance(entry, Mapping):
            problems.append((str(column), "must be a map with name, unit and/or levels"))
            continue
        for key in sorted(set(map(str, entry)) - set(_KEYS)):
            problems.append((f"{column}.{key}", f"unknown key; allowed: {', '.join(_KEYS)}"))
        for key in ("name", "unit"):
            if key in entry and not isinstance(entry[key], str):
                problems.append((f"{column}.{key}", "must be text"))
        levels = entry.get("levels", {})
        if not isinstance(levels, Mapping) or not all(
                isinstance(text, (str, int, float)) for text in levels.values()):
            problems.append((f"{column}.levels", "must be a map {level: wording}"))
    return problems
