"""How much the calculator's answer moves with the lesion's outline (issue 31, item 4).

For each test case of a finished study (e.g. ``dlrn demo``'s), the calculator's
:class:`~dlrn.serve.predictor.Predictor` predicts the case from its image, its expert
mask and its clinical values, and again with the ROI eroded and dilated by 5 % of its
equivalent diameter (:mod:`dlrn.outline`). Prints the nomogram's probability range
(percentage points), how many cases have the cut-off inside their range, and the time
of one answer with the two extra outlines against ``read_new_cases`` + ``predict_cases``
of the case alone (what the answer cost before)::

    python benchmarks/bench_roi_sensitivity.py dlrn-demo --cases 30
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dlrn.serve.predictor import Predictor
from dlrn.study.predict import predict_cases, read_new_cases


def _test_cases(study: Path, limit: int) -> pd.DataFrame:
    """The study's test cases (cohort stage's ``cases.csv``), image and mask paths absolute."""
    cases = pd.read_csv(study / "study" / "stages" / "cohort" / "cases.csv", dtype=str)
    test = cases[cases["set"] == "test"].head(limit)
    return test.set_index("case_id", drop=False)


def _plain_answer_seconds(predictor: Predictor, case: pd.Series) -> float:
    """The case alone through ``dlrn predict``'s functions: the answer's cost without the
    outline's variants."""
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "one.csv"
        case.to_frame().T.drop(columns=["set"], errors="ignore").to_csv(table, index=False)
        start = time.perf_counter()
        cases = read_new_cases(table, predictor.settings, progress=False)
        predict_cases(predictor.bundle, cases, progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="folder of `dlrn demo --out` (or a study "
                                                 "with study/bundle and its cohort stage)")
    parser.add_argument("--cases", type=int, default=30, help="test cases at most")
    args = parser.parse_args()
    predictor = Predictor(args.study / "study" / "bundle")
    if predictor.nomogram_name is None:
        raise SystemExit("the bundle has no nomogram")
    rows, timings, plain = [], [], []
    for case_id, case in _test_cases(args.study, args.cases).iterrows():
        form = {f.name: case[f.name] for f in predictor.fields}
        image, mask = Path(case["image"]).read_bytes(), Path(case["mask"]).read_bytes()
        start = time.perf_counter()
        answer = predictor.predict(form, image, mask)
        timings.append(time.perf_counter() - start)
        plain.append(_plain_answer_seconds(predictor, case))
        low, high = answer.probability_range or (np.nan, np.nan)
        rows.append({"case_id": case_id, "pixels": answer.roi.pixels,
                     "margin_px": answer.sensitivity.margin_pixels,
                     "probability": answer.probability, "low": low, "high": high,
                     "crosses_cutoff": answer.cutoff is not None and low < answer.cutoff <= high})
        print(f"{case_id}: {100 * answer.probability:.1f} % ({100 * low:.1f} to "
              f"{100 * high:.1f}), {timings[-1]:.1f} s", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).set_index("case_id")
    width = 100 * (table["high"] - table["low"])
    print(f"{predictor.nomogram_name} of {len(table)} test cases, ROI eroded/dilated by 5 % of "
          f"its equivalent diameter (margin {table['margin_px'].min()}-"
          f"{table['margin_px'].max()} px, median {table['margin_px'].median():g}; ROI "
          f"{table['pixels'].min()}-{table['pixels'].max()} px)")
    print(f"range width (percentage points): median {width.median():.1f}, 90th percentile "
          f"{width.quantile(0.9):.1f}, max {width.max():.1f} "
          f"(case {width.idxmax()}: {100 * table.loc[width.idxmax(), 'low']:.1f} to "
          f"{100 * table.loc[width.idxmax(), 'high']:.1f} %)")
    print(f"cut-off inside the range: {int(table['crosses_cutoff'].sum())} of {len(table)} "
          f"cases")
    print(f"seconds per answer: {np.median(timings):.2f} with the two outlines (median), "
          f"{np.median(plain):.2f} for the case alone (read_new_cases + predict_cases)")
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
