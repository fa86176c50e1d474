"""Drawing a nomogram as rms does: Points, a row per axis, Total Points, Linear Predictor, Risk.

The token axes of a multilabel descriptor sit under a header row with the descriptor's
name, each titled by its token, as a radiologist's report lists a descriptor's findings.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from dlrn.nomogram.scales import r_pretty

if TYPE_CHECKING:
    from dlrn.nomogram.estimator import Nomogram

__all__ = ["draw"]

_TITLE_X = -4.0  # row titles end here (points-axis units); labels stay right of it
_LABEL_GAP = 1.0  # least space between neighbouring labels (points-axis units)
_TIER_STEP = 0.32  # vertical distance between staggered label tiers (row units)
_LABEL_FONT = 7


@dataclass
class _Row:
    """One nomogram row to draw: tick positions (0..maxscale) and their labels.

    ``thin``: a numeric scale, where some ticks may stay unlabelled; otherwise
    (categories, discrete values) every label is shown, staggered if crowded. A row
    without positions is a group's header (its title alone); ``indent`` shifts the title
    of a row inside a group.
    """

    title: str
    positions: np.ndarray
    labels: list[str]
    thin: bool
    minor: Sequence[float] = ()
    indent: bool = False


@dataclass
class _Layout:
    """Which labels a row shows, in which tier (0 above, 1 below, 2 higher above, ...), where."""

    shown: dict[int, int]
    centres: np.ndarray

    @property
    def extra_above(self) -> int:
        return max(0, (max(self.shown.values(), default=0) + 2) // 2 - 1)

    @property
    def extra_below(self) -> int:
        return max(0, (max(self.shown.values(), default=0) + 1) // 2 - 1)


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
    if not len(row.positions):
        return _Layout({}, np.array([]))
    widths = _label_widths(axes, row.labels)
    left = np.clip(row.positions - widths / 2, _TITLE_X + _LABEL_GAP, right_limit - widths)
    right = left + widths
    chosen = _chosen_labels(row, left, right)
    return _Layout(_tiers(left, right, chosen), left + widths / 2)


def _draw_row(axes, y: float, row: _Row, layout: _Layout) -> None:
    """A line through the ticks (labelled ones longer), the labels, the title at the left."""
    if not len(row.positions):  # a group's header: its name alone
        axes.text(_TITLE_X, y, row.title, ha="right", va="center", fontsize=8,
                  fontweight="bold")
        return
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
    if row.indent:
        axes.text(_TITLE_X, y, row.title, ha="right", va="center", fontsize=7.5,
                  style="italic")
    else:
        axes.text(_TITLE_X, y, row.title, ha="right", va="center", fontsize=8,
                  fontweight="bold")


def _rows(nomogram: Nomogram, labels: Mapping[str, str],
          levels: Mapping[str, Mapping[str, str]]) -> list[_Row]:
    """Points, one row per predictor, Total Points, Linear Predictor, Risk (rms order)."""
    maxscale = nomogram.maxscale
    total_scale = maxscale / nomogram.total_points_axis_.max()
    points_ticks = r_pretty(0, maxscale, 10)
    rows = [_Row("Points", points_ticks, [f"{v:g}" for v in points_ticks], True,
                 np.arange(0, maxscale + 1e-9, maxscale / 50))]
    group = None
    for scale in nomogram.scales_:
        if scale.group is not None and scale.group != group:
            rows.append(_Row(labels.get(scale.group, scale.group), np.array([]), [], False))
        group = scale.group
        positions = (scale.axis_xbeta - scale.axis_xbeta.min()) * nomogram.points_per_unit_
        words = levels.get(scale.name, {})
        rows.append(_Row(labels.get(scale.name, scale.title), positions,
                         [words.get(str(v), _format_tick(v)) for v in scale.values],
                         scale.kind == "continuous", indent=group is not None))
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


def draw(nomogram: Nomogram, labels: Mapping[str, str],
         levels: Mapping[str, Mapping[str, str]] | None = None) -> Figure:
    """rms-style layout: every row shares one x scale (0..maxscale points).

    Crowded labels never overlap: numeric scales label every k-th tick (the
    others stay as short ticks); categories and discrete values keep every label,
    staggered above and below the line, rows moving apart to make room. The
    figure has its own Agg canvas: no pyplot, no backend switch.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from dlrn.evaluation.figures import STYLE

    maxscale = nomogram.maxscale
    with rc_context(STYLE):
        figure = Figure(figsize=(7.0, 4.0))
        FigureCanvasAgg(figure)
        axes = figure.subplots()
        figure.subplots_adjust(left=0.2, right=0.98, top=0.98, bottom=0.02)
        axes.set_xlim(-2, maxscale + 4)
        rows = _rows(nomogram, labels, levels or {})
        layouts = [_layout(axes, row, maxscale + 4) for row in rows]
        heights = [0.0]
        for index, (upper, lower) in enumerate(itertools.pairwise(layouts)):
            header = not len(rows[index].positions)  # a group's name sits near its rows
            gap = 0.7 if header else 1 + _TIER_STEP * (upper.extra_below + lower.extra_above)
            heights.append(heights[-1] - gap)
        for y, row, layout in zip(heights, rows, layouts, strict=True):
            _draw_row(axes, y, row, layout)
        top = 0.7 + _TIER_STEP * layouts[0].extra_above
        bottom = heights[-1] - 0.6 - _TIER_STEP * layouts[-1].extra_below
        axes.set_ylim(bottom, top)
        figure.set_size_inches(7.0, 0.48 * (top - bottom) + 0.26)
        axes.axis("off")
    return figure
