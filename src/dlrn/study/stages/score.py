"""Stage ``image_score`` of ``dlrn clinical --score``: an image score made elsewhere.

The nomogram stage stacks an image model's scores with the clinical predictors, the
training cases' scores out-of-fold. With ``dlrn clinical TABLE --score COLUMN`` the
score comes from a column of the table, made by another pipeline (the user
vouches that each training case's score is out-of-fold, as the study's own are).
This stage writes it where the nomogram reads a model stage's scores, with CV folds
(grouped by patient, stratified, seeded) for the nomogram's own out-of-fold
probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dlrn.errors import DlrnError, shown_items
from dlrn.report.summary import StageSummary
from dlrn.stacking import GIVEN_SCORE_STAGE
from dlrn.study.config import StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import OOF_FILE, PREDICTIONS_FILE, read_cases, write_best

VERSION = 1


@dataclass(frozen=True)
class ScoreStageSettings:
    column: str
    cv_folds: int
    seed: int


def _scores(cases: pd.DataFrame, column: str) -> pd.Series:
    """The score column as numbers; a blank or a text is an error naming the cases."""
    scores = pd.to_numeric(cases[column], errors="coerce")
    bad = cases.index[scores.isna()]
    if len(bad):
        raise DlrnError(f"image score column {column!r} has no number for case(s) "
                        f"{shown_items(bad)}; every case needs its score")
    return scores.astype(float)


def score_stage(column: str) -> Stage:
    """The stage that brings the image score ``column`` in."""
    def settings(config: StudyConfig) -> ScoreStageSettings:
        return ScoreStageSettings(column, config.classifiers.cv_folds, config.seed)

    def run(context: StudyContext) -> StageSummary:
        from dlrn.classifiers import make_cv

        cases = read_cases(context)
        folder = context.stage_dir(GIVEN_SCORE_STAGE)
        predictions = cases[["label", "set"]].assign(**{column: _scores(cases, column)})
        predictions.to_csv(folder / PREDICTIONS_FILE)
        training = predictions[predictions["set"] == "train"]
        training.to_csv(folder / OOF_FILE)
        write_best(folder, column, "the image score given to dlrn clinical --score")
        fold = pd.Series(0, index=training.index, name="fold")
        groups = cases.loc[training.index, "patient_id"]
        cv = make_cv(training["label"].to_numpy(), groups.to_numpy(),
                     n_splits=context.config.classifiers.cv_folds, seed=context.config.seed)
        for number, (_, held_out) in enumerate(cv, start=1):
            fold.iloc[held_out] = number
        (folder / "result").mkdir(exist_ok=True)
        fold.to_frame().to_csv(folder / "result" / "cv_folds.csv")
        return StageSummary(notes=[
            f"The image score is column {column!r} of the table, made elsewhere; the "
            "nomogram takes each training case's score to be out-of-fold, as the study's own "
            "image scores are (a score fitted on the training cases themselves would make "
            "the nomogram lean on it too much)."])

    return Stage(GIVEN_SCORE_STAGE, f"Image score ({column})", ("cohort",), settings, run,
                 version=VERSION)
