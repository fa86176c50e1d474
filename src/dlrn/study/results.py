"""The answer a study was run for, read from its stage folders: each model's AUC per set.

The console's results table (``dlrn run``, ``dlrn demo``) is made of these: every
classifier of each model stage, the model each stage chose on training data, the CNN
and the nomogram, on every set but the training set. They are read from the stages'
evaluation tables, so a reused stage answers as a fresh one does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

import pandas as pd

from dlrn.study.runner import StageRecord
from dlrn.study.stages.comparison import STAGE as COMPARISON
from dlrn.study.stages.evaluating import EVALUATION_DIR
from dlrn.study.stages.models import CLINICAL_MODELS, DLR_MODELS, HCR_MODELS, ModelsSummary

__all__ = ["AUC_COLUMNS", "automatic_mask_aucs", "chosen_model_aucs", "classifier_aucs",
           "segmentation_dice"]

AUC_COLUMNS = ["model", "set", "auc", "auc_ci_low", "auc_ci_high"]
CLASSIFIER_STAGES = tuple(stage.name for stage in (CLINICAL_MODELS, HCR_MODELS, DLR_MODELS))


def _held_out(metrics_csv: Path) -> pd.DataFrame:
    """The AUC rows of every set but the training set (out-of-fold or apparent)."""
    table = pd.read_csv(metrics_csv, usecols=AUC_COLUMNS, dtype={"set": str})
    return table[~table["set"].str.startswith("train")].reset_index(drop=True)


def classifier_aucs(output_dir: Path, records: Mapping[str, StageRecord]) -> pd.DataFrame:
    """Every classifier of the clinical, HCR and DLR model stages that ran: ``feature_set``
    (the stage's name for it), ``classifier``, ``chosen`` (the stage's pick on training
    data) and the :data:`AUC_COLUMNS`, one row per held-out set."""
    frames = []
    for stage in CLASSIFIER_STAGES:
        record = records.get(stage)
        if record is None or record.status != "done":
            continue
        summary = cast(ModelsSummary, record.summary)
        rows = _held_out(output_dir / "stages" / stage / EVALUATION_DIR / "metrics.csv")
        frames.append(rows.assign(feature_set=summary.name,
                                  classifier=rows["model"].str.removeprefix(f"{summary.name}-"),
                                  chosen=rows["model"] == summary.best))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["feature_set", "classifier", "chosen", *AUC_COLUMNS])


def chosen_model_aucs(output_dir: Path, records: Mapping[str, StageRecord]) -> pd.DataFrame:
    """The models of the comparison (Table 7: the chosen model of each kind, the CNN and
    the nomogram), one row per held-out set; empty when the comparison did not run."""
    record = records.get(COMPARISON.name)
    if record is None or record.status != "done":
        return pd.DataFrame(columns=AUC_COLUMNS)
    return _held_out(output_dir / "stages" / COMPARISON.name / EVALUATION_DIR / "metrics.csv")


def segmentation_dice(records: Mapping[str, StageRecord]) -> dict[str, str]:
    """The U-Net's Dice (mean and 95% CI, as text) on each held-out set; empty without it."""
    record = records.get("segmentation")
    if record is None or record.status != "done":
        return {}
    return {name: metrics["dice"] for name, metrics in
            getattr(record.summary, "results", {}).items() if "dice" in metrics}


def automatic_mask_aucs(output_dir: Path, records: Mapping[str, StageRecord],
                        models: list[str]) -> pd.DataFrame:
    """``models``' AUCs with the expert and the U-Net's masks per held-out set, and the
    paired test (stage ``automatic_masks``); empty where it did not run."""
    record = records.get("automatic_masks")
    if record is None or record.status != "done":
        return pd.DataFrame()
    table = pd.read_csv(output_dir / "stages" / "automatic_masks" / "tables" /
                        "expert_vs_automatic.csv")
    return table[table["model"].isin(models)].reset_index(drop=True)
