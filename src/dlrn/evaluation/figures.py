"""Journal-style figures: ROC curves, calibration curves, decision curves, DeLong p-value matrix.

All plots share one look (Okabe-Ito colour-blind-safe palette, no top/right
spines, 8-9 pt text) and return a matplotlib Figure; :func:`save_figure` writes
it as PNG (300 dpi) and SVG.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D

from dlrn.evaluation.calibration import calibration_bins, calibration_lowess, hosmer_lemeshow
from dlrn.evaluation.decision_curve import decision_curve
from dlrn.evaluation.roc import AucResult, auc_ci, roc_curve

__all__ = [
    "OKABE_ITO",
    "plot_calibration",
    "plot_decision_curves",
    "plot_delong_matrix",
    "plot_roc",
    "save_figure",
]

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.4,
    "legend.frameon": False,
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["Arial", "Helvetica", "DejaVu Sans"],
}


def _line_style(index: int) -> dict[str, object]:
    """Colour plus dash pattern, so curves stay distinguishable in greyscale print."""
    return {
        "color": OKABE_ITO[index % len(OKABE_ITO)],
        "linestyle": LINE_STYLES[(index // len(OKABE_ITO)) % len(LINE_STYLES)],
    }


def _new_axes(size: tuple[float, float] = (3.6, 3.4)) -> tuple[plt.Figure, plt.Axes]:
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=size, layout="constrained")
    return figure, axes


def save_figure(
    figure: plt.Figure, stem: str | Path, formats: tuple[str, ...] = ("png", "svg")
) -> list[Path]:
    """Write ``stem.png`` (300 dpi) and ``stem.svg`` and close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.rc_context(STYLE):
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            figure.savefig(path, dpi=300, bbox_inches="tight")
            paths.append(path)
    plt.close(figure)
    return paths


def plot_roc(
    y: object,
    scores: pd.DataFrame,
    *,
    title: str | None = None,
    auc_results: Mapping[str, AucResult] | None = None,
) -> plt.Figure:
    """ROC curves of several models on one set; the legend gives AUC (95% CI)."""
    figure, axes = _new_axes()
    with plt.rc_context(STYLE):
        axes.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, linestyle=":", label="_chance")
        for index, model in enumerate(scores.columns):
            curve = roc_curve(y, scores[model])
            result = (auc_results or {}).get(model) or auc_ci(y, scores[model])
            level = round(result.conf_level * 100)
            axes.plot(
                1 - curve["specificity"],
                curve["sensitivity"],
                **_line_style(index),
                label=f"{model}: {result.auc:.3f} ({result.ci_low:.3f}–{result.ci_high:.3f})",
            )
        axes.set(
            xlim=(-0.01, 1.01),
            ylim=(-0.01, 1.01),
            xlabel="1 − Specificity",
            ylabel="Sensitivity",
            aspect="equal",
        )
        axes.legend(loc="lower right", title=f"AUC ({level}% CI)", title_fontsize=7)
        if title:
            axes.set_title(title)
    return figure


def plot_calibration(
    y: object,
    probabilities: pd.DataFrame,
    *,
    groups: int = 10,
    grouping: str = "quantile_cut",
    smooth: bool = True,
    title: str | None = None,
) -> plt.Figure:
    """Observed vs predicted risk: lowess curve (rms ``val.prob``) and grouped points.

    Each model's smoothed curve is a line and its groups are points of the same
    colour; with ``smooth=False`` the grouped points are joined instead. The
    legend gives the Hosmer-Lemeshow p.
    """
    figure, axes = _new_axes()
    with plt.rc_context(STYLE):
        ideal = axes.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, linestyle=":",
                          label="Ideal")
        handles = []
        for index, model in enumerate(probabilities.columns):
            bins = calibration_bins(y, probabilities[model], groups=groups, grouping=grouping)
            test = hosmer_lemeshow(y, probabilities[model], groups=groups, grouping=grouping)
            look = {**_line_style(index), "marker": MARKERS[index % len(MARKERS)],
                    "markersize": 3.5, "markerfacecolor": "none", "markeredgewidth": 0.9}
            if smooth:
                curve = calibration_lowess(y, probabilities[model])
                axes.plot(curve["predicted"], curve["observed"], **_line_style(index))
                axes.plot(bins["mean_predicted"], bins["observed_rate"],
                          **{**look, "linestyle": "none"})
            else:
                axes.plot(bins["mean_predicted"], bins["observed_rate"], **look)
            handles.append(Line2D([], [], **look,
                                  label=f"{model} (HL p = {_format_p(test.p_value)})"))
        axes.set(
            xlim=(-0.01, 1.01),
            ylim=(-0.01, 1.01),
            xlabel="Predicted probability",
            ylabel="Observed proportion",
            aspect="equal",
        )
        handles += ideal
        if smooth:
            handles.append(Line2D([], [], color="none",
                                  label=f"Lines: lowess; markers: {_groups_name(groups)}"))
        axes.legend(handles=handles, loc="upper left")
        if title:
            axes.set_title(title)
    return figure


def _groups_name(groups: int) -> str:
    return {10: "deciles", 5: "quintiles", 4: "quartiles"}.get(groups, f"{groups} groups")


def plot_decision_curves(
    y: object, probabilities: pd.DataFrame, *, thresholds: object = None, title: str | None = None
) -> plt.Figure:
    """Net benefit of each model against treat-all and treat-none."""
    figure, axes = _new_axes((4.2, 3.2))
    with plt.rc_context(STYLE):
        curves = {m: decision_curve(y, probabilities[m], thresholds) for m in probabilities}
        reference = next(iter(curves.values()))
        axes.plot(
            reference["threshold"],
            reference["net_benefit_treat_all"],
            color="0.55",
            linewidth=1.0,
            label="Treat all",
        )
        axes.axhline(0, color="0.15", linewidth=1.0, label="Treat none")
        for index, (model, curve) in enumerate(curves.items()):
            axes.plot(curve["threshold"], curve["net_benefit"], **_line_style(index), label=model)
        top = max(reference["net_benefit_treat_all"].max(), 0.01)
        axes.set(
            xlim=(0, 1),
            ylim=(-0.05 * top * 4, top * 1.15),
            xlabel="Threshold probability",
            ylabel="Net benefit",
        )
        axes.legend(loc="upper right")
        if title:
            axes.set_title(title)
    return figure


def _format_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def plot_delong_matrix(p_values: pd.DataFrame, *, title: str | None = None) -> plt.Figure:
    """Heatmap of paired DeLong p-values, lower triangle only (darker = smaller p)."""
    names = list(p_values.columns)
    values = p_values.to_numpy(dtype=float)[1:, :-1]  # rows 2..k against columns 1..k-1
    size = max(2.6, 0.6 * len(names) + 1.2)
    figure, axes = _new_axes((size + 0.8, size))
    shown = np.ma.masked_where(np.triu(np.ones_like(values, dtype=bool), k=1), values)
    with plt.rc_context(STYLE):
        image = axes.imshow(np.clip(shown, 1e-4, 1), cmap="Blues_r", norm=LogNorm(1e-4, 1))
        for i, j in zip(*np.tril_indices(len(names) - 1), strict=True):
            axes.text(
                j,
                i,
                _format_p(values[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if values[i, j] < 0.01 else "black",
            )
        axes.set_xticks(range(len(names) - 1), names[:-1], rotation=45, ha="right")
        axes.set_yticks(range(len(names) - 1), names[1:])
        axes.spines[:].set_visible(False)
        axes.tick_params(length=0)
        colorbar = figure.colorbar(image, ax=axes, shrink=0.8, ticks=[1e-4, 1e-3, 1e-2, 0.05, 1])
        colorbar.ax.set_yticklabels(["0.0001", "0.001", "0.01", "0.05", "1"])
        colorbar.set_label("DeLong p-value")
        if title:
            axes.set_title(title)
    return figure
