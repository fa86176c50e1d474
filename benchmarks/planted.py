"""Planted cohorts for the selection benchmarks (issue 10 item 5, issue 11).

``planted_cohort``: 500 cases x 1500 standard-normal features; the label is
drawn from a logistic model on the first five (coefficients 1.2, -1, 0.9, 0.8,
-0.8; the true model's AUC is about 0.88), so a selection should keep those five
and little else. ``noise_only=True`` draws the label at random instead: every
AUC above 0.5 is then optimism. ``write_planted`` saves a features CSV and a
cohort CSV (case_id, label, set) that ``dlrn model`` reads.

    python benchmarks/planted.py OUT_FOLDER [--seed 0] [--noise-only]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

INFORMATIVE = (1.2, -1.0, 0.9, 0.8, -0.8)
INFORMATIVE_NAMES = [f"informative_{j}" for j in range(len(INFORMATIVE))]


def planted_cohort(
    *,
    n_cases: int = 500,
    n_features: int = 1500,
    test_size: float = 0.3,
    seed: int = 0,
    noise_only: bool = False,
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features, 0/1 label and train/test split (stratified by label), indexed by case id."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n_cases, n_features))
    if noise_only:
        label = rng.integers(0, 2, n_cases)
    else:
        logit = values[:, : len(INFORMATIVE)] @ np.asarray(INFORMATIVE)
        label = (rng.random(n_cases) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    names = INFORMATIVE_NAMES + [f"noise_{j:04d}" for j in range(n_features - len(INFORMATIVE))]
    ids = pd.Index([f"case{i:04d}" for i in range(n_cases)], name="case_id")
    features = pd.DataFrame(values, index=ids, columns=names)
    split = pd.Series("train", index=ids, name="set")
    for value in (0, 1):
        members = np.flatnonzero(label == value)
        test = rng.choice(members, round(test_size * len(members)), replace=False)
        split.iloc[test] = "test"
    return features, pd.Series(label, index=ids, name="label"), split


def write_planted(
    folder: str | Path, *, seed: int = 0, noise_only: bool = False
) -> tuple[Path, Path]:
    """features.csv and cohort.csv (case_id, label, set) for ``dlrn model --split-column set``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    features, label, split = planted_cohort(seed=seed, noise_only=noise_only)
    features.to_csv(out / "features.csv")
    pd.DataFrame({"label": label, "set": split}).to_csv(out / "cohort.csv")
    return out / "features.csv", out / "cohort.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-only", action="store_true")
    args = parser.parse_args()
    for path in write_planted(args.out, seed=args.seed, noise_only=args.noise_only):
        print(path)


if __name__ == "__main__":
    main()
