"""Fine-tune one backbone on cached crops: the training loop, checkpoints and resume.

Best-epoch selection uses a validation split drawn from the TRAINING cases only
(grouped by patient, stratified by label); the test set is never looked at here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlrn.deep.data import (
    Augmentation,
    CropCache,
    DeviceCrops,
    Normalization,
    augment,
    augment_batch,
    crop_loader,
    default_normalization,
    normalize,
)
from dlrn.deep.features import batched_outputs, cuda_oom_error
from dlrn.deep.memory import PeakMemory
from dlrn.deep.nets import build_model
from dlrn.deep.runtime import (
    autocast,
    autocast_dtype,
    precision_name,
    select_device,
    torch_runtime,
)
from dlrn.errors import DlrnError

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

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise DlrnError("epochs must be >= 1 and batch size >= 2 (batch norm needs 2)")
        if self.optimizer not in ("adamw", "sgd"):
            raise DlrnError(f"optimizer {self.optimizer!r} is not 'adamw' or 'sgd'")
        if not 0 < self.val_fraction < 1:
            raise DlrnError(f"val_fraction {self.val_fraction} must be between 0 and 1")
        if self.precision not in PRECISIONS:
            raise DlrnError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")


@dataclass
class TrainResult:
    """A fine-tuned backbone (best epoch loaded, eval mode) and how it got there."""

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


def initial_learning_rate(learning_rate: float | None, weights: object) -> float:
    """The given rate, else 1e-4 to fine-tune pretrained weights and 1e-3 from random init."""
    return learning_rate or (1e-3 if weights in (None, "none") else 1e-4)


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


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _optimizer(model: nn.Module, settings: TrainSettings, learning_rate: float,
               device: torch.device):
    """SGD or AdamW; on CUDA the fused kernels (one launch per step, not one per tensor)."""
    fused = {"fused": True} if device.type == "cuda" else {}
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=settings.momentum,
                               weight_decay=settings.weight_decay, nesterov=True, **fused)
    return torch.optim.AdamW(model.parameters(), lr=learning_rate,
                             weight_decay=settings.weight_decay, **fused)


def _comparable(settings: TrainSettings) -> dict:
    """Settings that must match for a run to be resumed (not progress or device)."""
    return {k: v for k, v in asdict(replace(settings, progress=True, device="auto")).items()}


class _Run:
    """The mutable state of one training run (what ``resume.pt`` holds)."""

    def __init__(self, model: nn.Module, optimizer, scheduler, generator: torch.Generator,
                 memory: PeakMemory):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.generator, self.memory = generator, memory
        self.epoch, self.best_epoch, self.best_auc, self.stale = 0, 0, -1.0, 0
        self.best_loss = math.inf
        self.best_state: dict[str, torch.Tensor] = {}
        self.history: list[dict] = []

    def state(self, settings: TrainSettings) -> dict:
        return {"settings": json.dumps(_comparable(settings), default=str),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "generator": self.generator.get_state(),
                "epoch": self.epoch, "best_epoch": self.best_epoch, "best_auc": self.best_auc,
                "best_loss": self.best_loss,
                "stale": self.stale, "best_state": self.best_state, "history": self.history}

    def restore(self, path: Path, settings: TrainSettings) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["settings"] != json.dumps(_comparable(settings), default=str):
            raise DlrnError(f"cannot resume from {path}: it was trained with other settings "
                            f"({state['settings']})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.epoch, self.best_epoch = state["epoch"], state["best_epoch"]
        self.best_auc, self.stale = state["best_auc"], state["stale"]
        self.best_loss = state["best_loss"]
        self.best_state, self.history = state["best_state"], state["history"]


def _check_output(out_dir: Path | None, resume: bool, overwrite: bool) -> None:
    if out_dir is None or resume or overwrite:
        return
    existing = [name for name in (BEST_CHECKPOINT, RESUME_STATE) if (out_dir / name).exists()]
    if existing:
        raise DlrnError(f"{out_dir} already holds a trained model ({', '.join(existing)}); "
                        f"pass --resume to continue it or --overwrite to replace it")


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _training_images(batch: torch.Tensor, settings: TrainSettings,
                     normalization: Normalization, generator: torch.Generator,
                     device: torch.device) -> torch.Tensor:
    """Augmented, normalised float images on ``device``.

    A batch already on a GPU is augmented there in one go; a CPU batch image by image.
    """
    if batch.device.type == "cuda":
        images = normalize(augment_batch(batch, settings.augmentation, generator),
                           normalization)
    else:
        images = normalize(augment(batch, settings.augmentation, generator).to(device),
                           normalization)
    if settings.channels_last and device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def _train_epoch(run: _Run, loader, labels: torch.Tensor, loss_function: nn.Module,
                 settings: TrainSettings, normalization: Normalization, device: torch.device,
                 scaler: torch.amp.GradScaler) -> tuple[float, int]:
    """One pass over the fit cases: (mean loss, images seen).

    Losses stay on the device until the epoch ends: reading one per step would make
    the CPU wait for the GPU at every step.
    """
    run.model.train()
    dtype = autocast_dtype(settings, device)
    losses, sizes = [], []
    for batch, positions in loader:
        images = _training_images(batch, settings, normalization, run.generator, device)
        with autocast(device, dtype):
            logits = run.model(images).squeeze(1)
        loss = loss_function(logits.float(), labels[positions].to(device))
        run.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(run.optimizer)
        scaler.update()
        run.scheduler.step()
        losses.append(loss.detach())
        sizes.append(len(positions))
    total = 0.0
    for value, size in zip(torch.stack(losses).tolist() if losses else [], sizes, strict=True):
        total += value * size
    return total / max(sum(sizes), 1), sum(sizes)


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
) -> TrainResult:
    """Fine-tune ``backbone`` on the training cases; keep the epoch with the best validation AUC.

    Ties in validation AUC go to the epoch with the lower validation loss.
    ``cases`` is the cohort table (``label``, ``patient_id``), ``cache`` its crops. With
    ``out_dir``, the best epoch is saved as ``best.safetensors`` and the full state
    after every epoch as ``resume.pt`` (``resume=True`` continues from it).
    """
    out_dir = None if out_dir is None else Path(out_dir)
    _check_output(out_dir, resume, overwrite)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(settings.device)
    normalization = settings.normalization or default_normalization(weights)
    learning_rate = initial_learning_rate(settings.learning_rate, weights)
    fit_ids, val_ids = validation_split(cases, train_ids, settings.val_fraction, settings.seed)
    label_by_position = torch.zeros(len(cache.case_ids), dtype=torch.float32)
    all_positions = cache.positions(list(cases.index.astype(str)))
    label_by_position[all_positions] = torch.tensor(cases["label"].to_numpy(), dtype=torch.float32)
    val_labels = cases.loc[val_ids, "label"].to_numpy()

    with torch_runtime(settings, device):
        torch.manual_seed(settings.seed)
        memory = PeakMemory.start(device)  # before the model: weights and optimizer count
        model = build_model(backbone, weights=weights).to(device)
        if settings.channels_last and device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        generator = torch.Generator().manual_seed(settings.seed)
        loader = _fit_batches(cache, cache.positions(fit_ids), settings, generator, device)
        steps_per_epoch = len(loader)
        optimizer = _optimizer(model, settings, learning_rate, device)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(
            settings.epochs * steps_per_epoch, round(settings.warmup_epochs * steps_per_epoch)))
        run = _Run(model, optimizer, scheduler, generator, memory)
        if resume and out_dir is not None and (out_dir / RESUME_STATE).exists():
            run.restore(out_dir / RESUME_STATE, settings)
        fit_labels = cases.loc[fit_ids, "label"].to_numpy()
        pos_weight = (torch.tensor((fit_labels == 0).sum() / max((fit_labels == 1).sum(), 1))
                      if settings.class_weighted else None)
        loss_function = nn.BCEWithLogitsLoss(pos_weight=pos_weight).to(device)
        dtype = autocast_dtype(settings, device)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        if device.type == "cuda":
            label_by_position = label_by_position.to(device)
        _run_epochs(run, backbone, loader, label_by_position, loss_function, settings,
                    normalization, device, scaler, cache, val_ids, val_labels, out_dir)
        model.load_state_dict(run.best_state)
        model.eval()
    result = TrainResult(backbone, model, pd.DataFrame(run.history), run.best_epoch,
                         run.best_auc, fit_ids, val_ids, normalization, device, out_dir,
                         precision_name(dtype))
    if out_dir is not None:
        write_model_card(result, cache, settings, weights)
    return result


def _fit_batches(cache: CropCache, positions: np.ndarray, settings: TrainSettings,
                 generator: torch.Generator, device: torch.device):
    """Shuffled training batches: all crops held on the GPU under CUDA, a DataLoader else.

    A lone last image is dropped (batch norm cannot train on one image).
    """
    drop_last = len(positions) % settings.batch_size == 1
    if device.type == "cuda":
        return DeviceCrops(cache.crops, positions, settings.batch_size, device=device,
                           generator=generator, drop_last=drop_last)
    return crop_loader(cache.crops, positions, settings.batch_size, shuffle=True,
                       generator=generator, num_workers=settings.num_workers,
                       drop_last=drop_last)


def write_model_card(result: TrainResult, cache: CropCache, settings: TrainSettings,
                     weights: str | Path | None) -> Path:
    """``model.json`` + ``history.csv``: what is needed to crop, normalise and reload the model."""
    result.history.to_csv(result.out_dir / "history.csv", index=False)
    card = {"backbone": result.backbone, "checkpoint": BEST_CHECKPOINT,
            "crop": asdict(cache.settings), "normalization": result.normalization,
            "initial_weights": str(weights), "best_epoch": result.best_epoch,
            "best_val_auc": result.best_val_auc, "n_fit": len(result.fit_ids),
            "n_val": len(result.val_ids), "val_ids": result.val_ids,
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


def _run_epochs(run: _Run, backbone: str, loader, labels: torch.Tensor,
                loss_function: nn.Module, settings: TrainSettings, normalization: Normalization,
                device: torch.device, scaler, cache: CropCache, val_ids: list[str],
                val_labels: np.ndarray, out_dir: Path | None) -> None:
    """Epochs from ``run.epoch`` on, with best-epoch tracking, early stopping and checkpoints."""
    import time

    from tqdm.auto import tqdm

    bar = tqdm(range(run.epoch, settings.epochs), desc=backbone, disable=not settings.progress,
               initial=run.epoch, total=settings.epochs)
    val_positions = cache.positions(val_ids)
    dtype = autocast_dtype(settings, device)
    for epoch in bar:
        if settings.patience is not None and run.stale >= settings.patience:
            break
        started = time.perf_counter()
        try:
            train_loss, train_images = _train_epoch(run, loader, labels, loss_function,
                                                    settings, normalization, device, scaler)
            train_seconds = time.perf_counter() - started
            with autocast(device, dtype):  # batched_outputs' autocast takes this type
                logits = batched_outputs(
                    run.model, lambda images: run.model(images).squeeze(1), cache,
                    val_positions, backbone=backbone, normalization=normalization,
                    device=device, batch_size=settings.batch_size, amp=dtype is not None)
        except torch.cuda.OutOfMemoryError as error:
            raise cuda_oom_error(backbone, settings.batch_size, device) from error
        val_loss = float(nn.functional.binary_cross_entropy_with_logits(
            torch.from_numpy(logits), torch.from_numpy(val_labels.astype(np.float32))))
        val_auc = _auc(val_labels, logits)
        run.epoch = epoch + 1
        run.history.append({"epoch": run.epoch, "train_loss": train_loss, "val_loss": val_loss,
                            "val_auc": val_auc, "lr": run.scheduler.get_last_lr()[0],
                            "train_seconds": train_seconds, "train_images": train_images,
                            "seconds": time.perf_counter() - started,
                            "peak_memory_mib": run.memory.peak_mib()})
        bar.set_postfix(loss=f"{train_loss:.4f}", val_auc=f"{val_auc:.3f}")
        if (val_auc, -val_loss) > (run.best_auc, -run.best_loss):  # AUC, then lower loss
            run.best_auc, run.best_loss, run.best_epoch, run.stale = (
                val_auc, val_loss, run.epoch, 0)
            run.best_state = {k: v.detach().cpu().clone() for k, v in
                              run.model.state_dict().items()}
            if out_dir is not None:
                save_checkpoint(run.model, out_dir / BEST_CHECKPOINT)
        else:
            run.stale += 1
        if out_dir is not None:
            torch.save(run.state(settings), out_dir / RESUME_STATE)


def save_checkpoint(model: nn.Module, path: Path) -> Path:
    """The model's weights as safetensors (no pickle; loadable with ``--weights FILE``)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(path))
    return path
