"""The study's seven classifiers, their default grids, and the median-AUC grid search.

Tuning follows the study: 5-fold cross-validation on the training set (stratified
by label; grouped by patient when a patient has several cases), scored by ROC
AUC, and the parameters with the best *median* fold AUC are refitted on the whole
training set (ties, to 10 decimals: higher mean AUC, then grid order). Class imbalance is handled
by class weights when asked, never by oversampling. Every model is seeded and
single-threaded; parallelism is over folds x grid points (joblib ``n_jobs``), so
one seed gives the same numbers on any number of workers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight
from xgboost import XGBClassifier

from dlrn.errors import ConfigError, DlrnError

CLASSIFIERS: tuple[str, ...] = (
    "LR",
    "SVM",
    "RandomForest",
    "ExtraTrees",
    "XGBoost",
    "LightGBM",
    "MLP",
)

#: Small grids (4-6 points each, 32 in all) so that the 7-classifier search on
#: ~1,300 cases x ~20 selected features takes minutes on 2 CPU cores. The SVM is
#: an RBF SVC inside a sigmoid (Platt) calibrator, hence the ``estimator__`` keys.
DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "LR": {"C": [0.01, 0.1, 1.0, 10.0]},
    "SVM": {"estimator__C": [0.1, 1.0, 10.0], "estimator__gamma": ["scale", 0.01]},
    "RandomForest": {"max_depth": [None, 6], "min_samples_leaf": [1, 5]},
    "ExtraTrees": {"max_depth": [None, 6], "min_samples_leaf": [1, 5]},
    "XGBoost": {"max_depth": [2, 4], "learning_rate": [0.03, 0.1]},
    "LightGBM": {"num_leaves": [7, 15], "learning_rate": [0.03, 0.1]},
    "MLP": {"hidden_layer_sizes": [(32,), (64, 32)], "alpha": [1e-2, 1.0, 10.0]},
}

CLASS_WEIGHTS = (None, "balanced")

#: L-BFGS iteration (and function-evaluation) cap of the MLP: high enough that every
#: default grid point stops on its own criteria. At alpha 1-10 the ReLU network's loss
#: creeps down for 1,000-3,600 iterations before scipy's relative-reduction test stops it;
#: the old cap of 2,000 cut some folds off mid-way, so their fold AUCs (and which point
#: won) depended on the cap. Fits that converged under 2,000 are unchanged
#: (benchmarks/README.md, "MLP and SVM settings").
MLP_MAX_ITER = 20_000


class BalancedXGBClassifier(XGBClassifier):
    """XGBoost with ``scale_pos_weight`` = negatives / positives of the rows it is fitted on.

    Computed at every fit, so inside CV each fold uses its own class ratio.
    """

    def fit(self, X: Any, y: Any, **kwargs: Any) -> BalancedXGBClassifier:
        labels = np.asarray(y)
        self.scale_pos_weight = float((labels == 0).sum() / max((labels == 1).sum(), 1))
        return super().fit(X, y, **kwargs)


class BalancedMLPClassifier(MLPClassifier):
    """MLP with balanced sample weights (sklearn's MLP has no ``class_weight``)."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BalancedMLPClassifier:
        if sample_weight is None:
            sample_weight = compute_sample_weight("balanced", y)
        return super().fit(X, y, sample_weight=sample_weight)


def make_classifier(name: str, seed: int = 0, class_weight: str | None = None) -> BaseEstimator:
    """An unfitted, seeded, single-threaded classifier with probability outputs."""
    if class_weight not in CLASS_WEIGHTS:
        raise ConfigError(f"class_weight {class_weight!r} is not one of None, 'balanced'")
    balanced = class_weight == "balanced"
    if name == "LR":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=5000, class_weight=class_weight, random_state=seed)
    if name == "SVM":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        # Platt-scaled probabilities: what SVC(probability=True) did before sklearn 1.9
        # deprecated it (internal 5-fold, unshuffled, hence deterministic).
        svm = SVC(class_weight=class_weight, random_state=seed)
        return CalibratedClassifierCV(svm, method="sigmoid", cv=5, ensemble=False)
    if name in ("RandomForest", "ExtraTrees"):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        forest = RandomForestClassifier if name == "RandomForest" else ExtraTreesClassifier
        return forest(n_estimators=300, class_weight=class_weight, random_state=seed, n_jobs=1)
    if name == "XGBoost":
        booster = BalancedXGBClassifier if balanced else XGBClassifier
        return booster(
            n_estimators=200,
            tree_method="hist",
            eval_metric="logloss",
            random_state=seed,
            n_jobs=1,
            verbosity=0,
        )
    if name == "LightGBM":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            n_estimators=200,
            class_weight=class_weight,
            random_state=seed,
            n_jobs=1,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
    if name == "MLP":
        # L-BFGS, not Adam with early stopping: early stopping holds out 10 % of an
        # already small training set and can stop at an inverted state (AUC < 0.5).
        network = BalancedMLPClassifier if balanced else MLPClassifier
        return network(
            solver="lbfgs", max_iter=MLP_MAX_ITER, max_fun=MLP_MAX_ITER, random_state=seed
        )
    raise ConfigError(f"unknown classifier {name!r}; choose from {', '.join(CLASSIFIERS)}")


def check_classifier_names(names: Sequence[str]) -> tuple[str, ...]:
    """Validate a user's classifier list (e.g. from ``--classifiers LR,SVM``)."""
    unknown = [name for name in names if name not in CLASSIFIERS]
    if unknown or not names:
        raise ConfigError(f"unknown classifier(s) {unknown}; choose from {', '.join(CLASSIFIERS)}")
    return tuple(names)


def make_cv(
    y: Any, groups: Any = None, *, n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold splits, grouped by patient when any patient has several cases.

    Returned as a list so every classifier (and the out-of-fold predictions) uses
    exactly the same folds.
    """
    labels = np.asarray(y)
    smallest = int(np.bincount(labels.astype(int)).min()) if len(labels) else 0
    if smallest < n_splits:
        raise DlrnError(
            f"{n_splits}-fold CV needs at least {n_splits} training cases of each "
            f"class; the smaller class has {smallest}"
        )
    grouped = groups is not None and pd.Series(np.asarray(groups)).duplicated().any()
    if grouped:
        splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(labels)), labels, np.asarray(groups)))
    splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def _fold_scores(cv_results: Mapping[str, Any]) -> np.ndarray:
    """Candidates x folds matrix of test-fold scores."""
    n_splits = sum(key.startswith("split") and key.endswith("_test_score") for key in cv_results)
    return np.column_stack([cv_results[f"split{i}_test_score"] for i in range(n_splits)])


#: AUCs equal to this many decimals are ties. An AUC is a count of ordered pairs over
#: n_pos x n_neg, so two models can have the very same AUC, computed with a last-digit
#: difference (summation order); without rounding that noise, not the rule, decides.
AUC_DECIMALS = 10


def median_auc_order(median: Any, mean: Any) -> np.ndarray:
    """Positions best first: higher median AUC, then higher mean AUC, then earlier position."""
    median = np.round(np.asarray(median, dtype=float), AUC_DECIMALS)
    mean = np.round(np.asarray(mean, dtype=float), AUC_DECIMALS)
    return np.lexsort((np.arange(len(median)), -mean, -median))


#: How fit_feature_set chooses the best model (for the report's methods text).
BEST_MODEL_RULE = (
    "the classifier with the highest pooled out-of-fold ROC AUC over all training cases "
    "(every training case scored by the fold model that did not train on it); ties (to "
    f"{AUC_DECIMALS} decimals) go to the simpler model, in the order {', '.join(CLASSIFIERS)}. "
    "Within each classifier the grid point with the best median fold AUC is kept (then the "
    "best mean, then grid order). The test set plays no part in either choice."
)


def pooled_auc_order(names: Sequence[str], pooled_auc: Any) -> np.ndarray:
    """Positions best first: higher pooled out-of-fold AUC, then the simpler classifier.

    The pooled AUC ranks all training cases together, so it is steadier than the
    median of five fold AUCs on a small cohort (issue 10: on 177 training cases the
    median rule chose models 0.03 AUC worse on the test sets on average).
    """
    auc = np.round(np.asarray(pooled_auc, dtype=float), AUC_DECIMALS)
    simplicity = [CLASSIFIERS.index(name) for name in names]
    return np.lexsort((simplicity, -auc))


def best_median_index(cv_results: Mapping[str, Any]) -> int:
    """GridSearchCV ``refit`` callable: best median fold score, then best mean, then grid order."""
    scores = _fold_scores(cv_results)
    return int(median_auc_order(np.median(scores, axis=1), scores.mean(axis=1))[0])


def grid_search(
    name: str,
    X: Any,
    y: Any,
    *,
    cv: Sequence[tuple[np.ndarray, np.ndarray]],
    selection: BaseEstimator | None = None,
    grid: Mapping[str, list[Any]] | None = None,
    seed: int = 0,
    class_weight: str | None = None,
    n_jobs: int | None = None,
    memory: Any = None,
    fit_params: Mapping[str, Any] | None = None,
    estimator: BaseEstimator | None = None,
) -> GridSearchCV:
    """Fit a median-AUC grid search of ``selection -> classifier`` on the training rows.

    ``estimator`` replaces the classifier ``name`` would make (with ``grid`` over its own
    parameters; without, at its parameters only).

    The selection step sits inside the pipeline, so it is refitted in every fold
    (with ``memory`` the fitted selection of a fold is cached and reused across
    grid points and classifiers: it does not depend on classifier parameters).
    ``fit_params`` go to the pipeline's ``fit``, sliced to each fold's rows
    (e.g. ``{"selection__groups": patient_ids}``).
    """
    steps = [] if selection is None else [("selection", selection)]
    if estimator is None:
        steps.append(("classifier", make_classifier(name, seed, class_weight)))
        grid = DEFAULT_GRIDS[name] if grid is None else grid
    else:
        steps.append(("classifier", clone(estimator)))
        grid = {} if grid is None else grid
    search = GridSearchCV(
        Pipeline(steps, memory=memory),
        {f"classifier__{key}": list(values) for key, values in grid.items()},
        scoring="roc_auc",
        cv=list(cv),
        refit=best_median_index,
        n_jobs=n_jobs,
        error_score="raise",
    )
    return search.fit(X, y, **(fit_params or {}))


def search_table(search: GridSearchCV, name: str) -> pd.DataFrame:
    """One row per grid point: parameters, fold AUCs, median/mean/SD, and which was chosen."""
    scores = _fold_scores(search.cv_results_)
    params = [
        json.dumps(
            {key.removeprefix("classifier__"): value for key, value in point.items()}, default=str
        )
        for point in search.cv_results_["params"]
    ]
    table = pd.DataFrame(scores, columns=[f"fold{i + 1}_auc" for i in range(scores.shape[1])])
    table.insert(0, "params", params)
    table.insert(0, "classifier", name)
    table["median_auc"] = np.median(scores, axis=1)
    table["mean_auc"] = scores.mean(axis=1)
    table["sd_auc"] = scores.std(axis=1, ddof=1)
    table["chosen"] = np.arange(len(table)) == search.best_index_
    return table
