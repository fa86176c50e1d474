"""Selection speed and quality: the nested glmnet-style LASSO against the LassoCV path it replaced.

Real cohort: BUS-BRA, one image per patient, 253 patients -> 177 training cases x
1497 seed-preset features (``real_cohort.py``). Planted cohort: 500 x 1500,
5 informative features (``planted.py``). For each, one fit of

- ``before``: the selection module of commit ``--before`` (LassoCV, filters fitted
  once on all training rows, Shapiro -> t / Mann-Whitney), loaded from git into
  this process;
- ``same recipe``: today's code with that recipe (``nested=False``,
  ``univariate_test="auto"``): same features, same lambda grid and folds, LARS
  instead of coordinate descent, so its lambda.min and selection should match;
- ``default``: today's defaults (nested LASSO, t-test).

Wall and CPU seconds of this process (the machine is shared: CPU time is the
steadier figure). Then planted-cohort quality over ``--seeds``: informative and
noise features kept, LR test AUC (``fit_feature_set``, LR only) next to the AUC
of the true model on the same test cases, and the noise-only cohort's test AUC.

    nice -n 10 python benchmarks/bench_selection.py --features busbra253-seed.csv --seeds 5
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from planted import INFORMATIVE, INFORMATIVE_NAMES, planted_cohort
from real_cohort import busbra_all, busbra_subset
from sklearn.metrics import roc_auc_score

from dlrn.modeling import fit_feature_set
from dlrn.selection import make_selection_pipeline, selection_funnel

REPO = Path(__file__).resolve().parents[1]


def selection_before(commit: str):
    """The single-file ``dlrn/selection.py`` of ``commit`` as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{commit}:src/dlrn/selection.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "dlrn_selection_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("dlrn_selection_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(build, X, y):
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = build().fit(X, y)
    return fitted, time.perf_counter() - wall, time.process_time() - cpu


def compare(title: str, X: pd.DataFrame, y: pd.Series, before, **recipe) -> None:
    """One fit each of the old path, today's code on the old recipe, today's defaults."""
    print(f"\n== {title}: {len(X)} training cases x {X.shape[1]} features {recipe or ''}")
    runs = {
        "before": lambda: before.make_selection_pipeline(seed=0, **recipe),
        "same recipe": lambda: make_selection_pipeline(
            nested=False, univariate_test="auto", **recipe
        ),
        "default": lambda: make_selection_pipeline(**recipe),
    }
    fitted = {}
    for name, build in runs.items():
        pipeline, wall, cpu = timed(build, X, y)
        fitted[name] = pipeline
        lasso = pipeline[-1]
        chosen = getattr(lasso, "alpha_min_", lasso.alpha_)
        print(
            f"{name:12s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  LASSO in {lasso.n_features_in_:4d}"
            f"  selected {int(lasso.support_.sum()):3d}  lambda.min {chosen:.5g}"
        )
    print(selection_funnel(fitted["default"]).to_string(index=False))
    sets = {name: set(p.get_feature_names_out()) for name, p in fitted.items()}
    for name in ("same recipe", "default"):
        gained, lost = sets[name] - sets["before"], sets["before"] - sets[name]
        print(
            f"{name} vs before: {len(gained)} added {sorted(gained)[:8]}, "
            f"{len(lost)} dropped {sorted(lost)[:8]}"
        )


def planted_quality(seeds: int) -> None:
    """Per seed and rule: features kept, LR test AUC, and two yardsticks on the same test
    cases: the true model (true coefficients) and the oracle LR (the five informative
    features given, no selection: what a perfect selection could reach)."""
    print(f"\n== planted cohort quality over {seeds} seeds (500 x 1500, 350 training)")
    print("seed rule  informative noise  LR-test-AUC  oracle-LR-AUC  true-model-AUC"
          "  noise-only-test-AUC")
    rows = []
    for seed in range(seeds):
        X, y, split = planted_cohort(seed=seed)
        test = (split == "test").to_numpy()
        truth = X.loc[test, INFORMATIVE_NAMES].to_numpy() @ np.asarray(INFORMATIVE)
        oracle = _test_auc(_lr(X[INFORMATIVE_NAMES], y, split, None))
        for rule in ("min", "1se"):
            result = _lr(X, y, split, rule)
            kept = set(result.selected_features)
            informative = len(kept & set(INFORMATIVE_NAMES))
            noise = _lr(*planted_cohort(seed=seed, noise_only=True), rule)
            rows.append({"rule": rule, "informative": informative,
                         "noise": len(kept) - informative, "lr": _test_auc(result),
                         "oracle": oracle, "truth": roc_auc_score(y[test], truth),
                         "noise_only": _test_auc(noise)})
            row = rows[-1]
            print(f"{seed:4d} {rule:4s}  {informative:6d} {row['noise']:10d}  {row['lr']:10.3f}"
                  f"  {oracle:12.3f}  {row['truth']:13.3f}  {row['noise_only']:18.3f}",
                  flush=True)
    table = pd.DataFrame(rows)
    print("\nmeans over seeds (noise: mean, max; seeds with all 5 informative kept):")
    for rule, part in table.groupby("rule", sort=False):
        print(f"  {rule:4s} informative {part['informative'].mean():.2f} "
              f"(all 5 in {(part['informative'] == 5).sum()}/{len(part)}), noise "
              f"{part['noise'].mean():.1f} (max {part['noise'].max()}), "
              f"LR {part['lr'].mean():.3f}, "
              f"oracle LR {part['oracle'].mean():.3f}, true model {part['truth'].mean():.3f}, "
              f"noise-only {part['noise_only'].mean():.3f}")


def _lr(X, y, split, rule):
    """LR through ``fit_feature_set``; ``rule=None``: z-score only (no selection)."""
    selection = None if rule is None else make_selection_pipeline(lasso_lambda=rule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_feature_set(
            "P",
            X,
            y,
            split,
            selection=selection,
            classifiers=["LR"],
            seed=0,
            progress=False,
        )


def _test_auc(result) -> float:
    return float(result.metrics.set_index("set").loc["test", "auc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--features",
        type=Path,
        default=None,
        help="BUS-BRA seed features CSV (default: the lead's full table)",
    )
    parser.add_argument("--before", default="6f5fb2a", help="commit of the old selection")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--all-images",
        action="store_true",
        help="only compare on all BUS-BRA images (1310 training, grouped LASSO folds)",
    )
    parser.add_argument(
        "--planted-only", action="store_true", help="only the planted-cohort quality table"
    )
    args = parser.parse_args()
    if args.planted_only:
        return planted_quality(args.seeds)
    before = selection_before(args.before)
    if args.all_images:
        X, y, split, _ = busbra_all()
        train = (split == "train").to_numpy()
        return compare("BUS-BRA all images", X[train], y[train], before)
    X, y, split, _ = busbra_subset(args.features)
    train = (split == "train").to_numpy()
    compare("BUS-BRA 253 patients", X[train], y[train], before)
    # Without the t-test about as many features as cases reach the LASSO: the regime
    # where coordinate descent crawled (issue 11: 45 s on a 177-case cohort).
    compare("BUS-BRA, no univariate step", X[train], y[train], before, p_threshold=None)
    X, y, split = planted_cohort(seed=0)
    train = (split == "train").to_numpy()
    compare("planted seed 0", X[train], y[train], before)
    planted_quality(args.seeds)


if __name__ == "__main__":
    main()
