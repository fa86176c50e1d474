"""Stage ``automatic_masks``: the test and external cases predicted from the U-Net's masks.

It comes after the bundle's pieces exist and predicts through a bundle, so it lives
beside :mod:`dlrn.study.bundle_stage`, not in :mod:`dlrn.study.stages` (whose stages the
bundle is made of); :mod:`dlrn.study.pipeline` puts it last.

What a fully automatic pipeline reaches: every fitted model of the study (clinical models
aside, which need no mask) predicts the test and external cases twice, from the expert
masks and from the segmentation stage's masks, through the study's own bundle (the
radiomics, the CNN crops, the deep features, the DLR and the nomogram, exactly as ``dlrn
predict`` would), and the two AUCs are compared with a paired DeLong test (Obuchowski's
patient-level form when a patient has several images). Training stays on expert masks.
A case where the U-Net found no lesion has no automatic prediction: it is left out of
both columns (so the test stays paired) and counted in the table.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.report.summary import StageSummary
from dlrn.study.bundle_stage import write_study_bundle
from dlrn.study.config import StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.comparison import MODEL_STAGES
from dlrn.study.stages.files import read_case_frame, read_cases, save_tables
from dlrn.study.stages.segmentation import MASKS_FILE

VERSION = 1
TABLE = "expert_vs_automatic"


@dataclass(frozen=True)
class AutomaticSettings:
    enabled: bool


@dataclass
class AutomaticSummary(StageSummary):
    cases: int = 0
    no_lesion: int = 0
    models: int = 0

    def facts(self) -> dict[str, Any]:
        return {"cases predicted from automatic masks": self.cases,
                "cases with no lesion found (left out of both columns)": self.no_lesion,
                "models compared": self.models}


def stage_settings(config: StudyConfig) -> AutomaticSettings:
    return AutomaticSettings(config.segmentation.automatic_masks)


def _skip(context: StudyContext) -> str | None:
    if not context.config.segmentation.automatic_masks:
        return "segmentation.automatic_masks is false"
    return None


def image_models(settings: dict[str, Any]) -> list[str]:
    """The bundle's models whose probability depends on the mask: the HCR and DLR
    classifiers, the CNN and the nomogram (not the clinical models)."""
    models = settings["models"]
    names = [*models.get("hcr_models", []), *models.get("dlr_models", [])]
    if settings.get("deep"):
        names.append(f"DL-{settings['deep']['backbone']}")
    if settings.get("nomogram"):
        names.append(settings["nomogram"])
    return names


def _compare(label: pd.Series, expert: pd.Series, automatic: pd.Series,
             patients: pd.Series) -> dict[str, float]:
    """Both AUCs with patient-level CIs and their paired test (DeLong with one image per
    patient)."""
    from dlrn.evaluation.clustered import clustered_auc_ci, clustered_pairwise

    scores = pd.DataFrame({"expert": expert, "automatic": automatic})
    test = clustered_pairwise(label, scores, patients).iloc[0]
    row = {}
    for name in scores.columns:
        result = clustered_auc_ci(label, scores[name], patients, method="obuchowski")
        row |= {f"auc_{name}": result.auc, f"ci_low_{name}": result.ci_low,
                f"ci_high_{name}": result.ci_high}
    return row | {"auc_difference": float(test["auc_diff"]), "p_value": float(test["p_value"])}


def comparison_table(cases: pd.DataFrame, expert: pd.DataFrame, automatic: pd.DataFrame,
                     models: list[str]) -> pd.DataFrame:
    """One row per set and model: cases, AUC with expert and automatic masks, DeLong p."""
    rows = []
    patients = (cases["patient_id"].astype(str) if "patient_id" in cases.columns
                else pd.Series(cases.index, index=cases.index))
    for set_name in dict.fromkeys(cases.loc[automatic.index, "set"]):
        ids = automatic.index[cases.loc[automatic.index, "set"] == set_name]
        label = cases.loc[ids, "label"].astype(int)
        if label.nunique() < 2:
            continue
        for model in models:
            both = expert.loc[ids, model].notna() & automatic.loc[ids, model].notna()
            kept = ids[both.to_numpy()]
            rows.append({"set": set_name, "model": model, "cases": len(kept),
                         **_compare(label.loc[kept], expert.loc[kept, model],
                                    automatic.loc[kept, model], patients.loc[kept])})
    return pd.DataFrame(rows)


def run(context: StudyContext) -> AutomaticSummary:
    from dlrn.study.bundle import Bundle
    from dlrn.study.predict import FeatureCacheUse, predict_cases

    config, folder = context.config, context.stage_dir("automatic_masks")
    cases = read_cases(context)
    masks = read_case_frame(context.stage_dir("segmentation") / MASKS_FILE)
    found = masks.index[masks["mask"].notna()]
    evaluated = cases.loc[masks.index]
    automatic_cases = evaluated.loc[found].assign(mask=masks.loc[found, "mask"])
    cache = FeatureCacheUse(config.radiomics_cache_dir, add_new_cases=True)
    with tempfile.TemporaryDirectory(prefix="dlrn-bundle-") as temporary:
        write_study_bundle(context, Path(temporary) / "bundle")
        bundle = Bundle.open(Path(temporary) / "bundle")
        expert = predict_cases(bundle, evaluated.loc[found], progress=context.progress,
                               feature_cache=cache)
        automatic = predict_cases(bundle, automatic_cases, progress=context.progress,
                                  feature_cache=cache)
        models = image_models(bundle.json("settings"))
    automatic.to_csv(folder / "predictions_automatic.csv")
    expert.to_csv(folder / "predictions_expert.csv")
    table = comparison_table(cases, expert, automatic, models)
    save_tables(folder, {TABLE: table})
    summary = AutomaticSummary(cases=len(found), no_lesion=len(masks) - len(found),
                               models=len(models))
    summary.tables = {f"tables/{TABLE}": (
        "Expert masks vs the U-Net's masks: each model's AUC on the test and external cases "
        "predicted from either (the models and every fitted step frozen, trained on expert "
        "masks), with 95% CIs and the paired DeLong test (patient-level when a patient has "
        "several images); cases where the U-Net found no lesion are left out of both")}
    return summary


STAGE = Stage("automatic_masks", "Fully automatic pipeline: the U-Net's masks",
              ("segmentation", *MODEL_STAGES), stage_settings, run, skip=_skip,
              optional=MODEL_STAGES, version=VERSION, summary_type=AutomaticSummary)
