"""Stage ``deep``: train the CNN backbones, choose one, its deep features (PCA) and Grad-CAM.

:func:`train_and_save` is the stage's work on a cohort with a ``set`` column; the study
and ``dlrn train-dl`` both call it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.report.summary import StageSummary
from dlrn.study.config import DeepSettings, StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import (
    PREDICTIONS_FILE,
    figure_dir,
    image_options,
    read_cases,
    save_tables,
    write_best,
)

VERSION = 1
COMPONENTS_FACT = "principal components kept (fitted on training cases)"


@dataclass(frozen=True)
class DeepStudySettings:
    dl: DeepSettings
    seed: int


@dataclass
class DeepSummary(StageSummary):
    chosen: str = ""
    deep_features: int = 0
    components: int = 0

    def facts(self) -> dict[str, Any]:
        return {"chosen backbone": self.chosen, "deep features": self.deep_features,
                COMPONENTS_FACT: self.components}


def weights(config: StudyConfig) -> str | None:
    """imagenet, none, or a weight file made absolute against the study file's folder."""
    value = config.dl.weights
    return value if value in (None, "none", "imagenet") else str(config.resolve(value))


def inputs(config: StudyConfig) -> list[Path]:
    value = weights(config)
    return [] if value in (None, "none", "imagenet") else [Path(value)]


def deep_stage_settings(dl: DeepSettings, *, seed: int, weights: str | None,
                        mask_label: int | None = None, frame: int = 0,
                        progress: bool = True) -> Any:
    """The study file's dl section as dlrn.deep.workflow.DeepStageSettings.

    ``dlrn run`` and ``dlrn train-dl`` both build their deep-learning settings here.
    """
    from dlrn.deep.data import Augmentation, CropSettings
    from dlrn.deep.train import TrainSettings
    from dlrn.deep.workflow import DeepStageSettings

    train = TrainSettings(
        epochs=dl.epochs, batch_size=dl.batch_size, optimizer=dl.optimizer,
        learning_rate=dl.learning_rate, warmup_epochs=dl.warmup_epochs,
        class_weighted=dl.class_weighted, patience=dl.patience, val_fraction=dl.val_fraction,
        seed=seed, device=dl.device, amp=dl.amp, precision=dl.precision, threads=dl.threads,
        num_workers=dl.workers,
        normalization=dl.normalization, progress=progress,
        augmentation=Augmentation() if dl.augment else Augmentation.none())
    crop = CropSettings(image_size=dl.image_size, margin=dl.crop_margin,
                        keep_aspect=dl.keep_aspect, mask_label=mask_label, frame=frame)
    return DeepStageSettings(
        backbones=tuple(dl.backbones), weights=weights, crop=crop, train=train,
        feature_mode=dl.feature_mode, pca_components=dl.pca_components or None,
        gradcam_cases=None if dl.gradcam_cases is None else tuple(dl.gradcam_cases))


def deep_settings(config: StudyConfig, progress: bool) -> Any:
    """The study's deep-learning settings (image options from the cohort section)."""
    return deep_stage_settings(config.dl, seed=config.seed, weights=weights(config),
                               progress=progress, **image_options(config))


def _gradcam_figures(result: Any, folder: Path) -> dict[str, str]:
    """Move the Grad-CAM overlays into ``figures/`` with their captions."""
    figures = {}
    for row in result.gradcam.dropna(subset=["path"]).itertuples():
        target = figure_dir(folder) / f"gradcam_{row.category}.png"
        shutil.copy2(row.path, target)
        figures[f"figures/gradcam_{row.category}"] = (
            f"Grad-CAM of {result.chosen}, {row.category} test case {row.case_id} "
            f"(label {row.label}, p = {row.probability:.2f})")
    return figures


def train_and_save(folder: Path, cases: pd.DataFrame, settings: Any, *,
                   source: Path | None = None, run_dir: str = "run", resume: bool = False,
                   overwrite: bool = False) -> DeepSummary:
    """Run :func:`dlrn.deep.workflow.run_deep_stage` into ``folder/run_dir``; save what
    later stages read (predictions, deep features, the chosen backbone) and the report
    tables. ``cases`` needs a ``set`` column (train, test, external names)."""
    from dlrn.deep.workflow import SELECTION_RULE, run_deep_stage

    result = run_deep_stage(cases, cases["set"], folder / run_dir, settings, resume=resume,
                            overwrite=overwrite, source=source)
    # as float64, the CSV keeps each float32 probability exactly: a cut-off chosen on it
    # later (Table 7) is dlrn.deep's to the last digit
    scores = [column for column in result.predictions if column.startswith("DL-")]
    result.predictions.astype(dict.fromkeys(scores, "float64")).to_csv(folder / PREDICTIONS_FILE)
    fused = result.features if result.features_pca is None else result.features_pca
    fused.to_csv(folder / "features.csv")  # what the DLR models fuse with the HCR features
    write_best(folder, f"DL-{result.chosen}", SELECTION_RULE)
    save_tables(folder, {"deep_metrics": result.metrics, "deep_backbones": result.comparison})
    return DeepSummary(
        tables={"tables/deep_backbones": "Backbones compared (chosen on the validation AUC "
                                         "within the training set). AUC per set and training "
                                         "cost: time of all epochs (s), throughput (images/s), "
                                         "peak memory added by training (MiB; blank where not "
                                         "measurable) and the device",
                "tables/deep_metrics": "Performance of the DL models (Table 5)"},
        figures=_gradcam_figures(result, folder), chosen=result.chosen,
        deep_features=result.features.shape[1],
        components=0 if result.features_pca is None else result.features_pca.shape[1])


def run(context: StudyContext) -> DeepSummary:
    config = context.config
    return train_and_save(context.stage_dir("deep"), read_cases(context),
                          deep_settings(config, context.progress),
                          source=config.resolve(config.cohort.table))


def _dl_off(context: StudyContext) -> str | None:
    return None if context.config.dl.enabled else "dl.enabled is false in the study file"


STAGE = Stage("deep", "Deep learning models", ("cohort",),
              lambda c: DeepStudySettings(c.dl, c.seed), run, skip=_dl_off, inputs=inputs,
              version=VERSION, summary_type=DeepSummary)
