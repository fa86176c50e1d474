"""Fine-tune one backbone on cached crops: the training run, checkpoints and resume.

Best-epoch selection uses a validation split drawn from the TRAINING cases only
(grouped by patient, stratified by label), or an epoch chosen on cross-fitted
predictions (``stop_after``, see :mod:`dlrn.deep.lockstep`); the test set is never
looked at here. The epoch loop itself is :class:`dlrn.deep.trainer.EpochTrainer`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlrn.deep.calibration import PlattScaling, fit_platt
from dlrn.deep.data import Augmentation, CropCache, Normalization
from dlrn.deep.memory import PeakMemory
from dlrn.deep.nets import build_model
from dlrn.deep.runtime import precision_name, select_device, torch_runtime
from dlrn.deep.trainer import (
    CheckpointClock,
    EpochTrainer,
    held_out_loss_auc,
    initial_learning_rate,
    warmup_cosine,
)
from dlrn.errors import DlrnError

__all__ = ["BEST_CHECKPOINT", "MODEL_CARD", "RESUME_STATE", "EpochTrainer", "TrainResult",
           "TrainSettings", "initial_learning_rate", "load_trained_model", "save_checkpoint",
           "train_backbone", "validation_split", "warmup_cosine", "write_model_card"]

BEST_CHECKPOINT = "best.safetensors"
RESUME_STATE = "resume.pt"
MODEL_CARD = "model.json"

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainSettings:
    """Fine-tuning settings; ``learning_rate=None`` means 1e-4 pretrained, 1e-3 random init.

    GPU (CUDA) only, CPU and MPS train in fp32 as before: ``precision`` ``auto`` is bf16
    autocast where the GPU supports it, else fp16 with a gradient scaler; ``amp=False``
    is ``fp32``. ``deterministic=None``: bit-repeatable on CPU; on CUDA off, so cuDNN
    may pick its fastest kernels (``cudnn.benchmark``); ``True`` there trades speed for
    repeatable runs.

    ``checkpoint_every_s``: ``resume.pt`` (weights, optimizer, best weights: 2.3 GB for
    VGG19) is written after the first epoch, then after an epoch once this many seconds
    have passed since the last write, and after the last one; ``best.safetensors`` at the
    end. On a CPU every epoch takes longer than that, so every epoch is written; on a GPU
    writing every epoch cost more than VGG19's training itself. 0 = every epoch.
    """

    epochs: int = 30
    batch_size: int = 16
    optimizer: Literal["adamw", "sgd"] = "adamw"
    learning_rate: float | None = None
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    class_weighted: bool = False
    patience: int | None = 10
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    precision: Precision = "auto"
    channels_last: bool = True
    deterministic: bool | None = None
    threads: int | None = None
    num_workers: int = 0
    normalization: Normalization | None = None
    augmentation: Augmentation = field(default_factory=Augmentation)
    progress: bool = True
    checkpoint_every_s: float = 60.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise DlrnError("epochs must be >= 1 and batch size >= 2 (batch norm needs 2)")
        if self.optimizer not in ("adamw", "sgd"):
            raise DlrnError(f"optimizer {self.optimizer!r} is not 'adamw' or 'sgd'")
        if not 0 < self.val_fraction < 1:
            raise DlrnError(f"val_fraction {self.val_fraction} must be between 0 and 1")
        if self.precision not in PRECISIONS:
            raise DlrnError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not self.checkpoint_every_s >= 0:  # NaN too
            raise DlrnError(f"checkpoint_every_s {self.checkpoint_every_s} must be 0 (every "
                            "epoch) or a positive number of seconds")


@dataclass
class TrainResult:
    """A fine-tuned backbone (best epoch loaded, eval mode) and how it got there.

    ``best_val_auc`` is NaN and ``val_ids`` empty where no validation split chose the
    epoch (``train_backbone(stop_after=...)``, the lockstep fold CNNs).
    ``calibration``: the Platt map of the best epoch's logit, fitted on the validation
    cases (:mod:`dlrn.deep.calibration`); None without a validation split or where the
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
    :mod:`dlrn.deep.lockstep`): no validation split, every training case is fitted and
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
        trainer = EpochTrainer(backbone, cache, cases, fit_ids, settings, weights=weights,
                               device=device, memory=memory)
        if resume and out_dir is not None and (out_dir / RESUME_STATE).exists():
            trainer.restore(torch.load(out_dir / RESUME_STATE, map_location="cpu",
                                       weights_only=True), out_dir / RESUME_STATE)
        _run_epochs(trainer, cases.loc[val_ids, "label"].to_numpy(), val_ids, out_dir,
                    stop_after or settings.epochs)
        model = trainer.load_best()
        if out_dir is not None:
            save_checkpoint(model, out_dir / BEST_CHECKPOINT)
        calibration = (fit_platt(trainer.logits(trainer.cache.positions(val_ids)),
                                 cases.loc[val_ids, "label"].to_numpy()) if val_ids else None)
    result = TrainResult(backbone, model, pd.DataFrame(trainer.history), trainer.best_epoch,
                         trainer.best_auc if val_ids else math.nan, fit_ids, val_ids,
                         trainer.normalization, device, out_dir, precision_name(trainer.dtype),
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


def _run_epochs(trainer: EpochTrainer, val_labels: np.ndarray, val_ids: list[str],
                out_dir: Path | None, last_epoch: int) -> None:
    """Epochs from ``trainer.epoch`` to ``last_epoch``, with best-epoch tracking on the
    validation cases (without them every epoch is kept: the last one counts), early
    stopping and checkpoints."""
    from tqdm.auto import tqdm

    settings = trainer.settings
    bar = tqdm(range(trainer.epoch, last_epoch), desc=trainer.backbone,
               disable=not settings.progress, initial=trainer.epoch, total=last_epoch,
               leave=False)
    val_positions = trainer.cache.positions(val_ids)
    clock, written = CheckpointClock(settings.checkpoint_every_s), trainer.epoch
    for _ in bar:
        if settings.patience is not None and trainer.stale >= settings.patience:
            break
        started = time.perf_counter()
        step = trainer.run_epoch()
        val_loss, val_auc = (held_out_loss_auc(trainer.logits(val_positions), val_labels)
                             if val_ids else (math.nan, math.nan))
        trainer.record(step, started, val_loss=val_loss, val_auc=val_auc)
        bar.set_postfix(loss=f"{step['train_loss']:.4f}", val_auc=f"{val_auc:.3f}")
        if not val_ids or (val_auc, -val_loss) > (trainer.best_auc, -trainer.best_loss):
            trainer.keep(val_auc, val_loss)  # AUC, then lower loss
        else:
            trainer.stale += 1
        if out_dir is not None and clock.due():
            torch.save(trainer.state(), out_dir / RESUME_STATE)
            written = trainer.epoch
    if out_dir is not None and written != trainer.epoch:
        torch.save(trainer.state(), out_dir / RESUME_STATE)


def save_checkpoint(model: nn.Module, path: Path) -> Path:
    """The model's weights as safetensors (no pickle; loadable with ``--weights FILE``)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(path))
    return path
