"""Stage ``cohort``: read and validate the cohort tables, split train/test (Figure 1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.study.config import CohortSettings, SplitSettings, StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import CASES_FILE, cohort_columns, image_options, save_tables

VERSION = 2  # 2: cases a clinical column's "exclude" rule leaves out
CASE_EXCLUDED = "case excluded"  # dlrn.cohort's action; the other is "repeat mask ignored"
IGNORED_REPEATS = "repeat masks ignored (case kept, left out of the ICC subset)"


@dataclass(frozen=True)
class CohortStageSettings:
    cohort: CohortSettings
    split: SplitSettings
    split_seed: int


@dataclass
class CohortSummary(StageSummary):
    cases_analysed: int = 0
    cases_excluded: int = 0
    ignored_repeat_masks: int = 0
    split: str = ""

    def facts(self) -> dict[str, Any]:
        return {"cases analysed": self.cases_analysed, "cases excluded": self.cases_excluded,
                IGNORED_REPEATS: self.ignored_repeat_masks, "split": self.split}


def settings(config: StudyConfig) -> CohortStageSettings:
    return CohortStageSettings(config.cohort, config.split, config.split_seed)


def table_paths(config: StudyConfig) -> list[Path]:
    return [config.resolve(config.cohort.table),
            *(config.resolve(e.table) for e in config.cohort.external)]


def inputs(config: StudyConfig) -> list[Path]:
    """The cohort tables and every image and mask file they name (content-hashed)."""
    from dlrn.cohort import absolute_path
    from dlrn.io import read_table

    c = config.cohort
    files = []
    for table_path in table_paths(config):
        columns = [c.image, c.mask, *c.repeat_masks]
        try:
            table = read_table(table_path, text_columns=columns)
        except DlrnError:  # the stage itself reports the unreadable table
            continue
        for column in (name for name in columns if name in table.columns):
            files += [Path(absolute_path(value.strip(), table_path.parent))
                      for value in table[column].dropna() if value.strip()]
    return table_paths(config) + sorted(set(files))


def _counts(cases: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, rows_in_set in cases.groupby("set", sort=False):
        rows.append({"set": name, "cases": len(rows_in_set),
                     "patients": rows_in_set["patient_id"].nunique(),
                     "positive": int(rows_in_set["label"].sum()),
                     "negative": int((rows_in_set["label"] == 0).sum())})
    return pd.DataFrame(rows)


def _split_text(config: StudyConfig) -> str:
    if config.split.column:
        return f"given by column {config.split.column}"
    return (f"random {1 - config.split.test_size:.0%} / {config.split.test_size:.0%} by "
            f"patient, stratified by label, seed {config.split_seed}")


def read_all_cohorts(config: StudyConfig, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                    list[str]]:
    """Every case with its set, the exclusions of every cohort, and the readers' notes."""
    from dlrn.cohort import read_cohort, split_cohort

    options = {"min_roi_pixels": config.cohort.min_roi_pixels,
               "min_roi_mm": config.cohort.min_roi_mm, **image_options(config),
               "on_error": config.cohort.on_error, "progress": progress}
    cohort = read_cohort(config.resolve(config.cohort.table), cohort_columns(config), **options)
    if config.split.column:
        split = cohort.given_split.astype(str).str.strip().str.lower()
    else:
        split = split_cohort(cohort.cases, test_size=config.split.test_size,
                             seed=config.split_seed)
    sets = [cohort.cases.assign(set=split)]
    exclusions = [cohort.exclusions.assign(cohort="main")]
    notes = list(cohort.notes)
    for external in config.cohort.external:
        other = read_cohort(config.resolve(external.table),
                            cohort_columns(config, with_split=False), **options)
        sets.append(other.cases.assign(set=external.name))
        exclusions.append(other.exclusions.assign(cohort=external.name))
        notes += [f"{external.name}: {note}" for note in other.notes]
    cases = pd.concat(sets)
    duplicated = cases.index[cases.index.duplicated()]
    if len(duplicated):
        raise DlrnError(f"case ids occur in more than one cohort: "
                        f"{', '.join(map(str, duplicated[:5]))}; case ids must be unique")
    return cases, pd.concat(exclusions, ignore_index=True), notes


def clinical_exclusions(config: StudyConfig, cases: pd.DataFrame) -> pd.DataFrame:
    """Cases that a clinical column's ``exclude`` rule leaves out, as excluded-case rows.

    The rule is the clinical encoder's, learned on the training cases (a blank value
    anywhere; in test and external cases also a level training never had, where the
    column has no 'other'), so every later stage sees the same cases.
    """
    from dlrn.clinical import ClinicalEncoder

    c = config.cohort
    encoder = ClinicalEncoder(c.clinical, missing=c.missing, min_level_count=c.min_level_count)
    if not c.clinical or "exclude" not in {spec.missing for spec in encoder_specs(encoder)}:
        return pd.DataFrame(columns=["case_id", "problem", "column", "action", "cohort"])
    encoder.fit(cases[cases["set"] == "train"])
    found = pd.concat([encoder.excluded_, encoder.exclusions(cases[cases["set"] != "train"])])
    return pd.DataFrame({
        "case_id": found["case"].to_numpy(), "problem": found["reason"].to_numpy(),
        "column": found["column"].to_numpy(), "action": CASE_EXCLUDED,
        "cohort": [s if s not in ("train", "test") else "main"
                   for s in cases.loc[found["case"], "set"]]})


def encoder_specs(encoder: Any) -> list[Any]:
    from dlrn.clinical.spec import column_specs

    return column_specs(encoder.columns, missing=encoder.missing, separator=encoder.separator)


def run(context: StudyContext) -> CohortSummary:
    config = context.config
    cases, problems, notes = read_all_cohorts(config, context.progress)
    clinical = clinical_exclusions(config, cases)
    if len(clinical):
        cases = cases.drop(index=clinical["case_id"].unique())
        problems = pd.concat([problems, clinical], ignore_index=True)
        notes.append(f"{clinical['case_id'].nunique()} case(s) left out by the clinical "
                     "missing-value rule (cohort.missing: exclude), listed with their reasons "
                     "in the excluded cases; no later stage uses them")
    folder = context.stage_dir("cohort")
    cases.to_csv(folder / CASES_FILE)
    (folder / "split.json").write_text(json.dumps(
        {name: list(map(str, group.index)) for name, group in cases.groupby("set")}, indent=1))
    excluded = problems[problems["action"] == CASE_EXCLUDED]
    ignored = problems[problems["action"] != CASE_EXCLUDED]
    save_tables(folder, {"cohort_counts": _counts(cases), "excluded_cases": excluded,
                         "ignored_repeat_masks": ignored})
    return CohortSummary(
        tables={"tables/cohort_counts": "Cases per set (Figure 1)",
                "tables/excluded_cases": "Excluded cases with reasons",
                "tables/ignored_repeat_masks": "Repeat masks left out of the ICC analysis "
                                               "(their cases are kept)"},
        notes=notes,
        cases_analysed=len(cases),
        # one row per problem: a case with two problems is one excluded case
        cases_excluded=len(excluded[excluded["row"].notna()].drop_duplicates(["cohort", "row"]))
        + clinical["case_id"].nunique(),
        ignored_repeat_masks=len(ignored.drop_duplicates(["cohort", "row", "column"])),
        split=_split_text(config))


STAGE = Stage("cohort", "Patients and split", (), settings, run, inputs=inputs,
              version=VERSION, summary_type=CohortSummary)
