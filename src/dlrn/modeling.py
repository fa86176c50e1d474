"""One feature set -> leakage-safe selection + seven tuned classifiers -> predictions + metrics.

Only training rows are used to fit anything. Within the training set, the
selection pipeline sits *inside* the cross-validation pipeline, so the grid
search AUCs and the out-of-fold predictions come from folds whose selection never
saw their validation rows. Because selection does not depend on classifier
parameters, each fold's fitted selection is cached (``Pipeline(memory=...)``)
and reused across grid points and classifiers: selection runs once per fold plus
once on the whole training set.

The "best model" (for permutation importance) is the one with the highest
median CV AUC on the training set, never chosen by test AUC. Permutation
importance is computed on the training set over the selected features (the
selection is fixed, so permuting a selected feature equals permuting its raw
column; features not selected have importance 0 by construction). It measures
what the model relies on, not how well it generalises.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from dlrn.classifiers import CLASSIFIERS, check_classifier_names, grid_search, make_cv, search_table
from dlrn.errors import DlrnError
from dlrn.selection import (
    LassoSelector,
    ZScore,
    make_selection_pipeline,
    pipeline_radscore,
    plot_lasso_coefficients,
    plot_lasso_cv,
    plot_lasso_path,
    removed_features,
    selection_funnel,
)

logger = logging.getLogger(__name__)

DEFAULT_SELECTION = "default"
TRAIN = "train"


@dataclass
class FeatureSetResult:
    """Everything one feature set produced; tables are indexed by case id where per case."""

    name: str
    selection: Pipeline
    models: dict[str, Pipeline]
    best_model: str
    best_params: pd.DataFrame
    grid_results: pd.DataFrame
    predictions: pd.DataFrame
    oof_predictions: pd.DataFrame
    metrics: pd.DataFrame
    cv_metrics: pd.DataFrame
    importance: pd.DataFrame
    cv_folds: pd.Series
    radscore: pd.Series | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def selected_features(self) -> list[str]:
        return list(self.selection.get_feature_names_out())

    @property
    def funnel(self) -> pd.DataFrame:
        return selection_funnel(self.selection)

    @property
    def removed(self) -> pd.DataFrame:
        return removed_features(self.selection)

    @property
    def lasso(self) -> LassoSelector | None:
        last = self.selection.steps[-1][1]
        return last if isinstance(last, LassoSelector) else None

    @property
    def score_columns(self) -> list[str]:
        return [f"{self.name}-{classifier}" for classifier in self.models]


# ------------------------------------------------------------------ checks


def _case_list(ids: Sequence[Any]) -> str:
    ids = list(ids)
    return ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def check_modeling_inputs(
    X: pd.DataFrame, y: pd.Series, split: pd.Series, groups: pd.Series | None = None
) -> None:
    """One clear DlrnError for mismatched case ids, non-numeric or missing features, bad labels."""
    for what, table in (("labels", y), ("split", split), ("groups", groups)):
        if table is None:
            continue
        only_features = X.index.difference(table.index)
        only_other = table.index.difference(X.index)
        if len(only_features) or len(only_other):
            raise DlrnError(
                f"case ids of the features and the {what} differ: only in features: "
                f"[{_case_list(only_features)}]; only in {what}: [{_case_list(only_other)}]"
            )
    if X.index.has_duplicates:
        raise DlrnError(
            f"duplicate case ids in the features: "
            f"{_case_list(X.index[X.index.duplicated()].unique())}"
        )
    non_numeric = [column for column in X.columns if not pd.api.types.is_numeric_dtype(X[column])]
    if non_numeric:
        raise DlrnError(f"non-numeric feature column(s): {_case_list(non_numeric)}")
    finite = np.isfinite(X.to_numpy(dtype=float))
    if not finite.all():
        column = X.columns[(~finite).any(axis=0)][0]
        raise DlrnError(
            f"feature {column!r} is missing or infinite for case(s) "
            f"{_case_list(X.index[~np.isfinite(X[column].to_numpy(dtype=float))])}"
        )
    bad_labels = y.index[~y.isin([0, 1])]
    if len(bad_labels):
        raise DlrnError(f"labels must be 0/1; case(s) {_case_list(bad_labels)} are not")
    if not (split == TRAIN).any():
        raise DlrnError(f"the split has no {TRAIN!r} cases (values: {sorted(split.unique())})")


# ----------------------------------------------------------------- fitting


def _selection_step(selection: Pipeline | str | None, seed: int) -> Pipeline:
    """The default recipe, the user's pipeline, or (None) z-scoring only."""
    if isinstance(selection, str):
        if selection != DEFAULT_SELECTION:
            raise DlrnError(f"selection {selection!r} is not a Pipeline, None or 'default'")
        return make_selection_pipeline(seed=seed)
    if selection is None:
        return Pipeline([("zscore", ZScore())]).set_output(transform="pandas")
    return clone(selection)


def _importance(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, seed: int, n_jobs: int | None
) -> pd.DataFrame:
    from sklearn.inspection import permutation_importance

    selected = model["selection"].transform(X)
    result = permutation_importance(
        model["classifier"],
        selected,
        y,
        scoring="roc_auc",
        n_repeats=10,
        random_state=seed,
        n_jobs=n_jobs,
    )
    table = pd.DataFrame(
        {
            "feature": selected.columns,
            "importance_mean": result.importances_mean,
            "importance_sd": result.importances_std,
        }
    )
    return table.sort_values("importance_mean", ascending=False, ignore_index=True)


def _describe(selection: Pipeline) -> dict[str, dict[str, Any]]:
    """Step settings for provenance (the ICC table itself is written separately)."""
    return {
        name: {key: value for key, value in step.get_params().items() if key != "icc"}
        for name, step in selection.steps
    }


def _wide(label: pd.Series, sets: pd.Series, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    table = pd.DataFrame({"label": label.astype(int), "set": sets})
    for column, values in scores.items():
        table[column] = values
    table.index.name = "case_id"
    return table


def _metrics(predictions: pd.DataFrame, scores: list[str]) -> pd.DataFrame:
    from dlrn.evaluation.summary import metrics_table

    return metrics_table(predictions, scores)


def fit_feature_set(
    name: str,
    X: pd.DataFrame,
    y: pd.Series,
    split: pd.Series,
    *,
    groups: pd.Series | None = None,
    selection: Pipeline | str | None = DEFAULT_SELECTION,
    classifiers: Sequence[str] = CLASSIFIERS,
    grids: dict[str, dict[str, list[Any]]] | None = None,
    class_weight: str | None = None,
    cv_folds: int = 5,
    seed: int = 0,
    n_jobs: int | None = None,
    progress: bool = True,
) -> FeatureSetResult:
    """Select features and tune each classifier on the training rows; predict every set.

    ``split`` holds ``"train"`` and other set names (``"test"``, external cohorts);
    ``groups`` (patient ids) makes the CV folds grouped when patients repeat.
    ``selection``: ``"default"`` (the study's recipe, :func:`make_selection_pipeline`),
    a selection Pipeline (cloned, e.g. with a ReproducibilityFilter first), or None
    (z-scoring only). ``grids`` overrides :data:`dlrn.classifiers.DEFAULT_GRIDS`
    per classifier.
    """
    from joblib import Memory
    from sklearn.model_selection import cross_val_predict
    from tqdm.auto import tqdm

    classifiers = check_classifier_names(list(classifiers))
    y = y.astype(int)
    check_modeling_inputs(X, y, split, groups)
    y, split = y.loc[X.index], split.loc[X.index].astype(str)
    train = (split == TRAIN).to_numpy()
    X_train, y_train = X.loc[train], y.loc[train]
    groups_train = None if groups is None else groups.loc[X.index][train].to_numpy()
    folds = make_cv(y_train.to_numpy(), groups_train, n_splits=cv_folds, seed=seed)
    selection_step = _selection_step(selection, seed)
    models, tables, oof = {}, [], {}
    with tempfile.TemporaryDirectory(prefix="dlrn-selection-cache-") as cache:
        memory = Memory(cache, verbose=0)
        bar = tqdm(classifiers, desc=f"{name}: grid search", disable=not progress, unit="model")
        for classifier in bar:
            bar.set_postfix_str(classifier)
            search = grid_search(
                classifier,
                X_train,
                y_train,
                cv=folds,
                selection=selection_step,
                grid=(grids or {}).get(classifier),
                seed=seed,
                class_weight=class_weight,
                n_jobs=n_jobs,
                memory=memory,
            )
            tables.append(search_table(search, classifier))
            tuned = clone(search.estimator).set_params(**search.best_params_)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # selection guard already warned
                oof[f"{name}-{classifier}"] = cross_val_predict(
                    tuned, X_train, y_train, cv=folds, method="predict_proba", n_jobs=n_jobs
                )[:, 1]
            models[classifier] = search.best_estimator_.set_params(memory=None)
    grid_results = pd.concat(tables, ignore_index=True)
    chosen = grid_results[grid_results["chosen"]].reset_index(drop=True)
    best_model = chosen.loc[chosen["median_auc"].idxmax(), "classifier"]
    predictions = _wide(
        y, split, {f"{name}-{c}": m.predict_proba(X)[:, 1] for c, m in models.items()}
    )
    oof_predictions = _wide(y_train, split[train], oof)
    scores = list(oof)
    selection_fitted = models[classifiers[0]]["selection"]
    ends_in_lasso = isinstance(selection_fitted.steps[-1][1], LassoSelector)
    fold_of_case = np.empty(len(y_train), dtype=int)
    for number, (_, validation) in enumerate(folds, start=1):
        fold_of_case[validation] = number
    return FeatureSetResult(
        name=name,
        selection=selection_fitted,
        models=models,
        best_model=best_model,
        best_params=chosen[["classifier", "params", "median_auc", "mean_auc", "sd_auc"]],
        grid_results=grid_results,
        predictions=predictions,
        oof_predictions=oof_predictions,
        metrics=_metrics(predictions, scores),
        cv_metrics=_metrics(oof_predictions, scores),
        importance=_importance(models[best_model], X_train, y_train, seed, n_jobs),
        cv_folds=pd.Series(fold_of_case, index=y_train.index, name="fold"),
        radscore=pipeline_radscore(selection_fitted, X) if ends_in_lasso else None,
        settings={
            "seed": seed,
            "cv_folds": cv_folds,
            "class_weight": class_weight,
            "classifiers": list(classifiers),
            "grids": grids or "default",
            "selection": _describe(selection_step),
            "n_features": X.shape[1],
            "n_train": int(train.sum()),
            "n_other": int((~train).sum()),
        },
    )


# ----------------------------------------------------------------- writing


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
        title=f"{result.name}-{result.best_model}: permutation importance (training set)",
    )
    return written


def plot_importance(importance: pd.DataFrame, stem: Path, *, title: str) -> list[Path]:
    """Horizontal bars of mean AUC drop (+/- SD) per feature, most important on top."""
    import matplotlib.pyplot as plt

    from dlrn.evaluation.figures import OKABE_ITO, STYLE, save_figure

    rows = importance.iloc[::-1]
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(5.5, 1.0 + 0.2 * len(rows)), layout="constrained")
        axes.barh(
            range(len(rows)),
            rows["importance_mean"],
            xerr=rows["importance_sd"],
            color=OKABE_ITO[0],
            ecolor="grey",
        )
        axes.set_yticks(range(len(rows)), rows["feature"])
        axes.axvline(0, color="black", linewidth=0.5)
        axes.set_xlabel("decrease in ROC AUC when permuted (mean +/- SD, 10 repeats)")
        axes.set_title(title)
        return save_figure(figure, stem)


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
