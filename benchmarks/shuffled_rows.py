"""The demo study on its tables, and on the same tables with their rows shuffled.

    python benchmarks/shuffled_rows.py OUT [--cases 200] [--external-cases 40] [--seed 7]
        [--src DIR]

Makes the demo cohorts and study in OUT (`dlrn demo`), writes row-shuffled copies of
the cohort and external tables beside them (``shuffled.csv``, same images), runs the
same study on those into OUT/study_shuffled, then compares every table and figure of
the two (dlrn.result_diff, as `dlrn reproduce` does) and prints the AUCs of Table 7 and
of the HCR and DLR models side by side. ``--src``: the dlrn that runs the two studies
(default this checkout's; an older checkout's src shows what it did).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from dlrn.result_diff import compare_folders

SOURCE = Path(__file__).resolve().parents[1] / "src"
TABLES = ("comparison_metrics", "hcr_models_metrics", "dlr_models_metrics")


def dlrn(src: Path, *args: str) -> None:
    """The dlrn command of ``src``, in a process of its own."""
    command = [sys.executable, "-c", "import sys; from dlrn.cli import main; sys.exit(main())",
               *args]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(src)})


def shuffled_study(out: Path, seed: int) -> Path:
    """Row-shuffled copies of the demo's tables and a study file that reads them."""
    study = (out / "study.yaml").read_text()
    for folder in ("cohort", "centre_b"):
        table = out / folder / "cohort.csv"
        if table.exists():
            rows = pd.read_csv(table, dtype=str, keep_default_na=False)
            rows.sample(frac=1, random_state=seed).to_csv(table.with_name("shuffled.csv"),
                                                          index=False)
            study = study.replace(f"{folder}/cohort.csv", f"{folder}/shuffled.csv")
    path = out / "study_shuffled.yaml"
    path.write_text(study.replace("output: study", "output: study_shuffled"))
    return path


def auc_table(out: Path) -> pd.DataFrame:
    """Each model's AUC per set on the original and on the shuffled tables."""
    frames = []
    for name in TABLES:
        runs = [pd.read_csv(out / study / "report" / "tables" / f"{name}.csv")
                .set_index(["model", "set"])["auc"] for study in ("study", "study_shuffled")]
        frames.append(pd.concat(runs, axis=1, keys=["original", "shuffled"]))
    table = pd.concat(frames)
    return table[~table.index.duplicated()].round(3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--cases", default="200")
    parser.add_argument("--external-cases", default="40")
    parser.add_argument("--seed", type=int, default=7, help="seed of the row shuffle")
    parser.add_argument("--src", type=Path, default=SOURCE)
    args = parser.parse_args()
    out = args.out.resolve()
    dlrn(args.src, "demo", "--out", str(out), "--cases", args.cases,
         "--external-cases", args.external_cases, "--quiet")
    dlrn(args.src, "run", str(shuffled_study(out, args.seed)), "--quiet")
    files = [c for folder in ("stages", "report") for c in
             compare_folders(out / "study" / folder, out / "study_shuffled" / folder,
                             roots=((out / "study",), (out / "study_shuffled",)))]
    differing = [c for c in files if not c.same]
    print(f"{len(differing)} of {len(files)} tables and figures differ")
    for comparison in differing:
        print(f"  {comparison.line()}"[:300])
    print(auc_table(out).to_string())
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
