"""Time the whole selection + 7-classifier grid search (issue 4's performance target).

Synthetic stand-in for BUS-BRA radiomics: 1,300 training + 300 test cases x
1,600 features built from 40 latent factors (feature families of near-duplicate
columns, as wavelet/LoG variants of one statistic are), a third of them
log-normal (skewed), label ~1:3 from three factors. Prints the selection funnel,
the wall time of one selection fit, of the whole run, and the selection fits the
per-fold cache saved (an estimate: fits avoided x time of one fit). Then, for
the best model, the held-out-fold permutation importance that ``fit_feature_set``
reports, timed against sklearn's ``permutation_importance`` on the same held-out
folds (same numbers; dlrn stacks the repeats into one prediction call) and
against the earlier training-set importance (10 repeats), one worker each.

    nice -n 10 .venv/bin/python benchmarks/bench_modeling.py [--jobs 2] [--seed 0]

``--cohort busbra253`` (177 training cases x 1497 real features, ``real_cohort.py``;
``--features`` names the CSV) or ``busbra-all`` (1313 training images) instead times
``fit_feature_set`` as the hcr_models stage runs it (seven classifiers, default
grids, patient groups); ``--cohort planted`` times ``dlrn model`` on the planted
500 x 1500 cohort (``planted.py``) as a subprocess, CPU of it and its workers included.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.inspection import permutation_importance

from dlrn.classifiers import CLASSIFIERS, DEFAULT_GRIDS, make_cv
from dlrn.modeling import (
    IMPORTANCE_REPEATS,
    FeatureSetResult,
    fit_feature_set,
    fold_permutation_importance,
)
from dlrn.selection import make_selection_pipeline, selection_funnel


def synthetic_radiomics(
    n_train: int = 1300,
    n_test: int = 300,
    n_features: int = 1600,
    n_factors: int = 40,
    seed: int = 0,
):
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    factors = rng.normal(size=(n, n_factors))
    family = rng.integers(0, n_factors, n_features)  # each feature mostly reflects one factor
    loadings = rng.uniform(0.5, 1.0, n_features)
    noise_sd = rng.uniform(0.05, 1.0, n_features)  # small noise -> near-duplicate columns
    values = factors[:, family] * loadings + rng.normal(size=(n, n_features)) * noise_sd
    skewed = rng.random(n_features) < 1 / 3
    values[:, skewed] = np.exp(values[:, skewed] / 2)
    logit = -1.6 + 0.9 * factors[:, 0] - 0.7 * factors[:, 1] + 0.5 * factors[:, 2]
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    ids = pd.Index([f"case{i:05d}" for i in range(n)], name="case_id")
    X = pd.DataFrame(values, index=ids, columns=[f"feature_{j:04d}" for j in range(n_features)])
    y = pd.Series(label, index=ids)
    split = pd.Series(["train"] * n_train + ["test"] * n_test, index=ids)
    return X, y, split


def time_real(cohort: str, features: Path | None, jobs: int, baseline: bool) -> None:
    """One hcr_models-like fit on real BUS-BRA features: wall time, choices, test AUCs.

    ``baseline``: first the same fit with the MLP/SVM settings of commit d40fd56, in the
    same process, then today's; the ratio and the largest test-probability difference.
    """
    from real_cohort import busbra_all, busbra_subset

    X, y, split, patients = busbra_subset(features) if cohort == "busbra253" else busbra_all()
    print(
        f"{cohort}: {(split == 'train').sum()} training cases x {X.shape[1]} features; "
        f"jobs={jobs}"
    )
    runs = {}
    for label in ("old", "new") if baseline else ("new",):
        with classifier_settings(label):
            runs[label] = _timed_fit(X, y, split, patients, jobs, label)
    if baseline:
        old, new = runs["old"], runs["new"]
        scores = new[0].predictions.filter(like="HCR-")
        delta = (scores - old[0].predictions[scores.columns]).abs().max()
        print(f"max |new - old probability| per model, all rows:\n{delta.round(4).to_string()}")
        print(
            f"ratio old / new: wall {old[1] / new[1]:.2f}x, CPU (main + workers) "
            f"{old[2] / new[2]:.2f}x"
        )


@contextmanager
def classifier_settings(label: str) -> Iterator[None]:
    """``old``: make_classifier as of commit d40fd56 (bench_classifier_grid.old_classifier)."""
    import bench_classifier_grid

    import dlrn.classifiers

    if label == "old":
        bench_classifier_grid.use_old_settings()
    try:
        yield
    finally:
        dlrn.classifiers.make_classifier = bench_classifier_grid.CURRENT_MAKE_CLASSIFIER


def _timed_fit(X, y, split, patients, jobs: int, label: str):
    load = os.getloadavg()[0]
    workers_before = _worker_cpu()
    wall, cpu = time.perf_counter(), time.process_time()
    result = fit_feature_set("HCR", X, y, split, groups=patients, n_jobs=jobs, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    workers = _worker_cpu() - workers_before
    print(f"--- {label} settings")
    print(result.best_params.to_string(index=False))
    test = result.metrics[result.metrics["set"] == "test"].set_index("model")["auc"]
    print(test.round(3).to_string())
    print(f"selected {len(result.selected_features)} features; best model {result.best_model}")
    print(
        f"fit_feature_set, seven classifiers ({label} settings): wall {wall:.1f} s, CPU "
        f"{cpu:.1f} s main process + {workers:.1f} s workers, load average before "
        f"{load:.1f}, after {os.getloadavg()[0]:.1f}"
    )
    return result, wall, cpu + workers


def _worker_cpu() -> float:
    """CPU seconds of all exited joblib workers so far (this process's children)."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_planted_cli(jobs: int, baseline: bool) -> None:
    """``dlrn model`` on the planted cohort, as a user runs it (``baseline``: old settings
    first, each in its own subprocess, then today's)."""
    from planted import write_planted

    folder = Path(tempfile.mkdtemp(prefix="dlrn-planted-"))
    features, cohort = write_planted(folder / "data", seed=0)
    runs = {
        label: _run_planted(folder, features, cohort, jobs, label)
        for label in (("old", "new") if baseline else ("new",))
    }
    if baseline:
        (old, old_wall, old_cpu), (new, new_wall, new_cpu) = runs["old"], runs["new"]
        scores = [column for column in new if column.startswith("HCR-")]
        delta = (new[scores] - old[scores]).abs().max()
        print(f"max |new - old probability| per model, all rows:\n{delta.round(4).to_string()}")
        print(f"ratio old / new: wall {old_wall / new_wall:.2f}x, CPU {old_cpu / new_cpu:.2f}x")


def _run_planted(folder: Path, features: Path, cohort: Path, jobs: int, label: str):
    patch = (
        f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_classifier_grid; "
        "bench_classifier_grid.use_old_settings(); "
        if label == "old"
        else ""
    )
    out = folder / f"out-{label}"
    load = os.getloadavg()[0]
    command = [
        sys.executable,
        "-c",
        f"import sys; {patch}from dlrn.cli import main; sys.exit(main())",
        "model",
        str(features),
        "--cohort",
        str(cohort),
        "--split-column",
        "set",
        "--out",
        str(out),
        "--jobs",
        str(jobs),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    selected = pd.read_csv(out / "selected_features.csv")["feature"]
    informative = selected.str.startswith("informative").sum()
    metrics = pd.read_csv(out / "metrics.csv")
    test = metrics[metrics["set"] == "test"].set_index("model")["auc"]
    print(f"--- {label} settings")
    print(test.round(3).to_string())
    print(
        f"dlrn model, planted 500 x 1500, jobs={jobs} ({label} settings): wall {wall:.1f} s, "
        f"CPU {cpu:.1f} s (process + workers); selected {len(selected)} ({informative} "
        f"informative); load average before {load:.1f}, after {os.getloadavg()[0]:.1f}"
    )
    return pd.read_csv(out / "predictions.csv"), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cohort", default="synthetic", choices=["synthetic", "busbra253", "busbra-all", "planted"]
    )
    parser.add_argument("--features", type=Path, default=None)
    parser.add_argument(
        "--baseline", action="store_true", help="also time the old MLP/SVM settings (d40fd56)"
    )
    args = parser.parse_args()
    if args.cohort == "planted":
        return time_planted_cli(args.jobs, args.baseline)
    if args.cohort != "synthetic":
        return time_real(args.cohort, args.features, args.jobs, args.baseline)
    X, y, split = synthetic_radiomics(seed=args.seed)
    train = split == "train"
    print(
        f"data: {train.sum()} training + {(~train).sum()} test cases x {X.shape[1]} features, "
        f"{y[train].mean():.0%} positive; jobs={args.jobs}"
    )

    start = time.perf_counter()
    selection = make_selection_pipeline(seed=args.seed).fit(X[train], y[train])
    one_selection = time.perf_counter() - start
    print(selection_funnel(selection).to_string(index=False))
    print(f"one selection fit on the training set: {one_selection:.1f} s")

    start = time.perf_counter()
    result = fit_feature_set("HCR", X, y, split, seed=args.seed, n_jobs=args.jobs, progress=True)
    total = time.perf_counter() - start
    points = sum(np.prod([len(v) for v in DEFAULT_GRIDS[c].values()]) for c in CLASSIFIERS)
    uncached_fits = points * 5 + len(CLASSIFIERS) * (1 + 5)  # grid x folds + refit + OOF folds
    cached_fits = 5 + 1
    print(result.best_params.to_string(index=False))
    test = result.metrics[result.metrics["set"] == "test"][["model", "auc"]]
    print(test.to_string(index=False))
    print(
        f"whole selection + 7-classifier grid search ({points} grid points x 5 folds): "
        f"{total:.1f} s = {total / 60:.1f} min"
    )
    saved = (uncached_fits - cached_fits) * one_selection / args.jobs
    print(
        f"selection fits: {cached_fits} with the per-fold cache vs {uncached_fits} without; "
        f"estimated run without the cache: {total + saved:.0f} s "
        f"(ratio {(total + saved) / total:.1f}x)"
    )
    compare_importance(result, X[train], y[train], args.seed)


def _sklearn_fold_importance(fold_models, X, y, folds, seed: int) -> float:
    """Seconds for sklearn's permutation_importance on the same held-out folds (baseline)."""
    start = time.perf_counter()
    for model, (_, validation) in zip(fold_models, folds, strict=True):
        selected = model["selection"].transform(X.iloc[validation])
        permutation_importance(
            model["classifier"],
            selected,
            y.iloc[validation],
            scoring="roc_auc",
            n_repeats=IMPORTANCE_REPEATS,
            random_state=seed,
        )
    return time.perf_counter() - start


def compare_importance(result: FeatureSetResult, X: pd.DataFrame, y: pd.Series, seed: int) -> None:
    """Held-out-fold importance as dlrn computes it vs sklearn on the same folds vs the
    earlier training-set importance; one worker each, same process."""
    best = result.models[result.best_model]
    folds = make_cv(y.to_numpy(), n_splits=result.settings["cv_folds"], seed=seed)
    fold_models = [clone(best).fit(X.iloc[train], y.iloc[train]) for train, _ in folds]
    start = time.perf_counter()
    held_out = fold_permutation_importance(
        fold_models,
        X,
        y,
        folds,
        final_features=best["selection"].get_feature_names_out(),
        seed=seed,
        n_jobs=1,
    )
    dlrn_seconds = time.perf_counter() - start
    sklearn_seconds = _sklearn_fold_importance(fold_models, X, y, folds, seed)
    start = time.perf_counter()
    selected = best["selection"].transform(X)
    on_training = permutation_importance(
        best["classifier"], selected, y, scoring="roc_auc", n_repeats=10, random_state=seed
    )
    training_seconds = time.perf_counter() - start
    print(
        f"importance of {result.best_model} ({IMPORTANCE_REPEATS} repeats x {len(folds)} "
        f"held-out folds, {len(held_out)} features kept by >= 1 fold), 1 worker: dlrn "
        f"{dlrn_seconds:.1f} s, sklearn permutation_importance on the same folds "
        f"{sklearn_seconds:.1f} s ({sklearn_seconds / dlrn_seconds:.1f}x); earlier "
        f"training-set importance (10 repeats, {selected.shape[1]} features) "
        f"{training_seconds:.1f} s"
    )
    print(
        f"largest mean AUC drop: held-out folds {held_out['importance_mean'].max():.4f}, "
        f"training set {on_training.importances_mean.max():.4f}"
    )
    print(held_out.head(10).drop(columns=[c for c in held_out if c.startswith("fold")]))


if __name__ == "__main__":
    main()
