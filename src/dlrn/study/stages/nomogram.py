"""Stage ``dlrn``: the DLR nomogram on the best DLR model's score and the clinical predictors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import (
    OOF_FILE,
    PREDICTIONS_FILE,
    best_model,
    clinical_record,
    figure_dir,
    read_cases,
    read_out_of_fold,
    read_predictions,
    save_tables,
    train_ids,
)

VERSION = 1
#: How the DLRN gets out-of-fold training probabilities (for its cut-off, as the other models).
DLRN_OOF_RULE = ("its logistic regression cross-validated on the training set with the DLR "
                 "models' folds")


@dataclass(frozen=True)
class NomogramStageSettings:
    """Nothing beyond the upstream stages: the clinical choice and the DLR model decide."""


@dataclass
class NomogramSummary(StageSummary):
    dlr_model: str = ""
    clinical_predictors: str = ""
    out_of_fold: bool = True

    def facts(self) -> dict[str, Any]:
        return {"DLR model": self.dlr_model, "clinical predictors": self.clinical_predictors}


def best_scores(context: StudyContext, stage: str, *, out_of_fold: bool) -> pd.Series:
    """The best model's probability per case; training cases out-of-fold when asked."""
    best = best_model(context, stage)
    scores = read_predictions(context, stage)[best]
    if out_of_fold:
        oof = read_out_of_fold(context, stage)[best]
        scores.loc[oof.index] = oof.to_numpy()
    return scores


def read_folds(context: StudyContext, stage: str) -> pd.Series:
    """The CV fold (1..K) of each training case in a feature-set stage."""
    return read_predictions(context, stage, "result/cv_folds.csv")["fold"]


def run(context: StudyContext) -> NomogramSummary:
    from dlrn.stacking import NomogramClassifier, nomogram_inputs, out_of_fold_probability

    cases = read_cases(context)
    choice = clinical_record(context)
    # Out-of-fold scores on training cases, so the nomogram does not learn the DLR
    # model's in-sample optimism; test and external cases get the frozen model's scores.
    X = nomogram_inputs(cases, best_scores(context, "dlr_models", out_of_fold=True),
                        choice.selected, choice.levels)
    training = train_ids(cases)
    y = cases.loc[training, "label"].astype(int)
    nomogram = NomogramClassifier(choice.categorical).fit(X.loc[training], y).nomogram_
    folder = context.stage_dir("dlrn")
    (folder / "nomogram.json").write_text(json.dumps(nomogram.to_dict(), indent=1))
    points = nomogram.points(X)
    predictions = cases[["label", "set"]].assign(DLRN=points["probability"])
    predictions.to_csv(folder / PREDICTIONS_FILE)
    notes = [choice.note] if choice.note else []
    try:
        oof = out_of_fold_probability(X.loc[training], y, read_folds(context, "dlr_models"),
                                      choice.categorical)
    except DlrnError as error:  # e.g. a rare clinical level seen in one fold only
        notes.append(f"The DLRN's cut-off is chosen on its in-sample training predictions: "
                     f"{DLRN_OOF_RULE} failed ({error}).")
    else:
        predictions.loc[training, ["label", "set"]].assign(DLRN=oof).to_csv(folder / OOF_FILE)
    nomogram.plot(figure_dir(folder) / "nomogram")
    save_tables(folder, {"dlrn_points": points.reset_index()})
    return NomogramSummary(
        figures={"figures/nomogram": "The DLR nomogram (Figure 6): points per predictor, "
                                     "total points and predicted probability"},
        tables={"tables/dlrn_points": "Nomogram points of every case"},
        notes=notes, dlr_model=best_model(context, "dlr_models"),
        clinical_predictors=choice.use() if choice.selected else "none (DLR score only)",
        out_of_fold=(folder / OOF_FILE).exists())


STAGE = Stage("dlrn", "DLR nomogram (DLRN)", ("dlr_models", "clinical"),
              lambda c: NomogramStageSettings(), run, optional=("clinical",), version=VERSION,
              summary_type=NomogramSummary)
