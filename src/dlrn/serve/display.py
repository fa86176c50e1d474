"""What the page calls things: the study's ``labels:`` map (:mod:`dlrn.display_labels`)
for predictors, levels and the outcome, and the patient's values for the nomogram
explorer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dlrn.display_labels import DisplayLabels
from dlrn.report.interactive import values_from_points


@dataclass(frozen=True)
class PageWords:
    """The names a clinician reads: predictors and nomogram axes (``labels``), the outcome
    (the label column's name and its two levels' wording, where the map gives them)."""

    labels: DisplayLabels
    label_column: str

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> PageWords:
        selected = (settings.get("clinical") or {}).get("selected", [])
        return cls(DisplayLabels.of(settings.get("labels")).readable(selected),
                   settings["columns"]["label"])

    @property
    def outcome(self) -> str | None:
        """The outcome's name ("malignancy"), None where the study's map has none."""
        named = self.labels.columns.get(self.label_column, {}).get("name")
        return str(named) if named else None

    @property
    def positive(self) -> str:
        return self._level("1", "positive")

    @property
    def negative(self) -> str:
        return self._level("0", "negative")

    def _level(self, value: str, default: str) -> str:
        worded = self.labels.level(self.label_column, value)
        return default if worded == value else worded

    def axis(self, name: str) -> str:
        return self.labels.axis(name)

    def nomogram_names(self, nomogram: Mapping[str, Any]) -> dict[str, Any]:
        """``labels`` and ``levels`` of :func:`dlrn.report.interactive.interactive_nomogram`."""
        scales = nomogram["scales"]
        return {"labels": self.labels.axes([scale["name"] for scale in scales]),
                "levels": {scale["name"]: {str(v): self.labels.level(scale["name"], v)
                                           for v in scale["values"]}
                           for scale in scales if scale["kind"] == "categorical"}}


def patient_axes(nomogram: Mapping[str, Any] | None, points: Mapping[str, float]
                 ) -> dict[str, object]:
    """The patient's value on each nomogram axis (from its points), for the explorer."""
    return {} if nomogram is None or not points else values_from_points(nomogram, points)
