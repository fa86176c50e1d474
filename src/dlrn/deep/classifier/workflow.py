"""The study's deep-learning stage for one cohort.

Train each backbone, compare them, choose one on VALIDATION AUC (a split of the
training set; choosing on the test AUC would make the test set part of model
building) and cross-fit the chosen backbone over the DLR classifiers' CV folds
(:mod:`dlrn.deep.classifier.crossfit`), or (``crossfit.select_on: crossfit``) cross-fit every
backbone first, its epoch chosen on the pooled out-of-fold AUC
(:mod:`dlrn.deep.classifier.lockstep`), train each final CNN for that many epochs and choose the
backbone on the same AUC; fit the PCA
of the fused deep features on training cases only and draw Grad-CAM overlays for the
most confident test TP/TN/FP/FN at the cut-off chosen on the cross-fitted scores.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dlrn.deep.classifier.calibration import platt_columns
from dlrn.deep.classifier.crossfit import (
    CrossfitSettings,
    StageCrossfit,
    crossfit_cutoff,
    crossfit_folds,
    crossfit_stage,
    fusion_features,
    out_of_fold_scores,
)
from dlrn.deep.classifier.diagnostics import feature_agreement
from dlrn.deep.classifier.features import DeepFeaturePCA, FeatureMode, extract_deep_features
from dlrn.deep.classifier.gradcam import gradcam_overlays
from dlrn.deep.classifier.scores import cnn_probabilities
from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.train import TrainResult, train_backbone
from dlrn.deep.data import CropCache, CropSettings, build_crop_cache
from dlrn.deep.networks import STUDY_BACKBONES
from dlrn.errors import DlrnError
from dlrn.io import check_output_folder

log = logging.getLogger(__name__)

SELECTION_RULE = ("highest validation AUC (validation split drawn from the training set, "
                  "grouped by patient); the test set plays no part in the choice")
CROSSFIT_RULE = ("highest pooled out-of-fold AUC of the cross-fitted CNNs over all training "
                 "cases, each backbone at the epoch with its highest such AUC; the test set "
                 "plays no part in the choice")
FOLDS_FILE = "crossfit_folds.csv"


@dataclass(frozen=True)
class DeepStageSettings:
    """Everything the deep stage needs besides the cohort; ``pca_components=None``: no PCA."""

    backbones: tuple[str, ...] = STUDY_BACKBONES
    weights: str | None = "imagenet"
    crop: CropSettings = field(default_factory=CropSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    feature_mode: FeatureMode = "pooled"
    pca_components: int | None = 512
    gradcam_cases: tuple[str, ...] | None = None
    cache_crops_on_disk: bool = True
    crossfit: CrossfitSettings = field(default_factory=CrossfitSettings)
    #: folds of the cross-fitting: the DLR classifiers' (classifiers.cv_folds, seeded
    #: by ``train.seed``, the study's seed, as the classifiers are)
    cv_folds: int = 5


@dataclass
class DeepStageResult:
    """Predictions (wide shape), metrics, the chosen backbone, its features and Grad-CAM rows.

    ``features``: the final CNN's features of every case; ``fused``: what the DLR fuses
    (cross-fitted training rows, see :func:`dlrn.deep.classifier.crossfit.fusion_features`), of
    which ``features_pca`` is the PCA; ``crossfit``: the folds and fold CNNs.
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    comparison: pd.DataFrame
    chosen: str
    features: pd.DataFrame
    pca: DeepFeaturePCA | None
    features_pca: pd.DataFrame | None
    gradcam: pd.DataFrame
    models: dict[str, TrainResult]
    fused: pd.DataFrame
    crossfit: StageCrossfit
    threshold: float
    agreement: pd.DataFrame | None


def _check_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    check_output_folder(out_dir, overwrite=resume or overwrite,
                        remedy="pass --resume to continue the run there or --overwrite to "
                               "replace it")


def _check_inputs(cases: pd.DataFrame, split: pd.Series, backbones: tuple[str, ...]) -> None:
    if not backbones:
        raise DlrnError("no backbone given (--backbones)")
    missing = cases.index.difference(split.index)
    if len(missing):
        raise DlrnError(f"cases without a train/test split: {', '.join(map(str, missing[:5]))}")
    if (split.reindex(cases.index) == "train").sum() == 0:
        raise DlrnError("the split has no 'train' cases")


def predict_probabilities(result: TrainResult, cache: CropCache, case_ids: list[str],
                          batch_size: int) -> np.ndarray:
    """P(positive) for the given cases from a trained backbone, through its Platt map
    where it has one (:mod:`dlrn.deep.classifier.calibration`)."""
    return cnn_probabilities(result.model, result.backbone, cache, case_ids,
                             normalization=result.normalization, device=result.device,
                             batch_size=batch_size, amp=result.device.type == "cuda",
                             calibration=result.calibration)


def compare_backbones(models: dict[str, TrainResult], metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per backbone: selection criterion (validation AUC), train/test AUC and cost.

    ``val_auc`` is blank for final CNNs without a validation split (epoch chosen on
    cross-fitted AUC, see :func:`run_deep_stage`); none is then ``chosen`` here.

    ``platt_intercept``/``platt_slope``: the map from the CNN's logit to its reported
    probability (:mod:`dlrn.deep.classifier.calibration`), blank where none was fitted.

    Cost: ``train_time_s`` (all epochs, validation included), ``images_per_s`` (training
    throughput), ``peak_memory_mib`` (memory training added at its peak; NaN where not
    measurable, see :class:`dlrn.deep.memory.PeakMemory`) and the ``device`` they were on.
    """
    rows = []
    for name, result in models.items():
        auc = metrics[metrics["model"] == f"DL-{name}"].set_index("set")["auc"]
        rows.append({"backbone": name, "val_auc": result.best_val_auc,
                     "best_epoch": result.best_epoch, "epochs_run": len(result.history),
                     **{f"{set_name}_auc": value for set_name, value in auc.items()},
                     **platt_columns(result.calibration),
                     "train_time_s": result.train_time_s, "images_per_s": result.images_per_s,
                     "peak_memory_mib": result.peak_memory_mib, "device": str(result.device)})
    table = pd.DataFrame(rows)
    validated = table["val_auc"].notna().any()
    table["chosen"] = table.index == (table["val_auc"].idxmax() if validated else None)
    return table  # idxmax: of tied backbones the first listed


def _write_features(features: pd.DataFrame, out_dir: Path) -> Path:
    """Pooled features as CSV; the wide flattened map as float32 .npy + index/columns JSON."""
    if features.shape[1] <= 5000:
        path = out_dir / "deep_features.csv"
        features.to_csv(path)
        return path
    path = out_dir / "deep_features.npy"
    np.save(path, features.to_numpy(np.float32))
    (out_dir / "deep_features.json").write_text(json.dumps(
        {"case_id": list(features.index), "columns": list(features.columns)}))
    return path


def run_deep_stage(
    cases: pd.DataFrame,
    split: pd.Series,
    out_dir: str | Path,
    settings: DeepStageSettings = DeepStageSettings(),
    *,
    resume: bool = False,
    overwrite: bool = False,
    source: str | Path | None = None,
) -> DeepStageResult:
    """Run the whole DL stage and write its results under ``out_dir``.

    ``cases``: cohort table (``image``, ``mask``, ``label``, ``patient_id``) indexed by
    case id; ``split``: ``"train"``/``"test"`` per case.
    """
    from dlrn.evaluation.summary import metrics_table, write_evaluation
    from dlrn.provenance import write_provenance
    from dlrn.tables import write_tables

    out_dir = Path(out_dir)
    _check_out_dir(out_dir, resume, overwrite)
    _check_inputs(cases, split, settings.backbones)
    cases = cases.set_axis(cases.index.astype(str))
    split = split.set_axis(split.index.astype(str)).loc[cases.index]
    train_ids = list(split.index[split == "train"])
    cache_path = out_dir / "cache" / "crops.npy" if settings.cache_crops_on_disk else None
    cache = build_crop_cache(cases, settings.crop, cache_path=cache_path,
                             progress=settings.train.progress)

    folds = crossfit_folds(cases, train_ids, n_splits=settings.cv_folds, seed=settings.train.seed)
    run = {"cache": cache, "out_dir": out_dir / "crossfit", "resume": resume,
           "overwrite": overwrite}
    crossfit = epochs = None
    if settings.crossfit.select_on == "crossfit":  # epochs first, on cross-fitted AUC
        crossfit = crossfit_stage(cases, folds, settings, settings.crossfit, **run)
        epochs = {name: result.epoch for name, result in crossfit.results.items()}
    models: dict[str, TrainResult] = {}
    predictions = pd.DataFrame({"label": cases["label"].astype(int), "set": split},
                               index=pd.Index(cases.index, name="case_id"))
    for backbone in settings.backbones:
        models[backbone] = train_backbone(
            backbone, cache, cases, train_ids, weights=settings.weights, settings=settings.train,
            out_dir=out_dir / "models" / backbone, resume=resume, overwrite=overwrite,
            stop_after=None if epochs is None else epochs[backbone])
        predictions[f"DL-{backbone}"] = predict_probabilities(
            models[backbone], cache, list(cases.index), settings.train.batch_size)
    scores = [f"DL-{name}" for name in settings.backbones]
    comparison = compare_backbones(models, metrics_table(predictions, scores))
    if crossfit is None:
        chosen = str(comparison.loc[comparison["chosen"], "backbone"].iloc[0])
        crossfit = crossfit_stage(cases, folds, settings, settings.crossfit,
                                  chosen_on_validation=chosen, **run)
    chosen, comparison = crossfit.chosen, _with_crossfit(comparison, crossfit)
    log.info("chosen backbone: %s (%s)", chosen, selection_rule(settings.crossfit))
    oof = out_of_fold_scores(crossfit.results) if crossfit.results else None
    metrics = metrics_table(predictions, scores, oof=oof)
    write_evaluation(predictions, scores, out_dir / "evaluation", oof=oof, overwrite=True,
                     source=source)

    best = models[chosen]
    features = extract_deep_features(best.model, chosen, cache, list(cases.index),
                                     normalization=best.normalization, mode=settings.feature_mode,
                                     device=best.device, batch_size=settings.train.batch_size,
                                     amp=best.device.type == "cuda")
    fused = fusion_features(features, crossfit.results.get(chosen), settings.crossfit)
    pca = features_pca = None
    if settings.pca_components:
        pca = DeepFeaturePCA(settings.pca_components, random_state=settings.train.seed)
        pca.fit(fused.loc[train_ids])
        features_pca = pca.transform(fused)
        pca.save(out_dir / "pca")
    threshold = _cnn_cutoff(metrics, crossfit)
    gradcam = gradcam_overlays(best.model, chosen, cache, predictions, out_dir / "gradcam",
                               normalization=best.normalization, threshold=threshold,
                               cases=settings.gradcam_cases, device=best.device)
    agreement = (feature_agreement(crossfit.results[chosen], features)
                 if chosen in crossfit.results else None)
    _write_crossfit(out_dir, crossfit, oof, agreement)

    history = pd.concat([result.history.assign(backbone=name) for name, result in
                         models.items()], ignore_index=True)
    tables = {"predictions": predictions.reset_index(), "comparison": comparison,
              "metrics": metrics, "history": history, "gradcam_cases": gradcam}
    if features_pca is not None:
        tables["deep_features_pca"] = features_pca.reset_index()
    write_tables(tables, out_dir, workbook="deep.xlsx")
    _write_features(features, out_dir)
    fold_dirs = ([str(Path(path).resolve().relative_to(out_dir.resolve())) for path in
                  crossfit.results[chosen].model_dirs] if chosen in crossfit.results else [])
    (out_dir / "chosen.json").write_text(json.dumps({
        "chosen": chosen, "rule": selection_rule(settings.crossfit),
        "val_auc": {name: _number(result.best_val_auc) for name, result in models.items()},
        "crossfit_epoch": {name: result.epoch for name, result in crossfit.results.items()
                           if result.epoch is not None},  # select_on: crossfit
        "gradcam_threshold": threshold, "model_dir": str(out_dir / "models" / chosen),
        "fusion_features": settings.crossfit.fusion_features, "feature_mode":
        settings.feature_mode, "fold_model_dirs": fold_dirs,  # relative to this folder
    }, indent=1))
    write_provenance(out_dir / "provenance.json", settings=asdict(settings),
                     input=None if source is None else str(source), chosen=chosen)
    return DeepStageResult(predictions, metrics, comparison, chosen, features, pca,
                           features_pca, gradcam, models, fused, crossfit, threshold, agreement)


def _number(value: float) -> float | None:
    """A float for JSON: None where NaN (no validation split)."""
    return None if np.isnan(value) else value


def selection_rule(crossfit: CrossfitSettings) -> str:
    """How the backbone was chosen, in words."""
    if crossfit.select_on == "crossfit":
        return CROSSFIT_RULE
    return SELECTION_RULE


def _with_crossfit(comparison: pd.DataFrame, crossfit: StageCrossfit) -> pd.DataFrame:
    """The backbone table with each cross-fitted backbone's pooled out-of-fold AUC."""
    if crossfit.choice is not None:
        choice = crossfit.choice.rename(columns={"chosen": "chosen_on_crossfit"})
        comparison = comparison.drop(columns="chosen").merge(choice, on="backbone", how="left")
        return comparison.rename(columns={"chosen_on_crossfit": "chosen"})
    auc = {name: result.auc for name, result in crossfit.results.items()}
    return comparison.assign(crossfit_auc=comparison["backbone"].map(auc))


def _cnn_cutoff(metrics: pd.DataFrame, crossfit: StageCrossfit) -> float:
    """The chosen CNN's Youden cut-off: on its cross-fitted training scores; under
    ``in_sample`` on its own training predictions (optimistic, see IN_SAMPLE_NOTE)."""
    if crossfit.chosen in crossfit.results:
        return crossfit_cutoff(crossfit.results[crossfit.chosen])
    rows = metrics[(metrics["model"] == f"DL-{crossfit.chosen}")
                   & metrics["set"].str.startswith("train")]
    return float(rows["threshold"].iloc[0])


def _write_crossfit(out_dir: Path, crossfit: StageCrossfit, oof: pd.DataFrame | None,
                    agreement: pd.DataFrame | None) -> None:
    """The folds (the DLR stage checks its CV folds against them), the cross-fitted
    scores (``oof.csv``, the CNN's training rows) and the fold CNNs' tables."""
    from dlrn.tables import write_tables

    crossfit.folds.rename_axis("case_id").to_csv(out_dir / FOLDS_FILE)
    if oof is None:
        return
    oof.rename_axis("case_id").astype("float64").to_csv(out_dir / "oof.csv")
    tables = {"crossfit_folds_table": pd.concat(
        [result.fold_table for result in crossfit.results.values()], ignore_index=True)}
    epochs = crossfit_epochs(crossfit)
    if epochs is not None:
        tables["crossfit_epochs"] = epochs
    if agreement is not None:
        tables["feature_agreement"] = agreement
    write_tables(tables, out_dir, workbook=None)


def crossfit_epochs(crossfit: StageCrossfit) -> pd.DataFrame | None:
    """Pooled out-of-fold AUC (and loss) after every lockstep epoch, per backbone; None
    unless the epochs were chosen on it (``select_on: crossfit``)."""
    tables = [result.epochs for result in crossfit.results.values() if result.epochs is not None]
    if not tables:
        return None
    columns = ["backbone", "epoch", "pooled_oof_auc", "pooled_oof_loss", "seconds"]
    return pd.concat(tables, ignore_index=True)[columns]
