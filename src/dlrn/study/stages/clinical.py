"""Stage ``clinical``: baseline tables and the logistic analyses choosing clinical predictors."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dlrn.clinical_predictors import ClinicalChoice
from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.study.config import ColumnType, StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import CLINICAL_FILE, read_cases, save_tables, train_ids

VERSION = 1


@dataclass(frozen=True)
class ClinicalStageSettings:
    clinical: dict[str, ColumnType]
    p_threshold: float
    fallback: str


@dataclass
class ClinicalSummary(StageSummary):
    variables: list[str] = field(default_factory=list)
    univariate: list[str] = field(default_factory=list)
    independent: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    basis: str = "none"
    p_threshold: float = 0.05

    def facts(self) -> dict[str, Any]:
        p = self.p_threshold
        return {"clinical features": ", ".join(self.variables),
                f"significant in univariate analysis (p < {p})":
                    ", ".join(self.univariate) or "none",
                f"independent predictors (multivariate p < {p})":
                    ", ".join(self.independent) or "none",
                "used by the clinical models and the nomogram":
                    ClinicalChoice(self.selected, self.basis).use()}


def settings(config: StudyConfig) -> ClinicalStageSettings:
    e = config.evaluation
    return ClinicalStageSettings(config.cohort.clinical, e.clinical_p_threshold,
                                 e.clinical_fallback)


def categorical_columns(config: StudyConfig) -> list[str]:
    return [name for name, kind in config.cohort.clinical.items() if kind == "categorical"]


def baseline_tables(cases: pd.DataFrame, variables: list[str], categorical: list[str],
                    external: list[str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Training vs test (Table 2), then training vs each external set, with notes.

    The training set comes first in every table. An external set whose variables
    cannot be compared (e.g. one missing for all its cases) gets a note instead of
    a table: the external evaluation does not depend on it.
    """
    from dlrn.clinical import baseline_table

    def compare(other: str) -> pd.DataFrame:
        table = baseline_table(cases[cases["set"].isin(["train", other])], "set", variables,
                               categorical=categorical, group_order=["train", other])
        return table.rename(columns={"shapiro_p_1": "train Shapiro-Wilk p",
                                     "shapiro_p_2": f"{other} Shapiro-Wilk p"})

    tables, notes = {"baseline": compare("test")}, []
    for name in external:
        try:
            tables[f"baseline_{name}"] = compare(name)
        except DlrnError as error:
            notes.append(f"no baseline table of the training vs the {name} set: {error}")
    return tables, notes


def _captions(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    captions = {"tables/baseline": "Baseline characteristics, training vs test set (Table 2)"}
    captions.update({f"tables/{key}": f"Baseline characteristics, training vs "
                                      f"{key.removeprefix('baseline_')} set (external)"
                     for key in tables if key != "baseline"})
    captions["tables/univariate"] = ("Univariate logistic regression, training set "
                                     "(Supplementary Table 1)")
    captions["tables/multivariate"] = ("Multivariate logistic regression of the univariately "
                                       "significant features, training set "
                                       "(Supplementary Table 1)")
    return captions


def run(context: StudyContext) -> ClinicalSummary:
    from dlrn.clinical import logistic_analysis
    from dlrn.clinical_predictors import clinical_choice, independent_predictors, training_levels

    config = context.config
    cases = read_cases(context)
    variables = list(config.cohort.clinical)
    categorical = categorical_columns(config)
    p_threshold = config.evaluation.clinical_p_threshold
    tables, notes = baseline_tables(cases, variables, categorical,
                                    [e.name for e in config.cohort.external])
    training = cases.loc[train_ids(cases)]
    analysis = logistic_analysis(training, "label", variables, categorical=categorical,
                                 p_threshold=p_threshold)
    independent = independent_predictors(analysis.multivariate, variables, p_threshold)
    selected, basis, note = clinical_choice(list(analysis.selected), independent,
                                            fallback=config.evaluation.clinical_fallback,
                                            p_threshold=p_threshold)
    # Levels seen in training; a level met only later is an error naming the case.
    folder = context.stage_dir("clinical")
    choice = ClinicalChoice(selected, basis, note, training_levels(training, categorical),
                            list(analysis.selected), independent)
    (folder / CLINICAL_FILE).write_text(json.dumps(dataclasses.asdict(choice)))
    save_tables(folder, {**tables, "univariate": analysis.univariate,
                         "multivariate": analysis.multivariate})
    return ClinicalSummary(tables=_captions(tables), notes=notes + ([note] if note else []),
                           variables=variables, univariate=list(analysis.selected),
                           independent=independent, selected=selected, basis=basis,
                           p_threshold=p_threshold)


def _no_clinical(context: StudyContext) -> str | None:
    return None if context.config.cohort.clinical else "no clinical columns in cohort.clinical"


STAGE = Stage("clinical", "Clinical characteristics", ("cohort",), settings, run,
              skip=_no_clinical, version=VERSION, summary_type=ClinicalSummary)
