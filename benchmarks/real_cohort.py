"""The real cohorts of the selection benchmarks: BUS-BRA seed-preset features.

``busbra_subset``: one image per patient, 253 patients drawn at random (seed 0),
split 70/30 by :func:`dlrn.cohort.split_cohort` -> 177 training cases x 1497
features, the size of the 252-patient cohort of issue 11. ``busbra_all``: all
1875 images (1064 patients), the same split rule. Features come from the lead's
``/work/cache/busbra-seed-features.csv`` (all cases) or a CSV extracted with
``python benchmarks/real_cohort.py extract OUT.csv`` (the 253 cases only, a few
minutes with ``dlrn.radiomics.extract_features(..., params="seed", jobs=1)``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

BUSBRA = Path("/work/shared/data/busbra")
ALL_FEATURES = Path("/work/cache/busbra-seed-features.csv")


def busbra_cases() -> pd.DataFrame:
    """cases.csv with absolute paths, ``label`` (malignant) and ``patient_id`` as text."""
    cases = pd.read_csv(BUSBRA / "cases.csv", dtype={"case_id": str}).set_index("case_id")
    for column in ("image", "mask"):
        cases[column] = str(BUSBRA) + "/" + cases[column]
    cases["label"] = cases["malignant"].astype(int)
    cases["patient_id"] = cases["patient_id"].astype(str)
    return cases


def one_image_per_patient(cases: pd.DataFrame, n_patients: int = 253, seed: int = 0):
    first = cases[~cases["patient_id"].duplicated()]
    rng = np.random.default_rng(seed)
    return first.iloc[np.sort(rng.choice(len(first), n_patients, replace=False))]


def _with_split(cases: pd.DataFrame, features: pd.DataFrame, seed: int):
    from dlrn.cohort import split_cohort

    missing = cases.index.difference(features.index)
    if len(missing):
        raise SystemExit(f"{len(missing)} cases have no features, e.g. {list(missing[:3])}")
    split = split_cohort(cases, seed=seed)
    return features.loc[cases.index], cases["label"], split, cases["patient_id"]


def read_features(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"case_id": str}).set_index("case_id")
    return table.astype(float)


def busbra_subset(features_csv: Path | None = None, seed: int = 0):
    """(X, y, split, patients) of the 253-patient cohort."""
    cases = one_image_per_patient(busbra_cases())
    path = features_csv or ALL_FEATURES
    return _with_split(cases, read_features(path), seed)


def busbra_all(seed: int = 0):
    """(X, y, split, patients) of all BUS-BRA images (needs the lead's full feature table)."""
    return _with_split(busbra_cases(), read_features(ALL_FEATURES), seed)


def extract_subset(out: Path) -> None:
    from dlrn.radiomics import extract_features

    cases = one_image_per_patient(busbra_cases())
    result = extract_features(cases, params="seed", jobs=1, progress=False)
    if len(result.failures):
        raise SystemExit(f"extraction failed for {len(result.failures)} cases")
    result.features.to_csv(out, index_label="case_id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["extract"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    extract_subset(args.out)


if __name__ == "__main__":
    main()
