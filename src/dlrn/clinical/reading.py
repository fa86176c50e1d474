"""Reading one clinical column into the encoder's numeric inputs (before imputation).

Each reader turns a raw column into the "prepared" columns that the
scikit-learn pieces of :class:`~dlrn.clinical.encoding.ClinicalEncoder` impute
and encode, and reports the cases whose value the training set never saw:

- continuous: the number;
- ordinal: the level's score, its 1-based position in the declared order;
- categorical: the level as text (a level unseen in training becomes a merged
  level, i.e. ``other``, where training merged rare levels, else missing);
- multilabel: one 0/1 column per token kept in training, plus ``other`` for the
  merged rare tokens (an unseen token goes to ``other`` where there is one, else
  it is ignored; a value none of whose tokens is known becomes missing).

Rare levels (tokens) too few even together for an ``other`` term (fewer than
``min_level_count`` cases in all) are counted as the most frequent level
(ignored, for tokens): ``folded``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlrn.clinical.spec import COLUMNS_SETTING, ColumnSpec, as_number, as_text
from dlrn.errors import DlrnError, shown_items

OTHER = "other"
MISSING = "missing"


@dataclass
class Reading:
    """A column read for encoding: prepared columns and the cases with unseen values.

    ``unseen``: case -> the value(s) training never had; they went to 'other'
    (``unseen_to_other``), else made these cases' value missing
    (``unseen_missing``) or, for multilabel tokens beside known ones, were ignored.
    """

    prepared: pd.DataFrame
    missing: pd.Index  # cases without a value (blank cell)
    unseen: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    unseen_to_other: bool = False
    unseen_missing: pd.Index = field(default_factory=lambda: pd.Index([]))


def term(column: str, part: str) -> str:
    """The name of one term of a column: ``margin[angular]``, ``age[missing]``."""
    return f"{column}[{part}]"


def tokens_of(value: object, separator: str) -> list[str]:
    """The distinct tokens of one multilabel value, in order of appearance."""
    parts = (part.strip() for part in str(value).split(separator))
    return list(dict.fromkeys(part for part in parts if part))


def read_continuous(spec: ColumnSpec, values: pd.Series) -> Reading:
    numbers = as_number(values, spec.name)
    return Reading(numbers.to_frame(spec.name), values.index[numbers.isna()])


def read_ordinal(spec: ColumnSpec, values: pd.Series, *, fitting: bool) -> Reading:
    """Scores 1..k by the declared order; a value outside it is an error in training."""
    text = as_text(values)
    scores = text.map({level: i + 1.0 for i, level in enumerate(spec.order)}).astype(float)
    outside = text.notna() & scores.isna()
    if fitting and outside.any():
        raise DlrnError(
            f"ordinal column {spec.name!r} has value(s) {sorted(set(text[outside]))} that are "
            f"not in its order {list(spec.order)} for case(s) {shown_items(text.index[outside])};"
            f" add them to {COLUMNS_SETTING}.{spec.name}.order or correct the table")
    return Reading(scores.to_frame(spec.name), text.index[text.isna()], text[outside],
                   unseen_missing=text.index[outside])


def read_categorical(spec: ColumnSpec, values: pd.Series, state: dict) -> Reading:
    """Levels as text; with the training ``levels``, unseen ones go to 'other' or missing."""
    text = as_text(values)
    missing = text.index[text.isna()]
    folded = state.get("folded", [])
    text_read = text.where(~text.isin(folded), state.get("folded_into"))
    levels, merged = state.get("levels"), state.get("merged")
    if levels is None:
        return Reading(text_read.to_frame(spec.name), missing)
    unseen = text.notna() & ~text.isin([*levels, *folded])
    prepared = text_read.copy()
    prepared[unseen] = merged[0] if merged else np.nan
    return Reading(prepared.to_frame(spec.name), missing, text[unseen], bool(merged),
                   pd.Index([]) if merged else text.index[unseen])


def token_counts(spec: ColumnSpec, values: pd.Series) -> Counter:
    """Training cases per token; a separator that never occurs is an error."""
    text = as_text(values).dropna()
    if len(text) > 1 and not text.str.contains(spec.separator, regex=False).any():
        raise DlrnError(
            f"multilabel column {spec.name!r}: the separator {spec.separator!r} occurs in none "
            f"of its {len(text)} training values (e.g. {sorted(set(text))[:3]}); set "
            f"{COLUMNS_SETTING}.{spec.name}.separator to the one the table uses, or declare "
            "the column categorical")
    return Counter(token for value in text for token in tokens_of(value, spec.separator))


def read_multilabel(spec: ColumnSpec, values: pd.Series, state: dict) -> Reading:
    """0/1 per kept token (+ 'other' for merged ones); missing rows are NaN in every column."""
    tokens, merged = state["tokens"], state["merged"]
    text = as_text(values)
    found = text.map(lambda value: [] if pd.isna(value) else tokens_of(value, spec.separator))
    known = set(tokens) | set(merged) | set(state.get("folded", []))
    new = found.map(lambda seen: [t for t in seen if t not in known])
    rows = {term(spec.name, token): found.map(lambda seen, token=token: token in seen)
            for token in tokens}
    if merged:
        rows[term(spec.name, OTHER)] = found.map(
            lambda seen: any(t in merged or t not in known for t in seen))
    prepared = pd.DataFrame(rows, index=values.index).astype(float)
    has_new = new.map(bool)
    only_new = has_new & found.map(len).eq(new.map(len)) & (not merged)
    prepared[text.isna() | only_new] = np.nan
    return Reading(prepared, text.index[text.isna()], new[has_new].map(spec.separator.join),
                   bool(merged), text.index[only_new])


def split_rare(counts: Mapping[str, int], min_count: int, holders: int | None = None
               ) -> tuple[list[str], list[str], list[str]]:
    """(kept, merged into 'other', folded) names, each sorted.

    Names held by fewer than ``min_count`` cases are rare; they are merged into
    'other' when the cases holding any of them (``holders``, default their total)
    reach ``min_count``, else folded (too few for a term of their own).
    """
    kept = sorted(name for name, n in counts.items() if n >= min_count)
    rare = sorted(name for name, n in counts.items() if n < min_count)
    together = sum(counts[name] for name in rare) if holders is None else holders
    return (kept, rare, []) if together >= min_count else (kept, [], rare)
