"""Speed and memory of cohort validation (BUS-BRA) and of the synthetic cohort generator.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_cohort.py [--cases N]``.
Validation (every file decoded, size/spacing/ROI checks, table checks) is timed
against the plain loop a user would write to merely open every image and mask
with SimpleITK, in the same process. Peak memory is reported after 10% of the
cohort and after all of it: equal figures mean memory does not grow with the cohort.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

from dlrn.cohort import CohortColumns, read_cohort
from dlrn.synthetic import make_synthetic_cohort

BUSBRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "busbra" / "cases.csv"
COLUMNS = CohortColumns(label="malignant", patient="patient_id")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_loop_seconds(table: Path, n_cases: int) -> float:
    cases = pd.read_csv(table).head(n_cases)
    start = time.perf_counter()
    for image, mask in cases[["image", "mask"]].itertuples(index=False):
        sitk.ReadImage(str(table.parent / image))
        sitk.ReadImage(str(table.parent / mask))
    return time.perf_counter() - start


def validation_seconds(table: Path, n_cases: int, folder: Path) -> float:
    subset = folder / f"cases_{n_cases}.csv"
    cases = pd.read_csv(table).head(n_cases)
    for column in ("image", "mask"):
        cases[column] = [str(table.parent / path) for path in cases[column]]
    cases.to_csv(subset, index=False)
    start = time.perf_counter()
    cohort = read_cohort(subset, COLUMNS, min_roi_pixels=16, progress=False)
    seconds = time.perf_counter() - start
    assert len(cohort.cases) + cohort.exclusions["case_id"].nunique() == n_cases
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=None, help="BUS-BRA cases (default: all)")
    args = parser.parse_args()
    total = len(pd.read_csv(BUSBRA)) if args.cases is None else args.cases
    with tempfile.TemporaryDirectory() as folder:
        small = max(total // 10, 1)
        validation_seconds(BUSBRA, small, Path(folder))
        print(f"peak RSS after validating {small} cases: {peak_rss_mib():.0f} MiB")
        plain = plain_loop_seconds(BUSBRA, total)
        checked = validation_seconds(BUSBRA, total, Path(folder))
        print(f"peak RSS after validating {total} cases: {peak_rss_mib():.0f} MiB")
        print(f"plain SimpleITK open loop, {total} cases: {plain:.2f} s "
              f"({1000 * plain / total:.2f} ms/case)")
        print(f"read_cohort validation, {total} cases: {checked:.2f} s "
              f"({1000 * checked / total:.2f} ms/case, {checked / plain:.2f}x the plain loop)")
        for n_cases, size in ((60, 128), (120, 256)):
            start = time.perf_counter()
            make_synthetic_cohort(Path(folder) / f"syn{n_cases}", n_cases=n_cases,
                                  image_size=(size, size))
            print(f"make_synthetic_cohort {n_cases} cases {size}x{size}: "
                  f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
