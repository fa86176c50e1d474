"""The form of the calculator, generated from the bundle: one field per clinical predictor
of the nomogram, as the study's encoder reads it, named as the study's ``labels:`` map
names it (:mod:`dlrn.display_labels`), each value checked with a reason the clinician can
act on (missing, unknown level or token). A number outside the nomogram's axis (the
training range) is predicted with a caution, or refused where the study says
``out_of_range: refuse``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dlrn.display_labels import DisplayLabels
from dlrn.serve.uploads import UploadError

# a number as the study's reader (pandas) reads a table cell: ASCII digits, one optional
# sign, point and exponent; no digit separators, other scripts' digits, hex, nan or inf
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Field:
    """One clinical predictor of the form, as the study's encoder reads it.

    ``kind``: "number" (``minimum`` to ``maximum``: the nomogram axis' range), "choice"
    (training levels), "ordinal" (levels in their declared order) or "tokens" (multilabel:
    any of the training tokens). ``optional``: the encoder imputes a blank with its
    training rule. ``title`` and ``level_words``: the names a person reads;
    ``out_of_range``: "caution" or "refuse" a number outside the axis.
    """

    name: str
    levels: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    kind: str = "number"
    optional: bool = False
    separator: str = ";"
    title: str = ""
    level_words: tuple[tuple[str, str], ...] = ()
    out_of_range: str = "caution"

    @property
    def label(self) -> str:
        """The field's name for people, with its unit: "Largest diameter (mm)"."""
        name = self.title or self.name
        return f"{name} ({self.unit})" if self.unit else name

    def wording(self, level: str) -> str:
        return dict(self.level_words).get(level, level)

    @property
    def scale_text(self) -> str:
        """What the nomogram's axis covers, in words: "5 to 30 mm"."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.minimum:g} to {self.maximum:g}{unit}"

    def range_caution(self, value: object) -> str | None:
        """The caution for a number outside the nomogram's axis (None: within it)."""
        if self.kind != "number" or not isinstance(value, float) or self.minimum is None \
                or self.maximum is None or self.minimum <= value <= self.maximum:
            return None
        unit = f" {self.unit}" if self.unit else ""
        return (f"{self.title or self.name} {value:g}{unit} is outside the nomogram's scale, "
                f"which covers {self.scale_text} (the study's patients): the probability "
                "extrapolates beyond the data the model was built on; read it with care.")

    @property
    def is_choice(self) -> bool:
        return self.kind in ("choice", "ordinal")

    @property
    def is_tokens(self) -> bool:
        return self.kind == "tokens"

    def parse(self, raw: str | list[str] | None) -> str | float | None:
        """The form's text as a table value (None: blank, imputed by the study's rule);
        clear errors: missing, unknown level or token, range."""
        items = [str(r).strip() for r in (raw if isinstance(raw, list) else [raw])
                 if r is not None and str(r).strip()]
        if self.is_tokens:
            items = [t.strip() for item in items for t in item.split(self.separator)
                     if t.strip()]
        if not items:
            if self.optional:
                return None
            raise UploadError(f"{self.label}: a value is needed (the model uses it)")
        if self.is_tokens:
            unknown = [t for t in items if t not in self.levels]
            if unknown:
                raise UploadError(f"{self.label}: unknown choice(s) "
                                  f"{', '.join(map(repr, unknown))}; the study saw: "
                                  f"{', '.join(map(self.wording, self.levels))}")
            return self.separator.join(dict.fromkeys(items))
        text = items[-1]
        if self.is_choice:
            if text not in self.levels:
                raise UploadError(f"{self.label}: unknown choice {text!r}; the study saw: "
                                  f"{', '.join(map(self.wording, self.levels))}")
            return text
        if text.casefold() in ("nan", "inf", "+inf", "-inf", "infinity"):
            raise UploadError(f"{self.label} must be a finite number, got {text!r}")
        if not _NUMBER.fullmatch(text):
            raise UploadError(f"{self.label} must be a number written with the digits 0-9 "
                              f"(e.g. 42 or 42.5), got {text!r}")
        value = float(text)
        if not math.isfinite(value):
            raise UploadError(f"{self.label} must be a finite number, got {text!r}")
        if self.out_of_range == "refuse" and self.range_caution(value):
            unit = f" {self.unit}" if self.unit else ""
            raise UploadError(f"{self.title or self.name} {value:g}{unit} is outside the "
                              f"nomogram's scale, which covers {self.scale_text} (the study's "
                              "patients); this study does not predict outside it")
        return value


def form_fields(settings: Mapping[str, Any], encoder: Mapping[str, Any] | None,
                nomogram: Mapping[str, Any] | None) -> list[Field]:
    """The form from the bundle: each clinical predictor as the study's encoder reads it
    (type, training levels or tokens, ordinal order, whether a blank is imputed) and
    each number within its nomogram axis' range."""
    selected = (settings.get("clinical") or {}).get("selected", [])
    if not selected or encoder is None:
        return []
    display = DisplayLabels.of(settings.get("labels")).readable(selected)
    specs = {spec["name"]: spec for spec in encoder["columns"]}
    scales = {scale["name"]: scale for scale in (nomogram or {}).get("scales", [])}
    default_missing, default_separator = (encoder["params"]["missing"],
                                          encoder["params"].get("separator") or ";")
    fields = []
    for name in selected:
        spec, state = specs[name], encoder["state"][name]
        common = {"optional": (spec.get("missing") or default_missing) == "impute",
                  "title": display.name(name),
                  "out_of_range": settings.get("out_of_range",
                                                                             "caution")}
        if spec["type"] == "categorical":
            # every training level: merged ones read as "other", folded ones as the mode
            levels = tuple(map(str, [*state.get("levels", []), *state.get("folded", [])]))
            fields.append(Field(name, levels=levels, kind="choice",
                                level_words=_words(display, name, levels), **common))
        elif spec["type"] == "ordinal":
            levels = tuple(map(str, spec["order"]))
            fields.append(Field(name, levels=levels, kind="ordinal",
                                level_words=_words(display, name, levels), **common))
        elif spec["type"] == "multilabel":
            tokens = tuple(map(str, [*state["tokens"], *state.get("merged", []),
                                     *state.get("folded", [])]))
            fields.append(Field(name, levels=tokens, kind="tokens",
                                separator=spec.get("separator") or default_separator,
                                level_words=_words(display, name, tokens), **common))
        else:
            axis = [float(v) for v in scales.get(name, {}).get("values", [])]
            fields.append(Field(name, minimum=min(axis) if axis else None,
                                maximum=max(axis) if axis else None,
                                unit=display.unit(name), **common))
    return fields


def _words(display: DisplayLabels, column: str, levels: tuple[str, ...]
           ) -> tuple[tuple[str, str], ...]:
    return tuple((level, display.level(column, level)) for level in levels)
