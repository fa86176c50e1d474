"""Expert masks vs the U-Net's on BUS-BRA: the study's ``automatic_masks`` stage, measured.

A study on BUS-BRA patients (one image each, drawn at random, seed 0; split 70/30 by
patient), the U-Net trained on the training split's expert masks (``segmentation`` at its
defaults unless told otherwise), the HCR models trained on expert masks, then the test
cases predicted from either mask. Prints the segmentation stage's Dice/IoU/HD95 (95% CIs
by patient), its training time, and each model's test AUC with expert and automatic masks
with the paired DeLong p.

    python benchmarks/bench_automatic_masks.py write OUT [--patients 400] [--preset seed]
    dlrn run OUT/study.yaml
    python benchmarks/bench_automatic_masks.py summary OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import yaml
from real_cohort import busbra_cases, one_image_per_patient


def write(out: Path, patients: int, preset: str, epochs: int | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cases = one_image_per_patient(busbra_cases(), n_patients=patients)
    cases[["patient_id", "image", "mask", "label"]].to_csv(out / "cases.csv",
                                                            index_label="case_id")
    segmentation: dict = {"enabled": True}
    if epochs is not None:
        segmentation["epochs"] = epochs
    study = {"cohort": {"table": "cases.csv", "patient": "patient_id"},
             "radiomics": {"preset": preset}, "dl": {"enabled": False},
             "segmentation": segmentation, "output": "study"}
    (out / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))


def summary(out: Path) -> None:
    stages = out / "study" / "stages"
    record = json.loads((stages / "segmentation" / "stage.json").read_text())
    print(f"segmentation: {record['seconds']:.0f} s, "
          f"{record['summary']['epochs_run']} epochs (best {record['summary']['best_epoch']}),"
          f" {record['summary']['cases_trained']} fit / "
          f"{record['summary']['cases_validated']} validation cases")
    print(pd.read_csv(stages / "segmentation" / "tables" / "segmentation_test.csv",
                      index_col="metric").round(3).to_string())
    automatic = json.loads((stages / "automatic_masks" / "stage.json").read_text())
    print(f"automatic masks: {automatic['summary']['cases']} test cases, "
          f"{automatic['summary']['no_lesion']} with no lesion found; "
          f"{automatic['seconds']:.0f} s")
    table = pd.read_csv(stages / "automatic_masks" / "tables" / "expert_vs_automatic.csv")
    print(table[["set", "model", "cases", "auc_expert", "auc_automatic", "p_value"]]
          .round(3).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    written = commands.add_parser("write")
    written.add_argument("out", type=Path)
    written.add_argument("--patients", type=int, default=400)
    written.add_argument("--preset", default="seed")
    written.add_argument("--epochs", type=int, default=None)
    commands.add_parser("summary").add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "write":
        write(args.out, args.patients, args.preset, args.epochs)
    else:
        summary(args.out)


if __name__ == "__main__":
    main()
