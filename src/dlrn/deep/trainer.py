"""One CNN in training, one epoch at a time: the loop every fine-tuning in dlrn runs.

:func:`dlrn.deep.train.train_backbone` drives one :class:`EpochTrainer` (validation
after every epoch); :mod:`dlrn.deep.lockstep` drives K of them side by side (the
cross-fitting's fold CNNs, whose epoch is chosen on their pooled held-out AUC). Each
trainer owns its model, optimiser, schedule, shuffling generator and its own copy of
torch's global random state (dropout draws from it), so trainers interleaved epoch by
epoch train exactly as each would alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlrn.deep.data import (
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
from dlrn.deep.runtime import autocast, autocast_dtype
from dlrn.errors import DlrnError

if TYPE_CHECKING:
    from dlrn.deep.train import TrainSettings


def initial_learning_rate(learning_rate: float | None, weights: object) -> float:
    """The given rate, else 1e-4 to fine-tune pretrained weights and 1e-3 from random init."""
    return learning_rate or (1e-3 if weights in (None, "none") else 1e-4)


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


def comparable(settings: TrainSettings) -> str:
    """Settings that must match for a run to be resumed (not progress, device or how often
    it is saved), as JSON."""
    fields = asdict(replace(settings, progress=True, device="auto"))
    fields.pop("checkpoint_every_s")
    return json.dumps(fields, default=str)


class CheckpointClock:
    """When to write a resume state: at the first call, then once ``every_s`` seconds have
    passed since the last write (``TrainSettings.checkpoint_every_s``)."""

    def __init__(self, every_s: float):
        self.every_s, self.last = every_s, None

    def due(self) -> bool:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.every_s:
            return False
        self.last = now
        return True


def held_out_loss_auc(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Binary cross-entropy and AUC of logits (AUC NaN where the labels hold one class)."""
    from sklearn.metrics import roc_auc_score

    loss = float(nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(labels.astype(np.float32))))
    auc = float(roc_auc_score(labels, logits)) if len(np.unique(labels)) == 2 else math.nan
    return loss, auc


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


def _train_epoch(run: EpochTrainer, loader, labels: torch.Tensor, loss_function: nn.Module,
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


def _random_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """torch's global random state (CPU, and the GPU's under CUDA)."""
    return (torch.get_rng_state(),
            torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


class EpochTrainer:
    """One CNN being fine-tuned on ``fit_ids``, an epoch per :meth:`run_epoch`.

    Built as every dlrn training starts: ``torch.manual_seed(settings.seed)``, then the
    model (so equal seeds give equal initial weights), a generator seeded alike for
    shuffling and augmentation, the optimiser and a warm-up + cosine schedule over
    ``settings.epochs``. Call inside :func:`dlrn.deep.runtime.torch_runtime`.
    ``best_*``, ``stale`` and ``best_state`` are the caller's bookkeeping of the best
    epoch (:meth:`keep`); ``history`` its per-epoch rows. :meth:`state` /
    :meth:`restore` are what ``resume.pt`` holds.
    """

    def __init__(self, backbone: str, cache: CropCache, cases: pd.DataFrame,
                 fit_ids: Sequence[str], settings: TrainSettings, *,
                 weights: str | Path | None, device: torch.device, memory: PeakMemory):
        self.backbone, self.cache, self.settings = backbone, cache, settings
        self.device, self.memory = device, memory
        self.normalization = settings.normalization or default_normalization(weights)
        labels = torch.zeros(len(cache.case_ids), dtype=torch.float32)
        labels[cache.positions(list(cases.index.astype(str)))] = torch.tensor(
            cases["label"].to_numpy(), dtype=torch.float32)
        torch.manual_seed(settings.seed)
        model = build_model(backbone, weights=weights).to(device)
        if settings.channels_last and device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.model, self._random = model, _random_state(device)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.loader = _fit_batches(cache, cache.positions(list(fit_ids)), settings,
                                   self.generator, device)
        steps = len(self.loader)
        self.optimizer = _optimizer(model, settings,
                                    initial_learning_rate(settings.learning_rate, weights), device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(
            settings.epochs * steps, round(settings.warmup_epochs * steps)))
        fit_labels = cases.loc[list(fit_ids), "label"].to_numpy()
        pos_weight = (torch.tensor((fit_labels == 0).sum() / max((fit_labels == 1).sum(), 1))
                      if settings.class_weighted else None)
        self.loss_function = nn.BCEWithLogitsLoss(pos_weight=pos_weight).to(device)
        self.dtype = autocast_dtype(settings, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.labels = labels.to(device) if device.type == "cuda" else labels
        self.epoch, self.best_epoch, self.best_auc, self.stale = 0, 0, -1.0, 0
        self.best_loss = math.inf
        self.best_state: dict[str, torch.Tensor] = {}
        self.history: list[dict] = []

    @contextlib.contextmanager
    def _own_random_state(self) -> Iterator[None]:
        """torch's global random state as this trainer left it, saved again afterwards."""
        torch.set_rng_state(self._random[0])
        if self._random[1] is not None:
            torch.cuda.set_rng_state(self._random[1], self.device)
        try:
            yield
        finally:
            self._random = _random_state(self.device)

    def _oom(self) -> DlrnError:
        return cuda_oom_error(self.backbone, self.settings.batch_size, self.device)

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch: its mean loss, images seen and seconds."""
        started = time.perf_counter()
        try:
            with self._own_random_state():
                loss, images = _train_epoch(self, self.loader, self.labels, self.loss_function,
                                            self.settings, self.normalization, self.device,
                                            self.scaler)
        except torch.cuda.OutOfMemoryError as error:
            raise self._oom() from error
        self.epoch += 1
        return {"train_loss": loss, "train_images": images,
                "train_seconds": time.perf_counter() - started}

    def logits(self, positions: Sequence[int]) -> np.ndarray:
        """The model's logits for cache rows ``positions`` (eval mode, the run's precision)."""
        try:
            with self._own_random_state(), autocast(self.device, self.dtype):
                # batched_outputs' autocast takes this type
                return batched_outputs(
                    self.model, lambda images: self.model(images).squeeze(1), self.cache,
                    positions, backbone=self.backbone, normalization=self.normalization,
                    device=self.device, batch_size=self.settings.batch_size,
                    amp=self.dtype is not None)
        except torch.cuda.OutOfMemoryError as error:
            raise self._oom() from error

    def record(self, step: dict[str, float], started: float, **scores: float) -> None:
        """One ``history`` row for the epoch just run: its training figures, the held-out
        ``scores`` (named by the caller), learning rate, time since ``started``, memory."""
        self.history.append({"epoch": self.epoch, "train_loss": step["train_loss"], **scores,
                             "lr": self.scheduler.get_last_lr()[0],
                             "train_seconds": step["train_seconds"],
                             "train_images": step["train_images"],
                             "seconds": time.perf_counter() - started,
                             "peak_memory_mib": self.memory.peak_mib()})

    def keep(self, auc: float, loss: float) -> None:
        """The epoch just run is the best so far: its score and a CPU copy of the weights."""
        self.best_auc, self.best_loss, self.best_epoch, self.stale = auc, loss, self.epoch, 0
        self.best_state = {k: v.detach().cpu().clone() for k, v in
                           self.model.state_dict().items()}

    def load_best(self) -> nn.Module:
        """The model at its kept epoch, in eval mode."""
        self.model.load_state_dict(self.best_state)
        return self.model.eval()

    def state(self) -> dict:
        """Everything needed to continue this training (``resume.pt``)."""
        return {"settings": comparable(self.settings), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "generator": self.generator.get_state(),
                "random": self._random[0], "epoch": self.epoch, "best_epoch": self.best_epoch,
                "best_auc": self.best_auc, "best_loss": self.best_loss, "stale": self.stale,
                "best_state": self.best_state, "history": self.history}

    def restore(self, state: dict, source: Path) -> None:
        """Continue from :meth:`state` (read from ``source``); other settings are refused."""
        if state["settings"] != comparable(self.settings):
            raise DlrnError(f"cannot resume from {source}: it was trained with other settings "
                            f"({state['settings']})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        if "random" in state:  # resume files written before the trainer kept it lack it
            self._random = (state["random"], self._random[1])
        self.epoch, self.best_epoch = state["epoch"], state["best_epoch"]
        self.best_auc, self.stale = state["best_auc"], state["stale"]
        self.best_loss = state["best_loss"]
        self.best_state, self.history = state["best_state"], state["history"]
