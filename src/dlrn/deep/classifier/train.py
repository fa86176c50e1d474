"""Fine-tune one classifier backbone on cached crops: the training run, checkpoints, resume.

Best-epoch selection uses a validation split drawn from the TRAINING cases only
(grouped by patient, stratified by label), or an epoch chosen on cross-fitted
predictions (``stop_after``, see :mod:`dlrn.deep.classifier.lockstep`); the test set is
never looked at here. The epochs run in the one training engine
(:func:`dlrn.deep.engine.fit` over a :class:`dlrn.deep.classifier.task.ClassifierTask`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from dlrn.deep.classifier.calibration import PlattScaling, fit_platt
from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.task import classifier_engine
from dlrn.deep.data import CropCache, Normalization
from dlrn.deep.engine import fit
from dlrn.deep.memory import PeakMemory
from dlrn.deep.networks import build_model
from dlrn.deep.runtime import precision_name, select_device, torch_runtime
from dlrn.errors import DlrnError

BEST_CHECKPOINT = "best.safetensors"
RESUME_STATE = "resume.pt"
MODEL_CARD = "model.json"

@dataclass
class TrainResult:
    """A fine-tuned backbone (best epoch loaded, eval mode) and how it got there.

    ``best_val_auc`` is NaN and ``val_ids`` empty where no validation split chose the
    epoch (``train_backbone(stop_after=...)``, the lockstep fold CNNs).
    ``calibration``: the Platt map of the best epoch's logit, fitted on the validation
    cases (:mod:`dlrn.deep.classifier.calibration`); None without a validation split or where the
    fitted slope is not positive. Pass it to ``cnn_probabilities``.
    """

    backbone: str
    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_val_auc: float
    fit_ids: list[str]
    val_ids: list[str]
    normalization: Normalization
    device: torch.device
    out_dir: Path | None
    precision: str = "fp32"
    calibration: PlattScaling | None = None

    @property
    def train_time_s(self) -> float:
        """Wall time of all epochs, validation included (a resumed run counts every part)."""
        return float(self.history["seconds"].sum())

    @property
    def images_per_s(self) -> float:
        """Training throughput: images through the forward/backward/step loop per second."""
        return float(self.history["train_images"].sum() / self.history["train_seconds"].sum())

    @property
    def peak_memory_mib(self) -> float:
        """Peak memory training added (see :class:`dlrn.deep.memory.PeakMemory`)."""
        return float(self.history["peak_memory_mib"].max())


def _auc_then_lower_loss(scores: dict[str, float]) -> tuple[float, float]:
    """An epoch's validation score: AUC, ties to the lower loss."""
    return scores["val_auc"], -scores["val_loss"]


def validation_split(cases: pd.DataFrame, train_ids: Sequence[str], fraction: float,
                     seed: int) -> tuple[list[str], list[str]]:
    """(fit, validation) case ids from the training cases, grouped by patient, stratified."""
    from dlrn.cohort import split_cohort

    training = cases.loc[list(train_ids)]
    sets = split_cohort(training, test_size=fraction, seed=seed)
    fit_ids = [str(i) for i in sets.index[sets == "train"]]
    val_ids = [str(i) for i in sets.index[sets != "train"]]
    if training.loc[val_ids, "label"].nunique() < 2:
        raise DlrnError(
            f"the validation split ({len(val_ids)} training cases) holds one class only; "
            f"add cases or raise val_fraction (now {fraction})"
        )
    return fit_ids, val_ids


def _check_output(out_dir: Path | None, resume: bool, overwrite: bool) -> None:
    if out_dir is None or resume or overwrite:
        return
    existing = [name for name in (BEST_CHECKPOINT, RESUME_STATE) if (out_dir / name).exists()]
    if existing:
        raise DlrnError(f"{out_dir} already holds a trained model ({', '.join(existing)}); "
                        f"pass --resume to continue it or --overwrite to replace it")


def train_backbone(
    backbone: str,
    cache: CropCache,
    cases: pd.DataFrame,
    train_ids: Sequence[str],
    *,
    weights: str | Path | None = None,
    settings: TrainSettings = TrainSettings(),
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    stop_after: int | None = None,
) -> TrainResult:
    """Fine-tune ``backbone`` on the training cases; keep the epoch with the best validation AUC.

    Ties in validation AUC go to the epoch with the lower validation loss.
    ``cases`` is the cohort table (``label``, ``patient_id``), ``cache`` its crops. With
    ``out_dir``, the best epoch is saved as ``best.safetensors`` and the full state
    after every epoch as ``resume.pt`` (``resume=True`` continues from it).
    ``stop_after``: an epoch chosen elsewhere (the cross-fitted choice of
    :mod:`dlrn.deep.classifier.lockstep`): no validation split, every training case is fitted and
    the run stops after that epoch of the ``settings.epochs`` schedule (the same
    warm-up and cosine decay, cut there).
    """
    out_dir = None if out_dir is None else Path(out_dir)
    _check_output(out_dir, resume, overwrite)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(settings.device)
    if stop_after is None:
        fit_ids, val_ids = validation_split(cases, train_ids, settings.val_fraction,
                                            settings.seed)
    elif not 1 <= stop_after <= settings.epochs:
        raise DlrnError(f"stop_after {stop_after} is not an epoch of 1..{settings.epochs}")
    else:
        fit_ids, val_ids = [str(i) for i in train_ids], []

    with torch_runtime(settings, device):
        memory = PeakMemory.start(device)  # before the model: weights and optimizer count
        engine = classifier_engine(backbone, cache, cases, fit_ids, settings, weights=weights,
                                   device=device, memory=memory, val_ids=val_ids)
        task = engine.task
        if resume and out_dir is not None and (out_dir / RESUME_STATE).exists():
            engine.restore(torch.load(out_dir / RESUME_STATE, map_location="cpu",
                                      weights_only=True), out_dir / RESUME_STATE)
        fit(engine, last_epoch=stop_after or settings.epochs,
            score=_auc_then_lower_loss if val_ids else None,
            resume_path=None if out_dir is None else out_dir / RESUME_STATE)
        model = engine.load_best()
        if out_dir is not None:
            save_checkpoint(model, out_dir / BEST_CHECKPOINT)
        calibration = (fit_platt(engine.apply(lambda net: task.logits(net, task.val_positions)),
                                 task.val_labels) if val_ids else None)
    result = TrainResult(backbone, model, pd.DataFrame(engine.history), engine.best_epoch,
                         engine.best_score[0] if val_ids else math.nan, fit_ids, val_ids,
                         task.normalization, device, out_dir, precision_name(engine.dtype),
                         calibration)
    if out_dir is not None:
        write_model_card(result, cache, settings, weights)
    return result


def write_model_card(result: TrainResult, cache: CropCache, settings: TrainSettings,
                     weights: str | Path | None) -> Path:
    """``model.json`` + ``history.csv``: what is needed to crop, normalise and reload the model."""
    result.history.to_csv(result.out_dir / "history.csv", index=False)
    card = {"backbone": result.backbone, "checkpoint": BEST_CHECKPOINT,
            "crop": asdict(cache.settings), "normalization": result.normalization,
            "initial_weights": str(weights), "best_epoch": result.best_epoch,
            "best_val_auc": None if math.isnan(result.best_val_auc) else result.best_val_auc,
            "n_fit": len(result.fit_ids),
            "n_val": len(result.val_ids), "val_ids": result.val_ids,
            "calibration": None if result.calibration is None else result.calibration.to_dict(),
            "device": str(result.device), "precision": result.precision,
            "train_time_s": result.train_time_s,
            "images_per_s": result.images_per_s, "peak_memory_mib": result.peak_memory_mib,
            "settings": asdict(settings)}
    path = result.out_dir / MODEL_CARD
    path.write_text(json.dumps(card, indent=1, default=str))
    return path


def load_trained_model(model_dir: str | Path) -> tuple[nn.Module, dict]:
    """A fine-tuned model and its card from a ``train_backbone`` output folder."""
    model_dir = Path(model_dir)
    card_path = model_dir / MODEL_CARD
    if not card_path.is_file():
        raise DlrnError(f"{model_dir} holds no trained model ({MODEL_CARD} is missing)")
    card = json.loads(card_path.read_text())
    model = build_model(card["backbone"], weights=model_dir / card["checkpoint"])
    return model.eval(), card


def save_checkpoint(model: nn.Module, path: Path) -> Path:
    """The model's weights as safetensors (no pickle; loadable with ``--weights FILE``)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(path))
    return path
