"""The descriptor cohort of issue 18: BUS-BRA images with a radiologist's descriptors.

253 BUS-BRA patients (one image each, ``real_cohort.one_image_per_patient``) with the
descriptor columns of :func:`dlrn.synthetic_descriptors.descriptor_table`: aliased
``&`` margin tokens, an all-benign ``anechoic`` level of 15 cases, blank and
"not available" ages and tissue compositions. The study is declared the natural way
(``Age: continuous``, Margin and Tissue_composition multilabel, the rest categorical),
every other setting at its default, ``dl.enabled: false``, on five 70/30 splits by
patient (``split.seed`` 1-5).

    python benchmarks/descriptor_study.py write OUT [--blank-markers]
    for k in 1 2 3 4 5; do dlrn run OUT/split$k.yaml > OUT/run$k.log 2>&1; done
    python benchmarks/descriptor_study.py summary OUT

Issue 27 (the clinical selection procedure): ``write OUT --shared-severity 0.9
--selection enter`` (Margin, Shape and Echogenicity share one latent severity,
:func:`~dlrn.synthetic_descriptors.descriptor_table`), run the five studies, ``selection
OUT``; then ``write OUT --shared-severity 0.9 --selection backward`` and run them again
in the same folders (only the clinical stages, the nomogram and the comparison rerun:
the radiomics and HCR models' fingerprints do not depend on the clinical selection).

``--blank-markers`` writes "not available" as a blank cell (what a user of a dlrn
without ``cohort.na_values`` had to do by hand). ``summary`` prints, per split: the
clinical variables used, the best clinical model's and the nomogram's (RadN) test AUC,
a hand-built Firth logistic regression on every descriptor (clinical) and with the
image score (combined), the nomogram's largest coefficient and the image score's
share of the points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from real_cohort import busbra_cases, one_image_per_patient
from sklearn.metrics import roc_auc_score

SPLITS = (1, 2, 3, 4, 5)
CACHE = Path("/work/cache/descriptor-radiomics")


def write(out: Path, blank_markers: bool, shared_severity: float = 0.0,
          selection: str | None = None, cache: Path = CACHE) -> None:
    from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS, NOT_AVAILABLE, descriptor_table

    out.mkdir(parents=True, exist_ok=True)
    cases = one_image_per_patient(busbra_cases())
    table = cases[["patient_id", "image", "mask", "label"]].join(
        descriptor_table(cases["label"], seed=0, shared_severity=shared_severity))
    if blank_markers:
        table = table.replace(NOT_AVAILABLE, np.nan)
    table.to_csv(out / "cases.csv", index_label="case_id")
    for k in SPLITS:
        study = {"cohort": {"table": "cases.csv", "patient": "patient_id",
                            "clinical": DESCRIPTOR_COLUMNS},
                 "split": {"seed": k}, "dl": {"enabled": False},
                 "radiomics": {"cache_dir": str(cache)}, "output": f"split{k}"}
        if selection is not None:
            study["evaluation"] = {"clinical_selection": selection}
        (out / f"split{k}.yaml").write_text(yaml.safe_dump(study, sort_keys=False))


def _test_auc(stage: Path, column: str | None = None) -> tuple[str, float]:
    predictions = pd.read_csv(stage / "predictions.csv", index_col="case_id")
    best = column or json.loads((stage / "best.json").read_text())["best"]
    test = predictions[predictions["set"] == "test"]
    return best, roc_auc_score(test["label"], test[best])


def _hand_built(study: Path, with_score: bool) -> float:
    """Firth LR on every descriptor term (aliased ones dropped), trained on training rows."""
    from dlrn.clinical import ClinicalEncoder
    from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS

    cases = pd.read_csv(study / "stages/cohort/cases.csv", index_col="case_id")
    train = cases["set"] == "train"
    encoder = ClinicalEncoder(DESCRIPTOR_COLUMNS).fit(cases[train])
    design = encoder.transform(cases)
    if with_score:
        stage = study / "stages/hcr_models"
        best = json.loads((stage / "best.json").read_text())["best"]
        score = pd.read_csv(stage / "predictions.csv", index_col="case_id")[best]
        oof = pd.read_csv(stage / "oof.csv", index_col="case_id")[best]
        score.loc[oof.index] = oof
        design["Rad_score"] = score.loc[design.index]
    from dlrn.clinical import LogisticModel

    model = LogisticModel(regression="firth").fit(design[train], cases.loc[train, "label"])
    test = ~train
    return roc_auc_score(cases.loc[test, "label"], model.predict_proba(design[test])[:, 1])


def _nomogram_figures(study: Path) -> tuple[float, float, str]:
    state = json.loads((study / "stages/dlrn/nomogram.json").read_text())
    largest, ranges = 0.0, {}
    for scale in state["scales"]:
        coefficient = scale["coefficient"]
        values = (list(coefficient.values()) if isinstance(coefficient, dict)
                  else [coefficient * v for v in scale["values"]])
        if isinstance(coefficient, dict):
            largest = max(largest, *map(abs, coefficient.values()))
        elif not scale["name"].endswith("_score"):  # the score's slope is per unit probability
            largest = max(largest, abs(coefficient))
        ranges[scale["name"]] = max(values) - min(values)
    score = next(name for name in ranges if name.endswith("_score"))
    widest = max(ranges, key=ranges.get)
    return (largest, 100 * ranges[score] / max(ranges.values()),
            100 * ranges[score] / sum(ranges.values()), widest)


def _stop_reason(log: Path) -> str:
    errors = [line for line in log.read_text().splitlines() if ": error: " in line]
    return errors[-1].split(": error: ", 1)[1] if errors else "?"


def summary(out: Path) -> None:
    print("| split | clinical variables used | Clinical best | test AUC | RadN test AUC | "
          "hand-built clinical | hand-built combined | largest clinical coefficient | "
          "image score's points (of 100) | its share of all axes | widest axis |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for k in SPLITS:
        study = out / f"split{k}"
        selected = json.loads((study / "stages/clinical/selected.json").read_text())["selected"]
        best, clinical = (_test_auc(study / "stages/clinical_models")
                          if (study / "stages/clinical_models/best.json").exists()
                          else ("none", np.nan))
        hand, combined = _hand_built(study, False), _hand_built(study, True)
        if not (study / "stages/dlrn/nomogram.json").exists():
            print(f"| {k} | {', '.join(selected)} | {best} | {clinical:.3f} | stopped: "
                  f"{_stop_reason(out / f'run{k}.log')} | {hand:.3f} | {combined:.3f} | | | | |")
            rows.append((clinical, np.nan, hand, combined, np.nan, np.nan, np.nan))
            continue
        _, radn = _test_auc(study / "stages/dlrn")
        largest, points, share, widest = _nomogram_figures(study)
        rows.append((clinical, radn, hand, combined, largest, points, share))
        print(f"| {k} | {', '.join(selected)} | {best} | {clinical:.3f} | {radn:.3f} | "
              f"{hand:.3f} | {combined:.3f} | {largest:.3g} | {points:.0f} | {share:.0f}% | "
              f"{widest} |")
    mean = np.nanmean(np.array(rows, dtype=float), axis=0)
    print(f"| mean | | | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | {mean[3]:.3f} | | "
          f"{mean[5]:.0f} | {mean[6]:.0f}% | |")


def _events(study: Path) -> tuple[str, str]:
    """Events per term of the multivariate model(s) and of the nomogram, from the summaries."""
    def summary(stage: str) -> dict:
        return json.loads((study / "stages" / stage / "stage.json").read_text())["summary"]

    per_term = [line.rsplit(", ", 1)[1].split()[0] for line in summary("clinical")["events"]]
    nomogram = summary("dlrn").get("events", "")
    return " -> ".join(per_term), nomogram.rsplit(", ", 1)[1].split()[0] if nomogram else ""


def selection_summary(out: Path) -> None:
    """Per split: the procedure, its predictors, the clinical and RadN test AUCs, the
    hand-built references and the events per term."""
    print("| split | procedure | univariately significant | predictors | Clinical best | "
          "test AUC | RadN test AUC | hand-built clinical | hand-built combined | "
          "events per term (multivariate) | events per term (RadN) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for k in SPLITS:
        study = out / f"split{k}"
        if not (study / "stages/dlrn/stage.json").exists():
            print(f"| {k} | not run | | | | | | | | | |")
            continue
        record = json.loads((study / "stages/clinical/selected.json").read_text())
        procedure = json.loads((study / "stages/clinical/stage.json").read_text())[
            "summary"]["procedure"]
        best, clinical = (_test_auc(study / "stages/clinical_models")
                          if (study / "stages/clinical_models/best.json").exists()
                          else ("none", np.nan))
        _, radn = _test_auc(study / "stages/dlrn")
        hand, combined = _hand_built(study, False), _hand_built(study, True)
        multivariate, nomogram = _events(study)
        rows.append((clinical, radn, hand, combined))
        print(f"| {k} | {procedure} | {', '.join(record['univariate'])} | "
              f"{', '.join(record['selected'])} | {best} | {clinical:.3f} | {radn:.3f} | "
              f"{hand:.3f} | {combined:.3f} | {multivariate} | {nomogram} |")
    mean = np.nanmean(np.array(rows, dtype=float), axis=0)
    print(f"| mean | | | | | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | {mean[3]:.3f} "
          "| | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["write", "summary", "selection"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--blank-markers", action="store_true")
    parser.add_argument("--shared-severity", type=float, default=0.0)
    parser.add_argument("--selection", choices=["backward", "enter", "none"], default=None)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()
    if args.command == "write":
        write(args.out, args.blank_markers, args.shared_severity, args.selection, args.cache)
    elif args.command == "summary":
        summary(args.out)
    else:
        selection_summary(args.out)


if __name__ == "__main__":
    main()
