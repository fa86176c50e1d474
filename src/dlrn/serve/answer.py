"""One patient's answer from the calculator: the ``dlrn predict`` row and what the page and the
API say of it (the probability and its side of the cut-off, the ROI used and where it came
from, the applicability check, the answer over the outline moved)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dlrn.applicability import (
    APPLICABILITY_NOTE,
    APPLICABLE,
    DISTANCE,
    LESION_EVIDENCE,
    OUTSIDE_SHARE,
    UNLIKE,
)
from dlrn.serve.roi import Roi
from dlrn.serve.sensitivity import RoiSensitivity

__all__ = ["Answer"]


@dataclass
class Answer:
    """One patient's result: the ``predict_cases`` row and what the page shows of it."""

    row: pd.Series
    inputs: dict[str, str | float | None]
    cutoff: float | None
    nomogram: str | None
    models: list[dict[str, Any]]
    roi: Roi
    points: dict[str, float] = field(default_factory=dict)
    gradcam_png: bytes | None = None
    #: the thresholds of the applicability check (:func:`applicability_check.limits`)
    limits: dict[str, float] = field(default_factory=dict)
    sensitivity: RoiSensitivity | None = None
    cautions: list[str] = field(default_factory=list)  # values outside the nomogram's axes

    @property
    def applicability(self) -> dict[str, Any]:
        """Is this image like the study's? ``dlrn predict``'s verdict: ``applicable`` (None:
        not assessed), ``warning`` (the note, empty when applicable), ``reasons`` (plain
        words), the case's numbers and the thresholds they were held against."""
        verdict = self.row.get(APPLICABLE)
        applicable = None if pd.isna(verdict) else bool(verdict)
        note = self.row.get(APPLICABILITY_NOTE)
        note = note if isinstance(note, str) else ""
        numbers = {name: (None if pd.isna(self.row.get(name)) else float(self.row[name]))
                   for name in (LESION_EVIDENCE, DISTANCE, OUTSIDE_SHARE)}
        return {"applicable": applicable, "warning": note if applicable is False else "",
                "reasons": [] if not note.startswith(UNLIKE) else
                note.removeprefix(f"{UNLIKE}: ").split("; "),
                **numbers, "thresholds": dict(self.limits)}

    @property
    def probability(self) -> float | None:
        return float(self.row[self.nomogram]) if self.nomogram in self.row else None

    @property
    def probability_range(self) -> tuple[float, float] | None:
        """The nomogram's lowest and highest probability over the ROI as used, eroded and
        dilated (None: no nomogram, or no variant predicted)."""
        if self.sensitivity is None or self.probability is None:
            return None
        return self.sensitivity.range_of(self.nomogram, self.probability)

    @property
    def total_points(self) -> float | None:
        return float(self.row["total_points"]) if "total_points" in self.row else None

    @property
    def above_cutoff(self) -> bool | None:
        if self.cutoff is None or self.probability is None:
            return None
        return self.probability >= self.cutoff  # dlrn's rule: positive when score >= cut-off

    @property
    def notes(self) -> list[str]:
        """How the study's rules read this case (``dlrn predict``'s note): imputed values..."""
        note = self.row.get("note")
        return [note] if isinstance(note, str) and note else []

    @property
    def gradcam_base64(self) -> str | None:
        return None if self.gradcam_png is None else base64.b64encode(self.gradcam_png).decode()
