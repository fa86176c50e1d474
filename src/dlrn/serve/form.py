"""The form of the calculator, generated from the bundle: one field per clinical predictor
of the nomogram, as the study's encoder reads it, each value checked with a reason the
clinician can act on (missing, unknown level or token, out of the nomogram's range)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dlrn.serve.uploads import UploadError

# a number as the study's reader (pandas) reads a table cell: ASCII digits, one optional
# sign, point and exponent; no digit separators, other scripts' digits, hex, nan or inf
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_UNITS = {"mm": "mm", "cm": "cm", "ml": "mL", "years": "years", "yr": "years", "kg": "kg",
          "pct": "%", "percent": "%"}


@dataclass(frozen=True)
class Field:
    """One clinical predictor of the form, as the study's encoder reads it.

    ``kind``: "number" (within the nomogram axis' range), "choice" (training levels),
    "ordinal" (levels in their declared order) or "tokens" (multilabel: any of the
    training tokens). ``optional``: the encoder imputes a blank with its training rule.
    """

    name: str
    levels: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    kind: str = "number"
    optional: bool = False
    separator: str = ";"

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
            raise UploadError(f"missing predictor {self.name!r}: the model needs it")
        if self.is_tokens:
            unknown = [t for t in items if t not in self.levels]
            if unknown:
                raise UploadError(f"unknown token(s) {', '.join(map(repr, unknown))} for "
                                  f"{self.name!r}; the study saw: {', '.join(self.levels)}")
            return self.separator.join(dict.fromkeys(items))
        text = items[-1]
        if self.is_choice:
            if text not in self.levels:
                raise UploadError(f"unknown level {text!r} for {self.name!r}; the study saw: "
                                  f"{', '.join(self.levels)}")
            return text
        if text.casefold() in ("nan", "inf", "+inf", "-inf", "infinity"):
            raise UploadError(f"{self.name!r} must be a finite number, got {text!r}")
        if not _NUMBER.fullmatch(text):
            raise UploadError(f"{self.name!r} must be a number written with the digits 0-9 "
                              f"(e.g. 42 or 42.5), got {text!r}")
        value = float(text)
        if not math.isfinite(value):
            raise UploadError(f"{self.name!r} must be a finite number, got {text!r}")
        if self.minimum is not None and self.maximum is not None \
                and not self.minimum <= value <= self.maximum:
            unit = f" {self.unit}" if self.unit else ""
            raise UploadError(f"value out of range for {self.name!r}: {value:g} is outside "
                              f"{self.minimum:g} to {self.maximum:g}{unit}, the range of the "
                              "nomogram's axis (training data); the model does not "
                              "extrapolate safely")
        return value


def form_fields(settings: Mapping[str, Any], encoder: Mapping[str, Any] | None,
                nomogram: Mapping[str, Any] | None) -> list[Field]:
    """The form from the bundle: each clinical predictor as the study's encoder reads it
    (type, training levels or tokens, ordinal order, whether a blank is imputed) and
    each number within its nomogram axis' range."""
    selected = (settings.get("clinical") or {}).get("selected", [])
    if not selected or encoder is None:
        return []
    specs = {spec["name"]: spec for spec in encoder["columns"]}
    scales = {scale["name"]: scale for scale in (nomogram or {}).get("scales", [])}
    default_missing, default_separator = (encoder["params"]["missing"],
                                          encoder["params"].get("separator") or ";")
    fields = []
    for name in selected:
        spec, state = specs[name], encoder["state"][name]
        common = {"optional": (spec.get("missing") or default_missing) == "impute"}
        if spec["type"] == "categorical":
            # every training level: merged ones read as "other", folded ones as the mode
            levels = [*state.get("levels", []), *state.get("folded", [])]
            fields.append(Field(name, levels=tuple(map(str, levels)), kind="choice", **common))
        elif spec["type"] == "ordinal":
            fields.append(Field(name, levels=tuple(map(str, spec["order"])), kind="ordinal",
                                **common))
        elif spec["type"] == "multilabel":
            tokens = [*state["tokens"], *state.get("merged", []), *state.get("folded", [])]
            fields.append(Field(name, levels=tuple(map(str, tokens)), kind="tokens",
                                separator=spec.get("separator") or default_separator,
                                **common))
        else:
            axis = [float(v) for v in scales.get(name, {}).get("values", [])]
            fields.append(Field(name, minimum=min(axis) if axis else None,
                                maximum=max(axis) if axis else None, unit=_unit(name),
                                **common))
    return fields


def _unit(name: str) -> str:
    match = re.search(r"[_ ]\(?([A-Za-z%]+)\)?$", name)
    return _UNITS.get(match.group(1).lower(), "") if match else ""
