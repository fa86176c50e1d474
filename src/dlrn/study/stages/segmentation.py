"""Stage ``segmentation``: a U-Net trained on the training cases' expert masks, its masks of
the test and external cases, and how well they agree with the experts' (Dice, IoU, HD95).

:func:`train_and_evaluate` is the stage's work on a cohort with a ``set`` column; the study
and ``dlrn train-seg`` both call it. The predicted masks it writes feed the stage
``automatic_masks`` (:mod:`dlrn.study.automatic`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.report.summary import StageSummary
from dlrn.study.config import DeepSettings, SegmentationConfig, StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.files import (
    figure_dir,
    image_options,
    read_cases,
    save_tables,
    train_ids,
)

VERSION = 1
MODEL_DIR = "model"
MASKS_DIR = "masks"
#: case id -> the predicted mask's path (empty where no lesion was found) and a note
MASKS_FILE = "masks.csv"
PER_CASE_FILE = "per_case.csv"
#: overlays shown in the report: this many best and worst cases (by Dice) of each set
OVERLAYS_PER_END = 2


@dataclass(frozen=True)
class SegmentationStageSettings:
    segmentation: SegmentationConfig
    seed: int
    device: str
    precision: str
    amp: bool
    deterministic: bool
    threads: int | None


@dataclass
class SegmentationSummary(StageSummary):
    cases_trained: int = 0
    cases_validated: int = 0
    best_epoch: int = 0
    epochs_run: int = 0
    train_time_s: float = 0.0
    image_size: int = 0
    #: set -> {metric -> "mean [low, high]"} as the report's facts show them
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    no_lesion: dict[str, int] = field(default_factory=dict)  # set -> cases

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "training cases (fit / validation)": f"{self.cases_trained} / "
                                                 f"{self.cases_validated}",
            "U-Net input": f"{self.image_size} x {self.image_size} pixels",
            "epochs (best by validation Dice)": f"{self.epochs_run} ({self.best_epoch})",
            "training time": f"{self.train_time_s:.0f} s"}
        for name, metrics in self.results.items():
            facts[f"Dice, {name}"] = metrics.get("dice", "")
        for name, count in self.no_lesion.items():
            if count:
                facts[f"cases with no lesion found, {name}"] = count
        return facts


def stage_settings(config: StudyConfig) -> SegmentationStageSettings:
    dl = config.dl
    return SegmentationStageSettings(config.segmentation, config.seed, dl.device, dl.precision,
                                     dl.amp, dl.deterministic, dl.threads)


def segmentation_settings(section: SegmentationConfig, dl: DeepSettings, *, seed: int,
                          progress: bool, mask_label: int | None = None,
                          frame: int = 0) -> Any:
    """The U-Net's training settings from the study file's ``segmentation`` and ``dl``
    (device, precision, determinism and threads) sections, reading the images and masks
    as the cohort does (``mask_label``, ``frame``)."""
    from dlrn.segmentation import SegmentationSettings

    return SegmentationSettings(
        image_size=section.image_size, epochs=section.epochs, batch_size=section.batch_size,
        learning_rate=section.learning_rate, patience=section.patience,
        val_fraction=section.val_fraction, seed=seed, device=dl.device,
        precision=dl.precision, amp=dl.amp, deterministic=dl.deterministic,
        threads=dl.threads, progress=progress, mask_label=mask_label, frame=frame)


def _skip(context: StudyContext) -> str | None:
    if not context.config.segmentation.enabled:
        return "segmentation.enabled is false"
    return None


def _format(row: pd.Series, digits: int) -> str:
    return (f"{row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, "
            f"{row['ci_high']:.{digits}f}]")


def _set_names(cases: pd.DataFrame) -> list[str]:
    """The evaluated sets in the cohort's order: test first, then each external centre."""
    return [name for name in dict.fromkeys(cases["set"]) if name != "train"]


def _overlays(cases: pd.DataFrame, per_case: pd.DataFrame, predicted: pd.DataFrame,
              folder: Path, set_name: str, settings: Any) -> dict[str, str]:
    """The best and worst cases of one set by Dice: image, expert and predicted contours."""
    import SimpleITK as sitk

    from dlrn.imaging import read_image, read_mask
    from dlrn.segmentation import overlay_figure

    ranked = per_case.sort_values("dice", kind="stable")
    ends = {"worst": ranked.head(OVERLAYS_PER_END),
            "best": ranked.tail(OVERLAYS_PER_END).iloc[::-1]}
    figures = {}
    for end, rows in ends.items():
        for rank, case in enumerate(rows.index, start=1):
            image = read_image(cases.at[case, "image"], frame=settings.frame)
            expert = sitk.GetArrayFromImage(read_mask(
                cases.at[case, "mask"], label=settings.mask_label, frame=settings.frame)) != 0
            mask_path = predicted.at[case, "mask"]
            auto = (None if pd.isna(mask_path)
                    else sitk.GetArrayFromImage(read_mask(mask_path,
                                                          label=settings.mask_label)) != 0)
            stem = f"overlay_{set_name}_{end}{rank}"
            overlay_figure(image, expert, auto, folder / f"{stem}.png",
                           f"{case} ({set_name}): Dice {per_case.at[case, 'dice']:.2f}")
            figures[f"figures/{stem}"] = (f"{end.capitalize()} {rank} of the {set_name} set "
                                          f"by Dice: case {case}, expert contour and the "
                                          "U-Net's")
    return figures


def train_and_evaluate(cases: pd.DataFrame, settings: Any, folder: Path, *,
                       progress: bool = True) -> SegmentationSummary:
    """Train the U-Net on the ``train`` cases (patient-grouped validation split), write it and
    its history to ``folder/model``, segment every other case into ``folder/masks`` and
    compare them with the expert masks: per case, and per set with patient-level bootstrap
    CIs."""
    from dlrn.segmentation import mask_metrics, metric_summary, segment_cases, train_segmentation

    result = train_segmentation(cases, train_ids(cases), settings, out_dir=folder / MODEL_DIR)
    evaluated = cases[cases["set"] != "train"]
    predicted = segment_cases(result.model, cases, list(evaluated.index), folder / MASKS_DIR,
                              progress=progress)
    predicted.index.name = "case_id"
    predicted.to_csv(folder / MASKS_FILE)
    per_case = mask_metrics(cases, predicted, label=settings.mask_label,
                            frame=settings.frame).join(evaluated[["set"]])
    per_case.index.name = "case_id"
    per_case.to_csv(folder / PER_CASE_FILE)
    summary = SegmentationSummary(
        cases_trained=len(result.fit_ids), cases_validated=len(result.val_ids),
        best_epoch=int(result.best_epoch), epochs_run=len(result.history),
        train_time_s=round(float(result.train_time_s), 1), image_size=settings.image_size)
    tables, figures = {}, figure_dir(folder)
    for name in _set_names(cases):
        rows = per_case[per_case["set"] == name]
        patients = (evaluated.loc[rows.index, "patient_id"].astype(str)
                    if "patient_id" in evaluated.columns else None)
        table = metric_summary(rows.drop(columns=["set"]), patients, seed=settings.seed)
        tables[f"segmentation_{name}"] = table.rename_axis("metric").reset_index()
        summary.results[name] = {metric: _format(table.loc[metric], 1 if metric == "hd95" else 3)
                                 for metric in table.index}
        summary.no_lesion[name] = int(predicted.loc[rows.index, "mask"].isna().sum())
        summary.figures.update(_overlays(cases, rows, predicted, figures, name,
                                              settings))
    save_tables(folder, tables)
    summary.tables = {f"tables/{name}": (
        f"Segmentation of the {name.removeprefix('segmentation_')} set: Dice, IoU and HD95 "
        "of the U-Net's masks against the expert masks (mean, 95% CI by resampling "
        "patients; a case with no lesion found counts as Dice 0)") for name in tables}
    return summary


def run(context: StudyContext) -> SegmentationSummary:
    config = context.config
    settings = segmentation_settings(config.segmentation, config.dl, seed=config.seed,
                                     progress=context.progress, **image_options(config))
    return train_and_evaluate(read_cases(context), settings,
                              context.stage_dir("segmentation"), progress=context.progress)


STAGE = Stage("segmentation", "Lesion segmentation (U-Net)", ("cohort",), stage_settings, run,
              skip=_skip, version=VERSION, summary_type=SegmentationSummary)
