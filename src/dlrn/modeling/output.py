"""Writing a feature set's result: tables (CSV + tables.xlsx), figures, provenance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dlrn.errors import DlrnError
from dlrn.modeling.fit import FeatureSetResult
from dlrn.modeling.importance import plot_importance
from dlrn.selection import plot_lasso_coefficients, plot_lasso_cv, plot_lasso_path


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise DlrnError(f"output folder {out_dir} is not empty; choose another or allow overwrite")


def _figures(result: FeatureSetResult, folder: Path) -> list[Path]:
    """LASSO path, CV error and coefficient plots (when selection ends in LASSO), importance."""
    written: list[Path] = []
    lasso = result.lasso
    if lasso is not None:
        written += plot_lasso_path(lasso, folder / "lasso_path")
        written += plot_lasso_cv(lasso, folder / "lasso_cv_error")
        written += plot_lasso_coefficients(lasso, folder / "lasso_coefficients")
    written += plot_importance(
        result.importance,
        folder / "importance",
        title=f"{result.name}-{result.best_model}: permutation importance, held-out CV folds",
    )
    return written


def result_tables(result: FeatureSetResult) -> dict[str, pd.DataFrame]:
    """The tables of a result, case ids as a column, ready for write_tables."""
    tables = {
        "predictions": result.predictions.reset_index(),
        "predictions_cv": result.oof_predictions.reset_index(),
        "metrics": result.metrics,
        "metrics_cv": result.cv_metrics,
        "best_params": result.best_params,
        "grid_search": result.grid_results,
        "selection_funnel": result.funnel,
        "selection_removed": result.removed,
        "selected_features": pd.DataFrame({"feature": result.selected_features}),
        "importance": result.importance,
        "cv_folds": result.cv_folds.rename_axis("case_id").reset_index(),
    }
    lasso = result.lasso
    if lasso is not None:
        tables["lasso_path"] = lasso.path_table()
        tables["lasso_coefficients"] = lasso.coefficients().rename_axis("feature").reset_index()
    if result.radscore is not None:
        tables["radscore"] = (
            result.predictions[["label", "set"]].assign(radscore=result.radscore).reset_index()
        )
    return tables


def write_feature_set_result(
    result: FeatureSetResult, out_dir: str | Path, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write tables (CSV + tables.xlsx), figures (PNG + SVG) and provenance.json to ``out_dir``."""
    from dlrn.provenance import write_provenance
    from dlrn.tables import write_tables

    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    written = write_tables(result_tables(result), out)
    for path in _figures(result, out / "figures"):
        written[f"figures/{path.name}"] = path
    written["provenance"] = write_provenance(
        out / "provenance.json",
        feature_set=result.name,
        best_model=result.best_model,
        settings=result.settings,
    )
    return written
