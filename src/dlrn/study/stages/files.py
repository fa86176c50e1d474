"""How stages read and write their folders: the file names and readers every stage shares.

Every stage reads earlier stages only through their files (``stages/<name>/``), so
a re-run can reuse any stage that is still valid without keeping objects alive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.clinical_predictors import ClinicalChoice
from dlrn.study.config import StudyConfig
from dlrn.study.runner import StudyContext
from dlrn.tables import write_tables

CASES_FILE = "cases.csv"
PREDICTIONS_FILE = "predictions.csv"
#: Out-of-fold training predictions of a stage's models, where its cut-offs are chosen.
OOF_FILE = "oof.csv"
BEST_FILE = "best.json"
CLINICAL_FILE = "selected.json"
#: The clinical encoder fitted on the training cases (ClinicalEncoder.to_dict, JSON).
ENCODER_FILE = "encoder.json"


def cohort_columns(config: StudyConfig, *, with_label: bool = True,
                   with_split: bool = True) -> Any:
    """The study file's cohort section as dlrn.cohort.CohortColumns."""
    from dlrn.cohort import CohortColumns

    c = config.cohort
    return CohortColumns(
        case_id=c.case_id, image=c.image, mask=c.mask,
        label=c.label if with_label else None, patient=c.patient,
        repeat_masks=tuple(c.repeat_masks), clinical=tuple(c.clinical),
        split=config.split.column if with_split else None, positive_label=c.positive_label)


def study_encoder(config: StudyConfig, columns: dict[str, Any] | None = None) -> Any:
    """An unfitted ClinicalEncoder with the study's clinical rules (cohort.missing,
    min_level_count, na_values) for ``columns`` (default: cohort.clinical)."""
    from dlrn.clinical import ClinicalEncoder

    c = config.cohort
    return ClinicalEncoder(c.clinical if columns is None else columns, missing=c.missing,
                           min_level_count=c.min_level_count, na_values=tuple(c.na_values))


def image_options(config: StudyConfig) -> dict[str, Any]:
    """How every image and mask of the study is read (cohort check, PyRadiomics, CNN crops)."""
    return {"mask_label": config.cohort.mask_label, "frame": config.cohort.frame}


def read_case_frame(path: Path) -> pd.DataFrame:
    """A stage's per-case CSV, indexed by case id as text."""
    table = pd.read_csv(path, index_col="case_id", dtype={"case_id": str, "patient_id": str})
    table.index = table.index.astype(str)
    return table


def read_cases(context: StudyContext) -> pd.DataFrame:
    """The validated cohort (all sets) with its ``set`` column, indexed by case id."""
    return read_case_frame(context.stage_dir("cohort") / CASES_FILE)


def read_predictions(context: StudyContext, stage: str, file: str = PREDICTIONS_FILE
                     ) -> pd.DataFrame:
    return read_case_frame(context.stage_dir(stage) / file)


def read_out_of_fold(context: StudyContext, stage: str) -> pd.DataFrame | None:
    """The stage's out-of-fold training predictions, or None where it has none (the CNN)."""
    if not (context.stage_dir(stage) / OOF_FILE).exists():
        return None
    return read_predictions(context, stage, OOF_FILE)


def read_features(context: StudyContext, stage: str, name: str = "features.csv"
                  ) -> pd.DataFrame:
    return read_case_frame(context.stage_dir(stage) / name)


def save_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    """A stage's report tables as CSV in ``<stage>/tables/`` (the report's workbook has all)."""
    write_tables(tables, folder / "tables", workbook=None)


def figure_dir(folder: Path) -> Path:
    path = folder / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def train_ids(cases: pd.DataFrame) -> list[str]:
    return list(cases.index[cases["set"] == "train"])


def write_best(folder: Path, best: str, rule: str) -> None:
    (folder / BEST_FILE).write_text(json.dumps({"best": best, "rule": rule}))


def best_model(context: StudyContext, stage: str) -> str:
    return json.loads((context.stage_dir(stage) / BEST_FILE).read_text())["best"]


def clinical_record(context: StudyContext) -> ClinicalChoice:
    """The clinical stage's choice (no feature when the stage did not run)."""
    if not context.done("clinical"):
        return ClinicalChoice()
    return ClinicalChoice(**json.loads((context.stage_dir("clinical") / CLINICAL_FILE)
                                       .read_text()))


def clinical_encoder(context: StudyContext) -> dict[str, Any] | None:
    """The clinical stage's fitted encoder (``ClinicalEncoder.to_dict``), or None."""
    if not context.done("clinical"):
        return None
    return json.loads((context.stage_dir("clinical") / ENCODER_FILE).read_text())
