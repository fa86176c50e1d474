"""Remarks about the data or a statistic: a Python warning in a notebook, a note in a study.

The library says what it noticed (tied Youden cut-offs, fewer Hosmer-Lemeshow groups
than asked, a calibration slope it could not compute...) with ``warnings.warn(Note(...))``.
Used alone, in a notebook, that is an ordinary ``UserWarning`` with today's text. A
study stage runs inside :func:`collect`, which records every warning instead of printing
it: the notes are grouped once per kind with the models and sets they concern
(:func:`summarize`) for the stage's summary, every occurrence is logged with its origin,
and a warning of any other library goes to the log only (logger ``py.warnings``, as
``logging.captureWarnings`` names it). A caller that knows which model and set a
computation concerns wraps it in :func:`about`, so that the notes raised deep inside
(``youden_threshold`` knows neither) name them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from dlrn.errors import shown_items

__all__ = ["Collected", "Note", "about", "collect", "summarize"]

log = logging.getLogger(__name__)
library_log = logging.getLogger("py.warnings")

SHOWN_SUBJECTS = 6  # models, sets or model-set pairs named in a grouped note

# Where re-raised notes are registered: Python's "default" action then shows a note once
# per text and place in a notebook, as it did before :func:`about` re-raised it.
_REEMITTED: dict = {}


class Note(UserWarning):
    """A remark about the data or a statistic, for the report rather than the console.

    ``kind`` says what happened in words that stay the same between models and sets, and
    ``reason`` why (notes are grouped by both); ``message`` is this occurrence's own text
    when it has particulars (a count, a threshold). ``caution`` marks the few remarks that
    change what a number means (the AUC of constant scores, a selection that kept no
    feature on merit), which a run repeats on the console at its end.
    """

    def __init__(self, kind: str, reason: str = "", *, message: str = "",
                 model: str | None = None, on_set: str | None = None,
                 caution: bool = False) -> None:
        self.kind, self.reason, self.message = kind, reason, message
        self.model, self.on_set, self.caution = model, on_set, caution
        super().__init__(self.text)

    @property
    def text(self) -> str:
        """This occurrence in one line: the model and set it concerns, then what happened."""
        body = self.message or (f"{self.kind}: {self.reason}" if self.reason else self.kind)
        subject = _subject(self.model, self.on_set)
        return f"{subject}: {body}" if subject else body

    def about(self, model: str | None = None, on_set: str | None = None) -> Note:
        """The same note, naming ``model`` and ``on_set`` where it did not name its own."""
        return type(self)(self.kind, self.reason, message=self.message,
                          model=self.model or model, on_set=self.on_set or on_set,
                          caution=self.caution)


def _subject(model: str | None, on_set: str | None) -> str:
    if model and on_set:
        return f"{model} on set {on_set!r}"
    if model:
        return model
    return f"set {on_set!r}" if on_set else ""


@contextmanager
def about(model: str | None = None, on_set: str | None = None) -> Iterator[None]:
    """The notes raised inside concern ``model`` on ``on_set``: raised again naming them.

    Other warnings pass through unchanged (raised again from where they were raised).
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", category=Note)
            yield
    finally:
        for record in caught:
            message = record.message
            if isinstance(message, Note):
                message = message.about(model, on_set)
            warnings.warn_explicit(message, record.category, record.filename, record.lineno,
                                   registry=_REEMITTED)


@dataclass
class Collected:
    """The notes raised inside :func:`collect`, in the order they were raised."""

    notes: list[Note] = field(default_factory=list)

    @property
    def remarks(self) -> list[str]:
        """The notes for the report, one line per kind."""
        return summarize([note for note in self.notes if not note.caution])

    @property
    def cautions(self) -> list[str]:
        """The notes that change what a number means, one line per kind."""
        return summarize([note for note in self.notes if note.caution])


@contextmanager
def collect(where: str = "") -> Iterator[Collected]:
    """Record every warning raised inside instead of printing it.

    Notes are kept in the :class:`Collected` (filled when the block ends) and each is
    logged with its origin; any other warning is logged with its origin and category on
    ``py.warnings``, subject to the filters in force (Python's "default" action: once
    per place). ``where`` (a stage's name) starts every line logged.
    """
    collected = Collected()
    lead = f"{where}: " if where else ""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", category=Note)
            yield collected
    finally:
        for record in caught:
            origin = f"{record.filename}:{record.lineno}"
            if isinstance(record.message, Note):
                collected.notes.append(record.message)
                log.info("%snote (%s): %s", lead, origin, record.message)
            else:
                library_log.warning("%s%s: %s: %s", lead, origin, record.category.__name__,
                                    record.message)


def summarize(notes: Sequence[Note]) -> list[str]:
    """One line per kind of note (kind and reason): the models and sets it concerns, what
    happened and why; a note raised for one model on one set keeps its own text."""
    groups: dict[tuple[str, str], list[Note]] = {}
    for note in notes:
        groups.setdefault((note.kind, note.reason), []).append(note)
    return [_grouped(kind, reason, members) for (kind, reason), members in groups.items()]


def _grouped(kind: str, reason: str, members: list[Note]) -> str:
    pairs = list(dict.fromkeys((note.model, note.on_set) for note in members))
    if len(members) == 1 or (len(pairs) == 1 and any(pairs[0])):
        return members[0].text  # one model on one set (its image- and patient-level rows)
    body = f"{kind}: {reason}" if reason else kind
    subjects = _subjects(pairs)
    return f"{subjects}: {body}" if subjects else f"{body} ({len(members)} times)"


def _subjects(pairs: list[tuple[str | None, str | None]]) -> str:
    """'2 models (A, B) on 3 sets (...)'; 'on some of 3 sets' where not every model is on
    every set (the log names each pair)."""
    models = list(dict.fromkeys(model for model, _ in pairs if model))
    sets = list(dict.fromkeys(repr(on_set) for _, on_set in pairs if on_set))
    named = ([models[0] if len(models) == 1 else _counted(models, "models")] if models else [])
    if sets:
        every = len(pairs) == len(models) * len(sets) or not models
        named.append((f"set {sets[0]}" if len(sets) == 1 else _counted(sets, "sets"))
                     if every else f"some of {_counted(sets, 'sets')}")
    return " on ".join(named)


def _counted(names: list[str], noun: str) -> str:
    return f"{len(names)} {noun} ({shown_items(names, SHOWN_SUBJECTS)})"
