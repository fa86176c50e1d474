"""Nomogram scales with exactly the rules of R's ``rms::nomogram``.

Scales (rms 6.5, ``nomogram(fit, fun=plogis, maxscale=100, nint=10)``):

- a numeric predictor with at most 10 distinct values is discrete (ticks at
  its values); any other numeric predictor gets the axis ``pretty(range(x), 10)``
  over the full data range; a categorical predictor gets one tick per level;
- sc = maxscale / max_j(range of β_j·x over its axis) points per lp unit;
  points_j(x) = (β_j·x - min over the axis of β_j·x) · sc;
- lp at zero total points = intercept + Σ_j min(β_j·x); risk = plogis(lp0 + total/sc);
- total-points axis = pretty(c(0, Σ max points), 10); lp axis = pretty(range of the
  fitted lp, 10); risk ticks = pretty(plogis(range(lp axis)), 10) (or ``fun_at``)
  placed, as rms does, by linear interpolation on a 1000-point lp grid; the
  exact inverse (logit(p) - lp0)·sc is kept as well.

An axis of a fitted :class:`~dlrn.nomogram.Nomogram` also knows the encoder
terms it stands for (``terms``: term -> coefficient), so that a case's points
come from its encoded clinical values: a categorical or ordinal column is one
axis of levels, a multilabel token or a missing indicator a no/yes axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError

__all__ = ["PredictorScale", "r_pretty"]


def r_pretty(low: float, high: float, n: int = 5) -> np.ndarray:
    """R's ``pretty(c(low, high), n)`` (R_pretty in src/appl/pretty.c, default biases)."""
    high_bias, rounding_eps, min_n = 1.5, 1e-10, n // 3
    u5_bias = 0.5 + 1.5 * high_bias
    dx = high - low
    if dx == 0 and high == 0:
        cell, small = 1.0, True
    else:
        cell = max(abs(low), abs(high))
        u = 1 + (1 / (1 + high_bias) if u5_bias >= 1.5 * high_bias + 0.5 else 1.5 / (1 + u5_bias))
        u *= max(1, n) * np.finfo(float).eps
        small = dx < cell * u * 3
    if small:
        cell = cell / 10 if cell > 10 else cell
        cell = cell / min_n if min_n > 1 else cell
    else:
        cell = dx / n if n > 1 else dx
    base = 10.0 ** math.floor(math.log10(cell))
    unit = base
    if 2 * base - cell < high_bias * (cell - unit):
        unit = 2 * base
        if 5 * base - cell < u5_bias * (cell - unit):
            unit = 5 * base
            if 10 * base - cell < high_bias * (cell - unit):
                unit = 10 * base
    start = math.floor(low / unit + rounding_eps)
    end = math.ceil(high / unit - rounding_eps)
    while start * unit > low + rounding_eps * unit:
        start -= 1
    while end * unit < high - rounding_eps * unit:
        end += 1
    k = int(0.5 + end - start)
    if k < min_n:
        k = min_n - k
        if start >= 0:
            end += k // 2
            start -= k // 2 + k % 2
        else:
            start -= k // 2
            end += k // 2 + k % 2
        k = min_n
    values = start * unit + np.arange(k + 1) * (end * unit - start * unit) / k
    values[np.abs(values) < 1e-14 * (end - start) * unit / k] = 0.0
    return values


@dataclass
class PredictorScale:
    """One predictor's axis: tick values (numbers or category labels) and coefficient(s).

    ``coefficient`` is the slope of a numeric predictor, or a mapping level -> β
    for a categorical one (the reference level has β = 0).
    """

    name: str
    kind: str  # "continuous", "discrete" or "categorical"
    values: list
    coefficient: float | dict[str, float]
    terms: dict[str, float] | None = None  # encoder term -> coefficient (fitted nomograms)
    counts: dict[str, int] | None = None  # training cases per tick (categorical axes)
    group: str | None = None  # the descriptor a token axis belongs to (drawn under its name)
    label: str | None = None  # the axis' title under its group (the token)

    @property
    def title(self) -> str:
        """What the drawing writes beside the axis: the token under its group, else the name."""
        return self.label or self.name

    def xbeta(self, x: Sequence) -> np.ndarray:
        """β·x of given values of this predictor (categorical: β of the level)."""
        if self.kind == "categorical":
            levels = pd.Series(x).astype(str)
            unknown = sorted(set(levels) - set(self.coefficient))
            if unknown:
                raise DlrnError(f"predictor {self.name!r}: unknown level(s) {unknown}; "
                                f"known: {list(self.coefficient)}")
            return levels.map(self.coefficient).to_numpy(dtype=float)
        return self.coefficient * np.asarray(x, dtype=float)

    @property
    def axis_xbeta(self) -> np.ndarray:
        return self.xbeta(self.values)

    def design_xbeta(self, design: pd.DataFrame) -> np.ndarray:
        """β·x of encoded cases (the encoder's terms of this axis)."""
        return sum((coefficient * design[term].to_numpy(dtype=float)
                    for term, coefficient in self.terms.items()),
                   start=np.zeros(len(design)))


def scale_from_data(name: str, values: pd.Series, coefficient: float | dict[str, float],
                     max_discrete: int, nint: int) -> PredictorScale:
    if isinstance(coefficient, Mapping):
        return PredictorScale(name, "categorical", list(coefficient), dict(coefficient))
    distinct = np.unique(values.to_numpy(dtype=float))
    if distinct.size <= max_discrete:
        return PredictorScale(name, "discrete", distinct.tolist(), float(coefficient))
    axis = r_pretty(float(distinct.min()), float(distinct.max()), nint)
    return PredictorScale(name, "continuous", axis.tolist(), float(coefficient))


def _no_yes(name: str, beta: float, values: pd.Series, group: str | None = None
            ) -> PredictorScale:
    """A yes/no axis; under a ``group`` (a multilabel column) titled by its token alone."""
    held = int((values == 1).sum())
    label = None if group is None else name[len(group) + 1:-1]
    return PredictorScale(name, "categorical", ["no", "yes"], {"no": 0.0, "yes": beta},
                          {name: beta}, {"no": len(values) - held, "yes": held}, group, label)


def _level_counts(design: pd.DataFrame, reference: str, levels: Mapping[str, str]
                  ) -> dict[str, int]:
    """Training cases per level of a categorical axis (``levels``: level -> its term)."""
    counts = {level: int((design[t] == 1).sum()) for level, t in levels.items()}
    return {reference: len(design) - sum(counts.values()), **counts}


def encoded_scales(encoder: object, design: pd.DataFrame, params: Mapping[str, float],
                   max_discrete: int, nint: int, aliased: Sequence[str] = ()
                   ) -> list[PredictorScale]:
    """The axes of a model fitted on a ClinicalEncoder's terms (``design``: training terms).

    Continuous: the rms numeric axis; categorical: one axis of levels (reference
    first, at 0); ordinal: one axis of the levels between the lowest and highest
    training score; multilabel: a no/yes axis per token, grouped under the column's
    name (``group``), as a radiologist's report lists a descriptor's findings; a missing
    indicator: a no/yes axis ``column[missing]`` (in the group of a multilabel column).
    An axis whose terms are all ``aliased`` (no estimate of their own: their effect is
    carried by the terms they are combinations of) is not drawn at all.
    """
    return [scale for scale in _all_scales(encoder, design, params, max_discrete, nint)
            if not set(scale.terms) <= set(aliased)]


def _all_scales(encoder: object, design: pd.DataFrame, params: Mapping[str, float],
                max_discrete: int, nint: int) -> list[PredictorScale]:
    scales = []
    for spec in encoder.specs_:
        name, terms = spec.name, encoder.terms_[spec.name]
        missing = f"{name}[missing]"
        main = [t for t in terms if t != missing]
        if spec.type == "continuous":
            scale = scale_from_data(name, design[name], float(params[name]), max_discrete, nint)
            scale.terms = {name: float(params[name])}
            scales.append(scale)
        elif spec.type == "categorical":
            reference = encoder.state_[name]["reference"]
            levels = {t[len(name) + 1:-1]: t for t in main}
            coefficient = {reference: 0.0,
                           **{level: float(params[t]) for level, t in levels.items()}}
            scales.append(PredictorScale(name, "categorical", list(coefficient), coefficient,
                                         {t: float(params[t]) for t in main},
                                         _level_counts(design, reference, levels)))
        elif spec.type == "ordinal":
            beta, scores = float(params[name]), design[name].astype(int)
            span = range(scores.min(), scores.max() + 1)
            coefficient = {spec.order[s - 1]: beta * s for s in span}
            scales.append(PredictorScale(name, "categorical", list(coefficient), coefficient,
                                         {name: beta},
                                         {spec.order[s - 1]: int((scores == s).sum())
                                          for s in span}))
        else:
            scales += [_no_yes(t, float(params[t]), design[t], name) for t in main]
        if missing in terms:
            group = name if spec.type == "multilabel" else None
            scales.append(_no_yes(missing, float(params[missing]), design[missing], group))
    return scales
