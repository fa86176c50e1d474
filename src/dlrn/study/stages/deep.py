"""Stage ``deep``: train the CNN backbones, choose one, cross-fit it, its deep features
(PCA) and Grad-CAM.

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
    OOF_FILE,
    PREDICTIONS_FILE,
    figure_dir,
    image_options,
    read_case_frame,
    read_cases,
    save_tables,
    write_best,
)

# 2: cross-fitted deep features (dl.fusion_features, dl.select_on); 3: select_on: crossfit
# chooses the epoch on the pooled out-of-fold AUC too (lockstep fold CNNs); 4: each CNN
# Platt-scaled on its validation cases
VERSION = 4
COMPONENTS_FACT = "principal components kept (fitted on training cases)"


@dataclass(frozen=True)
class DeepStudySettings:
    dl: DeepSettings
    seed: int
    cv_folds: int  # the cross-fitting's folds are the DLR classifiers' CV folds


@dataclass
class DeepSummary(StageSummary):
    chosen: str = ""
    deep_features: int = 0
    components: int = 0
    repeatability: str = ""  # dlrn.deep.runtime.repeatability of the chosen CNN's training
    threads: int = 0  # CPU threads of the whole stage (a CNN's CPU numbers depend on it)

    def facts(self) -> dict[str, Any]:
        return {"chosen backbone": self.chosen, "deep features": self.deep_features,
                COMPONENTS_FACT: self.components, "training": self.repeatability}


def weights(config: StudyConfig) -> str | None:
    """imagenet, none, or a weight file made absolute against the study file's folder."""
    value = config.dl.weights
    return value if value in (None, "none", "imagenet") else str(config.resolve(value))


def inputs(config: StudyConfig) -> list[Path]:
    value = weights(config)
    return [] if value in (None, "none", "imagenet") else [Path(value)]


def deep_stage_settings(dl: DeepSettings, *, seed: int, weights: str | None,
                        mask_label: int | None = None, frame: int = 0,
                        progress: bool = True, cv_folds: int = 5) -> Any:
    """The study file's dl section as dlrn.deep.classifier.workflow.DeepStageSettings.

    ``cv_folds``: classifiers.cv_folds, the folds of the cross-fitting.

    ``dlrn run`` and ``dlrn train-dl`` both build their deep-learning settings here.
    """
    from dlrn.deep.classifier.crossfit import CrossfitSettings
    from dlrn.deep.classifier.settings import TrainSettings
    from dlrn.deep.classifier.workflow import DeepStageSettings
    from dlrn.deep.data import Augmentation, CropSettings

    train = TrainSettings(
        epochs=dl.epochs, batch_size=dl.batch_size, optimizer=dl.optimizer,
        learning_rate=dl.learning_rate, warmup_epochs=dl.warmup_epochs,
        class_weighted=dl.class_weighted, patience=dl.patience, val_fraction=dl.val_fraction,
        seed=seed, device=dl.device, amp=dl.amp, precision=dl.precision, threads=dl.threads,
        deterministic=dl.deterministic,
        num_workers=dl.workers,
        normalization=dl.normalization, progress=progress,
        augmentation=Augmentation() if dl.augment else Augmentation.none())
    crop = CropSettings(image_size=dl.image_size, margin=dl.crop_margin,
                        keep_aspect=dl.keep_aspect, mask_label=mask_label, frame=frame)
    return DeepStageSettings(
        backbones=tuple(dl.backbones), weights=weights, crop=crop, train=train,
        feature_mode=dl.feature_mode, pca_components=dl.pca_components or None,
        gradcam_cases=None if dl.gradcam_cases is None else tuple(dl.gradcam_cases),
        crossfit=CrossfitSettings(dl.fusion_features, dl.select_on), cv_folds=cv_folds)


def deep_settings(config: StudyConfig, progress: bool) -> Any:
    """The study's deep-learning settings (image options from the cohort section)."""
    return deep_stage_settings(config.dl, seed=config.seed, weights=weights(config),
                               progress=progress, cv_folds=config.classifiers.cv_folds,
                               **image_options(config))


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
    """Run :func:`dlrn.deep.classifier.workflow.run_deep_stage` into ``folder/run_dir``; save what
    later stages read (predictions, deep features, the chosen backbone) and the report
    tables. ``cases`` needs a ``set`` column (train, test, external names)."""
    from dlrn.deep.classifier.workflow import FOLDS_FILE, run_deep_stage, selection_rule
    from dlrn.deep.runtime import cpu_threads, repeatability, resolved_threads

    threads = resolved_threads(settings.train)
    with cpu_threads(threads):  # training and inference: the CPU's sums depend on it
        result = run_deep_stage(cases, cases["set"], folder / run_dir, settings,
                                resume=resume, overwrite=overwrite, source=source)
    # as float64, the CSV keeps each float32 probability exactly: a cut-off chosen on it
    # later (Table 7) is dlrn.deep's to the last digit
    scores = [column for column in result.predictions if column.startswith("DL-")]
    result.predictions.astype(dict.fromkeys(scores, "float64")).to_csv(folder / PREDICTIONS_FILE)
    fused = result.fused if result.features_pca is None else result.features_pca
    fused.to_csv(folder / "features.csv")  # what the DLR models fuse with the HCR features
    # the folds (checked by the DLR stage) and the CNN's out-of-fold training rows
    for name in (FOLDS_FILE, OOF_FILE):
        written = folder / run_dir / name
        if written.exists() and written.resolve() != (folder / name).resolve():
            shutil.copy2(written, folder / name)
    write_best(folder, f"DL-{result.chosen}", selection_rule(settings.crossfit))
    tables = {"deep_metrics": _metrics(result), "deep_backbones": result.comparison}
    tables.update(_crossfit_tables(result))
    save_tables(folder, tables)
    return DeepSummary(
        tables=_captions(tables), notes=[_crossfit_note(result, settings)],
        cautions=[] if result.crossfit.results else [IN_SAMPLE_CAUTION],
        figures=_gradcam_figures(result, folder), chosen=result.chosen,
        deep_features=result.features.shape[1],
        components=0 if result.features_pca is None else result.features_pca.shape[1],
        repeatability=repeatability(settings.train, result.models[result.chosen].device),
        threads=threads)


def _metrics(result: Any) -> pd.DataFrame:
    """Table 5 as Table 7 shows the CNNs: the cut-off of a cross-fitted backbone chosen
    on its cross-fitted training scores, the others' on their training predictions."""
    from dlrn.model_comparison import comparison_metrics

    predictions = result.predictions
    scores = [column for column in predictions if column.startswith("DL-")]
    training = predictions.loc[predictions["set"] == "train", ["label"]]
    if result.crossfit.results:
        training = training.join(pd.concat(
            [r.scores for r in result.crossfit.results.values()], axis=1))
    return comparison_metrics(predictions, training, scores)


def _crossfit_tables(result: Any) -> dict[str, pd.DataFrame]:
    """The fold CNNs' log, the pooled out-of-fold AUC per epoch (select_on: crossfit) and
    how far the fold CNNs' features agree with the final CNN's."""
    from dlrn.deep.classifier.workflow import crossfit_epochs

    tables = {}
    if result.crossfit.results:
        tables["deep_crossfit_folds"] = pd.concat(
            [r.fold_table for r in result.crossfit.results.values()], ignore_index=True)
    epochs = crossfit_epochs(result.crossfit)
    if epochs is not None:
        tables["deep_crossfit_epochs"] = epochs
    if result.agreement is not None:
        tables["deep_feature_agreement"] = result.agreement
    return tables


_CAPTIONS = {
    "deep_backbones": "Backbones compared (the rule is in the notes above). AUC per set "
                      "(train: the final CNN on its own training cases, apparent; "
                      "crossfit_auc: pooled out-of-fold AUC of the cross-fitted CNNs, at "
                      "crossfit_epoch where the epoch was chosen on it; val_auc is then "
                      "blank, the final CNN having no validation split) and "
                      "the Platt map from the CNN's logit to its probability "
                      "(platt_intercept, platt_slope: fitted on the validation split; "
                      "blank: raw sigmoid) and "
                      "training cost: time of all epochs (s), throughput (images/s), peak "
                      "memory added by training (MiB; blank where not measurable) and the "
                      "device",
    "deep_metrics": "Performance of the DL models (Table 5); the cut-off of a "
                    "cross-fitted backbone is chosen on its cross-fitted (out-of-fold) "
                    "training scores",
    "deep_crossfit_folds": "Cross-fitting: one CNN per fold, trained on the other folds' "
                           "cases (cases, best epoch, inner validation AUC (blank where "
                           "the epoch was chosen on the pooled out-of-fold AUC), AUC on "
                           "its held-out fold, its Platt map (blank: raw sigmoid), "
                           "training time)",
    "deep_crossfit_epochs": "Cross-fitting in lockstep (dl.select_on: crossfit): pooled "
                            "out-of-fold AUC and loss over all training cases after each "
                            "epoch; the epoch with the highest AUC was kept for the fold "
                            "CNNs and the final CNN",
    "deep_feature_agreement": "Cross-fitting: median feature-by-feature correlation of each "
                              "fold CNN's and the final CNN's deep features on the fold's "
                              "cases (near 1: the fold CNNs' features mean what the final "
                              "CNN's do)",
}


def _captions(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    return {f"tables/{name}": _CAPTIONS[name] for name in tables}


IN_SAMPLE_CAUTION = ("dl.fusion_features is in_sample: the CNN's cut-off and training-set "
                     "numbers come from its own training predictions, as do the training "
                     "rows of the deep features the DLR models fuse, so they are optimistic")


def _crossfit_note(result: Any, settings: Any) -> str:
    """Methods-style sentences on the cross-fitting; under in_sample, the optimism warning."""
    from dlrn.deep.classifier.crossfit import describe
    from dlrn.deep.classifier.diagnostics import pooling_check
    from dlrn.deep.classifier.workflow import selection_rule

    scores = ("its cross-fitted training scores" if result.crossfit.results
              else "its own training predictions (optimistic)")
    text = (f"{describe(settings.crossfit, settings.cv_folds)} Backbone chosen by "
            f"{selection_rule(settings.crossfit)}. The CNN's cut-off ({result.threshold:.3f}) "
            f"and Grad-CAM categories use {scores}.")
    if result.chosen in result.crossfit.results:
        text += " " + pooling_check(result.crossfit.results[result.chosen])
    return text


def check_crossfit_folds(context: StudyContext) -> None:
    """Refuse DLR models whose CV folds are not the deep stage's cross-fitting folds:
    a held-out row whose deep features came from a CNN that trained on it would bring
    back the leakage cross-fitting removes."""
    from dlrn.deep.classifier.workflow import FOLDS_FILE
    from dlrn.errors import DlrnError

    path = context.stage_dir("deep") / FOLDS_FILE
    if not (context.stage_dir("deep") / OOF_FILE).exists():
        return  # dl.fusion_features: in_sample, nothing cross-fitted
    expected = read_case_frame(path)["fold"]
    used = read_case_frame(context.stage_dir("dlr_models") / "result" / "cv_folds.csv")["fold"]
    if not used.sort_index().equals(expected.sort_index()):
        differ = used.index.symmetric_difference(expected.index)
        raise DlrnError(
            f"the DLR models' CV folds ({context.stage_dir('dlr_models')}/result/cv_folds.csv) "
            f"differ from the deep stage's cross-fitting folds ({path})"
            + (f"; cases in one only: {', '.join(differ[:5])}" if len(differ) else "")
            + ": rerun the deep stage with the same classifiers.cv_folds, seed and cases "
              "(dlrn run reruns it when these change)")


def run(context: StudyContext) -> DeepSummary:
    config = context.config
    return train_and_save(context.stage_dir("deep"), read_cases(context),
                          deep_settings(config, context.progress),
                          source=config.resolve(config.cohort.table))


def _dl_off(context: StudyContext) -> str | None:
    return None if context.config.dl.enabled else "dl.enabled is false in the study file"


STAGE = Stage("deep", "Deep learning models", ("cohort",),
              lambda c: DeepStudySettings(c.dl, c.seed, c.classifiers.cv_folds), run,
              skip=_dl_off, inputs=inputs,
              version=VERSION, summary_type=DeepSummary)
