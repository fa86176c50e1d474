"""Stage ``comparison``: Table 7, DeLong tests, calibration and decision curves of the best
model of each kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.study.runner import Stage, StudyContext
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

VERSION = 1
MODEL_STAGES = ("clinical_models", "hcr_models", "deep", "dlr_models", "dlrn")
FIGURES = (("roc", "ROC curves (Figure 7)"),
           ("delong", "DeLong test p-values (Supplementary Figure 7)"),
           ("calibration", "Calibration curves (Supplementary Figure 8)"),
           ("decision_curve", "Decision curves (Figure 8)"))


@dataclass(frozen=True)
class ComparisonStageSettings:
    calibration_bins: int


@dataclass
class ComparisonSummary(StageSummary):
    models: list[str] = field(default_factory=list)

    def facts(self) -> dict[str, Any]:
        return {"models compared": ", ".join(self.models)}


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
        if stage_oof is not None:
            out_of_fold[column] = stage_oof[column]
    return predictions, out_of_fold


def cutoff_rule(scores: list[str], out_of_fold: list[str]) -> str:
    """The caption's sentences on where each model's cut-off was chosen."""
    oof = [score for score in scores if score in out_of_fold]
    in_sample = [score for score in scores if score not in oof]
    where = ([f"on the out-of-fold training predictions for {', '.join(oof)}"] if oof else [])
    where += ([f"on the training-set predictions for {', '.join(in_sample)}"]
              if in_sample else [])
    text = ("Each model's Youden cut-off is the one its own stage chose, on training data "
            "only, applied unchanged to every set: " + "; ".join(where) + ", so a model "
            "shows the same cut-off and sensitivity here as in its own table.")
    if "DLRN" in oof:
        text += f" The DLRN's out-of-fold probabilities come from {DLRN_OOF_RULE}."
    elif "DLRN" in in_sample:
        text += (f" The DLRN's cut-off is on its in-sample training predictions because "
                 f"{DLRN_OOF_RULE} failed (see the DLRN section).")
    if any(score.startswith("DL-") for score in in_sample):
        text += (" A CNN has no out-of-fold predictions: its cut-off is the one the deep "
                 "learning stage chose on its training predictions (also used for Grad-CAM).")
    return text


def run(context: StudyContext) -> ComparisonSummary:
    from dlrn.evaluation.summary import write_evaluation
    from dlrn.model_comparison import comparison_metrics

    predictions, out_of_fold = comparison_predictions(context)
    scores = [c for c in predictions.columns if c not in ("label", "set")]
    if not scores:
        raise DlrnError("no model was built, so there is nothing to compare")
    folder = context.stage_dir("comparison")
    predictions.to_csv(folder / PREDICTIONS_FILE)
    out_of_fold.to_csv(folder / OOF_FILE)
    write_evaluation(predictions, scores, folder / "evaluation", overwrite=True,
                     groups=context.config.evaluation.calibration_bins,
                     metrics=comparison_metrics(predictions, out_of_fold, scores))
    figures = {}
    for kind, caption in FIGURES:
        for name in dict.fromkeys(predictions["set"]):
            stem = f"evaluation/figures/{kind}_{name}"
            if (folder / f"{stem}.png").exists():
                figures[stem] = f"{caption}, {name} set"
    return ComparisonSummary(
        tables={"evaluation/metrics": "Performance of the best model of each kind (Table 7). "
                                      + cutoff_rule(scores, list(out_of_fold)),
                "evaluation/hosmer_lemeshow": "Calibration: Hosmer-Lemeshow test, intercept "
                                              "and slope",
                "evaluation/delong": "DeLong tests between models"},
        figures=figures, models=scores)


STAGE = Stage("comparison", "Comparison of all models", MODEL_STAGES,
              lambda c: ComparisonStageSettings(c.evaluation.calibration_bins), run,
              optional=MODEL_STAGES, version=VERSION, summary_type=ComparisonSummary)
