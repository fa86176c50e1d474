"""The study's deep-learning stage for one cohort.

Train each backbone, compare them, choose one on VALIDATION AUC (a split of the
training set; choosing on the test AUC would make the test set part of model
building), then extract its deep features, fit the PCA on training cases only
and draw Grad-CAM overlays for the most confident test TP/TN/FP/FN.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dlrn.deep.data import CropCache, CropSettings, build_crop_cache
from dlrn.deep.features import DeepFeaturePCA, FeatureMode, extract_deep_features
from dlrn.deep.gradcam import gradcam_overlays
from dlrn.deep.inference import cnn_probabilities
from dlrn.deep.nets import STUDY_BACKBONES
from dlrn.deep.train import TrainResult, TrainSettings, train_backbone
from dlrn.errors import DlrnError
from dlrn.io import check_output_folder

log = logging.getLogger(__name__)

SELECTION_RULE = ("highest validation AUC (validation split drawn from the training set, "
                  "grouped by patient); the test set plays no part in the choice")


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


@dataclass
class DeepStageResult:
    """Predictions (wide shape), metrics, the chosen backbone, its features and Grad-CAM rows."""

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    comparison: pd.DataFrame
    chosen: str
    features: pd.DataFrame
    pca: DeepFeaturePCA | None
    features_pca: pd.DataFrame | None
    gradcam: pd.DataFrame
    models: dict[str, TrainResult]


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
    """P(positive) for the given cases from a trained backbone."""
    return cnn_probabilities(result.model, result.backbone, cache, case_ids,
                             normalization=result.normalization, device=result.device,
                             batch_size=batch_size, amp=result.device.type == "cuda")


def compare_backbones(models: dict[str, TrainResult], metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per backbone: selection criterion (validation AUC), train/test AUC and cost.

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
                     "train_time_s": result.train_time_s, "images_per_s": result.images_per_s,
                     "peak_memory_mib": result.peak_memory_mib, "device": str(result.device)})
    table = pd.DataFrame(rows)
    table["chosen"] = table["val_auc"] == table["val_auc"].max()
    first = table.index[table["chosen"]][0]  # ties: the first backbone listed
    table["chosen"] = table.index == first
    return table


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

    models: dict[str, TrainResult] = {}
    predictions = pd.DataFrame({"label": cases["label"].astype(int), "set": split},
                               index=pd.Index(cases.index, name="case_id"))
    for backbone in settings.backbones:
        models[backbone] = train_backbone(
            backbone, cache, cases, train_ids, weights=settings.weights, settings=settings.train,
            out_dir=out_dir / "models" / backbone, resume=resume, overwrite=overwrite)
        predictions[f"DL-{backbone}"] = predict_probabilities(
            models[backbone], cache, list(cases.index), settings.train.batch_size)
    scores = [f"DL-{name}" for name in settings.backbones]
    metrics = metrics_table(predictions, scores)
    write_evaluation(predictions, scores, out_dir / "evaluation", overwrite=True, source=source)
    comparison = compare_backbones(models, metrics)
    chosen = str(comparison.loc[comparison["chosen"], "backbone"].iloc[0])
    log.info("chosen backbone: %s (%s)", chosen, SELECTION_RULE)

    best = models[chosen]
    features = extract_deep_features(best.model, chosen, cache, list(cases.index),
                                     normalization=best.normalization, mode=settings.feature_mode,
                                     device=best.device, batch_size=settings.train.batch_size,
                                     amp=best.device.type == "cuda")
    pca = features_pca = None
    if settings.pca_components:
        pca = DeepFeaturePCA(settings.pca_components, random_state=settings.train.seed)
        pca.fit(features.loc[train_ids])
        features_pca = pca.transform(features)
        pca.save(out_dir / "pca")
    threshold = float(metrics.loc[(metrics["model"] == f"DL-{chosen}")
                                  & (metrics["set"] == "train"), "threshold"].iloc[0])
    gradcam = gradcam_overlays(best.model, chosen, cache, predictions, out_dir / "gradcam",
                               normalization=best.normalization, threshold=threshold,
                               cases=settings.gradcam_cases, device=best.device)

    history = pd.concat([result.history.assign(backbone=name) for name, result in
                         models.items()], ignore_index=True)
    tables = {"predictions": predictions.reset_index(), "comparison": comparison,
              "metrics": metrics, "history": history, "gradcam_cases": gradcam}
    if features_pca is not None:
        tables["deep_features_pca"] = features_pca.reset_index()
    write_tables(tables, out_dir, workbook="deep.xlsx")
    _write_features(features, out_dir)
    (out_dir / "chosen.json").write_text(json.dumps({
        "chosen": chosen, "rule": SELECTION_RULE,
        "val_auc": {name: result.best_val_auc for name, result in models.items()},
        "gradcam_threshold": threshold, "model_dir": str(out_dir / "models" / chosen),
    }, indent=1))
    write_provenance(out_dir / "provenance.json", settings=asdict(settings),
                     input=None if source is None else str(source), chosen=chosen)
    return DeepStageResult(predictions, metrics, comparison, chosen, features, pca,
                           features_pca, gradcam, models)
