"""How the study's stages evaluate predictions: the settings, the patient ids, the captions.

The model stages and the comparison call :func:`dlrn.evaluation.write_evaluation` with
out-of-fold training predictions and the patients' ids; these helpers keep the
options, the file names and the captions' wording one and the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.study.config import EvaluationSettings, StudyConfig

EVALUATION_DIR = "evaluation"
APPARENT_CAPTION = (
    "Apparent (in-sample) training-set performance: each model scored the training cases "
    "it was fitted on, at the cut-off of the main table. Optimistic by construction; shown "
    "for reference only, never for comparison")
SET_WORDS = {"train_oof": "training set, out-of-fold predictions",
             "train_apparent": "training set, apparent (in-sample) predictions"}


@dataclass(frozen=True)
class EvaluationStageSettings:
    """The study file's evaluation settings that change the evaluation tables."""

    calibration_bins: int = 10
    patient_aggregation: str = "mean"
    auc_ci: str | None = None
    comparison: str = "obuchowski"


@dataclass(frozen=True)
class MetricsStageSettings:
    """The evaluation settings the model stages' metrics tables depend on (no HL, no tests:
    changing those reruns only the comparison)."""

    patient_aggregation: str = "mean"
    auc_ci: str | None = None


def metrics_settings(config: StudyConfig) -> MetricsStageSettings:
    return MetricsStageSettings(config.evaluation.patient_aggregation, config.evaluation.auc_ci)


def evaluation_settings(config: StudyConfig | EvaluationSettings) -> EvaluationStageSettings:
    section = config.evaluation if isinstance(config, StudyConfig) else config
    return EvaluationStageSettings(section.calibration_bins, section.patient_aggregation,
                                   section.auc_ci, section.comparison)


def evaluation_options(settings: EvaluationStageSettings) -> dict[str, Any]:
    """Keyword arguments of ``write_evaluation`` / ``evaluate_predictions``."""
    return {"hl_groups": settings.calibration_bins,
            "patient_aggregation": settings.patient_aggregation,
            "auc_method": settings.auc_ci, "comparison_method": settings.comparison}


def patient_groups(cases: pd.DataFrame) -> pd.Series | None:
    """Each case's patient id (``patient_id`` of the cohort), or None without the column."""
    return cases["patient_id"].astype(str) if "patient_id" in cases.columns else None


def several_images(groups: pd.Series | None) -> bool:
    return groups is not None and bool(groups.duplicated().any())


def clustering_sentence(groups: pd.Series | None,
                        settings: EvaluationStageSettings | MetricsStageSettings) -> str:
    """How the CIs and tests treat several images of one patient, for the captions."""
    if not several_images(groups):
        return ("Each patient has one image, so cases are independent: DeLong CIs and tests, "
                "Wilson CIs.")
    ci = settings.auc_ci or "cluster-bootstrap"
    ci = {"delong": "obuchowski", "bootstrap": "cluster-bootstrap"}.get(ci, ci)
    tests = (f"paired tests: {settings.comparison.replace('-', ' ')}; "
             if isinstance(settings, EvaluationStageSettings) else "")
    return (f"{len(groups)} images of {groups.nunique()} patients: CIs and tests count the "
            f"patient, not the image, as the unit (AUC CI: {ci.replace('-', ' ')} over "
            f"patients; {tests}proportions: design-effect adjusted CIs; n_patients column). "
            f"Patient-level tables score each patient by the {settings.patient_aggregation} "
            "of its images' scores.")


def training_rows_sentence(out_of_fold: list[str], apparent: list[str]) -> str:
    """Which models' training rows are out-of-fold and which apparent, for the captions."""
    parts = []
    if out_of_fold:
        parts.append("training rows 'train (out-of-fold)' come from out-of-fold "
                     f"predictions ({', '.join(out_of_fold)})")
    if apparent:
        parts.append("rows 'train (apparent)' are in-sample predictions of models without "
                     f"out-of-fold ones ({', '.join(apparent)}): optimistic")
    text = "; ".join(parts)
    return (text[0].upper() + text[1:] + ".") if parts else ""


def figure_captions(folder: Path, kinds: tuple[tuple[str, str], ...], prefix: str
                    ) -> dict[str, str]:
    """{stem: caption} of every evaluation figure written (image- and patient-level)."""
    figures = {}
    for level, words in (("", ""), ("patient_", ", patient level")):
        for kind, caption in kinds:
            for png in sorted((folder / prefix / "figures").glob(f"{level}{kind}_*.png")):
                name = png.stem.removeprefix(f"{level}{kind}_")
                where = SET_WORDS.get(name, f"{name} set")
                figures[f"{prefix}/figures/{png.stem}"] = f"{caption}, {where}{words}"
    return figures
