"""Nomogram of a logistic model with exactly the scales of R's ``rms::nomogram``.

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
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from dlrn.errors import DlrnError

__all__ = ["Nomogram", "PredictorScale", "r_pretty"]

FORMAT_VERSION = 1
_RISK_GRID_POINTS = 1000


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


def _scale_from_data(name: str, values: pd.Series, coefficient: float | dict[str, float],
                     max_discrete: int, nint: int) -> PredictorScale:
    if isinstance(coefficient, Mapping):
        return PredictorScale(name, "categorical", list(coefficient), dict(coefficient))
    distinct = np.unique(values.to_numpy(dtype=float))
    if distinct.size <= max_discrete:
        return PredictorScale(name, "discrete", distinct.tolist(), float(coefficient))
    axis = r_pretty(float(distinct.min()), float(distinct.max()), nint)
    return PredictorScale(name, "continuous", axis.tolist(), float(coefficient))


class Nomogram:
    """Points scales of a logistic model, a per-patient breakdown, and the drawing.

    ``fit(X, y)`` fits the logistic model (statsmodels GLM = R glm/lrm) on the
    training cases; ``from_coefficients`` builds the scales for a model fitted
    elsewhere. Non-numeric columns of X (or those in ``categorical``) are
    categorical, with the first level in sorted order as reference unless
    ``reference`` says otherwise.
    """

    def __init__(self, maxscale: float = 100, nint: int = 10, max_discrete: int = 10,
                 fun_at: Sequence[float] | None = None, categorical: Sequence[str] = (),
                 reference: Mapping[str, str] | None = None) -> None:
        self.maxscale = maxscale
        self.nint = nint
        self.max_discrete = max_discrete
        self.fun_at = fun_at
        self.categorical = categorical
        self.reference = reference

    # ------------------------------------------------------------- building
    def fit(self, X: pd.DataFrame, y: object) -> Nomogram:
        from dlrn.clinical import fit_logistic, separation_notes
        from dlrn.evaluation._checks import binary_labels

        labels = pd.Series(binary_labels(y), index=X.index)
        categorical = [c for c in X.columns
                       if c in self.categorical or not pd.api.types.is_numeric_dtype(X[c])]
        design, coefficient_of = [pd.Series(1.0, index=X.index, name="(Intercept)")], {}
        for column in X.columns:
            if X[column].isna().any():
                raise DlrnError(f"predictor {column!r} has missing values")
            if column in categorical:
                levels = sorted(X[column].astype(str).unique())
                base = str((self.reference or {}).get(column, levels[0]))
                if base not in levels:
                    raise DlrnError(f"reference level {base!r} of {column!r} not among {levels}")
                coefficient_of[column] = [base, *[lv for lv in levels if lv != base]]
                design += [(X[column].astype(str) == lv).astype(float).rename(f"{column}[{lv}]")
                           for lv in coefficient_of[column][1:]]
            else:
                design.append(X[column].astype(float))
        design_matrix = pd.concat(design, axis=1)
        model = fit_logistic(labels, design_matrix, what="nomogram model")
        terms = {c: [f"{c}[{lv}]" for lv in coefficient_of[c][1:]] if c in categorical else [c]
                 for c in X.columns}
        separation_notes(labels, design_matrix, model, terms,
                         {c: coefficient_of[c][0] for c in categorical}, what="nomogram model")
        coefficients: dict[str, float | dict[str, float]] = {}
        for column in X.columns:
            if column in categorical:
                levels = coefficient_of[column]
                coefficients[column] = {
                    levels[0]: 0.0,
                    **{lv: float(model.params[f"{column}[{lv}]"]) for lv in levels[1:]},
                }
            else:
                coefficients[column] = float(model.params[column])
        linear_predictor = design_matrix @ model.params
        self._build(float(model.params["(Intercept)"]), coefficients, X,
                    (float(linear_predictor.min()), float(linear_predictor.max())))
        self.model_ = model
        return self

    @classmethod
    def from_coefficients(cls, intercept: float, coefficients: Mapping[str, float | Mapping],
                          data: pd.DataFrame, lp_range: tuple[float, float] | None = None,
                          **params: object) -> Nomogram:
        """Scales for given coefficients; ``data`` (training predictors) sets the axes' ranges.

        ``lp_range`` defaults to the range of the linear predictor over ``data``.
        """
        nomogram = cls(**params)
        missing = [name for name in coefficients if name not in data.columns]
        if missing:
            raise DlrnError(f"data lacks predictor column(s) {missing}")
        nomogram._build(float(intercept), dict(coefficients), data, lp_range)
        return nomogram

    def _build(self, intercept: float, coefficients: dict, data: pd.DataFrame,
               lp_range: tuple[float, float] | None) -> None:
        self.intercept_ = intercept
        self.scales_ = [
            _scale_from_data(name, data[name], coefficient, self.max_discrete, self.nint)
            for name, coefficient in coefficients.items()
        ]
        if lp_range is None:
            lp = intercept + sum(scale.xbeta(data[scale.name]) for scale in self.scales_)
            lp_range = (float(np.min(lp)), float(np.max(lp)))
        self.lp_range_ = lp_range
        self._derive_axes()

    def _derive_axes(self) -> None:
        ranges = [np.ptp(scale.axis_xbeta) for scale in self.scales_]
        if max(ranges) == 0:
            raise DlrnError("all coefficients are zero: a nomogram has no scale")
        self.points_per_unit_ = self.maxscale / max(ranges)
        self.lp_at_zero_points_ = self.intercept_ + sum(s.axis_xbeta.min() for s in self.scales_)
        max_total = sum(np.ptp(s.axis_xbeta) for s in self.scales_) * self.points_per_unit_
        self.total_points_axis_ = r_pretty(0.0, max_total, self.nint)
        lp_at = r_pretty(*self.lp_range_, self.nint)
        self.lp_axis_ = pd.DataFrame({"lp": lp_at, "total_points": self._points_of_lp(lp_at)})
        self.risk_axis_ = self._risk_axis(lp_at)

    def _points_of_lp(self, lp: np.ndarray) -> np.ndarray:
        return (np.asarray(lp) - self.lp_at_zero_points_) * self.points_per_unit_

    def _risk_axis(self, lp_at: np.ndarray) -> pd.DataFrame:
        """Risk ticks placed as rms does (approx on a 1000-point lp grid) and exactly."""
        grid = np.linspace(lp_at.min(), lp_at.max(), _RISK_GRID_POINTS)
        risk = expit(grid)
        fun_at = np.asarray(
            self.fun_at if self.fun_at is not None
            else r_pretty(float(risk.min()), float(risk.max()), self.nint), dtype=float,
        )
        inside = (fun_at >= risk.min()) & (fun_at <= risk.max())
        probability = fun_at[inside]
        return pd.DataFrame({
            "probability": probability,
            "total_points": self._points_of_lp(np.interp(probability, risk, grid)),
            "total_points_exact": self._points_of_lp(logit(probability)),
        })

    # ------------------------------------------------------------- use
    def points(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-patient breakdown: points of each predictor, total points, linear predictor, risk."""
        missing = [s.name for s in self.scales_ if s.name not in X.columns]
        if missing:
            raise DlrnError(f"cases lack predictor column(s) {missing}")
        table = pd.DataFrame(index=X.index)
        for scale in self.scales_:
            if X[scale.name].isna().any():
                bad = X.index[X[scale.name].isna()][:5].tolist()
                raise DlrnError(f"predictor {scale.name!r} is missing for case(s) {bad}")
            xbeta = scale.xbeta(X[scale.name])
            table[f"points_{scale.name}"] = (xbeta - scale.axis_xbeta.min()) * self.points_per_unit_
        table["total_points"] = table.sum(axis=1)
        table["linear_predictor"] = (
            self.lp_at_zero_points_ + table["total_points"] / self.points_per_unit_
        )
        table["probability"] = expit(table["linear_predictor"])
        return table

    def scale_table(self) -> pd.DataFrame:
        """Points of every tick of every predictor (the numbers behind the drawing)."""
        rows = []
        for scale in self.scales_:
            points = (scale.axis_xbeta - scale.axis_xbeta.min()) * self.points_per_unit_
            rows += [{"predictor": scale.name, "value": v, "xbeta": xb, "points": p}
                     for v, xb, p in zip(scale.values, scale.axis_xbeta, points, strict=True)]
        return pd.DataFrame(rows)

    # ------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """JSON-safe description (no pickle) from which :meth:`from_dict` rebuilds the nomogram."""
        return {
            "format": "dlrn-nomogram", "version": FORMAT_VERSION,
            "params": {"maxscale": self.maxscale, "nint": self.nint,
                       "max_discrete": self.max_discrete,
                       "fun_at": None if self.fun_at is None else [float(v) for v in self.fun_at]},
            "intercept": self.intercept_, "lp_range": list(self.lp_range_),
            "scales": [asdict(scale) for scale in self.scales_],
        }

    @classmethod
    def from_dict(cls, state: Mapping) -> Nomogram:
        if state.get("format") != "dlrn-nomogram" or state.get("version") != FORMAT_VERSION:
            raise DlrnError("not a dlrn nomogram description (format/version mismatch)")
        nomogram = cls(**state["params"])
        nomogram.intercept_ = float(state["intercept"])
        nomogram.lp_range_ = tuple(state["lp_range"])
        nomogram.scales_ = [PredictorScale(**scale) for scale in state["scales"]]
        nomogram._derive_axes()
        return nomogram

    # ------------------------------------------------------------- drawing
    def plot(self, path: str | Path | None = None, *, labels: Mapping[str, str] | None = None,
             formats: tuple[str, ...] = ("png", "svg")):
        """Classic nomogram (Points, predictors, Total Points, Linear Predictor, Risk).

        With ``path``, writes PNG (300 dpi) and SVG (or ``formats``) and returns the
        paths; otherwise returns the Figure.
        """
        figure = _draw(self, labels or {})
        if path is None:
            return figure
        from dlrn.evaluation.figures import save_figure

        return save_figure(figure, Path(path).with_suffix(""), formats)


# ----------------------------------------------------------------- drawing
_TITLE_X = -4.0  # row titles end here (points-axis units); labels stay right of it
_LABEL_GAP = 1.0  # least space between neighbouring labels (points-axis units)
_TIER_STEP = 0.32  # vertical distance between staggered label tiers (row units)
_LABEL_FONT = 7


@dataclass
class _Row:
    """One nomogram row to draw: tick positions (0..maxscale) and their labels.

    ``thin``: a numeric scale, where some ticks may stay unlabelled; otherwise
    (categories, discrete values) every label is shown, staggered if crowded.
    """

    title: str
    positions: np.ndarray
    labels: list[str]
    thin: bool
    minor: Sequence[float] = ()


@dataclass
class _Layout:
    """Which labels a row shows, in which tier (0 above, 1 below, 2 higher above, ...), where."""

    shown: dict[int, int]
    centres: np.ndarray

    @property
    def extra_above(self) -> int:
        return max(0, (max(self.shown.values()) + 2) // 2 - 1)

    @property
    def extra_below(self) -> int:
        return max(0, (max(self.shown.values()) + 1) // 2 - 1)


def _format_tick(value: object) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def _label_widths(axes, labels: Sequence[str]) -> np.ndarray:
    """Rendered widths of labels in data units of the x axis."""
    renderer = axes.figure.canvas.get_renderer()
    units_per_pixel = np.ptp(axes.get_xlim()) / axes.bbox.width
    widths = []
    for label in labels:
        text = axes.text(0, 0, label, fontsize=_LABEL_FONT)
        widths.append(text.get_window_extent(renderer).width * units_per_pixel)
        text.remove()
    return np.asarray(widths)


def _fit_in_one_tier(left: np.ndarray, right: np.ndarray, chosen: Sequence[int]) -> bool:
    order = sorted(chosen, key=lambda i: left[i])
    return all(left[b] >= right[a] + _LABEL_GAP for a, b in itertools.pairwise(order))


def _chosen_labels(row: _Row, left: np.ndarray, right: np.ndarray) -> list[int]:
    """All labels, or for a numeric scale every k-th with the smallest k that avoids overlap."""
    everything = list(range(len(row.labels)))
    if not row.thin:
        return everything
    for step in range(1, len(everything)):
        chosen = everything[::step]
        if len(chosen) < 2:
            break
        if _fit_in_one_tier(left, right, chosen):
            return chosen
    return [everything[0], everything[-1]]  # the two ends, staggered below


def _tiers(left: np.ndarray, right: np.ndarray, chosen: Sequence[int]) -> dict[int, int]:
    """First-fit tier of each label, left to right, so that no two labels of a tier overlap."""
    tier_ends: list[float] = []
    tiers = {}
    for i in sorted(chosen, key=lambda i: (left[i], i)):
        tier = next((t for t, end in enumerate(tier_ends) if left[i] >= end + _LABEL_GAP),
                    len(tier_ends))
        if tier == len(tier_ends):
            tier_ends.append(-np.inf)
        tier_ends[tier], tiers[i] = right[i], tier
    return tiers


def _layout(axes, row: _Row, right_limit: float) -> _Layout:
    """Thin (numeric scales) then stagger the labels of a row so that none overlap."""
    widths = _label_widths(axes, row.labels)
    left = np.clip(row.positions - widths / 2, _TITLE_X + _LABEL_GAP, right_limit - widths)
    right = left + widths
    chosen = _chosen_labels(row, left, right)
    return _Layout(_tiers(left, right, chosen), left + widths / 2)


def _draw_row(axes, y: float, row: _Row, layout: _Layout) -> None:
    """A line through the ticks (labelled ones longer), the labels, the title at the left."""
    positions = row.positions
    axes.plot([positions.min(), positions.max()], [y, y], color="black", linewidth=0.8)
    for i, x in enumerate(positions):
        height = 0.12 if i in layout.shown else 0.07
        axes.plot([x, x], [y, y + height], color="black", linewidth=0.8)
    for i, tier in layout.shown.items():
        level = tier // 2
        above = tier % 2 == 0
        axes.text(layout.centres[i],
                  y + 0.18 + level * _TIER_STEP if above else y - 0.08 - level * _TIER_STEP,
                  row.labels[i], ha="center", va="bottom" if above else "top",
                  fontsize=_LABEL_FONT)
    for x in row.minor:
        axes.plot([x, x], [y, y + 0.06], color="black", linewidth=0.6)
    axes.text(_TITLE_X, y, row.title, ha="right", va="center", fontsize=8, fontweight="bold")


def _rows(nomogram: Nomogram, labels: Mapping[str, str]) -> list[_Row]:
    """Points, one row per predictor, Total Points, Linear Predictor, Risk (rms order)."""
    maxscale = nomogram.maxscale
    total_scale = maxscale / nomogram.total_points_axis_.max()
    points_ticks = r_pretty(0, maxscale, 10)
    rows = [_Row("Points", points_ticks, [f"{v:g}" for v in points_ticks], True,
                 np.arange(0, maxscale + 1e-9, maxscale / 50))]
    for scale in nomogram.scales_:
        positions = (scale.axis_xbeta - scale.axis_xbeta.min()) * nomogram.points_per_unit_
        rows.append(_Row(labels.get(scale.name, scale.name), positions,
                         [_format_tick(v) for v in scale.values], scale.kind == "continuous"))
    totals = nomogram.total_points_axis_
    lp_axis, risk = nomogram.lp_axis_, nomogram.risk_axis_
    rows += [
        _Row("Total Points", totals * total_scale, [f"{v:g}" for v in totals], True),
        _Row("Linear Predictor", lp_axis["total_points"].to_numpy() * total_scale,
             [f"{v:g}" for v in lp_axis["lp"]], True),
        _Row(labels.get("Risk", "Risk"), risk["total_points"].to_numpy() * total_scale,
             [f"{v:g}" for v in risk["probability"]], True),
    ]
    return rows


def _draw(nomogram: Nomogram, labels: Mapping[str, str]):
    """rms-style layout: every row shares one x scale (0..maxscale points).

    Crowded labels never overlap: numeric scales label every k-th tick (the
    others stay as short ticks); categories and discrete values keep every label,
    staggered above and below the line, rows moving apart to make room.
    """
    import matplotlib.pyplot as plt

    from dlrn.evaluation.figures import STYLE

    maxscale = nomogram.maxscale
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(7.0, 4.0))
        figure.subplots_adjust(left=0.2, right=0.98, top=0.98, bottom=0.02)
        axes.set_xlim(-2, maxscale + 4)
        rows = _rows(nomogram, labels)
        layouts = [_layout(axes, row, maxscale + 4) for row in rows]
        heights = [0.0]
        for previous, layout in itertools.pairwise(layouts):
            gap = 1 + _TIER_STEP * (previous.extra_below + layout.extra_above)
            heights.append(heights[-1] - gap)
        for y, row, layout in zip(heights, rows, layouts, strict=True):
            _draw_row(axes, y, row, layout)
        top = 0.7 + _TIER_STEP * layouts[0].extra_above
        bottom = heights[-1] - 0.6 - _TIER_STEP * layouts[-1].extra_below
        axes.set_ylim(bottom, top)
        figure.set_size_inches(7.0, 0.48 * (top - bottom) + 0.26)
        axes.axis("off")
    return figure
