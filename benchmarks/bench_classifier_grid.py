"""Where the seven-classifier grid search spends its time, and old vs new MLP/SVM settings.

The selection does not depend on classifier parameters, so each fold's selection is
fitted once (as ``fit_feature_set`` caches it) and the classifiers are then fitted on
the selected features directly: for every classifier, grid point and fold, the CPU
seconds of the fit, and for the MLP its L-BFGS iterations and whether it converged.
``--compare`` fits the MLP and SVM grids with the settings of commit ``d40fd56``
("old") and with today's ``make_classifier`` ("new") in one process, picks the grid
point by the median-AUC rule as ``grid_search`` does, refits it on the whole training
set and prints the chosen points and the largest |difference| of test probabilities.

    cd benchmarks
    nice -n 10 python bench_classifier_grid.py --cohort planted|busbra253|busbra-all \
        [--classifiers MLP,SVM] [--compare]
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import ParameterGrid
from threadpoolctl import threadpool_limits

from dlrn import classifiers as dlrn_classifiers
from dlrn.classifiers import CLASSIFIERS, DEFAULT_GRIDS, make_cv, median_auc_order
from dlrn.selection import make_selection_pipeline

#: Today's make_classifier, kept before any benchmark swaps in the old settings.
CURRENT_MAKE_CLASSIFIER = dlrn_classifiers.make_classifier
CACHE = Path(os.environ.get("DLRN_BENCH_CACHE", "/tmp/dlrn-bench-selected"))


def cohort_data(cohort: str):
    """(X, y, split, groups) as the benchmarks of bench_modeling.py build them."""
    if cohort == "planted":
        from planted import planted_cohort

        X, y, split = planted_cohort(seed=0)
        return X, y, split, None
    from real_cohort import busbra_all, busbra_subset

    return busbra_subset() if cohort == "busbra253" else busbra_all()


def selected_matrices(cohort: str, seed: int = 0) -> dict:
    """Per fold (and for the whole training set) the selected features, cached on disk."""
    path = CACHE / f"{cohort}-seed{seed}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    X, y, split, groups = cohort_data(cohort)
    train = (split == "train").to_numpy()
    X_train, y_train = X[train], y[train].astype(int)
    groups_train = None if groups is None else groups[train].to_numpy()
    folds = make_cv(y_train.to_numpy(), groups_train, seed=seed)
    parts = []
    for rows in [*(fit_rows for fit_rows, _ in folds), np.arange(len(y_train))]:
        selection = make_selection_pipeline(seed=seed)
        fit_groups = None if groups_train is None else groups_train[rows]
        selection.fit(X_train.iloc[rows], y_train.iloc[rows], groups=fit_groups)
        parts.append(selection)
    data = {
        "folds": [
            (
                parts[i].transform(X_train.iloc[fit]).to_numpy(),
                y_train.iloc[fit].to_numpy(),
                parts[i].transform(X_train.iloc[val]).to_numpy(),
                y_train.iloc[val].to_numpy(),
            )
            for i, (fit, val) in enumerate(folds)
        ],
        "train": (parts[-1].transform(X_train).to_numpy(), y_train.to_numpy()),
        "test": parts[-1].transform(X[~train]).to_numpy(),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data))
    return data


def _fit_one(model, X, y) -> tuple[object, float]:
    start = time.process_time()
    model.fit(X, y)
    return model, time.process_time() - start


def _convergence(model) -> tuple[int | None, bool | None]:
    """L-BFGS iterations and convergence of an MLP (None for other models)."""
    network = getattr(model, "n_iter_", None)
    if network is None or not hasattr(model, "coefs_"):
        return None, None
    return int(model.n_iter_), int(model.n_iter_) < model.max_iter


def profile_grid(name: str, data: dict, make) -> pd.DataFrame:
    """One row per grid point x fold: CPU seconds, fold AUC, MLP iterations."""
    rows = []
    for number, point in enumerate(ParameterGrid(DEFAULT_GRIDS[name])):
        for fold, (X_fit, y_fit, X_val, y_val) in enumerate(data["folds"], start=1):
            model, cpu = _fit_one(make(name).set_params(**point), X_fit, y_fit)
            iterations, converged = _convergence(model)
            auc = roc_auc_score(y_val, model.predict_proba(X_val)[:, 1])
            rows.append(
                dict(classifier=name, point=number, params=str(point), fold=fold, cpu_s=cpu,
                     auc=auc, n_iter=iterations, converged=converged)
            )
    return pd.DataFrame(rows)


def chosen_point(table: pd.DataFrame) -> int:
    """The grid point grid_search keeps: best median fold AUC, then mean, then grid order."""
    scores = table.pivot(index="point", columns="fold", values="auc")
    order = median_auc_order(scores.median(axis=1), scores.mean(axis=1))
    return int(scores.index[order[0]])


def refit_test(name: str, data: dict, make, point: int) -> tuple[np.ndarray, float, object]:
    params = list(ParameterGrid(DEFAULT_GRIDS[name]))[point]
    model, cpu = _fit_one(make(name).set_params(**params), *data["train"])
    return model.predict_proba(data["test"])[:, 1], cpu, model


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    by_point = table.groupby(["classifier", "point", "params"], sort=False)
    summary = by_point.agg(cpu_s=("cpu_s", "sum"), median_auc=("auc", "median"),
                           mean_auc=("auc", "mean"))
    summary["n_iter"] = by_point["n_iter"].agg(
        lambda n: "/".join(str(int(v)) for v in n) if n.notna().all() else ""
    )
    summary["not_converged"] = by_point["converged"].agg(lambda c: int((c == False).sum()))  # noqa: E712
    return summary.reset_index()


def old_classifier(name: str, seed: int = 0, class_weight=None):
    """The MLP and SVM as commit d40fd56 built them (the baseline of --compare)."""
    if name == "MLP":
        from sklearn.neural_network import MLPClassifier

        network = MLPClassifier if class_weight is None else dlrn_classifiers.BalancedMLPClassifier
        return network(solver="lbfgs", max_iter=2000, random_state=seed)
    if name == "SVM":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        svm = SVC(class_weight=class_weight, random_state=seed)
        return CalibratedClassifierCV(svm, method="sigmoid", cv=5, ensemble=False)
    return CURRENT_MAKE_CLASSIFIER(name, seed, class_weight)


def use_old_settings() -> None:
    """Make grid_search (and so fit_feature_set, dlrn model) build the old MLP and SVM."""
    dlrn_classifiers.make_classifier = old_classifier


def compare(name: str, data: dict) -> None:
    results = {}
    for label, make in (("old", old_classifier), ("new", CURRENT_MAKE_CLASSIFIER)):
        table = profile_grid(name, data, make)
        point = chosen_point(table)
        test, refit_cpu, model = refit_test(name, data, make, point)
        results[label] = (table, point, test)
        print(f"\n{name} {label}: grid CPU {table['cpu_s'].sum():.2f} s + refit {refit_cpu:.2f} s;"
              f" chosen point {point} {table.loc[table['point'] == point, 'params'].iloc[0]};"
              f" refit iterations {_convergence(model)}")
        print(summarise(table).round(4).to_string(index=False))
    (old, old_point, old_test), (new, new_point, new_test) = results["old"], results["new"]
    delta_auc = (new.set_index(["point", "fold"])["auc"] - old.set_index(["point", "fold"])["auc"])
    print(
        f"{name}: chosen point old {old_point} / new {new_point}; max |delta fold AUC| "
        f"{delta_auc.abs().max():.4f}; max |delta test probability| "
        f"{np.abs(new_test - old_test).max():.4f}; CPU ratio old/new "
        f"{old['cpu_s'].sum() / new['cpu_s'].sum():.2f}x; load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cohort", default="planted", choices=["planted", "busbra253", "busbra-all"]
    )
    parser.add_argument("--classifiers", default=",".join(CLASSIFIERS))
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)  # counted in the tables instead
    names = args.classifiers.split(",")
    with threadpool_limits(limits=1, user_api="blas"):
        data = selected_matrices(args.cohort)
        X_train, _ = data["train"]
        print(f"{args.cohort}: {X_train.shape[0]} training cases x {X_train.shape[1]} selected "
              f"features (fold models: {[f[0].shape[1] for f in data['folds']]}); "
              f"load average {os.getloadavg()[0]:.1f}")
        if args.compare:
            for name in names:
                compare(name, data)
            return
        tables = [profile_grid(name, data, CURRENT_MAKE_CLASSIFIER) for name in names]
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(CACHE / f"profile-{args.cohort}.csv", index=False)
    print(summarise(table).round(4).to_string(index=False))
    print(table.groupby("classifier", sort=False)["cpu_s"].sum().round(2).to_string())
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
