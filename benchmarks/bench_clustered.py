"""Image-level vs patient-aware CIs on BUS-BRA's structure: widths side by side, and timings.

The cohort is BUS-BRA's own (``cases.csv``: 1875 images, 1064 patients, 811 with two
views of one lesion, the label of each patient), with a synthetic score per image:
score = 1.2 * malignant + patient effect + image noise, the patient effect taking a
share ``icc`` of the noise variance (views of one lesion look alike). ``icc = 0``
is a control: images independent given the label, so patient-aware CIs should not
be wider. A second score (weaker, correlated) gives the paired comparison.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_clustered.py [path/to/cases.csv]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dlrn.evaluation import auc_ci, patient_predictions
from dlrn.evaluation.clustered import (
    clustered_auc_ci,
    clustered_cutoff_metrics,
    clustered_pairwise,
)
from dlrn.evaluation.roc import delong_pairwise
from dlrn.evaluation.threshold import cutoff_metrics, youden_threshold

CASES = Path(__file__).resolve().parents[2] / "shared" / "data" / "busbra" / "cases.csv"
N_BOOTSTRAP = 2000


def cohort(cases: Path, icc: float, seed: int = 0) -> pd.DataFrame:
    """BUS-BRA's images and patients with two synthetic scores (see the module docstring)."""
    table = pd.read_csv(cases, usecols=["case_id", "patient_id", "malignant"])
    rng = np.random.default_rng(seed)
    patients = table["patient_id"].unique()
    effect = pd.Series(rng.normal(0, np.sqrt(icc), patients.size), index=patients)
    shared = effect.loc[table["patient_id"]].to_numpy()
    noise = rng.normal(0, np.sqrt(1 - icc), (2, len(table)))
    label = table["malignant"].to_numpy()
    return pd.DataFrame({
        "label": label,
        "patient": table["patient_id"].astype(str).to_numpy(),
        "A": 1.2 * label + shared + noise[0],
        "B": 0.9 * label + shared + 0.6 * noise[0] + 0.8 * noise[1],
    }, index=table["case_id"])


def timed(function: Callable[[], object], repeats: int = 3) -> tuple[object, float]:
    """Result and best-of-``repeats`` wall time in seconds."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def auc_rows(data: pd.DataFrame) -> list[tuple[str, float, float, float]]:
    y, score, patient = data["label"], data["A"], data["patient"]
    per_patient = patient_predictions(data, ["A"], "patient", set_column=None)
    methods = {
        "image-level DeLong": lambda: auc_ci(y, score),
        f"image-level bootstrap ({N_BOOTSTRAP})": lambda: auc_ci(
            y, score, method="bootstrap", n_bootstrap=N_BOOTSTRAP),
        "Obuchowski (clustered DeLong)": lambda: clustered_auc_ci(
            y, score, patient, method="obuchowski"),
        f"cluster bootstrap over patients ({N_BOOTSTRAP})": lambda: clustered_auc_ci(
            y, score, patient, n_bootstrap=N_BOOTSTRAP),
        "patient level (mean score), DeLong": lambda: auc_ci(per_patient["label"],
                                                              per_patient["A"]),
    }
    rows = []
    for name, method in methods.items():
        result, seconds = timed(method, repeats=1 if "bootstrap" in name else 3)
        rows.append((name, result.auc, result.ci_high - result.ci_low, seconds))
    return rows


def comparison_rows(data: pd.DataFrame) -> list[tuple[str, float, float, float]]:
    y, scores, patient = data["label"], data[["A", "B"]], data["patient"]
    methods = {
        "image-level DeLong": lambda: delong_pairwise(y, scores),
        "Obuchowski": lambda: clustered_pairwise(y, scores, patient),
        f"cluster bootstrap ({N_BOOTSTRAP})": lambda: clustered_pairwise(
            y, scores, patient, method="cluster-bootstrap", n_bootstrap=N_BOOTSTRAP),
    }
    rows = []
    for name, method in methods.items():
        table, seconds = timed(method, repeats=1 if "bootstrap" in name else 3)
        rows.append((name, table["se_diff"].iloc[0], table["p_value"].iloc[0], seconds))
    return rows


def proportion_rows(data: pd.DataFrame) -> list[tuple[str, float, float, float]]:
    y, score, patient = data["label"], data["A"], data["patient"]
    threshold = youden_threshold(y, score)
    plain, plain_s = timed(lambda: cutoff_metrics(y, score, threshold))
    aware, aware_s = timed(lambda: clustered_cutoff_metrics(y, score, threshold, patient))
    rows = []
    for metric in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        rows.append((metric, plain[f"{metric}_ci_high"] - plain[f"{metric}_ci_low"],
                     aware[f"{metric}_ci_high"] - aware[f"{metric}_ci_low"], 0.0))
    rows.append(("(time for all five, s)", plain_s, aware_s, 0.0))
    return rows


def main() -> None:
    cases = Path(sys.argv[1]) if len(sys.argv) > 1 else CASES
    for icc in (0.6, 0.0):
        data = cohort(cases, icc)
        print(f"\n### icc = {icc}: {len(data)} images, {data['patient'].nunique()} patients, "
              f"{data.groupby('patient')['label'].first().sum()} malignant patients")
        print("| AUC CI (model A) | AUC | CI width | time (s) |\n|---|---|---|---|")
        for name, auc, width, seconds in auc_rows(data):
            print(f"| {name} | {auc:.4f} | {width:.4f} | {seconds:.4f} |")
        print("\n| paired test A vs B | SE of difference | p | time (s) |\n|---|---|---|---|")
        for name, se, p, seconds in comparison_rows(data):
            print(f"| {name} | {se:.4f} | {p:.2e} | {seconds:.4f} |")
        print("\n| 95% CI width at the Youden cut-off | Wilson (images) | "
              "design-effect Wilson (patients) |\n|---|---|---|")
        for name, plain, aware, _ in proportion_rows(data):
            print(f"| {name} | {plain:.4f} | {aware:.4f} |")


if __name__ == "__main__":
    main()
