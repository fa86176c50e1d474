"""``dlrn predict`` on a finished study's own cases: radiomics extracted again, or read from
the study's feature cache (issue 20).

    python benchmarks/bench_predict_cache.py STUDY_OUTPUT [--set test]

Takes the cases of one set of the study (``stages/cohort/cases.csv``) from its cohort
table, without their label, and predicts them with the study's bundle twice, in one
process: as ``dlrn predict`` did before (every case's PyRadiomics features extracted
again) and as it does now (features read from the study's cache, which the bundle names;
a case not in it would be extracted). Prints the wall time of each (bundle opened, cases
validated, every model and the nomogram), how many cases came from the cache, and the
largest difference between the two predictions (0: the cached features are the extracted
ones to the last digit).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.study.predict import Bundle, predict_cases, read_new_cases, study_feature_cache


class _CacheCount(logging.Handler):
    """Reads the radiomics extraction's own account: 'N cases from cache, M to extract'."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: list[tuple[int, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"(\d+) cases from cache, (\d+) to extract", record.getMessage())
        if found:
            self.counts.append((int(found[1]), int(found[2])))


def held_out_table(study: Path, set_name: str, folder: Path) -> Path:
    """The set's rows of the study's cohort table, with absolute file paths and no label."""
    identity = json.loads((study / "study.json").read_text())["identity"]
    table = Path(identity["cohort_table"])
    settings = json.loads((study / "bundle" / "settings.json").read_text())["columns"]
    cases = pd.read_csv(study / "stages" / "cohort" / "cases.csv", dtype={"case_id": str})
    chosen = set(cases.loc[cases["set"] == set_name, "case_id"])
    rows = pd.read_csv(table, dtype={settings["case_id"]: str})
    rows = rows[rows[settings["case_id"]].isin(chosen)].drop(columns=[settings["label"]])
    for column in (settings["image"], settings["mask"]):
        rows[column] = [str((table.parent / path).resolve()) for path in rows[column]]
    path = folder / "new_cases.csv"
    rows.to_csv(path, index=False)
    return path


def timed_predict(bundle_dir: Path, table: Path, use_study_cache: bool) -> tuple[float, Any]:
    started = time.perf_counter()
    bundle = Bundle.open(bundle_dir)
    cases = read_new_cases(table, bundle.json("settings"), progress=False)
    cache = study_feature_cache(bundle) if use_study_cache else None
    predictions = predict_cases(bundle, cases, progress=False, feature_cache=cache)
    return time.perf_counter() - started, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a finished study's output folder")
    parser.add_argument("--set", default="test", help="the set whose cases are predicted")
    args = parser.parse_args()
    counter = _CacheCount()
    logging.getLogger("dlrn.radiomics").addHandler(counter)
    logging.getLogger("dlrn.radiomics").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as folder:
        table = held_out_table(args.study, args.set, Path(folder))
        before, extracted = timed_predict(args.study / "bundle", table, use_study_cache=False)
        after, cached = timed_predict(args.study / "bundle", table, use_study_cache=True)
    numbers = extracted.select_dtypes("number").columns
    difference = (extracted[numbers] - cached[numbers]).abs().max().max()
    print(f"| {args.study}: {len(extracted)} {args.set} cases | cases from cache | "
          "wall seconds |\n|---|---|---|")
    for (label, seconds), (from_cache, _) in zip(
            (("extracted again (before)", before), ("study's cache (now)", after)),
            counter.counts, strict=True):
        print(f"| {label} | {from_cache} | {seconds:.1f} |")
    print(f"\nlargest difference between the two predictions: {difference:.3g}")


if __name__ == "__main__":
    main()
