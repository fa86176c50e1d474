"""The nomogram's bootstrap validation (issue 27): its time, and its results on descriptor studies.

    python bench_nomogram_validation.py speed [--B 200] [--selection-B 50]
    python bench_nomogram_validation.py write OUT [--splits 1 2] [--B 200]
    for k in 1 2; do dlrn run OUT/split$k.yaml > OUT/run$k.log 2>&1; done
    python bench_nomogram_validation.py summary OUT [--splits 1 2]

``speed``: 200 cases of :func:`dlrn.synthetic_descriptors.descriptor_table` with an image
score drawn from the labels; the nomogram of the score, Age, Shape and Margin (the
aliased Margin token set aside) validated with B bootstrap samples (a pre-specified
model: only its fit repeated), then with the study's clinical selection (univariate then
multivariate logistic regression of the 8 descriptors, Firth where they separate)
repeated in each sample (``--selection-B`` samples; its time per sample is printed).

``write``/``summary``: the descriptor table of ``descriptor_study.py`` (253 BUS-BRA
patients, one image each) as a study with ``dl.enabled: false``, the ``fast`` radiomics
preset and LR alone (bounded in time), on 70/30 splits by patient (``split.seed``), the
radiomics nomogram (RadN) validated with ``evaluation.nomogram_bootstrap``; ``summary``
prints its validate table and calibration errors per split.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DESCRIPTORS = ("Age", "Shape", "Margin")


def _cases(n: int = 200) -> tuple[pd.DataFrame, pd.Series]:
    from dlrn.synthetic_descriptors import descriptor_table

    rng = np.random.default_rng(0)
    y = pd.Series((rng.random(n) < 0.35).astype(int), index=[f"c{i:03d}" for i in range(n)])
    table = descriptor_table(y, seed=0)
    table.insert(0, "Rad_score", rng.normal(1.2 * y, 1.0))
    return table, y


def speed(B: int, selection_B: int) -> None:
    from dlrn.nomogram import Nomogram
    from dlrn.nomogram.validation import ModelingProcedure, validate_nomogram
    from dlrn.study.config import study_from_dict
    from dlrn.study.stages.nomogram import clinical_rule
    from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS

    cases, y = _cases()
    columns = {"Rad_score": "continuous", **DESCRIPTOR_COLUMNS}
    rules = {"missing": "impute", "min_level_count": 5}  # the study defaults

    def build(chosen: list[str]) -> Nomogram:
        return Nomogram(columns={c: columns[c] for c in chosen}, **rules)

    fixed = ["Rad_score", *DESCRIPTORS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build(fixed).fit(cases[fixed], y)
        start = time.perf_counter()
        result = validate_nomogram(model, cases[fixed], y, procedure=ModelingProcedure(build),
                                   B=B, seed=0)
        seconds = time.perf_counter() - start
    print(f"pre-specified nomogram ({', '.join(fixed)}), {len(y)} cases, B = {B}: "
          f"{seconds:.1f} s ({1000 * seconds / B:.0f} ms per sample), {result.failed} failed")
    print(result.table().round(3).to_string(index=False))
    config = study_from_dict({"cohort": {"table": "c.csv", "clinical": DESCRIPTOR_COLUMNS}},
                             base_dir=".")
    rule = clinical_rule(config)

    def select(X: pd.DataFrame, labels: pd.Series) -> list[str]:
        return ["Rad_score", *rule(X.drop(columns="Rad_score"), labels)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chosen = select(cases, y)
        model = build(chosen).fit(cases[chosen], y)
        start = time.perf_counter()
        result = validate_nomogram(model, cases, y, columns=chosen, B=selection_B, seed=0,
                                   procedure=ModelingProcedure(build, select))
        seconds = time.perf_counter() - start
    print(f"\nwith the clinical selection repeated (chosen on all cases: {', '.join(chosen)}), "
          f"B = {selection_B}: {seconds:.1f} s ({seconds / selection_B:.2f} s per sample), "
          f"{result.failed} failed; models fitted by {result.fitted_by}")
    print("chosen in the samples:", result.retained.round(2).to_dict())
    print(result.table().round(3).to_string(index=False))


def write(out: Path, splits: list[int], B: int) -> None:
    from real_cohort import busbra_cases, one_image_per_patient

    from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS, descriptor_table

    out.mkdir(parents=True, exist_ok=True)
    cases = one_image_per_patient(busbra_cases())
    table = cases[["patient_id", "image", "mask", "label"]].join(
        descriptor_table(cases["label"], seed=0))
    table.to_csv(out / "cases.csv", index_label="case_id")
    for k in splits:
        study = {"cohort": {"table": "cases.csv", "patient": "patient_id",
                            "clinical": DESCRIPTOR_COLUMNS},
                 "split": {"seed": k}, "dl": {"enabled": False},
                 "radiomics": {"preset": "fast", "cache_dir": "cache"},
                 "classifiers": {"models": ["LR"]},
                 "evaluation": {"nomogram_bootstrap": B}, "output": f"split{k}"}
        (out / f"split{k}.yaml").write_text(yaml.safe_dump(study, sort_keys=False))


def summary(out: Path, splits: list[int]) -> None:
    import json

    for k in splits:
        stage = out / f"split{k}" / "stages" / "dlrn"
        record = json.loads((stage / "stage.json").read_text())
        fields = record["summary"]
        seconds = record.get("seconds", float("nan"))
        print(f"split {k}: {fields['clinical_predictors']}; stage {seconds:.0f} s; "
              f"B = {fields['bootstrap']}")
        table = pd.read_csv(stage / "tables/nomogram_validation.csv", index_col="index")
        print(table.drop(columns="description").round(3).to_string())
        chosen = pd.read_csv(stage / "tables/nomogram_selection.csv")
        print(chosen.round(2).to_string(index=False))
        print(f"mean absolute calibration error {fields['calibration_error']:.3f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["speed", "write", "summary"])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--B", type=int, default=200)
    parser.add_argument("--selection-B", type=int, default=50)
    parser.add_argument("--splits", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if args.command == "speed":
        speed(args.B, args.selection_B)
    elif args.command == "write":
        write(args.out, args.splits, args.B)
    else:
        summary(args.out, args.splits)


if __name__ == "__main__":
    main()
