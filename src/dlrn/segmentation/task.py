"""The U-Net as a task of the generic training engine (:mod:`dlrn.deep.engine`).

The engine owns the epoch loop, optimiser, schedule, precision, checkpoints and resume;
this task says what is trained (the U-Net of :func:`.model.build_network`), on what
(:class:`.data.ShuffledBatches` of the fit cases), with which loss (MONAI's
``DiceCELoss`` on logits) and how an epoch is scored (validation Dice and loss).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from dlrn.segmentation.data import SegmentationArrays, ShuffledBatches
from dlrn.segmentation.model import build_network, largest_component
from dlrn.segmentation.settings import SegmentationSettings


def dice_ce_loss() -> nn.Module:
    """Dice + binary cross-entropy on logits (MONAI ``DiceCELoss(sigmoid=True)``)."""
    from monai.losses import DiceCELoss

    return DiceCELoss(sigmoid=True)


def epoch_score(scores: dict[str, float]) -> tuple[float, ...]:
    """How epochs are ranked: validation Dice, then the lower validation loss."""
    return (scores["val_dice"], -scores["val_loss"])


class SegmentationTask:
    """Train the U-Net on ``fit`` arrays; score each epoch on ``validation`` arrays.

    The validation Dice is measured at the net's size, on the thresholded prediction
    with its largest connected region kept (what :meth:`SegmentationModel.predict`
    does); an empty prediction scores 0.
    """

    name = "segmentation U-Net"

    def __init__(self, fit: SegmentationArrays, validation: SegmentationArrays,
                 settings: SegmentationSettings):
        self.fit, self.validation, self.settings = fit, validation, settings
        self.loss_function = dice_ce_loss()

    def build_model(self) -> nn.Module:
        return build_network(self.settings)

    def batches(self, generator: torch.Generator,
                device: torch.device) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return ShuffledBatches(self.fit, self.settings.batch_size, flip=self.settings.flip,
                               scale_shift=self.settings.scale_shift, generator=generator,
                               device=device)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_function(outputs.float(), targets)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``val_loss`` (Dice + cross-entropy) and ``val_dice`` of the validation cases."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        losses, dices = [], []
        with torch.no_grad():
            for start in range(0, len(self.validation.case_ids), self.settings.batch_size):
                images = self.validation.images[start:start + self.settings.batch_size]
                masks = self.validation.masks[start:start + self.settings.batch_size]
                logits = model(images.to(device)).float().cpu()
                losses.append(float(self.loss_function(logits, masks)) * len(images))
                dices += _dices(torch.sigmoid(logits)[:, 0].numpy() > self.settings.threshold,
                                masks[:, 0].numpy() > 0.5)
        model.train(was_training)
        n = max(len(self.validation.case_ids), 1)
        return {"val_loss": sum(losses) / n, "val_dice": float(np.mean(dices))}


def _dices(predicted: np.ndarray, expert: np.ndarray) -> list[float]:
    """Dice of each (prediction, expert) pair, the prediction's largest region kept."""
    from dlrn.segmentation.metrics import overlap_scores

    return [overlap_scores(largest_component(p), e)[0] for p, e in zip(predicted, expert,
                                                                       strict=True)]
