"""LASSO figures: coefficient path, CV error, selected coefficients (PNG 300 dpi + SVG).

Drawn on ``matplotlib.figure.Figure`` objects (no pyplot state, no backend
switching); house style and saving come from :mod:`dlrn.evaluation.figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlrn.selection.lasso import LassoSelector


def _styled() -> Any:
    """Context in which a whole figure is drawn, so titles and legends get the house style too."""
    import matplotlib

    from dlrn.evaluation.figures import STYLE

    return matplotlib.rc_context(STYLE)


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.subplots()


def _save(figure: Any, stem: str | Path) -> list[Path]:
    from dlrn.evaluation.figures import save_figure

    return save_figure(figure, stem)


def _mark_lambdas(axes: Any, lasso: LassoSelector) -> None:
    """lambda.min and lambda.1se, the one whose coefficients are used labelled "(used)"."""
    marks = [
        ("lambda.min", lasso.alpha_min_, "-"),
        ("lambda.1se", lasso.alpha_1se_, ":"),
    ]
    if not lasso.lambda_used_.startswith("lambda."):
        marks.append(("first lambda with a feature", lasso.alpha_, "--"))
    for label, value, style in marks:
        used = value == lasso.alpha_ and (label == lasso.lambda_used_ or style == "--")
        axes.axvline(
            np.log(value),
            color="black" if used else "grey",
            linestyle=style,
            linewidth=1,
            label=f"{label} = {value:.4g}" + (" (used)" if used else ""),
        )


def _finish_lambda_axes(figure: Any, axes: Any, lasso: LassoSelector) -> None:
    """glmnet's top axis (features with a non-zero coefficient) and a legend below the plot.

    The legend sits outside the axes so it never covers the lambda marks or the curves.
    """
    log_lambda = np.log(lasso.alphas_)
    counts = (lasso.coef_path_ != 0).sum(axis=0)
    picks = np.unique(np.linspace(0, len(log_lambda) - 1, 8).round().astype(int))
    top = axes.secondary_xaxis("top")
    top.set_xticks(log_lambda[picks], [str(count) for count in counts[picks]])
    top.set_xlabel("features with a non-zero coefficient")
    axes.set_xlabel("log(lambda)")
    figure.legend(loc="outside lower center", ncols=2)


def plot_lasso_path(lasso: LassoSelector, stem: str | Path) -> list[Path]:
    """Coefficients against log(lambda); selected features in colour, the chosen lambda marked."""
    with _styled():
        return _save(_draw_lasso_path(lasso), stem)


def _draw_lasso_path(lasso: LassoSelector) -> Any:
    from dlrn.evaluation.figures import OKABE_ITO

    colours = OKABE_ITO[:-1]  # the palette's black is kept for the lambda marks
    figure, axes = _figure((5.0, 4.0))
    log_lambda = np.log(lasso.alphas_)
    for row in lasso.coef_path_[~lasso.support_]:
        axes.plot(log_lambda, row, color="lightgrey", linewidth=0.6)
    for number, row in enumerate(lasso.coef_path_[lasso.support_]):
        axes.plot(log_lambda, row, color=colours[number % len(colours)], linewidth=0.9)
    _mark_lambdas(axes, lasso)
    axes.axhline(0, color="black", linewidth=0.5)
    axes.set_ylabel("coefficient (z-scored features)")
    axes.set_title(
        f"LASSO path: {int(lasso.support_.sum())} of {lasso.n_features_in_} features selected "
        "(grey: dropped)"
    )
    _finish_lambda_axes(figure, axes, lasso)
    return figure


def plot_lasso_cv(lasso: LassoSelector, stem: str | Path) -> list[Path]:
    """Cross-validated error (mean +/- SE) against log(lambda), the chosen lambda marked."""
    with _styled():
        return _save(_draw_lasso_cv(lasso), stem)


def _draw_lasso_cv(lasso: LassoSelector) -> Any:
    from dlrn.evaluation.figures import OKABE_ITO

    figure, axes = _figure((5.0, 4.0))
    axes.errorbar(
        np.log(lasso.alphas_),
        lasso.cv_error_mean_,
        yerr=lasso.cv_error_se_,
        fmt="o",
        markersize=2.5,
        color=OKABE_ITO[1],
        ecolor="lightgrey",
        elinewidth=0.8,
        capsize=1.2,
    )
    _mark_lambdas(axes, lasso)
    axes.set_ylabel(f"{lasso.cv}-fold CV {lasso.cv_error_name_}")
    axes.set_title("LASSO cross-validation (mean +/- SE over folds)")
    _finish_lambda_axes(figure, axes, lasso)
    return figure


def plot_lasso_coefficients(lasso: LassoSelector, stem: str | Path) -> list[Path]:
    """Horizontal bars of the selected features' coefficients, largest |coefficient| on top."""
    with _styled():
        return _save(_draw_lasso_coefficients(lasso), stem)


def _draw_lasso_coefficients(lasso: LassoSelector) -> Any:
    from dlrn.evaluation.figures import OKABE_ITO

    coefficients = lasso.coefficients().iloc[::-1]
    figure, axes = _figure((5.5, 1.0 + 0.2 * len(coefficients)))
    colours = np.where(coefficients > 0, OKABE_ITO[1], OKABE_ITO[0])
    axes.barh(range(len(coefficients)), coefficients.to_numpy(), color=colours)
    axes.set_yticks(range(len(coefficients)), coefficients.index)
    axes.axvline(0, color="black", linewidth=0.5)
    axes.set_xlabel("LASSO coefficient (z-scored features)")
    axes.set_title(f"{len(coefficients)} selected features, lambda = {lasso.alpha_:.4g}")
    return figure
