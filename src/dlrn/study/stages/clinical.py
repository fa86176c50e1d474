"""Stage ``clinical``: the clinical encoder, baseline tables and the logistic analyses.

One :class:`dlrn.clinical.ClinicalEncoder` is fitted on the training cases
(imputation values, levels and merges, tokens) and saved as JSON; the logistic
analyses, the clinical models, the nomogram and ``dlrn predict`` all encode with it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dlrn.clinical_predictors import ClinicalChoice
from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.study.config import ClinicalColumn, StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import (
    CLINICAL_FILE,
    ENCODER_FILE,
    read_cases,
    save_tables,
    study_encoder,
    train_ids,
)

VERSION = 6  # 2: the clinical encoder, joint tests; 3: constant variables left out, noted;
#             4: R's aliasing, Firth where separated (auto), usual reference levels;
#             5: Table 2's Monte Carlo Fisher p-values seeded; 6: the selection procedure
#             (evaluation.clinical_selection), its path, events per term


@dataclass(frozen=True)
class ClinicalStageSettings:
    clinical: dict[str, ClinicalColumn]
    p_threshold: float
    fallback: str
    missing: str = "impute"
    min_level_count: int = 5
    regression: str = "auto"
    na_values: tuple[str, ...] = ()
    selection: str = "backward"


@dataclass
class ClinicalSummary(StageSummary):
    variables: list[str] = field(default_factory=list)
    univariate: list[str] = field(default_factory=list)
    independent: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    basis: str = "none"
    p_threshold: float = 0.05
    encoding: str = ""  # the methods text of the encoder and of the regressions
    regression: str = ""
    procedure: str = "backward"  # evaluation.clinical_selection
    removed: list[str] = field(default_factory=list)  # backward: in the order they left
    events: list[str] = field(default_factory=list)  # events per term, one line per model

    def facts(self) -> dict[str, Any]:
        p = self.p_threshold
        independent = {"backward": f"independent predictors (backward elimination, "
                                   f"likelihood-ratio p < {p})",
                       "enter": f"independent predictors (multivariate p < {p})",
                       "none": "predictors (pre-specified: every declared variable)"}
        facts = {"clinical features": ", ".join(self.variables),
                 f"significant in univariate analysis (p < {p})":
                     ", ".join(self.univariate) or "none",
                 independent[self.procedure]: ", ".join(self.independent) or "none"}
        if self.procedure == "backward":
            facts["removed by backward elimination, in order"] = ", ".join(self.removed) or "none"
        facts["used by the clinical models and the nomogram"] = ClinicalChoice(
            self.selected, self.basis).use()
        facts["events per term"] = "; ".join(self.events) or "no multivariate model"
        return facts


def settings(config: StudyConfig) -> ClinicalStageSettings:
    e = config.evaluation
    c = config.cohort
    return ClinicalStageSettings(c.clinical, e.clinical_p_threshold, e.clinical_fallback,
                                 c.missing, c.min_level_count, e.clinical_regression,
                                 tuple(c.na_values), e.clinical_selection)


def fit_study_encoder(config: StudyConfig, training: pd.DataFrame) -> tuple[Any, dict[str, str]]:
    """The study's encoder fitted on the training cases, without the columns its rules leave
    with one value (e.g. a yes/no column whose rarer answer is below min_level_count), and why
    each was left out: the study goes on and the report says so."""
    from dlrn.clinical.encoding import OneValuedColumnError

    columns, dropped = dict(config.cohort.clinical), {}
    while True:
        encoder = study_encoder(config, columns)
        try:
            return encoder.fit(training), dropped
        except OneValuedColumnError as error:
            dropped[error.column] = str(error)
            del columns[error.column]


def baseline_tables(cases: pd.DataFrame, variables: list[str], columns: dict[str, Any],
                    external: list[str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Training vs test (Table 2), then training vs each external set, with notes.

    The training set comes first in every table; each variable with a blank value has
    a "missing, n (%)" row, a multilabel column one row per token. An external set
    whose variables cannot be compared (e.g. one missing for all its cases) gets a note instead of
    a table: the external evaluation does not depend on it.
    """
    from dlrn.clinical import baseline_table

    def compare(other: str) -> pd.DataFrame:
        table = baseline_table(cases[cases["set"].isin(["train", other])], "set", variables,
                               columns=columns, group_order=["train", other],
                               missing_rows=True)
        return table.rename(columns={"shapiro_p_1": "train Shapiro-Wilk p",
                                     "shapiro_p_2": f"{other} Shapiro-Wilk p"})

    tables, notes = {"baseline": compare("test")}, []
    for name in external:
        try:
            tables[f"baseline_{name}"] = compare(name)
        except DlrnError as error:
            notes.append(f"no baseline table of the training vs the {name} set: {error}")
    return tables, notes


_MULTIVARIATE_CAPTIONS = {
    "backward": "The final multivariate logistic regression after backward elimination "
                "(drop-one likelihood-ratio tests), training set (Supplementary Table 1)",
    "enter": "Multivariate logistic regression of the univariately significant features, "
             "training set (Supplementary Table 1)",
    "none": "Multivariate logistic regression of every declared feature (pre-specified "
            "model), training set (Supplementary Table 1)"}
_PATH_CAPTIONS = {
    "backward": "Backward elimination: each model fitted, the variable with the largest "
                "drop-one likelihood-ratio p (all its terms; R's drop1), whether it left, "
                "the model's AIC and deviance",
    "enter": "The multivariate model (enter): its variables, terms, AIC and deviance",
    "none": "The pre-specified model: its variables, terms, AIC, deviance and its "
            "least significant variable (drop-one likelihood-ratio test, not used)"}


def _captions(tables: dict[str, pd.DataFrame], procedure: str) -> dict[str, str]:
    captions = {"tables/baseline": "Baseline characteristics, training vs test set (Table 2)"}
    captions.update({f"tables/{key}": f"Baseline characteristics, training vs "
                                      f"{key.removeprefix('baseline_')} set (external)"
                     for key in tables if key != "baseline"})
    captions["tables/univariate"] = ("Univariate logistic regression, training set "
                                     "(Supplementary Table 1)")
    captions["tables/multivariate"] = _MULTIVARIATE_CAPTIONS[procedure]
    captions["tables/selection_path"] = _PATH_CAPTIONS[procedure]
    captions["tables/variables"] = ("Each clinical variable's p-value (likelihood-ratio test "
                                    "of all its terms together where it has several), "
                                    "univariate and in the final multivariate model")
    return captions


def chosen_predictors(config: StudyConfig, selection: Any
                      ) -> tuple[list[str], str, str | None]:
    """What the models use from a selection (:class:`dlrn.clinical.ClinicalSelection`): its
    predictors, else evaluation.clinical_fallback. One rule for the clinical stage and for
    every bootstrap sample that validates a nomogram."""
    from dlrn.clinical_predictors import clinical_choice

    e = config.evaluation
    return clinical_choice(selection.univariate_kept, list(selection.selected),
                           fallback=e.clinical_fallback, p_threshold=e.clinical_p_threshold,
                           procedure=selection.procedure)


def run(context: StudyContext) -> ClinicalSummary:
    from dlrn.clinical import logistic_analysis, methods_text, regression_methods_text

    config = context.config
    cases = read_cases(context)
    variables = list(config.cohort.clinical)
    p_threshold = config.evaluation.clinical_p_threshold
    tables, notes = baseline_tables(cases, variables, config.cohort.clinical,
                                    [e.name for e in config.cohort.external])
    training = cases.loc[train_ids(cases)]
    encoder, constant = fit_study_encoder(config, training)
    constant.update(constant_variables(encoder, training, list(encoder.terms_)))
    notes += [f"{name} is left out of the logistic regressions: {why}"
              for name, why in constant.items()]
    analysis = logistic_analysis(training, "label",
                                 [v for v in variables if v not in constant], encoder=encoder,
                                 regression=config.evaluation.clinical_regression,
                                 p_threshold=p_threshold,
                                 procedure=config.evaluation.clinical_selection)
    selection = analysis.selection
    selected, basis, note = chosen_predictors(config, selection)
    folder = context.stage_dir("clinical")
    (folder / ENCODER_FILE).write_text(json.dumps(encoder.to_dict(), indent=1))
    choice = ClinicalChoice(selected, basis, note, selection.univariate_kept,
                            analysis.independent)
    (folder / CLINICAL_FILE).write_text(json.dumps(dataclasses.asdict(choice)))
    save_tables(folder, {**tables, "univariate": analysis.univariate,
                         "multivariate": analysis.multivariate,
                         "selection_path": selection.path,
                         "variables": analysis.variables})
    notes += [f"training set: {n}" for n in encoder.notes_] + _applied_notes(encoder, cases)
    notes += analysis.notes
    events, cautions = model_events(analysis, training)
    return ClinicalSummary(tables=_captions(tables, selection.procedure),
                           notes=notes + cautions + ([note] if note else []),
                           variables=variables, univariate=selection.univariate_kept,
                           independent=analysis.independent, selected=selected, basis=basis,
                           p_threshold=p_threshold, encoding=methods_text(encoder),
                           regression=regression_methods_text(analysis),
                           procedure=selection.procedure, removed=selection.removed,
                           events=events)


def model_events(analysis: Any, training: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Events per term of the multivariate model the selection started from and of the one it
    ended with (one line each), and a caution for each below the usual 10."""
    from dlrn.clinical.events import events_per_term

    selection = analysis.selection
    if selection.path.empty:
        return [], []
    labels = training.drop(index=analysis.excluded["case"].unique())["label"]
    models = {"multivariate model": int(selection.path["terms"].iloc[0])}
    if selection.procedure == "backward":
        models = {"multivariate model before backward elimination": models[
            "multivariate model"]}
        if selection.model is not None:
            models["final multivariate model"] = selection.model.fit.rank - 1
    counts = {what: events_per_term(labels, terms) for what, terms in models.items()}
    notes: list[str] = []
    for what, count in counts.items():
        note = count.note(what, brief=bool(notes))
        notes += [note] if note else []
    return [count.statement(what) for what, count in counts.items()], notes


def constant_variables(encoder: Any, training: pd.DataFrame,
                       variables: list[str]) -> dict[str, str]:
    """Variables with a term that does not vary over the training cases, and why.

    After the training rules (rare levels merged, missing values imputed) a yes/no column
    whose rarer value is too rare can be constant: it cannot be estimated, so the study
    leaves it out and says so instead of stopping.
    """
    kept = training.drop(index=encoder.exclusions(training)["case"].unique())
    encoded = encoder.transform(kept)
    constant = {}
    for name in variables:
        flat = [term for term in encoder.terms_[name] if encoded[term].nunique() < 2]
        if flat:
            constant[name] = (f"{', '.join(flat)} is the same for every training case after "
                              f"the training rules (cohort.min_level_count "
                              f"{encoder.min_level_count})")
    return constant


def _applied_notes(encoder: Any, cases: pd.DataFrame) -> list[str]:
    """What the training rules did to the test and external cases (imputed, unseen levels)."""
    notes = []
    for name, rows in cases[cases["set"] != "train"].groupby("set", sort=False):
        notes += encoder.transform_notes(rows, where=f"{name} set")
    return notes


def _no_clinical(context: StudyContext) -> str | None:
    return None if context.config.cohort.clinical else "no clinical columns in cohort.clinical"


STAGE = Stage("clinical", "Clinical characteristics", ("cohort",), settings, run,
              skip=_no_clinical, version=VERSION, summary_type=ClinicalSummary)
