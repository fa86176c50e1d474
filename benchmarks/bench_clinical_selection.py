"""How long one clinical selection takes: what a bootstrap validation repeats ~200 times.

The BUS-BRA descriptor table of ``descriptor_study.py`` (253 patients, the eight
descriptors of :func:`dlrn.synthetic_descriptors.descriptor_table` with
``shared_severity``), the training rows of split 1 (177 cases), the study's encoder
fitted on them; then ``BOOTSTRAPS`` bootstrap samples of those rows, each selected by
``select_clinical_variables`` (encoding the sample with the encoder: what the rms-style
validation calls) and by ``select_variables`` on the rows of the already encoded design
(the same selection without the encoding). Prints per procedure the median and total
time and how often each variable was kept.

    python benchmarks/bench_clinical_selection.py [--bootstraps 200] [--shared-severity 0.9]
        [--procedures backward,enter,none]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter

import numpy as np
import pandas as pd
from real_cohort import busbra_cases, one_image_per_patient


def main() -> None:
    from dlrn.clinical import ClinicalEncoder, select_clinical_variables
    from dlrn.clinical.fitting import encoded_design
    from dlrn.clinical.selection import select_variables
    from dlrn.cohort import split_cohort
    from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS, NOT_AVAILABLE, descriptor_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstraps", type=int, default=200)
    parser.add_argument("--shared-severity", type=float, default=0.9)
    parser.add_argument("--procedures", default="backward,enter,none")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    cases = one_image_per_patient(busbra_cases())
    table = cases[["patient_id", "label"]].join(
        descriptor_table(cases["label"], seed=0, shared_severity=args.shared_severity))
    table = table.replace(NOT_AVAILABLE, np.nan)
    training = table[split_cohort(table, seed=1) == "train"]
    variables = list(DESCRIPTOR_COLUMNS)
    encoder = ClinicalEncoder(DESCRIPTOR_COLUMNS).fit(training)
    design, _ = encoded_design(training, variables, encoder, constant_error=False)
    y = training.loc[design.index, "label"].astype(float)
    terms = {name: list(encoder.terms_[name]) for name in variables}
    rng = np.random.default_rng(0)
    samples = [rng.choice(len(training), len(training)) for _ in range(args.bootstraps)]
    print(f"{len(training)} training cases, {int(y.sum())} events, {len(variables)} "
          f"variables, {design.shape[1] - 1} terms; {args.bootstraps} bootstrap samples")
    for procedure in args.procedures.split(","):
        for how in ("cases + encoder", "encoded design"):
            times, kept, steps = [], Counter(), []
            for rows in samples:
                start = time.perf_counter()
                if how == "cases + encoder":
                    sample = training.iloc[rows]
                    result = select_clinical_variables(sample, sample["label"], variables,
                                                       encoder=encoder, procedure=procedure)
                else:
                    frame = design.iloc[rows].reset_index(drop=True)
                    labels = pd.Series(y.to_numpy()[rows])
                    result = select_variables(labels, frame, terms, procedure=procedure)
                times.append(time.perf_counter() - start)
                kept.update(result.selected)
                steps.append(len(result.path))
            share = ", ".join(f"{name} {kept[name] / len(samples):.0%}" for name in variables)
            print(f"{procedure:8s} {how:16s}: median {np.median(times) * 1000:.0f} ms, "
                  f"total {sum(times):.1f} s, mean models fitted {np.mean(steps):.1f}; "
                  f"kept: {share}")


if __name__ == "__main__":
    main()
