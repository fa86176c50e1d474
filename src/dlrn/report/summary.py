"""What a stage tells the report: a typed summary, stored in its ``stage.json``.

Every stage returns a :class:`StageSummary` (or a subclass with typed fields of its
own, such as the number of cases analysed). The report reads the captioned tables
and figures, :meth:`StageSummary.facts` and the notes; later code (the methods text)
reads the typed fields. Captions are prose for readers: they are never hashed into
a stage's fingerprint, so rewording one does not rerun anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

Summary = TypeVar("Summary", bound="StageSummary")


@dataclass
class StageSummary:
    """Captioned tables (``{path without .csv: caption}``), figures (``{stem: caption}``), notes.

    ``notes`` are remarks on the data and statistics (an imputed column, tied cut-offs);
    ``cautions`` the few that change what a number means (an AUC of constant scores, cases
    excluded), which the console repeats at the end of a run. The runner adds the notes a
    stage raised as :class:`dlrn.notes.Note` warnings, grouped once per kind.
    """

    tables: dict[str, str] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cautions: list[str] = field(default_factory=list)

    def facts(self) -> dict[str, Any]:
        """Label -> value lines the report shows above the tables."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[Summary], data: dict[str, Any]) -> Summary:
        """The summary stored by :meth:`to_dict` (unknown keys from older runs are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})
