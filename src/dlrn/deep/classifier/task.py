"""The classifier CNN as a :class:`dlrn.deep.engine.TrainingTask`: a torchvision backbone
with a one-logit head, fine-tuned on cached lesion crops with binary cross-entropy.

What the engine does not know: the crops and their augmentation and normalisation, the
labels, the class weights, and the held-out loss and AUC after every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlrn.deep.classifier.scores import cnn_logits
from dlrn.deep.classifier.settings import TrainSettings
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
from dlrn.deep.engine import EpochEngine
from dlrn.deep.memory import PeakMemory
from dlrn.deep.networks import build_model
from dlrn.deep.runtime import autocast_dtype


def initial_learning_rate(learning_rate: float | None, weights: object) -> float:
    """The given rate, else 1e-4 to fine-tune pretrained weights and 1e-3 from random init."""
    return learning_rate or (1e-3 if weights in (None, "none") else 1e-4)


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
        return normalize(augment_batch(batch, settings.augmentation, generator), normalization)
    return normalize(augment(batch, settings.augmentation, generator).to(device),
                     normalization)


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


class _Epoch:
    """One epoch of (augmented normalised images, labels) from the task's loader."""

    def __init__(self, task: ClassifierTask, generator: torch.Generator,
                 device: torch.device):
        self.task, self.generator, self.device = task, generator, device

    def __len__(self) -> int:
        return len(self.task.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        task = self.task
        for batch, positions in task.loader:
            yield (_training_images(batch, task.settings, task.normalization, self.generator,
                                    self.device),
                   task.labels[positions].to(self.device))


class ClassifierTask:
    """``backbone`` fine-tuned on the cases ``fit_ids`` of ``cache``, scored after every
    epoch on ``val_ids`` (``val_loss``, ``val_auc``; NaN without them).

    ``cases``: the cohort table (``label``) indexed by string case id. The loader is
    made at the first :meth:`batches` and reused every epoch (under CUDA it holds the
    crops on the GPU, see :class:`dlrn.deep.data.DeviceCrops`).
    """

    def __init__(self, backbone: str, cache: CropCache, cases: pd.DataFrame,
                 fit_ids: Sequence[str], settings: TrainSettings, *,
                 weights: str | Path | None, device: torch.device,
                 val_ids: Sequence[str] = ()):
        self.name = self.backbone = backbone
        self.cache, self.settings, self.weights, self.device = cache, settings, weights, device
        self.normalization = settings.normalization or default_normalization(weights)
        labels = torch.zeros(len(cache.case_ids), dtype=torch.float32)
        labels[cache.positions(list(cases.index.astype(str)))] = torch.tensor(
            cases["label"].to_numpy(), dtype=torch.float32)
        self.labels = labels.to(device) if device.type == "cuda" else labels
        self.fit_positions = cache.positions(list(fit_ids))
        fit_labels = cases.loc[list(fit_ids), "label"].to_numpy()
        pos_weight = (torch.tensor((fit_labels == 0).sum() / max((fit_labels == 1).sum(), 1))
                      if settings.class_weighted else None)
        self.loss_function = nn.BCEWithLogitsLoss(pos_weight=pos_weight).to(device)
        self.val_positions = cache.positions(list(val_ids))
        self.val_labels = cases.loc[list(val_ids), "label"].to_numpy()
        self.amp = autocast_dtype(settings, device) is not None
        self.loader = None

    def build_model(self) -> nn.Module:
        return build_model(self.backbone, weights=self.weights)

    def batches(self, generator: torch.Generator, device: torch.device) -> _Epoch:
        if self.loader is None or self.loader.generator is not generator:
            self.loader = _fit_batches(self.cache, self.fit_positions, self.settings,
                                       generator, device)
        return _Epoch(self, generator, device)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_function(outputs.squeeze(1).float(), targets)

    def logits(self, model: nn.Module, positions: Sequence[int]) -> np.ndarray:
        """The model's logits for cache rows ``positions`` (eval mode; the autocast type
        is the caller's, :meth:`dlrn.deep.engine.EpochEngine.apply`)."""
        return cnn_logits(model, self.backbone, self.cache, positions,
                          normalization=self.normalization, device=self.device,
                          batch_size=self.settings.batch_size, amp=self.amp)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if not len(self.val_positions):
            return {"val_loss": math.nan, "val_auc": math.nan}
        loss, auc = held_out_loss_auc(self.logits(model, self.val_positions), self.val_labels)
        return {"val_loss": loss, "val_auc": auc}


def classifier_engine(backbone: str, cache: CropCache, cases: pd.DataFrame,
                      fit_ids: Sequence[str], settings: TrainSettings, *,
                      weights: str | Path | None, device: torch.device, memory: PeakMemory,
                      val_ids: Sequence[str] = ()) -> EpochEngine:
    """An :class:`dlrn.deep.engine.EpochEngine` over a :class:`ClassifierTask` (its
    ``task``), at the learning rate of :func:`initial_learning_rate`. Call inside
    :func:`dlrn.deep.runtime.torch_runtime`."""
    task = ClassifierTask(backbone, cache, cases, fit_ids, settings, weights=weights,
                          device=device, val_ids=val_ids)
    return EpochEngine(task, settings, device=device, memory=memory,
                       learning_rate=initial_learning_rate(settings.learning_rate, weights))
