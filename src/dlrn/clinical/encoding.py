"""One encoder of clinical tables, fitted on training rows only and applied anywhere.

:class:`ClinicalEncoder` learns on the training cases what every later table
is encoded with: the imputation values (median of a continuous column, most
frequent level otherwise, plus a missing-indicator term for a column with
missing values in training), the levels kept and those held by fewer than
``min_level_count`` cases, merged into ``other``, and the tokens of multilabel
columns. Test, external and ``dlrn predict`` rows are encoded with exactly
these; a value met only there never changes them, and is reported
(:meth:`ClinicalEncoder.transform_notes`). Imputation and one-hot coding are
scikit-learn's (``SimpleImputer(add_indicator=True)``, ``MissingIndicator``,
``OneHotEncoder(min_frequency=..., handle_unknown="infrequent_if_exist")`` in a
``ColumnTransformer``); the encoder adds ordinal scores, multilabel tokens, the
missing-value rules and the notes. It is saved as JSON (:meth:`to_dict`), not
pickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.validation import check_is_fitted

from dlrn.clinical import reading
from dlrn.clinical.reading import MISSING, OTHER, Reading, term
from dlrn.clinical.spec import (
    DEFAULT_NA_VALUES,
    MIN_LEVEL_SETTING,
    MISSING_SETTING,
    ColumnSpec,
    as_text,
    blank_markers,
    column_specs,
)
from dlrn.errors import DlrnError, shown_items

__all__ = ["ClinicalEncoder"]

FORMAT = "dlrn-clinical-encoder"
FORMAT_VERSION = 1
_SKLEARN_OTHER = "infrequent_sklearn"


class OneValuedColumnError(DlrnError):
    """A categorical column left with one value by the training rules (``column`` names it)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


class ClinicalEncoder(TransformerMixin, BaseEstimator):
    """Clinical columns -> numeric terms, every rule learned on the training rows.

    ``columns`` maps each column to its type (``continuous``, ``categorical``,
    ``ordinal``, ``multilabel``) or to a mapping with ``type`` and optionally
    ``missing`` (``impute``, ``exclude`` or ``stop``), ``order`` (ordinal levels,
    lowest first), ``separator`` (multilabel), ``reference`` (categorical) and
    ``na_values`` (cell texts read as blank; ``na_values`` here gives every column's,
    by default "NA", "N/A", "not available", "unknown", "-" and "?").
    Terms: ``age``; ``age[missing]``; ``shape[irregular]`` per level but the
    reference (the most frequent kept training level unless given, so that odds
    ratios read "vs the usual finding"; ties: the first in sorted order);
    ``shape[other]``; ``birads`` (the ordinal score 1..k); ``margin[angular]``
    (1 when the token is present).
    """

    def __init__(self, columns: Mapping[str, Any] | None = None, *, missing: str = "impute",
                 min_level_count: int = 5, separator: str = "&",
                 reference: Mapping[str, Any] | None = None,
                 na_values: tuple[str, ...] | list[str] = DEFAULT_NA_VALUES) -> None:
        self.columns = columns
        self.missing = missing
        self.min_level_count = min_level_count
        self.separator = separator
        self.reference = reference
        self.na_values = na_values

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame, y: object = None) -> ClinicalEncoder:
        """Learn imputation values, levels, merges and tokens from the training rows ``X``.

        Cases with a missing value in an ``exclude`` column are left out (listed in
        ``excluded_``); a missing value in a ``stop`` column is an error.
        """
        self.specs_ = column_specs(self.columns or {}, missing=self.missing,
                                   separator=self.separator, reference=self.reference,
                                   na_values=self.na_values)
        if not self.specs_:
            raise DlrnError("no clinical columns to encode (cohort.clinical is empty)")
        if int(self.min_level_count) < 1:
            raise DlrnError(f"{MIN_LEVEL_SETTING} must be at least 1, got {self.min_level_count}")
        X = self._columns_of(X)
        self.excluded_ = self._exclusions(X, fitting=True)
        training = X.drop(index=self.excluded_["case"].unique())
        self.state_: dict[str, dict[str, Any]] = {}
        readings = {}
        for spec in self.specs_:
            self._check_training_column(spec, training[spec.name])
            self.state_[spec.name] = self._vocabulary(spec, training[spec.name])
            readings[spec.name] = self._read(spec, training[spec.name], fitting=True)
        prepared = pd.concat([r.prepared for r in readings.values()], axis=1)
        self.transformer_ = self._column_transformer(readings).fit(prepared)
        self._learn_state(readings)
        self.notes_ = self._fit_notes(readings, training)
        return self

    def _columns_of(self, X: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise DlrnError("the clinical encoder needs a table (pandas DataFrame) of cases")
        absent = [spec.name for spec in self.specs_ if spec.name not in X.columns]
        if absent:
            raise DlrnError(f"clinical column(s) {absent} not found; available: "
                            f"{list(X.columns)}")
        return blank_markers(X[[spec.name for spec in self.specs_]], self.specs_)[0]

    def _check_training_column(self, spec: ColumnSpec, values: pd.Series) -> None:
        missing = values.index[as_text(values).isna()]
        if len(missing) == len(values):
            raise DlrnError(f"clinical column {spec.name!r} is empty in all {len(values)} "
                            "training case(s); fill it in or remove it from cohort.clinical")
        if spec.missing == "stop" and len(missing):
            raise DlrnError(
                f"clinical column {spec.name!r} is missing for {len(missing)} training case(s): "
                f"{shown_items(missing)}; set {MISSING_SETTING}: impute (training median or "
                "most frequent level plus a missing-indicator term) or exclude (complete cases "
                f"only), or missing: impute under cohort.clinical.{spec.name}, to go on")

    def _vocabulary(self, spec: ColumnSpec, values: pd.Series) -> dict[str, Any]:
        """What the readers need before the scikit-learn pieces are fitted."""
        state: dict[str, Any] = {"type": spec.type, "n_training": len(values),
                                 "n_missing": int(as_text(values).isna().sum())}
        if spec.type == "multilabel":
            counts = reading.token_counts(spec, values)
            rare = {token for token, n in counts.items() if n < self.min_level_count}
            holders = int(as_text(values).dropna().map(
                lambda v: bool(rare & set(reading.tokens_of(v, spec.separator)))).sum())
            kept, merged, folded = reading.split_rare(counts, self.min_level_count, holders)
            state.update(tokens=kept, merged=merged, folded=folded,
                         counts=dict(sorted(counts.items())))
        elif spec.type == "categorical":
            counts = as_text(values).value_counts().sort_index()
            kept, _, folded = reading.split_rare(counts.to_dict(), self.min_level_count)
            state.update(counts=counts.to_dict(), folded=folded,
                         folded_into=str(counts.idxmax()) if folded else None)
        else:
            return state
        if not kept:
            raise DlrnError(f"{spec.type} column {spec.name!r}: no level or token is held by "
                            f"{self.min_level_count} training cases ({state['counts']}); "
                            f"lower {MIN_LEVEL_SETTING} or drop the column")
        return state

    def _read(self, spec: ColumnSpec, values: pd.Series, *, fitting: bool = False) -> Reading:
        state = self.state_[spec.name]
        if spec.type == "continuous":
            return reading.read_continuous(spec, values)
        if spec.type == "ordinal":
            return reading.read_ordinal(spec, values, fitting=fitting)
        if spec.type == "categorical":
            return reading.read_categorical(spec, values, state)
        return reading.read_multilabel(spec, values, state)

    def _column_transformer(self, readings: Mapping[str, Reading]) -> ColumnTransformer:
        """Imputers and one-hot encoders, one block per column (and its missing indicator)."""
        blocks = []
        for i, spec in enumerate(self.specs_):
            columns = list(readings[spec.name].prepared.columns)
            has_missing = bool(readings[spec.name].prepared.isna().any().any())
            if spec.type in ("continuous", "ordinal"):
                strategy = "median" if spec.type == "continuous" else "most_frequent"
                blocks.append((f"c{i}", SimpleImputer(strategy=strategy, add_indicator=True),
                               columns))
                continue
            if spec.type == "categorical":
                one_hot = OneHotEncoder(
                    min_frequency=self.min_level_count if self.min_level_count > 1 else None,
                    handle_unknown="infrequent_if_exist", sparse_output=False,
                    feature_name_combiner=lambda column, level: term(column, str(level)))
                blocks.append((f"c{i}", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                      one_hot), columns))
            else:
                blocks.append((f"c{i}", SimpleImputer(strategy="most_frequent"), columns))
            if has_missing:
                blocks.append((f"c{i}_missing", MissingIndicator(error_on_new=False),
                               columns[:1]))
        return ColumnTransformer(blocks, sparse_threshold=0, verbose_feature_names_out=False)

    def _learn_state(self, readings: Mapping[str, Reading]) -> None:
        """JSON-safe copy of what the fitted pieces hold; output term names."""
        fitted = self.transformer_.named_transformers_
        for i, spec in enumerate(self.specs_):
            state = self.state_[spec.name]
            block = fitted[f"c{i}"]
            if spec.type == "categorical":
                imputer, one_hot = block.steps[0][1], block.steps[1][1]
                levels = [str(v) for v in one_hot.categories_[0]]
                infrequent = getattr(one_hot, "infrequent_categories_", [None])[0]
                merged = [] if infrequent is None else [str(v) for v in infrequent]
                kept = [lv for lv in levels if lv not in merged]
                self._check_levels(spec, kept, merged, state)
                state.update(levels=levels, merged=merged, fill=str(imputer.statistics_[0]),
                             reference=(spec.reference if spec.reference is not None
                                        else most_frequent(kept, state["counts"])),
                             indicator=f"c{i}_missing" in fitted)
            elif spec.type == "multilabel":
                columns = readings[spec.name].prepared.columns
                state.update(fill=dict(zip(columns, map(float, block.statistics_), strict=True)),
                             indicator=f"c{i}_missing" in fitted)
            else:
                state.update(fill=float(block.statistics_[0]),
                             indicator=bool(block.indicator_.features_.size))
        self._name_terms()

    def _check_levels(self, spec: ColumnSpec, kept: list[str], merged: list[str],
                      state: Mapping[str, Any]) -> None:
        if len(kept) + bool(merged) < 2:
            raise OneValuedColumnError(spec.name, (
                f"categorical column {spec.name!r} takes one value in the training cases after "
                f"merging levels held by fewer than {self.min_level_count} cases "
                f"({state['counts']}); lower {MIN_LEVEL_SETTING} or drop the column"))
        if spec.reference is not None and spec.reference not in kept:
            raise DlrnError(f"reference level {spec.reference!r} of {spec.name!r} is not among "
                            f"its training levels kept after merging: {kept}")
        if OTHER in kept and merged:
            raise DlrnError(f"categorical column {spec.name!r} has a level named {OTHER!r} and "
                            f"rare levels {merged} to merge into {OTHER!r}; rename the level")

    def _name_terms(self) -> None:
        """Output names (``column[level]``), the terms of each column and the reference terms."""
        names = [str(name) for name in self.transformer_.get_feature_names_out()]
        self._raw_names_ = [self._term_name(i, name) for i, name in enumerate(names)]
        references = {term(s.name, self.state_[s.name]["reference"])
                      for s in self.specs_ if s.type == "categorical"}
        self.terms_ = {spec.name: [] for spec in self.specs_}
        for position, name in enumerate(self._raw_names_):
            if name not in references:
                self.terms_[self._column_at(position)].append(name)
        self.feature_names_out_ = [t for terms in self.terms_.values() for t in terms]
        self.reference_levels_ = {s.name: self.state_[s.name]["reference"]
                                  for s in self.specs_ if s.type == "categorical"}

    def _column_at(self, position: int) -> str:
        for block, where in self.transformer_.output_indices_.items():
            if where.start <= position < where.stop:
                return self.specs_[int(block.removeprefix("c").removesuffix("_missing"))].name
        raise AssertionError(position)

    def _term_name(self, position: int, name: str) -> str:
        column = self._column_at(position)
        if name.startswith("missingindicator_"):
            return term(column, MISSING)
        return name.replace(f"[{_SKLEARN_OTHER}]", f"[{OTHER}]")

    # ------------------------------------------------------------------ applying
    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The terms of every case (rows of ``X``, index kept), with the training rules.

        A case that an ``exclude`` column leaves out (:meth:`exclusions`) or that a
        ``stop`` column cannot encode is an error naming it.
        """
        check_is_fitted(self, "state_")
        X = self._columns_of(X)
        self._refuse_blocked(X)
        prepared = pd.concat([self._read(spec, X[spec.name]).prepared for spec in self.specs_],
                             axis=1)
        encoded = pd.DataFrame(self.transformer_.transform(prepared), index=X.index,
                               columns=self._raw_names_, dtype=float)
        return encoded[self.feature_names_out_]

    def terms_of(self, columns: list[str]) -> list[str]:
        """The output terms of some columns (e.g. the selected clinical variables), in order."""
        check_is_fitted(self, "state_")
        unknown = [c for c in columns if c not in self.terms_]
        if unknown:
            raise DlrnError(f"the clinical encoder has no column(s) {unknown}; it encodes "
                            f"{list(self.terms_)}")
        return [t for column in columns for t in self.terms_[column]]

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "state_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def _unencodable(self, spec: ColumnSpec, values: pd.Series) -> pd.Series:
        """case -> reason, for cases that fall to the missing-value rule in this column."""
        read = self._read(spec, values)
        reasons = {case: f"no value for {spec.name!r}" for case in read.missing}
        reasons.update({case: f"{spec.name!r} is {read.unseen[case]!r}, a value the training "
                              "set never had" for case in read.unseen_missing})
        return pd.Series(reasons, dtype=object)

    def _exclusions(self, X: pd.DataFrame, *, fitting: bool) -> pd.DataFrame:
        rows = []
        for spec in self.specs_:
            if spec.missing != "exclude":
                continue
            if fitting:
                missing = X.index[as_text(X[spec.name]).isna()]
                reasons = pd.Series(f"no value for {spec.name!r}", index=missing, dtype=object)
            else:
                reasons = self._unencodable(spec, X[spec.name])
            rows += [{"case": case, "column": spec.name,
                      "reason": f"{reason} ({MISSING_SETTING}: exclude)"}
                     for case, reason in reasons.items()]
        return pd.DataFrame(rows, columns=["case", "column", "reason"])

    def exclusions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Cases an ``exclude`` column leaves out, with reasons (columns case, column, reason).

        Drop them before :meth:`transform`; the report lists them.
        """
        check_is_fitted(self, "state_")
        return self._exclusions(self._columns_of(X), fitting=False)

    def _refuse_blocked(self, X: pd.DataFrame) -> None:
        for spec in self.specs_:
            if spec.missing == "impute":
                continue
            reasons = self._unencodable(spec, X[spec.name])
            if reasons.empty:
                continue
            shown = "; ".join(f"{case}: {why}" for case, why in list(reasons.items())[:5])
            if spec.missing == "stop":
                raise DlrnError(
                    f"clinical column {spec.name!r} cannot be encoded for {len(reasons)} "
                    f"case(s) ({shown}); set {MISSING_SETTING}: impute or exclude (or "
                    f"missing: under cohort.clinical.{spec.name}) to go on")
            raise DlrnError(f"{len(reasons)} case(s) must be excluded before encoding ({shown});"
                            " drop the cases listed by exclusions() first")

    def transform_notes(self, X: pd.DataFrame, *, where: str = "") -> list[str]:
        """What the training rules did to these cases: imputed values, unseen levels."""
        from dlrn.clinical.describe import transform_notes

        check_is_fitted(self, "state_")
        return transform_notes(self, self._columns_of(X), where=where)

    def _fit_notes(self, readings: Mapping[str, Reading], training: pd.DataFrame) -> list[str]:
        from dlrn.clinical.describe import aliasing_notes, fit_notes

        return (fit_notes(self, {name: r.missing for name, r in readings.items()})
                + aliasing_notes(self, self.transform(training)))

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state; :meth:`from_dict` rebuilds an encoder with identical transforms."""
        check_is_fitted(self, "state_")
        return {"format": FORMAT, "version": FORMAT_VERSION,
                "params": {"missing": self.missing, "min_level_count": int(self.min_level_count),
                           "separator": self.separator, "na_values": list(self.na_values)},
                "columns": [spec.to_dict() for spec in self.specs_],
                "state": _json_safe(self.state_), "notes": list(self.notes_),
                "excluded": self.excluded_.astype(str).to_dict(orient="records")}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> ClinicalEncoder:
        """The encoder of :meth:`to_dict`: its imputers and encoders refitted on a table of
        the saved statistics (same medians, modes, levels, merges, indicators)."""
        from dlrn.clinical.describe import statistics_table

        if saved.get("format") != FORMAT or saved.get("version") != FORMAT_VERSION:
            raise DlrnError("not a dlrn clinical encoder description (format/version mismatch)")
        columns = {c["name"]: {k: v for k, v in c.items() if k != "name"}
                   for c in saved["columns"]}
        # encoders saved before na_values existed read every text as a value
        encoder = cls(columns, **{"na_values": (), **saved["params"]})
        encoder.specs_ = column_specs(columns, missing=encoder.missing,
                                      separator=encoder.separator,
                                      na_values=encoder.na_values)
        encoder.state_ = {name: dict(state) for name, state in saved["state"].items()}
        readings = statistics_table(encoder)
        prepared = pd.concat([r.prepared for r in readings.values()], axis=1)
        encoder.transformer_ = encoder._column_transformer(readings).fit(prepared)
        encoder._name_terms()
        encoder.notes_ = list(saved.get("notes", []))
        encoder.excluded_ = pd.DataFrame(saved.get("excluded", []),
                                         columns=["case", "column", "reason"])
        return encoder


def most_frequent(levels: list[str], counts: Mapping[str, int]) -> str:
    """The level held by most training cases; ties go to the first in sorted order."""
    return min(levels, key=lambda level: (-counts.get(level, 0), level))


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    return value
