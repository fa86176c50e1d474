"""Stage ``applicability``: the rule that says a case is unlike the study's, fitted on the
training cases, and how many test and external cases it flags.

Two checks (:mod:`dlrn.applicability`), each fitted on training rows only:

- the feature domain of the nomogram's image model (the DLR model, or the HCR model
  without deep learning; the best image model without a nomogram): its selected features'
  range and Mahalanobis (Ledoit-Wolf) distance, the threshold at the ``quantile`` of the
  training cases' out-of-fold distances (folds by patient);
- where the study trained a U-Net, its lesion evidence
  (:mod:`dlrn.segmentation.evidence`): its training and validation images against
  no-lesion images made from them (background crops, noise with their grey levels,
  gradients, blank frames), the cut-off on out-of-fold scores.

The test and external cases are then assessed as ``dlrn predict`` assesses a new case;
the bundle carries both checks (:mod:`dlrn.study.applicability_check`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.applicability import (
    APPLICABLE,
    ApplicabilityDomain,
    ApplicabilitySettings,
    combine,
)
from dlrn.errors import DlrnError
from dlrn.report.summary import StageSummary
from dlrn.stacking import NOMOGRAMS
from dlrn.study.applicability_check import lesion_assessment
from dlrn.study.config import StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import (
    best_model,
    image_options,
    read_cases,
    read_features,
    save_tables,
    train_ids,
)
from dlrn.study.stages.segmentation import MODEL_DIR

VERSION = 1
DOMAIN_FILE = "domain.json"
DOMAIN_ARRAYS = "domain.safetensors"
EVIDENCE_FILE = "evidence.json"
ASSESSMENT_FILE = "assessment.csv"
IMAGE_STAGES = ("dlr_models", "hcr_models")


@dataclass(frozen=True)
class ApplicabilityStageSettings:
    applicability: ApplicabilitySettings
    seed: int


@dataclass
class ApplicabilitySummary(StageSummary):
    feature_model: str = ""
    features: int = 0
    distance_threshold: float | None = None
    lesion_rule: bool = False
    #: the no-lesion calibration images the evidence rule flagged out of fold, and the lesion
    #: images ("no-lesion images" / "lesion images" -> share)
    calibration: dict[str, float] = field(default_factory=dict)
    #: set -> "flagged of cases (share)"
    flagged: dict[str, str] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        if self.feature_model:
            facts["feature domain"] = (f"{self.features} selected features of "
                                       f"{self.feature_model}, Mahalanobis distance "
                                       f"threshold {self.distance_threshold:.2f}")
        if self.lesion_rule:
            facts["U-Net lesion evidence, flagged out of fold"] = "; ".join(
                f"{kind} {share:.1%}" for kind, share in self.calibration.items())
        for name, text in self.flagged.items():
            facts[f"cases flagged, {name}"] = text
        return facts


def stage_settings(config: StudyConfig) -> ApplicabilityStageSettings:
    return ApplicabilityStageSettings(config.applicability, config.seed)


def _skip(context: StudyContext) -> str | None:
    if not context.config.applicability.enabled:
        return "applicability.enabled is false"
    if not any(context.done(stage) for stage in (*IMAGE_STAGES, "segmentation")):
        return "no image model and no U-Net: nothing to compare a case's image with"
    return None


def feature_model(context: StudyContext) -> tuple[str, str] | None:
    """(stage, model) whose selected features span the domain: the nomogram's image model,
    else the best DLR, else the best HCR model; None without an image model."""
    if context.done("dlrn"):
        stage = NOMOGRAMS[best_model(context, "dlrn")].score_stage
        if context.done(stage):
            return stage, best_model(context, stage)
    for stage in IMAGE_STAGES:
        if context.done(stage):
            return stage, best_model(context, stage)
    return None


def image_features(context: StudyContext, stage: str) -> pd.DataFrame:
    """Every case's features as the stage's models were given them."""
    features = read_features(context, "radiomics")
    return features.join(read_features(context, "deep"), how="inner") \
        if stage == "dlr_models" else features


def _domain(context: StudyContext, cases: pd.DataFrame, settings: ApplicabilitySettings,
            summary: ApplicabilitySummary, folder: Path) -> pd.DataFrame | None:
    from safetensors.numpy import save_file

    from dlrn.study.bundle import load_trusted_estimator

    chosen = feature_model(context)
    if chosen is None:
        return None
    stage, model = chosen
    pipeline = load_trusted_estimator(context.stage_dir(stage) / "models" / f"{model}.skops")
    selected = [str(name) for name in pipeline["selection"].get_feature_names_out()]
    if not selected:
        raise DlrnError(f"{model} selected no feature: there is no feature space to compare "
                        "cases in")
    features = image_features(context, stage)[selected]
    train = [case for case in train_ids(cases) if case in features.index]
    domain = ApplicabilityDomain(settings.quantile, settings.max_outside_share,
                                 settings.cv_folds, random_state=context.config.seed)
    domain.fit(features.loc[train], groups=cases.loc[train, "patient_id"].astype(str))
    meta, arrays = domain.to_parts()
    (folder / DOMAIN_FILE).write_text(json.dumps({**meta, "model": model}, indent=2))
    save_file({k: v.astype("float64") for k, v in arrays.items()}, str(folder / DOMAIN_ARRAYS))
    summary.feature_model, summary.features = model, len(selected)
    summary.distance_threshold = domain.threshold_
    held_out = [case for case in cases.index if cases.at[case, "set"] != "train"
                and case in features.index]
    return domain.assess(features.loc[held_out])


def _read(cases: pd.DataFrame, ids: list[str], options: dict[str, Any]) -> tuple[list, list]:
    import SimpleITK as sitk

    from dlrn.imaging import read_image_and_mask

    images, masks = [], []
    for case in ids:
        image, mask = read_image_and_mask(cases.at[case, "image"], cases.at[case, "mask"],
                                          label=options["mask_label"], frame=options["frame"])
        images.append(sitk.GetArrayFromImage(image))
        masks.append(sitk.GetArrayFromImage(mask) != 0)
    return images, masks


def _lesion(context: StudyContext, cases: pd.DataFrame, settings: ApplicabilitySettings,
            summary: ApplicabilitySummary, folder: Path) -> pd.DataFrame | None:
    from dlrn.segmentation import SegmentationModel
    from dlrn.segmentation.evidence import LesionEvidenceRule, lesion_evidence, no_lesion_images

    if not context.done("segmentation"):
        return None
    model = SegmentationModel.load(context.stage_dir("segmentation") / MODEL_DIR)
    options = image_options(context.config)
    train = [case for case in train_ids(cases) if pd.notna(cases.at[case, "mask"])]
    images, masks = _read(cases, train, options)
    blank, kinds = no_lesion_images(images, masks, seed=context.config.seed)
    rule = LesionEvidenceRule(settings.quantile, settings.cv_folds,
                              random_state=context.config.seed)
    rule.fit(lesion_evidence(model, images, index=train), lesion_evidence(model, blank))
    (folder / EVIDENCE_FILE).write_text(json.dumps(
        {**rule.to_dict(), "calibration_images": pd.Series(kinds).value_counts().to_dict()},
        indent=2))
    summary.lesion_rule, summary.calibration = True, rule.oof_flagged_
    held_out = [case for case in cases.index if cases.at[case, "set"] != "train"]
    return lesion_assessment(rule, model, cases.loc[held_out], frame=options["frame"])


def _fitted(check: Any, name: str, *args: Any) -> pd.DataFrame | None:
    """One check's assessment of the held-out cases; a check the training cases cannot
    support (too few, no selected feature) is left out with a note, not a failed study."""
    import warnings

    from dlrn.notes import Note

    try:
        return check(*args)
    except DlrnError as error:
        warnings.warn(Note(f"applicability: {name} not fitted", str(error), caution=True),
                      stacklevel=2)
        return None


def run(context: StudyContext) -> ApplicabilitySummary:
    settings = context.config.applicability
    folder = context.stage_dir("applicability")
    cases = read_cases(context)
    summary = ApplicabilitySummary()
    domain = _fitted(_domain, "feature domain", context, cases, settings, summary, folder)
    lesion = _fitted(_lesion, "lesion evidence", context, cases, settings, summary, folder)
    held_out = pd.Index([case for case in cases.index if cases.at[case, "set"] != "train"],
                        name="case_id")
    if domain is not None:
        held_out = held_out.intersection(domain.index, sort=False)
    assessment = combine(held_out, None if lesion is None else lesion.loc[held_out], domain)
    assessment.insert(0, "set", cases.loc[held_out, "set"])
    assessment.to_csv(folder / ASSESSMENT_FILE)
    rows = []
    for name, group in assessment.groupby("set", sort=False):
        flagged = int(group[APPLICABLE].eq(False).fillna(False).sum())
        rows.append({"set": name, "cases": len(group), "flagged": flagged,
                     "share_flagged": flagged / len(group),
                     "by_lesion_evidence": 0 if lesion is None else
                     int((~lesion.loc[group.index, "lesion_found"]).sum()),
                     "by_features": 0 if domain is None else
                     int((~domain.loc[group.index, "in_domain"]).sum())})
        summary.flagged[str(name)] = f"{flagged} of {len(group)} ({flagged / len(group):.1%})"
    save_tables(folder, {"applicability": pd.DataFrame(rows)})
    summary.tables = {"tables/applicability": (
        "Applicability check of the test and external cases: cases flagged as unlike the "
        "training images (by the U-Net's lesion evidence, by the image features' range or "
        "distance; thresholds set on the training cases only); per case in "
        f"{ASSESSMENT_FILE}")}
    return summary


_OPTIONAL = ("segmentation", "radiomics", "deep", *IMAGE_STAGES, "dlrn")
STAGE = Stage("applicability", "Applicability check", ("cohort", *_OPTIONAL), stage_settings,
              run, skip=_skip, optional=_OPTIONAL, version=VERSION,
              summary_type=ApplicabilitySummary)
