"""Stage ``dlrn``: the nomogram of the best image model's score and the clinical predictors.

With deep learning it is the DLRN (the best DLR model's score); with ``dl.enabled:
false`` it is the radiomics nomogram "RadN" (the best HCR model's score), with the
same figures, tables, bundle entry and ``dlrn predict`` output. The clinical
columns enter with the rules of the study's clinical encoder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.display_labels import DisplayLabels
from dlrn.errors import DlrnError
from dlrn.report.html import LABELS_FILE
from dlrn.report.summary import StageSummary
from dlrn.stacking import (
    DLRN,
    GIVEN_SCORE_STAGE,
    RADIOMICS_NOMOGRAM,
    NomogramKind,
    given_score_nomogram,
)
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import (
    OOF_FILE,
    PREDICTIONS_FILE,
    best_model,
    clinical_encoder,
    clinical_record,
    figure_dir,
    read_cases,
    read_out_of_fold,
    read_predictions,
    save_tables,
    train_ids,
    write_best,
)

VERSION = 3  # 2: the clinical encoder's rules; the radiomics nomogram without DL;
#             3: aliased terms, Firth where separated (auto), points shares and warnings
#: How the nomogram gets out-of-fold training probabilities (for its cut-off, as the others).
DLRN_OOF_RULE = ("its logistic regression cross-validated on the training set with the DLR "
                 "models' folds")  # the HCR models' folds for the radiomics nomogram


@dataclass(frozen=True)
class NomogramStageSettings:
    """The regression and the names for people (the figure's; the study's ``labels``); the
    clinical choice, its encoder and the image models decide the rest."""

    regression: str = "auto"
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass
class NomogramSummary(StageSummary):
    dlr_model: str = ""
    clinical_predictors: str = ""
    out_of_fold: bool = True
    nomogram: str = "DLRN"
    title: str = DLRN.title
    method: str = "ML"  # ML or Firth: how its logistic model was fitted
    score_share: float = 0.0  # the image score's share of the points ranges

    def facts(self) -> dict[str, Any]:
        fitted = ("Firth's penalised regression" if self.method == "Firth"
                  else "maximum likelihood (R glm)")
        return {"nomogram": self.title, "image score (out-of-fold on training cases)":
                self.dlr_model, "clinical predictors": self.clinical_predictors,
                "logistic model fitted by": fitted,
                "image score's share of the points": f"{self.score_share:.0%}"}


def nomogram_kind(context: StudyContext) -> NomogramKind:
    """The DLRN when the DLR models ran, the given score's nomogram under ``dlrn clinical
    --score``, else the radiomics nomogram."""
    if context.done(DLRN.score_stage):
        return DLRN
    if context.done(GIVEN_SCORE_STAGE):
        return given_score_nomogram(best_model(context, GIVEN_SCORE_STAGE))
    return RADIOMICS_NOMOGRAM


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


def make_nomogram(context: StudyContext, kind: NomogramKind, selected: list[str]) -> Any:
    """An unfitted nomogram with the study's clinical rules and regression."""
    from dlrn.clinical_predictors import nomogram_columns
    from dlrn.nomogram import Nomogram

    saved = clinical_encoder(context)
    if saved is None:
        return Nomogram(columns={kind.score: "continuous"},
                        regression=context.config.evaluation.clinical_regression)
    params = saved["params"]
    return Nomogram(columns=nomogram_columns(saved, selected, kind.score),
                    missing=params["missing"], min_level_count=params["min_level_count"],
                    regression=context.config.evaluation.clinical_regression)


def _plot(nomogram: Any, folder: Path, display: DisplayLabels) -> None:
    """The figure with the study's names for people (rows, units, levels' wording), and
    those names in ``labels.json`` for the report's interactive nomogram."""
    scales = nomogram.scales_
    names = {"labels": display.axes([scale.name for scale in scales]),
             "levels": {scale.name: {str(v): display.level(scale.name, v)
                                     for v in scale.values}
                        for scale in scales if scale.kind == "categorical"}}
    (folder / LABELS_FILE).write_text(json.dumps(names, indent=1))
    nomogram.plot(figure_dir(folder) / "nomogram", **names)


def run(context: StudyContext) -> NomogramSummary:
    from dlrn.stacking import nomogram_inputs, out_of_fold_probability

    kind = nomogram_kind(context)
    cases = read_cases(context)
    choice = clinical_record(context)
    # Out-of-fold scores on training cases, so the nomogram does not learn the image
    # model's in-sample optimism; test and external cases get the frozen model's scores.
    X = nomogram_inputs(cases, best_scores(context, kind.score_stage, out_of_fold=True),
                        choice.selected, kind.score)
    training = train_ids(cases)
    y = cases.loc[training, "label"].astype(int)
    nomogram = make_nomogram(context, kind, choice.selected).fit(X.loc[training], y)
    folder = context.stage_dir("dlrn")
    (folder / "nomogram.json").write_text(json.dumps(nomogram.to_dict(), indent=1))
    write_best(folder, kind.name, f"the {kind.title}")
    points = nomogram.points(X)
    predictions = cases[["label", "set"]].assign(**{kind.name: points["probability"]})
    predictions.to_csv(folder / PREDICTIONS_FILE)
    notes = ([choice.note] if choice.note else []) + _encoding_notes(nomogram, X, cases)
    notes += _model_notes(nomogram, kind, len(training))
    try:
        oof = out_of_fold_probability(make_nomogram(context, kind, choice.selected),
                                      X.loc[training], y, read_folds(context, kind.score_stage),
                                      kind.name)
    except DlrnError as error:  # e.g. a rare clinical level seen in one fold only
        rule = DLRN_OOF_RULE.replace("DLR models", f"{kind.score_model}s")
        firth = (" Firth's regression (evaluation.clinical_regression: auto or firth) keeps "
                 "the estimates finite under separation." if "separation" in str(error) else "")
        notes.append(f"The {kind.name}'s cut-off is chosen on its in-sample training "
                     f"predictions: {rule} failed ({error}).{firth}")
    else:
        predictions.loc[training, ["label", "set"]].assign(**{kind.name: oof}).to_csv(
            folder / OOF_FILE)
    _plot(nomogram, folder, DisplayLabels.of(context.config.labels))
    shares = nomogram.point_shares()
    save_tables(folder, {"dlrn_points": points.reset_index(), "nomogram_axes": shares})
    return NomogramSummary(
        figures={"figures/nomogram": f"The {kind.title} (Figure 6): points per predictor, "
                                     "total points and predicted probability"},
        tables={"tables/dlrn_points": f"{kind.name} points of every case",
                "tables/nomogram_axes": (f"{kind.name}: each axis' points range and its share "
                                         "of all axes' ranges; a categorical axis' fewest "
                                         "training cases at either end")},
        method=nomogram.method_,
        score_share=float(shares.set_index("predictor").loc[kind.score, "share"]),
        notes=notes, dlr_model=best_model(context, kind.score_stage),
        clinical_predictors=(choice.use() if choice.selected
                             else f"none ({kind.score_model} score only)"),
        out_of_fold=(folder / OOF_FILE).exists(), nomogram=kind.name, title=kind.title)


def nomogram_cutoff(context: StudyContext) -> float:
    """The nomogram's Youden cut-off as the comparison chooses it: on its out-of-fold
    training predictions, or its in-sample ones where cross-validating it failed."""
    from dlrn.evaluation.threshold import youden_threshold

    name = best_model(context, "dlrn")
    rows = read_out_of_fold(context, "dlrn")
    if rows is None:
        predictions = read_predictions(context, "dlrn")
        rows = predictions[predictions["set"] == "train"]
    return youden_threshold(rows["label"].astype(int), rows[name])


def _model_notes(nomogram: Any, kind: NomogramKind, n_training: int) -> list[str]:
    """How the nomogram's logistic model was fitted (Firth, aliased terms) and whether one
    axis takes most of its scale on a handful of cases."""
    notes = [f"{kind.name} model: {note}" for note in nomogram.fit_notes_.values()]
    return notes + [f"{kind.name}: {note}" for note in nomogram.readability_notes(n_training)]


def _encoding_notes(nomogram: Any, X: pd.DataFrame, cases: pd.DataFrame) -> list[str]:
    """Imputed values and unseen levels of the test and external cases, by set."""
    notes = []
    for name, rows in cases[cases["set"] != "train"].groupby("set", sort=False):
        notes += nomogram.notes(X.loc[rows.index], where=f"{name} set")
    return notes


def _no_image_score(context: StudyContext) -> str | None:
    if any(context.done(stage) for stage in (DLRN.score_stage, GIVEN_SCORE_STAGE,
                                             RADIOMICS_NOMOGRAM.score_stage)):
        return None
    return "no image score: neither the DLR nor the radiomics (HCR) models ran"


STAGE = Stage("dlrn", "Nomogram (DLRN, or the radiomics nomogram RadN without DL)",
              ("dlr_models", "hcr_models", "clinical"),
              lambda c: NomogramStageSettings(c.evaluation.clinical_regression,
                                                c.labels), run,
              skip=_no_image_score, optional=("clinical", "dlr_models", "hcr_models"),
              version=VERSION, summary_type=NomogramSummary)
