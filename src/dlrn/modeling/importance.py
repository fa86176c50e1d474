"""Permutation importance of a tuned model on the held-out folds of the training set.

Each of the K fold models (selection + classifier with the chosen parameters,
fitted on the other K-1 folds) is scored on its own validation fold, so an
overfitted model cannot hide behind a perfect training AUC, and the test set
stays untouched. Selection runs inside each fold, so each fold permutes the
features it kept; a feature a fold dropped cannot change that fold's predictions
and counts as 0 there (which is exactly the pipeline's importance for that raw
column). The table reports mean and SD over folds and how many folds kept each
feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from dlrn.errors import DlrnError

#: Shuffles per feature and fold: 5 x K folds = 25 AUC drops per feature by default.
IMPORTANCE_REPEATS = 5
IMPORTANCE_METHOD = (
    "permutation importance on the held-out fold of each training-set CV split "
    "(features a fold did not select count as 0)"
)


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
    from threadpoolctl import threadpool_limits

    if len(fold_models) != len(folds):
        raise DlrnError(f"{len(fold_models)} fold models for {len(folds)} folds")
    with threadpool_limits(limits=1, user_api="blas"):  # see dlrn.modeling.fit._tune
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


IMPORTANCE_FIGURE_ROWS = 30


def plot_importance(
    importance: pd.DataFrame, stem: Path, *, title: str, max_features: int = IMPORTANCE_FIGURE_ROWS
) -> list[Path]:
    """Bars of mean AUC drop (+/- SD over folds), most important on top, folds kept in the label.

    ``importance`` as from :func:`fold_permutation_importance`; only the first
    ``max_features`` rows are drawn (the table has them all).
    """
    import matplotlib
    from matplotlib.figure import Figure

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
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(7.0, 1.4 + 0.2 * len(rows)), layout="constrained")
        axes = figure.subplots()
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
