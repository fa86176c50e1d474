"""One feature set -> leakage-safe selection + seven tuned classifiers -> predictions + metrics.

Only training rows are used to fit anything. Within the training set, the
selection pipeline sits *inside* the cross-validation pipeline, so the grid
search AUCs and the out-of-fold predictions come from folds whose selection never
saw their validation rows. Because selection does not depend on classifier
parameters, each fold's fitted selection is cached (``Pipeline(memory=...)``)
and reused across grid points and classifiers: selection runs once per fold plus
once on the whole training set.

The LASSO of the default selection (:class:`~dlrn.selection.SelectionPipeline`)
gets the patient ids of its rows, so its own CV folds are grouped by patient too.
Grid points and folds run in parallel (``n_jobs``, default all cores); every
model is seeded and single-threaded, so the numbers do not depend on it.

The "best model" is chosen by :data:`dlrn.classifiers.BEST_MODEL_RULE` (pooled
out-of-fold AUC over all training cases), never by test AUC. Its permutation
importance is measured on the held-out folds (:mod:`dlrn.modeling.importance`).

The metrics' Youden cut-off of each model is chosen on its out-of-fold training
predictions, not on the refitted model's optimistic training predictions.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from dlrn.classifiers import (
    BEST_MODEL_RULE,
    CLASSIFIERS,
    check_classifier_names,
    grid_search,
    make_cv,
    pooled_auc_order,
    search_table,
)
from dlrn.errors import DlrnError, shown_items
from dlrn.modeling.importance import (
    IMPORTANCE_METHOD,
    IMPORTANCE_REPEATS,
    fold_permutation_importance,
)
from dlrn.notes import about
from dlrn.parallel import default_jobs
from dlrn.selection import (
    LassoSelector,
    SelectionPipeline,
    ZScore,
    make_selection_pipeline,
    pipeline_radscore,
    removed_features,
    selection_funnel,
)

logger = logging.getLogger(__name__)

DEFAULT_SELECTION = "default"
TRAIN = "train"
#: Set name of the out-of-fold training predictions where the metrics cut-off is chosen.
CV_SET = "train (out-of-fold)"
#: Set name of the refitted models' in-sample training predictions.
TRAIN_APPARENT = "train (apparent)"


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


def _one_block(X: pd.DataFrame) -> pd.DataFrame:
    """``X`` as one float64 block (same values).

    A table read column by column (``read_csv``, ``concat``) holds one block per
    column; every fold slice of it and every hash of it by the selection cache
    (``Pipeline(memory=...)``) then walks 1,500 blocks: 0.065 s per hash instead of
    0.010 s on 350 x 1500, paid for every grid point x fold.
    """
    return pd.DataFrame(X.to_numpy(dtype=np.float64), index=X.index, columns=X.columns)


def _fit_fold_models(
    model: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    n_jobs: int | None,
    fit_params: dict[str, Any],
) -> list[Pipeline]:
    """The tuned pipeline refitted on each fold's training part (selection from the cache)."""
    from sklearn.model_selection import cross_validate

    from dlrn.selection import SelectionWarning

    with warnings.catch_warnings():
        # the selection guard already warned; sklearn's ConvergenceWarning still shows
        warnings.simplefilter("ignore", SelectionWarning)
        fitted = cross_validate(
            model, X, y, cv=folds, return_estimator=True, n_jobs=n_jobs, params=fit_params
        )
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
    cv_metrics = table[out_of_fold].reset_index(drop=True)
    # the refitted models' own training predictions: in-sample, so labelled apparent
    table["set"] = table["set"].replace({TRAIN: TRAIN_APPARENT})
    return table[~out_of_fold].reset_index(drop=True), cv_metrics


def _tune(
    name: str,
    X: pd.DataFrame,
    y: pd.Series,
    folds: list[tuple[np.ndarray, np.ndarray]],
    classifiers: Sequence[str],
    grids: dict[str, dict[str, list[Any]]],
    progress: bool,
    estimators: Mapping[str, Any],
    **search_options: Any,
) -> tuple[dict[str, Pipeline], list[pd.DataFrame], dict[str, np.ndarray], dict[str, list]]:
    """Grid search, fold refits and out-of-fold scores of every classifier.

    Each fold's fitted selection is cached on disk (``Pipeline(memory=...)``) and
    reused across grid points and classifiers: it does not depend on them. BLAS
    runs single-threaded, as the models do: on small matrices its threads only
    spin against each other and the workers (the MLP's L-BFGS ran 10x slower with
    two BLAS threads on a busy 2-core machine).
    """
    from joblib import Memory
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    models, tables, oof, fold_models = {}, [], {}, {}
    with (
        tempfile.TemporaryDirectory(prefix="dlrn-selection-cache-") as cache,
        threadpool_limits(limits=1, user_api="blas"),
        about(name),  # a fold's selection is fitted once for every classifier (cached)
    ):
        memory = Memory(cache, verbose=0)
        bar = tqdm(classifiers, desc=f"{name}: grid search", disable=not progress, unit="model",
                   leave=False)
        for classifier in bar:
            bar.set_postfix_str(classifier)
            search = grid_search(
                classifier,
                X,
                y,
                cv=folds,
                grid=grids.get(classifier),
                memory=memory,
                estimator=estimators.get(classifier),
                **search_options,
            )
            tables.append(search_table(search, classifier))
            refit = clone(search.estimator).set_params(**search.best_params_)
            fold_models[classifier] = _fit_fold_models(
                refit, X, y, folds, search_options["n_jobs"], search_options["fit_params"]
            )
            oof[f"{name}-{classifier}"] = _out_of_fold(fold_models[classifier], X, folds)
            models[classifier] = search.best_estimator_.set_params(memory=None)
    return models, tables, oof, fold_models


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
    estimators: Mapping[str, Any] | None = None,
) -> FeatureSetResult:
    """Select features and tune each classifier on the training rows; predict every set.

    ``split`` holds ``"train"`` and other set names (``"test"``, external cohorts);
    ``groups`` (patient ids) makes the CV folds grouped when patients repeat.
    ``selection``: ``"default"`` (the study's recipe, :func:`make_selection_pipeline`),
    a selection Pipeline (cloned, e.g. with a ReproducibilityFilter first), or None
    (z-scoring only). ``grids`` overrides :data:`dlrn.classifiers.DEFAULT_GRIDS`
    per classifier; ``estimators`` replaces a classifier by an unfitted estimator of its
    own (the clinical models' LR: the clinical analysis' logistic regression). ``n_jobs``:
    parallel workers over grid points x folds (None: all cores); the results do not
    depend on it.
    """
    classifiers = check_classifier_names(list(classifiers))
    n_jobs = default_jobs() if n_jobs is None else n_jobs
    y = y.astype(int)
    check_modeling_inputs(X, y, split, groups)
    X = _one_block(X)
    y, split = y.loc[X.index], split.loc[X.index].astype(str)
    train = (split == TRAIN).to_numpy()
    X_train, y_train = X.loc[train], y.loc[train]
    groups_train = None if groups is None else groups.loc[X.index][train].to_numpy()
    folds = make_cv(y_train.to_numpy(), groups_train, n_splits=cv_folds, seed=seed)
    selection_step = _selection_step(selection, seed)
    fit_params = (
        {"selection__groups": groups_train}
        if isinstance(selection_step, SelectionPipeline) and groups_train is not None
        else {}
    )
    tuned = _tune(
        name,
        X_train,
        y_train,
        folds,
        classifiers,
        grids or {},
        progress,
        estimators or {},
        selection=selection_step,
        seed=seed,
        class_weight=class_weight,
        n_jobs=n_jobs,
        fit_params=fit_params,
    )
    models, tables, oof, fold_models = tuned
    grid_results = pd.concat(tables, ignore_index=True)
    chosen = grid_results[grid_results["chosen"]].reset_index(drop=True)
    chosen["oof_auc"] = [
        roc_auc_score(y_train, oof[f"{name}-{classifier}"]) for classifier in chosen["classifier"]
    ]
    best_model = chosen.loc[
        pooled_auc_order(chosen["classifier"], chosen["oof_auc"])[0], "classifier"
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
        best_params=chosen[["classifier", "params", "median_auc", "mean_auc", "sd_auc", "oof_auc"]],
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
            "estimators": {name: repr(e) for name, e in (estimators or {}).items()},
            "selection": _describe(selection_step),
            "n_features": X.shape[1],
            "n_train": int(train.sum()),
            "n_other": int((~train).sum()),
            "best_model_rule": BEST_MODEL_RULE,
            "importance": {
                "model": best_model,
                "method": IMPORTANCE_METHOD,
                "n_repeats": IMPORTANCE_REPEATS,
                "scoring": "roc_auc",
            },
        },
    )
