"""Stage ``comparison``: Table 7, DeLong tests, calibration and decision curves of the best
model of each kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.evaluating import (
    APPARENT_CAPTION,
    EVALUATION_DIR,
    EvaluationStageSettings,
    clustering_sentence,
    evaluation_options,
    evaluation_settings,
    figure_captions,
    patient_groups,
    training_rows_sentence,
)
from dlrn.study.stages.files import (
    OOF_FILE,
    PREDICTIONS_FILE,
    best_model,
    read_cases,
    read_out_of_fold,
    read_predictions,
    train_ids,
)
from dlrn.study.stages.nomogram import DLRN_OOF_RULE

VERSION = 2
MODEL_STAGES = ("clinical_models", "hcr_models", "deep", "dlr_models", "dlrn")
FIGURES = (("roc", "ROC curves (Figure 7)"),
           ("delong", "DeLong test p-values (Supplementary Figure 7)"),
           ("calibration", "Calibration curves (Supplementary Figure 8)"),
           ("decision_curve", "Decision curves (Figure 8)"))
DEEP_CUTOFF_SOURCE = "the deep learning stage (Youden on the chosen CNN's training predictions)"


@dataclass(frozen=True)
class ComparisonStageSettings:
    evaluation: EvaluationStageSettings


@dataclass
class ComparisonSummary(StageSummary):
    models: list[str] = field(default_factory=list)
    out_of_fold: list[str] = field(default_factory=list)
    images: int = 0
    patients: int = 0

    @property
    def clustered(self) -> bool:
        """True when some patient has several images (patient-aware statistics)."""
        return self.patients < self.images

    def facts(self) -> dict[str, Any]:
        facts = {"models compared": ", ".join(self.models),
                 "training rows out-of-fold for": ", ".join(self.out_of_fold) or "none"}
        if self.clustered:
            facts["images / patients"] = f"{self.images} / {self.patients}"
        return facts


def comparison_predictions(context: StudyContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The best model of each kind side by side (wide predictions shape), and the
    out-of-fold training predictions of those whose stage has them."""
    cases = read_cases(context)
    predictions = cases[["label", "set"]].copy()
    out_of_fold = cases.loc[train_ids(cases), ["label"]]
    for stage in MODEL_STAGES:
        if not context.done(stage):
            continue
        column = best_model(context, stage)  # the nomogram stage names DLRN or RadN
        predictions[column] = read_predictions(context, stage)[column]
        stage_oof = read_out_of_fold(context, stage)
        if stage_oof is not None and column in stage_oof.columns:
            out_of_fold[column] = stage_oof[column]
    return predictions, out_of_fold


def deep_cutoff(context: StudyContext, scores: list[str]) -> dict[str, float]:
    """The chosen CNN's cut-off as the deep learning stage chose it (its metrics table)."""
    path = context.stage_dir("deep") / "tables" / "deep_metrics.csv"
    cnn = [score for score in scores if score.startswith("DL-")]
    if not cnn or not path.exists():
        return {}
    metrics = pd.read_csv(path)
    row = metrics[(metrics["model"] == cnn[0]) & metrics["set"].astype(str).str.startswith(
        "train")]
    return {cnn[0]: float(row["threshold"].iloc[0])} if len(row) else {}


def cutoff_rule(scores: list[str], out_of_fold: list[str],
                given: dict[str, float] | None = None) -> str:
    """The caption's sentences on where each model's cut-off was chosen."""
    given = given or {}
    oof = [score for score in scores if score in out_of_fold and score not in given]
    in_sample = [score for score in scores if score not in out_of_fold and score not in given]
    where = ([f"on the out-of-fold training predictions for {', '.join(oof)}"] if oof else [])
    where += ([f"on the training-set predictions for {', '.join(in_sample)}"]
              if in_sample else [])
    where += [f"by {DEEP_CUTOFF_SOURCE} for {score}" for score in given]
    text = ("Each model's Youden cut-off is the one its own stage chose, on training data "
            "only, applied unchanged to every set (cutoff_source): " + "; ".join(where)
            + ", so a model shows the same cut-off here as in its own table.")
    if "DLRN" in oof:
        text += f" The DLRN's out-of-fold probabilities come from {DLRN_OOF_RULE}."
    elif "DLRN" in in_sample:
        text += (f" The DLRN's cut-off is on its in-sample training predictions because "
                 f"{DLRN_OOF_RULE} failed (see the DLRN section).")
    return text


def run(context: StudyContext) -> ComparisonSummary:
    from dlrn.evaluation.summary import write_evaluation
    from dlrn.model_comparison import comparison_oof

    predictions, out_of_fold = comparison_predictions(context)
    scores = [c for c in predictions.columns if c not in ("label", "set")]
    if not scores:
        raise DlrnError("no model was built, so there is nothing to compare")
    folder = context.stage_dir("comparison")
    predictions.to_csv(folder / PREDICTIONS_FILE)
    out_of_fold.to_csv(folder / OOF_FILE)
    settings = evaluation_settings(context.config)
    groups = patient_groups(read_cases(context))
    cutoffs = deep_cutoff(context, scores)
    oof = comparison_oof(out_of_fold, scores)
    with_oof = [] if oof is None else list(oof.columns)
    write_evaluation(predictions, scores, folder / EVALUATION_DIR, overwrite=True, oof=oof,
                     groups=groups, cutoffs=cutoffs,
                     cutoff_source=dict.fromkeys(cutoffs, DEEP_CUTOFF_SOURCE),
                     **evaluation_options(settings))
    return ComparisonSummary(
        tables=_table_captions(scores, with_oof, cutoffs, groups, settings,
                               (folder / EVALUATION_DIR / "patient_metrics.csv").exists()),
        figures=figure_captions(folder, FIGURES, EVALUATION_DIR), models=scores,
        out_of_fold=with_oof, images=len(predictions),
        patients=len(predictions) if groups is None else int(groups.nunique()))


def _table_captions(scores: list[str], with_oof: list[str], cutoffs: dict[str, float],
                    groups: pd.Series | None, settings: EvaluationStageSettings,
                    patient_level: bool) -> dict[str, str]:
    apparent = [score for score in scores if score not in with_oof]
    rows = training_rows_sentence(with_oof, apparent)
    clustering = clustering_sentence(groups, settings)
    tables = {
        f"{EVALUATION_DIR}/metrics": "Performance of the best model of each kind (Table 7). "
        + " ".join((cutoff_rule(scores, with_oof, cutoffs), rows, clustering)),
        f"{EVALUATION_DIR}/hosmer_lemeshow": "Calibration: Hosmer-Lemeshow test, intercept "
        f"and slope ({settings.calibration_bins} groups). {rows}",
        f"{EVALUATION_DIR}/delong": "Paired tests between models' AUCs, each set separately. "
        "p_value_holm: Holm-adjusted over the pairs of a set. " + " ".join((rows, clustering)),
    }
    if with_oof:
        tables[f"{EVALUATION_DIR}/metrics_apparent"] = APPARENT_CAPTION
    if patient_level:
        level = (f"Patient level: one row per patient, scored by the "
                 f"{settings.patient_aggregation} of its images' scores; Youden cut-offs chosen "
                 "on the patient-level (out-of-fold) training rows, a cut-off chosen elsewhere "
                 "kept.")
        tables[f"{EVALUATION_DIR}/patient_metrics"] = (
            f"Performance of the best model of each kind per patient. {level} {rows}")
        tables[f"{EVALUATION_DIR}/patient_delong"] = (
            f"Paired tests between models per patient (DeLong; Holm-adjusted p_value_holm). "
            f"{level}")
        tables[f"{EVALUATION_DIR}/patient_hosmer_lemeshow"] = (
            f"Calibration per patient: Hosmer-Lemeshow test. {level}")
    return tables


STAGE = Stage("comparison", "Comparison of all models", MODEL_STAGES,
              lambda c: ComparisonStageSettings(evaluation_settings(c)), run,
              optional=MODEL_STAGES, version=VERSION, summary_type=ComparisonSummary)
