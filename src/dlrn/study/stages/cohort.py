"""Stage ``cohort``: read and validate the cohort tables, split train/test (Figure 1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.splitting import read_labelled_table
from dlrn.study.config import CohortSettings, SplitSettings, StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import (
    CASES_FILE,
    cohort_columns,
    image_options,
    save_tables,
    study_encoder,
)

VERSION = 4  # 2: cases a clinical column's "exclude" rule leaves out; 3: cohort.na_values;
# 4: cases (and exclusions) by case id, whatever the tables' row order
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


COHORT_TABLE = "cohort table"


@dataclass(frozen=True)
class InputFile:
    """A file the cohort stage reads: a cohort table, or the image or a mask of a case."""

    path: Path
    what: str  # COHORT_TABLE, or the file's role: image, mask, a repeat-mask column
    cohort: str  # "main" or the external cohort's name
    case_id: str = ""  # the case naming the file ("" for a table)


def cohort_tables(config: StudyConfig) -> list[tuple[str, Path]]:
    """Each cohort's name ("main", then the external ones) and table."""
    return [("main", config.resolve(config.cohort.table)),
            *((e.name, config.resolve(e.table)) for e in config.cohort.external)]


def input_files(config: StudyConfig) -> list[InputFile]:
    """Every cohort table and each image and mask file it names, with the naming case.

    What the stage's fingerprint hashes, and what a study's record lists, so that
    ``dlrn reproduce`` can name the case whose file changed.
    """
    from dlrn.cohort import absolute_path
    from dlrn.io import read_table

    c = config.cohort
    roles = {"image": c.image, "mask": c.mask, **{name: name for name in c.repeat_masks}}
    files = []
    for cohort, table_path in cohort_tables(config):
        files.append(InputFile(table_path, COHORT_TABLE, cohort))
        try:
            table = read_table(table_path, text_columns=[c.case_id, *roles.values()])
        except DlrnError:  # the stage itself reports the unreadable table
            continue
        ids = [str(value).strip() if pd.notna(value) else f"(row {row + 2}, no case id)"
               for row, value in enumerate(table.get(c.case_id, [None] * len(table)))]
        for role, column in roles.items():
            if column not in table.columns:
                continue
            files += [InputFile(Path(absolute_path(value.strip(), table_path.parent)), role,
                                cohort, case_id)
                      for case_id, value in zip(ids, table[column], strict=True)
                      if isinstance(value, str) and value.strip()]
    return files


def inputs(config: StudyConfig) -> list[Path]:
    """The cohort tables and every image and mask file they name (content-hashed)."""
    files = input_files(config)
    tables = [file.path for file in files if file.what == COHORT_TABLE]
    return tables + sorted({file.path for file in files if file.what != COHORT_TABLE})


def _counts(cases: pd.DataFrame) -> pd.DataFrame:
    """Cases, patients, positives and negatives per set: train, test, then each external
    cohort (the cases come main cohort first, each cohort by case id)."""
    rows = []
    names = sorted(pd.unique(cases["set"]), key=lambda name: (name != "train", name != "test"))
    for name, rows_in_set in ((name, cases[cases["set"] == name]) for name in names):
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
    """Every case with its set, the exclusions of every cohort, and the readers' notes.

    The cases come in one canonical order, whatever the tables' row order: the main
    cohort's by case id, then each external cohort's by case id (``read_cohort``'s
    order), and so do the exclusions (their ``row`` still points into the table). Every
    later stage reads them in this order.
    """
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
    exclusions = [_by_case(cohort.exclusions).assign(cohort="main")]
    notes = list(cohort.notes)
    for external in config.cohort.external:
        other = read_cohort(config.resolve(external.table),
                            cohort_columns(config, with_split=False), **options)
        sets.append(other.cases.assign(set=external.name))
        exclusions.append(_by_case(other.exclusions).assign(cohort=external.name))
        notes += [f"{external.name}: {note}" for note in other.notes]
    cases = pd.concat(sets)
    duplicated = cases.index[cases.index.duplicated()]
    if len(duplicated):
        raise DlrnError(f"case ids occur in more than one cohort: "
                        f"{', '.join(map(str, duplicated[:5]))}; case ids must be unique")
    return cases, pd.concat(exclusions, ignore_index=True), notes


def _by_case(exclusions: pd.DataFrame) -> pd.DataFrame:
    """A cohort's exclusions listed by case id (then as read), not by table row."""
    return exclusions.sort_values("case_id", key=lambda ids: ids.fillna("").astype(str),
                                  kind="stable")


def clinical_exclusions(config: StudyConfig, cases: pd.DataFrame) -> pd.DataFrame:
    """Cases that a clinical column's ``exclude`` rule leaves out, as excluded-case rows.

    The rule is the clinical encoder's, learned on the training cases (a blank value
    anywhere; in test and external cases also a level training never had, where the
    column has no 'other'), so every later stage sees the same cases.
    """
    c = config.cohort
    encoder = study_encoder(config)
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

    return column_specs(encoder.columns, missing=encoder.missing, separator=encoder.separator,
                        na_values=encoder.na_values)


def blank_marked_cells(config: StudyConfig, cases: pd.DataFrame) -> tuple[pd.DataFrame,
                                                                         list[str]]:
    """The cases with "not available" and the other missing-value markers of the clinical
    columns (cohort.na_values) made blank, and a note per column saying how many."""
    from dlrn.clinical.spec import blank_markers

    if not config.cohort.clinical:
        return cases, []
    cases, blanked = blank_markers(cases, encoder_specs(study_encoder(config)))
    notes = [f"{column}: {', '.join(f'{n} cell(s) reading {text!r}' for text, n in found.items())}"
             " counted as no value (cohort.na_values)" for column, found in blanked.items()]
    return cases, notes


def run(context: StudyContext) -> CohortSummary:
    cases, problems, notes = read_all_cohorts(context.config, context.progress)
    return _write_cohort(context, cases, problems, notes, _split_text(context.config))


def _write_cohort(context: StudyContext, cases: pd.DataFrame, problems: pd.DataFrame,
                  notes: list[str], split: str) -> CohortSummary:
    """Blank the missing-value markers, apply the clinical exclusions, write the stage."""
    config = context.config
    cases, marker_notes = blank_marked_cells(config, cases)
    notes += marker_notes
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
    # one row per problem: a case with two problems is one excluded case
    n_excluded = (len(excluded[excluded["row"].notna()].drop_duplicates(["cohort", "row"]))
                  + clinical["case_id"].nunique())
    return CohortSummary(
        tables={"tables/cohort_counts": "Cases per set (Figure 1)",
                "tables/excluded_cases": "Excluded cases with reasons",
                "tables/ignored_repeat_masks": "Repeat masks left out of the ICC analysis "
                                               "(their cases are kept)"},
        notes=notes,
        cautions=[f"{n_excluded} case(s) excluded, each listed with its reason in the "
                  "report's excluded cases"] if n_excluded else [],
        cases_analysed=len(cases),
        cases_excluded=n_excluded,
        ignored_repeat_masks=len(ignored.drop_duplicates(["cohort", "row", "column"])),
        split=split)


def table_stage(keep: tuple[str, ...] = ()) -> Stage:
    """The cohort stage of ``dlrn clinical``: the table's cases, without images.

    Label, patient and split as ``dlrn model`` reads them, the clinical columns and
    ``keep`` (an image score made elsewhere) as they are; the clinical rules after
    that (markers, exclusions) are the study's.
    """
    def run_table(context: StudyContext) -> CohortSummary:
        config = context.config
        cases = read_labelled_table(
            config.resolve(config.cohort.table), cohort_columns(config),
            test_size=config.split.test_size, seed=config.split_seed,
            keep=[*config.cohort.clinical, *keep])
        problems = pd.DataFrame(columns=["row", "case_id", "problem", "column", "action",
                                         "cohort"])
        return _write_cohort(context, cases, problems, [], _split_text(config))

    return Stage("cohort", "Patients and split", (), settings, run_table,
                 inputs=lambda config: [config.resolve(config.cohort.table)],
                 version=VERSION, summary_type=CohortSummary)


STAGE = Stage("cohort", "Patients and split", (), settings, run, inputs=inputs,
              version=VERSION, summary_type=CohortSummary)
