"""Stage ``deep``: train the CNN backbones, choose one, its deep features (PCA) and Grad-CAM.

:func:`train_and_save` is the stage's work on a cohort with a ``set`` column; the study
and ``dlrn train-dl`` both call it.
"""

from __future__ import annotations

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


def deep_settings(config: StudyConfig, progress: bool) -> Any:
    """The study file's dl section as dlrn.deep.workflow.DeepStageSettings."""
    from dlrn.deep.data import CropSettings
    from dlrn.deep.train import TrainSettings
    from dlrn.deep.workflow import DeepStageSettings

    dl = config.dl
    return DeepStageSettings(
        backbones=tuple(dl.backbones), weights=weights(config),
        crop=CropSettings(image_size=dl.image_size, margin=dl.crop_margin,
                          **image_options(config)),
        train=TrainSettings(epochs=dl.epochs, batch_size=dl.batch_size,
                            learning_rate=dl.learning_rate, seed=config.seed,
                            device=dl.device, progress=progress),
        pca_components=dl.pca_components)


def _gradcam_figures(result: Any, folder: Path) -> dict[str, str]:
    """Move the Grad-CAM overlays into ``figures/`` with their captions."""
    figures = {}
    for row in result.gradcam.dropna(subset=["path"]).itertuples():
        target = figure_dir(folder) / f"gradcam_{row.category}.png"
        Path(row.path).replace(target)
        figures[f"figures/gradcam_{row.category}"] = (
            f"Grad-CAM of {result.chosen}, {row.category} test case {row.case_id} "
            f"(label {row.label}, p = {row.probability:.2f})")
    return figures


def train_and_save(folder: Path, cases: pd.DataFrame, settings: Any, *,
                   source: Path | None = None, resume: bool = False,
                   overwrite: bool = False) -> DeepSummary:
    """Run :func:`dlrn.deep.workflow.run_deep_stage` into ``folder/run``; save what later
    stages read (predictions, PCA features, the chosen backbone) and the report tables."""
    from dlrn.deep.workflow import SELECTION_RULE, run_deep_stage

    result = run_deep_stage(cases, cases["set"], folder / "run", settings, resume=resume,
                            overwrite=overwrite, source=source)
    # as float64, the CSV keeps each float32 probability exactly: a cut-off chosen on it
    # later (Table 7) is dlrn.deep's to the last digit
    scores = [column for column in result.predictions if column.startswith("DL-")]
    result.predictions.astype(dict.fromkeys(scores, "float64")).to_csv(folder / PREDICTIONS_FILE)
    if result.features_pca is not None:
        result.features_pca.to_csv(folder / "features.csv")
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
