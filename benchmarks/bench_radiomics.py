"""Benchmark: dlrn's parallel cached extraction against the serial PyRadiomics loop.

Run from the repository root on a quiet machine, e.g.::

    nice -n 10 .venv/bin/python benchmarks/bench_radiomics.py --n 100

Both run in this process on the same BUS-BRA images at native size with the
same preset. The baseline is the loop a user would write: SimpleITK decodes
the PNGs, ``RadiomicsFeatureExtractor.execute()`` runs one case after another
(images cast to double, as dlrn does: PyRadiomics 3.0.1 mis-bins 8-bit images
with bright ROIs, see docs/radiomics.md; ``--uint8-check`` measures that too).
Printed: seconds per image, speed-up, largest relative difference of any
feature, cached re-run as % of the first run, and peak memory per worker.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from dlrn.parallel import default_jobs, map_cases
from dlrn.radiomics import CaseTask, extract_case, extract_features, extractor_for, load_params

BUSBRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "busbra"


def sample_cases(n: int, data: Path) -> pd.DataFrame:
    """``n`` images spread evenly over the cohort (all four scanners)."""
    table = pd.read_csv(data / "cases.csv", dtype={"case_id": str}).set_index("case_id")
    chosen = table.iloc[np.linspace(0, len(table) - 1, n).astype(int)]
    return chosen[["image", "mask"]].map(lambda relative: str(data / relative))


def serial_loop(cases: pd.DataFrame, params: dict, pixel_type: int) -> pd.DataFrame:
    """The plain loop: decode, build SimpleITK images, execute(), one case after another."""
    extractor = extractor_for(params)
    rows = {}
    for case_id, row in cases.iterrows():
        image = sitk.Cast(sitk.ReadImage(row["image"]), pixel_type)
        mask = sitk.ReadImage(row["mask"])
        result = extractor.execute(image, mask, label=255)
        rows[case_id] = {k: float(v) for k, v in result.items() if not k.startswith("diagnostics")}
    return pd.DataFrame.from_dict(rows, orient="index")[list(next(iter(rows.values())))]


def largest_relative_difference(ours: pd.DataFrame, reference: pd.DataFrame) -> float:
    a, b = ours.loc[reference.index, reference.columns].to_numpy(), reference.to_numpy()
    both_nan = np.isnan(a) & np.isnan(b)
    relative = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
    return float(np.nanmax(np.where(both_nan, 0.0, relative)))


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def extract_and_report_peak_mb(task: CaseTask) -> float:
    """Runs in a worker: extract one case, return the worker's peak resident memory so far.

    /proc VmHWM, not ru_maxrss: a spawned worker's ru_maxrss keeps the parent's
    size from the fork before exec.
    """
    extract_case(task)
    status = Path("/proc/self/status").read_text()
    return float(status.split("VmHWM:")[1].split()[0]) / 1024


def worker_peaks_mb(cases: pd.DataFrame, params: dict, jobs: int) -> list[float]:
    """Peak memory of the worker after each case, in completion order."""
    tasks = [(cid, CaseTask(cid, row["image"], row["mask"], params))
             for cid, row in cases.iterrows()]
    return [peak for _, peak in map_cases(extract_and_report_peak_mb, tasks, jobs=jobs,
                                          progress=False)]


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="number of BUS-BRA images")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--jobs", type=int, default=None, help="dlrn processes (all cores)")
    parser.add_argument("--data", type=Path, default=BUSBRA)
    parser.add_argument("--uint8-check", action="store_true",
                        help="also run the loop on 8-bit images and count differing features")
    args = parser.parse_args()
    logging.getLogger("radiomics").setLevel(logging.ERROR)

    cases = sample_cases(args.n, args.data)
    params = load_params(args.preset)
    jobs = args.jobs or default_jobs()
    sizes = [sitk.ReadImage(path).GetSize() for path in cases["image"]]

    baseline, serial_s = timed(serial_loop, cases, params, sitk.sitkFloat64)
    with tempfile.TemporaryDirectory() as cache:
        first, first_s = timed(extract_features, cases, params, jobs=jobs, cache_dir=cache,
                               progress=False)
        rerun, rerun_s = timed(extract_features, cases, params, jobs=jobs, cache_dir=cache,
                               progress=False)
    report = {
        "images": len(cases),
        "median_size_px": [int(np.median([s[i] for s in sizes])) for i in (0, 1)],
        "preset": args.preset,
        "features": int(first.features.shape[1]),
        "jobs": jobs,
        "failures": len(first.failures),
        "serial_s_per_image": serial_s / len(cases),
        "dlrn_s_per_image": first_s / len(cases),
        "speedup": serial_s / first_s,
        "max_relative_difference": largest_relative_difference(first.features, baseline),
        "cached_rerun_s": rerun_s,
        "cached_rerun_percent_of_first": 100 * rerun_s / first_s,
        "cached_cases": len(rerun.from_cache),
        "peak_rss_mb_main_process": peak_rss_mb(resource.RUSAGE_SELF),
    }
    if Path("/proc/self/status").exists():
        peaks = worker_peaks_mb(cases, params, jobs)
        report["worker_peak_mb_max"] = max(peaks)
        report["worker_peak_mb_after_first_cases"] = max(peaks[:jobs])
    if args.uint8_check:
        eight_bit = serial_loop(cases, params, sitk.sitkUInt8)
        a, b = first.features[eight_bit.columns].to_numpy(), eight_bit.to_numpy()
        differs = ~np.isclose(a, b, rtol=1e-6, atol=0, equal_nan=True)
        report["uint8_loop_cases_differing"] = int(differs.any(axis=1).sum())
        report["uint8_loop_features_differing"] = int(differs.any(axis=0).sum())
    for key, value in report.items():
        print(f"{key:34s} {value:.4g}" if isinstance(value, float) else f"{key:34s} {value}")
    print("JSON " + json.dumps(report), file=sys.stderr)


if __name__ == "__main__":
    main()
