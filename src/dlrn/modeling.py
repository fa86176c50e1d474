"""One feature set -> leakage-safe selection + seven tuned classifiers -> predictions + metrics.

Only training rows are used to fit anything. Within the training set, the
selection pipeline sits *inside* the cross-validation pipeline, so the grid
search AUCs and the out-of-fold predictions come from folds whose selection never
saw their validation rows. Because selection does not depend on classifier
parameters, each fold's fitted selection is cached (``Pipeline(memory=...)``)
and reused across grid points and classifiers: selection runs once per fold plus
once on the whole training set.

The "best model" (for permutation importance) is the one with the highest
median CV AUC on the training set, never chosen by test AUC. Its permutation
importance is measured on held-out rows of the *training* set: each of the K
fold models (selection + classifier with the chosen parameters, fitted on the
other K-1 folds) is scored on its own validation fold, so an overfitted model
cannot hide behind a perfect training AUC, and the test set stays untouched.
Selection runs inside each fold, so each fold permutes the features it kept; a
feature a fold dropped cannot change that fold's predictions and counts as 0
there (which is exactly the pipeline's importance for that raw column). The
table reports mean and SD over folds and how many folds kept each feature.

The metrics' Youden cut-off of each model is chosen on its out-of-fold training
predictions, not on the refitted model's optimistic training predictions.
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

from dlrn.classifiers import (
    CLASSIFIERS,
    check_classifier_names,
    grid_search,
    make_cv,
    median_auc_order,
    search_table,
)
from dlrn.errors import DlrnError, shown_items
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
#: Set name of the out-of-fold training predictions where the metrics cut-off is chosen.
CV_SET = "train (out-of-fold)"
#: Shuffles per feature and fold: 5 x K folds = 25 AUC drops per feature by default.
IMPORTANCE_REPEATS = 5
IMPORTANCE_METHOD = (
    "permutation importance on the held-out fold of each training-set CV split "
    "(features a fold did not select count as 0)"
)


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
                f"[{shown_items(only_features)}]; only in {what}: [{shown_items(only_other)}]"
            )
    if X.index.has_duplicates:
        raise DlrnError(
            f"duplicate case ids in the features: "
            f"{shown_items(X.index[X.index.duplicated()].unique())}"
        )
    non_numeric = [column for column in X.columns if not pd.api.types.is_numeric_dtype(X[column])]
    if non_numeric:
        raise DlrnError(f"non-numeric feature column(s): {shown_items(non_numeric)}")
    finite = np.isfinite(X.to_numpy(dtype=float))
    if not finite.all():
        column = X.columns[(~finite).any(axis=0)][0]
        raise DlrnError(
            f"feature {column!r} is missing or infinite for case(s) "
            f"{shown_items(X.index[~np.isfinite(X[column].to_numpy(dtype=float))])}"
        )
    bad_labels = y.index[~y.isin([0, 1])]
    if len(bad_labels):
        raise DlrnError(f"labels must be 0/1; case(s) {shown_items(bad_labels)} are not")
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


def permutation_auc_drops(
    classifier: Any, X: pd.DataFrame, y: pd.Series, *, n_repeats: int, seed: int
) -> np.ndarray:
    """Features x repeats drops in ROC AUC when a column is permuted.

    The numbers of ``sklearn.inspection.permutation_importance(scoring="roc_auc",
    random_state=seed)`` (same shuffles, tested), but the ``n_repeats`` permuted copies
    of the rows are stacked into one ``predict_proba`` call per feature: a 300-tree
    forest then pays its per-call overhead once instead of ``n_repeats`` times.
    """
    from sklearn.metrics import roc_auc_score

    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    values, labels, n = X.to_numpy(dtype=float), np.asarray(y), len(X)
    baseline = roc_auc_score(labels, classifier.predict_proba(X)[:, 1])
    drops = np.empty((X.shape[1], n_repeats))
    for column in range(X.shape[1]):
        shuffler, order = np.random.RandomState(column_seed), np.arange(n)
        stacked, permuted = np.tile(values, (n_repeats, 1)), values[:, column]
        for repeat in range(n_repeats):
            shuffler.shuffle(order)
            permuted = permuted[order]  # successive shuffles, as sklearn does
            stacked[repeat * n : (repeat + 1) * n, column] = permuted
        scores = classifier.predict_proba(pd.DataFrame(stacked, columns=X.columns))[:, 1]
        drops[column] = [baseline - roc_auc_score(labels, s) for s in scores.reshape(-1, n)]
    return drops


def _one_fold_importance(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, n_repeats: int, seed: int
) -> pd.Series:
    """Mean AUC drop per feature the fold kept, permuting the held-out rows ``X``, ``y``."""
    selection, classifier = model[:-1], model[-1]
    selected = pd.DataFrame(
        np.asarray(selection.transform(X)), index=X.index, columns=selection.get_feature_names_out()
    )
    drops = permutation_auc_drops(classifier, selected, y, n_repeats=n_repeats, seed=seed)
    return pd.Series(drops.mean(axis=1), index=selected.columns)


def fold_permutation_importance(
    fold_models: Sequence[Pipeline],
    X: pd.DataFrame,
    y: pd.Series,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    final_features: Sequence[str] = (),
    n_repeats: int = IMPORTANCE_REPEATS,
    seed: int = 0,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Permutation importance (drop in ROC AUC) of each fold model on its held-out fold.

    ``fold_models[k]`` (selection -> classifier) was fitted on ``folds[k][0]`` and
    is scored on ``folds[k][1]``. One row per feature kept by at least one fold:
    ``importance_mean`` / ``importance_sd`` over the K folds (a fold that dropped
    the feature contributes 0), ``n_folds_selected``, ``in_final_model`` (kept by
    the selection refitted on all training rows, ``final_features``) and the
    per-fold values ``fold<k>``; most important first.
    """
    from joblib import Parallel, delayed

    if len(fold_models) != len(folds):
        raise DlrnError(f"{len(fold_models)} fold models for {len(folds)} folds")
    per_fold = Parallel(n_jobs=n_jobs)(
        delayed(_one_fold_importance)(
            model, X.iloc[validation], y.iloc[validation], n_repeats, seed
        )
        for model, (_, validation) in zip(fold_models, folds, strict=True)
    )
    kept = pd.concat(per_fold, axis=1, keys=[f"fold{k + 1}" for k in range(len(per_fold))])
    values = kept.fillna(0.0)
    table = pd.DataFrame(
        {
            "feature": kept.index,
            "importance_mean": values.mean(axis=1).to_numpy(),
            "importance_sd": values.std(axis=1, ddof=1).to_numpy(),
            "n_folds_selected": kept.notna().sum(axis=1).to_numpy(),
            "in_final_model": kept.index.isin(list(final_features)),
        }
    )
    table = pd.concat([table, values.reset_index(drop=True)], axis=1)
    return table.sort_values(
        ["importance_mean", "n_folds_selected"], ascending=False, ignore_index=True, kind="stable"
    )


def _fit_fold_models(
    model: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    n_jobs: int | None,
) -> list[Pipeline]:
    """The tuned pipeline refitted on each fold's training part (selection from the cache)."""
    from sklearn.model_selection import cross_validate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # selection guard already warned
        fitted = cross_validate(model, X, y, cv=folds, return_estimator=True, n_jobs=n_jobs)
    return list(fitted["estimator"])


def _out_of_fold(
    fold_models: Sequence[Pipeline],
    X: pd.DataFrame,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Each training case's probability from the fold model that did not see it."""
    scores = np.empty(len(X))
    for model, (_, validation) in zip(fold_models, folds, strict=True):
        scores[validation] = model.predict_proba(X.iloc[validation])[:, 1]
    return scores


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


def _metrics(
    predictions: pd.DataFrame, oof_predictions: pd.DataFrame, scores: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics of every set and of the out-of-fold training predictions.

    Each model's Youden cut-off is chosen on its out-of-fold training predictions
    (``threshold_set`` says so): the refitted model's own training predictions are
    optimistic (a forest or booster separates them perfectly, which puts the
    cut-off anywhere in the gap, e.g. 0.5), so a cut-off from them does not transfer.
    """
    from dlrn.evaluation.summary import metrics_table

    training_first = predictions.sort_values("set", key=lambda sets: sets != TRAIN, kind="stable")
    combined = pd.concat([oof_predictions.assign(set=CV_SET), training_first], ignore_index=True)
    table = metrics_table(combined, scores, train_set=CV_SET)
    out_of_fold = (table["set"] == CV_SET).to_numpy()
    cv_metrics = table[out_of_fold].assign(set=TRAIN).reset_index(drop=True)
    return table[~out_of_fold].reset_index(drop=True), cv_metrics


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
    models, tables, oof, fold_models = {}, [], {}, {}
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
            fold_models[classifier] = _fit_fold_models(tuned, X_train, y_train, folds, n_jobs)
            oof[f"{name}-{classifier}"] = _out_of_fold(fold_models[classifier], X_train, folds)
            models[classifier] = search.best_estimator_.set_params(memory=None)
    grid_results = pd.concat(tables, ignore_index=True)
    chosen = grid_results[grid_results["chosen"]].reset_index(drop=True)
    best_model = chosen.loc[
        median_auc_order(chosen["median_auc"], chosen["mean_auc"])[0], "classifier"
    ]
    predictions = _wide(
        y, split, {f"{name}-{c}": m.predict_proba(X)[:, 1] for c, m in models.items()}
    )
    oof_predictions = _wide(y_train, split[train], oof)
    metrics, cv_metrics = _metrics(predictions, oof_predictions, list(oof))
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
        metrics=metrics,
        cv_metrics=cv_metrics,
        importance=fold_permutation_importance(
            fold_models[best_model],
            X_train,
            y_train,
            folds,
            final_features=models[best_model]["selection"].get_feature_names_out(),
            seed=seed,
            n_jobs=n_jobs,
        ),
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
            "importance": {
                "model": best_model,
                "method": IMPORTANCE_METHOD,
                "n_repeats": IMPORTANCE_REPEATS,
                "scoring": "roc_auc",
            },
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
        title=f"{result.name}-{result.best_model}: permutation importance, held-out CV folds",
    )
    return written


IMPORTANCE_FIGURE_ROWS = 30


def plot_importance(
    importance: pd.DataFrame, stem: Path, *, title: str, max_features: int = IMPORTANCE_FIGURE_ROWS
) -> list[Path]:
    """Bars of mean AUC drop (+/- SD over folds), most important on top, folds kept in the label.

    ``importance`` as from :func:`fold_permutation_importance`; only the first
    ``max_features`` rows are drawn (the table has them all).
    """
    import matplotlib.pyplot as plt

    from dlrn.evaluation.figures import OKABE_ITO, STYLE, save_figure

    n_folds = sum(column.startswith("fold") for column in importance.columns)
    shown = importance.head(max_features)
    rows = shown.iloc[::-1]
    labels = [
        f"{feature} ({kept}/{n_folds})"
        for feature, kept in zip(rows["feature"], rows["n_folds_selected"], strict=True)
    ]
    if len(shown) < len(importance):
        title += f" (top {len(shown)} of {len(importance)})"
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(7.0, 1.4 + 0.2 * len(rows)), layout="constrained")
        axes.barh(
            range(len(rows)),
            rows["importance_mean"],
            xerr=rows["importance_sd"],
            color=OKABE_ITO[0],
            ecolor="grey",
        )
        axes.set_yticks(range(len(rows)), labels)
        axes.axvline(0, color="black", linewidth=0.5)
        axes.set_xlabel(
            f"decrease in ROC AUC on the held-out fold when permuted\n(mean +/- SD over "
            f"{n_folds} folds; (k/{n_folds}) = folds that selected it, others count 0)"
        )
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
