"""Stage ``dlrn``: the nomogram of the best image model's score and the clinical predictors.

With deep learning it is the DLRN (the best DLR model's score); with ``dl.enabled:
false`` it is the radiomics nomogram "RadN" (the best HCR model's score), with the
same figures, tables, bundle entry and ``dlrn predict`` output. The clinical
columns enter with the rules of the study's clinical encoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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

VERSION = 4  # 2: the clinical encoder's rules; the radiomics nomogram without DL;
#             3: aliased terms, Firth where separated (auto), points shares and warnings;
#             4: bootstrap validation (rms validate / calibrate), token axes grouped
#: How the nomogram gets out-of-fold training probabilities (for its cut-off, as the others).
DLRN_OOF_RULE = ("its logistic regression cross-validated on the training set with the DLR "
                 "models' folds")  # the HCR models' folds for the radiomics nomogram


@dataclass(frozen=True)
class NomogramStageSettings:
    """The regression, the bootstrap and the names for people (the figure's; the study's
    ``labels``); the clinical choice, its encoder and the image models decide the rest."""

    regression: str = "auto"
    bootstrap: int = 200
    seed: int = 0
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
    events: str = ""  # events per term of its logistic model
    bootstrap: int = 0  # bootstrap samples that validated it (rms validate), 0: none
    c_apparent: float | None = None
    c_corrected: float | None = None  # optimism-corrected C index
    slope_corrected: float | None = None  # optimism-corrected calibration slope
    calibration_error: float | None = None  # mean absolute error, bias-corrected curve

    def facts(self) -> dict[str, Any]:
        fitted = ("Firth's penalised regression" if self.method == "Firth"
                  else "maximum likelihood (R glm)")
        facts = {"nomogram": self.title, "image score (out-of-fold on training cases)":
                 self.dlr_model, "clinical predictors": self.clinical_predictors,
                 "logistic model fitted by": fitted,
                 "image score's share of the points": f"{self.score_share:.0%}",
                 **({"events per term": self.events} if self.events else {})}
        if self.bootstrap:
            facts[f"bootstrap validation (rms validate, B = {self.bootstrap})"] = (
                f"C index {self.c_apparent:.3f} apparent, {self.c_corrected:.3f} "
                f"optimism-corrected; calibration slope {self.slope_corrected:.3f}; mean "
                f"absolute calibration error {self.calibration_error:.3f}")
        return facts


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


def nomogram_factory(context: StudyContext, kind: NomogramKind
                     ) -> Callable[[list[str]], Any]:
    """Clinical columns -> an unfitted nomogram with the study's clinical rules and regression
    (the score first), the clinical stage's encoder read once."""
    from dlrn.clinical_predictors import nomogram_columns
    from dlrn.nomogram import Nomogram

    saved = clinical_encoder(context)
    regression = context.config.evaluation.clinical_regression

    def build(selected: list[str]) -> Any:
        if saved is None:
            return Nomogram(columns={kind.score: "continuous"}, regression=regression)
        params = saved["params"]
        return Nomogram(columns=nomogram_columns(saved, selected, kind.score),
                        missing=params["missing"], min_level_count=params["min_level_count"],
                        regression=regression)
    return build


def make_nomogram(context: StudyContext, kind: NomogramKind, selected: list[str]) -> Any:
    """An unfitted nomogram with the study's clinical rules and regression."""
    return nomogram_factory(context, kind)(selected)


def clinical_rule(config: Any) -> Callable[[pd.DataFrame, pd.Series], list[str]]:
    """The clinical stage's choice of predictors as a rule any cases can be given: the study's
    encoder fitted on them, evaluation.clinical_selection's procedure (p-values only, no
    confidence intervals: fast enough for every bootstrap sample), then the stage's fallback
    (:func:`dlrn.study.stages.clinical.chosen_predictors`)."""
    from dlrn.clinical import select_clinical_variables
    from dlrn.study.stages.clinical import (
        chosen_predictors,
        constant_variables,
        fit_study_encoder,
    )

    e = config.evaluation

    def select(cases: pd.DataFrame, y: pd.Series) -> list[str]:
        training = cases.assign(label=y)
        encoder, constant = fit_study_encoder(config, training)
        constant.update(constant_variables(encoder, training, list(encoder.terms_)))
        variables = [v for v in encoder.terms_ if v not in constant]
        if not variables:
            return []
        selection = select_clinical_variables(
            training, y, variables, encoder=encoder, procedure=e.clinical_selection,
            p_threshold=e.clinical_p_threshold, regression=e.clinical_regression)
        return chosen_predictors(config, selection)[0]
    return select


def validation_procedure(context: StudyContext, kind: NomogramKind) -> Any:
    """What each bootstrap sample repeats: the clinical selection (where the clinical stage
    chose the predictors), then the nomogram on the score and the chosen columns."""
    from dlrn.nomogram.validation import ModelingProcedure

    build = nomogram_factory(context, kind)
    if not context.done("clinical"):
        return ModelingProcedure(lambda chosen: build([]))
    choose_clinical = clinical_rule(context.config)  # the one line to swap for another rule

    def select(X: pd.DataFrame, y: pd.Series) -> list[str]:
        return [kind.score, *choose_clinical(X.drop(columns=kind.score), y)]

    return ModelingProcedure(lambda chosen: build([c for c in chosen if c != kind.score]),
                             select)


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
    scores = best_scores(context, kind.score_stage, out_of_fold=True)
    X = nomogram_inputs(cases, scores, choice.selected, kind.score)
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
    events = _events(nomogram, y, kind)
    notes += [note for note in [events.note(f"The {kind.name} model")] if note]
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
    candidates = list(context.config.cohort.clinical) if context.done("clinical") else []
    validation = _validation(context, kind, nomogram,
                             nomogram_inputs(cases, scores, candidates, kind.score)
                             .loc[training], y, folder)
    tables = {"dlrn_points": points.reset_index(), "nomogram_axes": shares}
    captions = {"tables/dlrn_points": f"{kind.name} points of every case",
                "tables/nomogram_axes": (f"{kind.name}: each axis' points range and its share "
                                         "of all axes' ranges; a categorical axis' fewest "
                                         "training cases at either end")}
    figures = {"figures/nomogram": f"The {kind.title} (Figure 6): points per predictor, "
                                   "total points and predicted probability"}
    if validation is not None:
        tables |= validation.tables
        captions |= validation.captions
        figures |= validation.figures
        notes += validation.notes
    save_tables(folder, tables)
    return NomogramSummary(
        figures=figures, tables=captions, **(validation.fields if validation else {}),
        method=nomogram.method_,
        score_share=float(shares.set_index("predictor").loc[kind.score, "share"]),
        notes=notes, dlr_model=best_model(context, kind.score_stage),
        clinical_predictors=(choice.use() if choice.selected
                             else f"none ({kind.score_model} score only)"),
        out_of_fold=(folder / OOF_FILE).exists(), nomogram=kind.name, title=kind.title,
        events=events.statement(f"{kind.name} model"))


def _events(nomogram: Any, y: pd.Series, kind: NomogramKind) -> Any:
    """Events per term of the nomogram's logistic model (its fitted cases, its estimated
    terms: the image score and the clinical predictors' terms)."""
    from dlrn.clinical.events import events_per_term

    fitted = y.drop(index=nomogram.excluded_["case"].unique())
    return events_per_term(fitted, nomogram.model_.rank - 1)


@dataclass
class _Validated:
    """The bootstrap validation's tables, figure, summary fields and notes."""

    tables: dict[str, pd.DataFrame]
    captions: dict[str, str]
    figures: dict[str, str]
    fields: dict[str, Any]
    notes: list[str]


def _validation(context: StudyContext, kind: NomogramKind, nomogram: Any, X: pd.DataFrame,
                y: pd.Series, folder: Any) -> _Validated | None:
    """rms validate and calibrate of the nomogram on its training cases (B from
    evaluation.nomogram_bootstrap), the clinical selection repeated in each sample."""
    from dlrn.evaluation.figures import save_figure
    from dlrn.nomogram.validation import validate_nomogram
    from dlrn.nomogram.validation_plot import draw_calibration

    B = context.config.evaluation.nomogram_bootstrap
    if B == 0:
        return None
    try:
        result = validate_nomogram(nomogram, X, y, procedure=validation_procedure(context, kind),
                                   B=B, seed=context.config.seed)
    except DlrnError as error:
        return _Validated({}, {}, {}, {}, [f"{kind.name}: no bootstrap validation: {error}"])
    done = result.B - result.failed
    save_figure(draw_calibration(result, title=kind.title),
                figure_dir(folder) / "nomogram_calibration")
    repeated = (f"its clinical selection (univariate screen, then "
                f"evaluation.clinical_selection: {context.config.evaluation.clinical_selection}) "
                "and logistic model" if context.done("clinical") else "its logistic model")
    notes = [f"{kind.name} bootstrap validation: {repeated} repeated in each of {done} "
             f"bootstrap samples of the training cases; the image score ({kind.score_model}, "
             "out-of-fold on the training cases) is taken as given, not refitted, so the "
             "optimism correction covers the nomogram's logistic model and its clinical "
             "selection, not the fitting of the image model"]
    if result.failed:
        notes.append(f"{kind.name} bootstrap validation: {result.failed} of {result.B} samples "
                     f"left out (as rms counts failed fits), e.g.: {result.failures[0]}")
    tables = {"nomogram_validation": result.table(),
              "nomogram_calibration": result.calibration}
    captions = {
        "tables/nomogram_validation": (
            f"{kind.name} internal validation (rms validate, B = {done} bootstrap samples of "
            "the training set): apparent, bootstrap training and test, optimism and "
            "optimism-corrected indexes"),
        "tables/nomogram_calibration": (
            f"{kind.name} bootstrap calibration (rms calibrate): apparent and bias-corrected "
            "lowess of the outcome at 50 predicted risks")}
    if context.done("clinical"):
        tables["nomogram_selection"] = (result.retained.rename("share_of_samples")
                                        .rename_axis("predictor").reset_index())
        captions["tables/nomogram_selection"] = (
            f"{kind.name}: how often each predictor was chosen in the bootstrap samples")
    figures = {"figures/nomogram_calibration": (
        f"{kind.name} calibration: apparent, bias-corrected (B = {done} bootstrap samples) "
        f"and ideal; mean absolute error {result.mean_absolute_error:.3f}, 0.9 quantile "
        f"{result.quantile_90:.3f} (n = {len(y)})")}
    fields = {"bootstrap": done, "c_apparent": float(result.indexes.loc["C", "index.orig"]),
              "c_corrected": result.corrected("C"), "slope_corrected": result.corrected("Slope"),
              "calibration_error": result.mean_absolute_error}
    return _Validated(tables, captions, figures, fields, notes)


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
                                              c.evaluation.nomogram_bootstrap, c.seed,
                                              c.labels), run,
              skip=_no_image_score, optional=("clinical", "dlr_models", "hcr_models"),
              version=VERSION, summary_type=NomogramSummary)
