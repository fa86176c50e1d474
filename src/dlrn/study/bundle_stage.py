"""Gather a finished study's fitted pieces into a model bundle (``<output>/bundle``)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

from dlrn.notes import Note
from dlrn.stacking import DLR_SCORE
from dlrn.study.applicability_check import DOMAIN, EVIDENCE
from dlrn.study.bundle import (
    SEGMENTATION_CARD,
    SEGMENTATION_WEIGHTS,
    BundleWriter,
    load_trusted_estimator,
)
from dlrn.study.runner import StudyContext
from dlrn.study.stages.comparison import MODEL_STAGES
from dlrn.study.stages.files import (
    best_model,
    clinical_encoder,
    clinical_record,
    cohort_columns,
    image_options,
)
from dlrn.study.stages.nomogram import nomogram_cutoff
from dlrn.study.stages.segmentation import MODEL_DIR

FEATURE_STAGES = ("clinical_models", "hcr_models", "dlr_models")


def _add_models(writer: BundleWriter, context: StudyContext, stage: str) -> list[str]:
    folder = context.stage_dir(stage) / "models"
    names = []
    for path in sorted(folder.glob("*.skops")):
        writer.add_estimator(f"{stage}/{path.stem}", load_trusted_estimator(path))
        names.append(path.stem)
    return names


def _add_deep(writer: BundleWriter, context: StudyContext) -> dict[str, Any]:
    from dlrn.deep.classifier.features import DeepFeaturePCA
    from dlrn.deep.networks import read_state_dict

    run = context.stage_dir("deep") / "run"
    record = json.loads((run / "chosen.json").read_text())
    chosen = record["chosen"]
    card = json.loads((run / "models" / chosen / "model.json").read_text())
    writer.add_arrays("deep/cnn", read_state_dict(run / "models" / chosen / card["checkpoint"]))
    pca = DeepFeaturePCA.load(run / "pca")
    writer.add_arrays("deep/pca", {"mean": pca.mean_, "components": pca.components_})
    writer.add_json("deep/pca", {"prefix": pca.prefix, "n_components": pca.n_components_,
                                 "feature_names_in": list(map(str, pca.feature_names_in_))})
    return {"backbone": chosen, "crop": card["crop"], "normalization": card["normalization"],
            # Youden cut-off on the (cross-fitted) training scores: Grad-CAM's predicted class
            "threshold": record["gradcam_threshold"],
            # the CNN's Platt map (None: raw sigmoid), as the study's probabilities had it
            "calibration": card.get("calibration"),
            "feature_mode": record.get("feature_mode", "pooled"),
            "fold_models": _add_fold_cnns(writer, run, record)}


def _add_fold_cnns(writer: BundleWriter, run: Path, record: dict[str, Any]) -> list[str]:
    """The chosen backbone's cross-fitting CNNs: the DLR's deep features of new cases are
    the mean of theirs, as the study's test rows were (see dlrn.deep.classifier.crossfit)."""
    from dlrn.deep.networks import read_state_dict

    names = []
    for number, folder in enumerate(record.get("fold_model_dirs", []), start=1):
        card = json.loads((run / folder / "model.json").read_text())
        names.append(f"deep/fold{number}")
        writer.add_arrays(names[-1], read_state_dict(run / folder / card["checkpoint"]))
    return names


def _add_segmentation(writer: BundleWriter, context: StudyContext) -> None:
    """The U-Net (weights as safetensors, its card as JSON, both sealed by the manifest):
    ``dlrn predict`` segments the cases that come without a mask, and ``dlrn serve``
    proposes the ROI."""
    from safetensors.numpy import load_file

    from dlrn.segmentation import SegmentationModel
    from dlrn.segmentation.model import CARD_FILE, WEIGHTS_FILE

    folder = context.stage_dir("segmentation") / MODEL_DIR
    SegmentationModel.load(folder)  # its checksum and card checked before they are sealed
    writer.add_arrays(SEGMENTATION_WEIGHTS, load_file(str(folder / WEIGHTS_FILE)))
    writer.add_json(SEGMENTATION_CARD, json.loads((folder / CARD_FILE).read_text()))


def _add_applicability(writer: BundleWriter, context: StudyContext) -> None:
    """The applicability check the study fitted: the feature domain (JSON + safetensors)
    and the U-Net's lesion-evidence rule (JSON), where each was fitted."""
    from safetensors.numpy import load_file

    from dlrn.study.stages import applicability

    folder = context.stage_dir("applicability")
    if (folder / applicability.DOMAIN_FILE).is_file():
        writer.add_json(DOMAIN, json.loads((folder / applicability.DOMAIN_FILE).read_text()))
        writer.add_arrays(DOMAIN, load_file(str(folder / applicability.DOMAIN_ARRAYS)))
    if (folder / applicability.EVIDENCE_FILE).is_file():
        writer.add_json(EVIDENCE, json.loads((folder / applicability.EVIDENCE_FILE).read_text()))


def _cache_reference(cache: Path, output_dir: Path) -> str:
    """The study's feature cache as ``dlrn predict`` finds it: relative to the bundle when it
    lies in the study folder (which may move whole), else its absolute path."""
    cache, output_dir = cache.resolve(), output_dir.resolve()
    if cache.is_relative_to(output_dir):
        return Path("..", cache.relative_to(output_dir)).as_posix()
    return str(cache)


def write_study_bundle(context: StudyContext, folder: Path | None = None) -> None:
    """Write ``bundle/`` (or ``folder``) from the stages that were run, replacing the
    previous bundle."""
    config = context.config
    if not context.done("cohort"):
        return
    writer = BundleWriter(folder or context.output_dir / "bundle", overwrite=True)
    settings: dict[str, Any] = {
        "columns": {k: v for k, v in cohort_columns(config).__dict__.items()
                    if k not in ("split",)},
        "clinical": (dataclasses.asdict(clinical_record(context))
                     if context.done("clinical") else None),
        "min_roi_pixels": config.cohort.min_roi_pixels,
        "min_roi_mm": config.cohort.min_roi_mm,
        **image_options(config),
        "models": {}, "best": {}, "dlr_score": DLR_SCORE,
        "labels": config.labels, "out_of_range": config.out_of_range,  # the calculator's
    }
    if context.done("radiomics"):
        writer.add_json("radiomics/params", json.loads(
            (context.stage_dir("radiomics") / "params.json").read_text()))
        settings["radiomics_cache"] = _cache_reference(config.radiomics_cache_dir,
                                                       context.output_dir)
    for stage in FEATURE_STAGES:
        if context.done(stage):
            settings["models"][stage] = _add_models(writer, context, stage)
    for stage in MODEL_STAGES:
        if context.done(stage) and stage != "dlrn":
            settings["best"][stage] = best_model(context, stage)
    if context.done("deep"):
        settings["deep"] = _add_deep(writer, context)
    if context.done("segmentation"):
        _add_segmentation(writer, context)
    if context.done("applicability"):
        _add_applicability(writer, context)
    if context.done("clinical"):  # the one clinical encoder, as JSON (no pickle)
        writer.add_json("clinical/encoder", clinical_encoder(context))
    if context.done("dlrn"):
        writer.add_json("dlrn/nomogram", json.loads(
            (context.stage_dir("dlrn") / "nomogram.json").read_text()))
        settings["nomogram"] = best_model(context, "dlrn")  # DLRN or RadN
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Note)  # the comparison noted any tie when it chose
            settings["cutoffs"] = {settings["nomogram"]: nomogram_cutoff(context)}
    writer.add_json("settings", settings)
    writer.add_json("study", config.to_dict())
    writer.finish(stages=[name for name in context.records if context.done(name)])
