"""Events per term: is a logistic model's sample large enough for its number of coefficients?

The usual rule (Peduzzi et al. 1996; Harrell, *Regression Modeling Strategies*)
counts the cases of the less frequent outcome class (the "events", the limiting
sample size) per estimated coefficient (a term: a level, a token, a number; the
constant and aliased terms do not count) and asks for at least 10. Below that the
coefficients are biased away from zero and the model's apparent performance is
optimistic. Riley et al. (BMJ 2020; R's pmsampsize) ask for more where the model
must also keep its shrinkage small; the note says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_EVENTS_PER_TERM", "EventsPerTerm", "events_per_term"]

MIN_EVENTS_PER_TERM = 10


@dataclass(frozen=True)
class EventsPerTerm:
    """``events``: cases of the less frequent class (``event_class``: 1 or 0) among ``n``;
    ``terms``: estimated coefficients besides the constant."""

    events: int
    terms: int
    n: int
    event_class: int = 1

    @property
    def per_term(self) -> float:
        return self.events / self.terms if self.terms else np.inf

    def statement(self, what: str) -> str:
        """One line for the report and the console."""
        outcome = "positive" if self.event_class == 1 else "negative (the rarer class)"
        per_term = f"{self.per_term:.1f}" if self.terms else "n/a (no term)"
        return (f"{what}: {self.events} {outcome} cases of {self.n}, {self.terms} terms, "
                f"{per_term} events per term")

    def note(self, what: str, *, brief: bool = False) -> str | None:
        """A caution where the events per term are below the usual 10, else None; ``brief``:
        the figures alone (a second model of the same analysis)."""
        if not self.terms or self.per_term >= MIN_EVENTS_PER_TERM:
            return None
        if brief:
            return (f"{what[:1].upper()}{what[1:]} has {self.per_term:.1f} events per term "
                    f"({self.events} events, {self.terms} terms), also below "
                    f"{MIN_EVENTS_PER_TERM}.")
        return (f"{what[:1].upper()}{what[1:]} has {self.per_term:.1f} events per term "
                f"({self.events} events, {self.terms} terms), below the usual "
                f"{MIN_EVENTS_PER_TERM} (Peduzzi 1996): "
                "its coefficients are likely overfitted and its training-set performance "
                "optimistic; fewer candidate variables (evaluation.clinical_selection: none "
                "with a short pre-specified list) or more cases help, and Riley et al.'s "
                "criteria (BMJ 2020, R pmsampsize) give the sample size a model needs")


def events_per_term(y: object, terms: int) -> EventsPerTerm:
    """Events per term of a model of ``terms`` estimated coefficients (besides the constant)
    fitted on 0/1 outcomes ``y``."""
    labels = np.asarray(y, dtype=float).reshape(-1)
    positives = int(labels.sum())
    negatives = labels.size - positives
    event_class = 1 if positives <= negatives else 0
    return EventsPerTerm(min(positives, negatives), int(terms), labels.size, event_class)
