"""Batched inference of a trained CNN over a crop cache, with a clear message on GPU OOM.

Training (validation AUC), the deep stage (probabilities, deep features) and
prediction of new cases all run their forward passes through :func:`batched_outputs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from dlrn.deep.calibration import PlattScaling
from dlrn.deep.data import CropCache, Normalization, crop_loader, normalize
from dlrn.errors import DlrnError


def cuda_oom_error(backbone: str, batch_size: int, device: torch.device) -> DlrnError:
    """The message for a GPU that ran out of memory: what to change."""
    return DlrnError(
        f"{device} ran out of memory with backbone {backbone} at batch size {batch_size}; "
        f"try --batch-size {max(1, batch_size // 2)} (or a smaller --image-size)"
    )


def batched_outputs(
    model: torch.nn.Module,
    function: Callable[[torch.Tensor], torch.Tensor],
    cache: CropCache,
    positions: Sequence[int],
    *,
    backbone: str,
    normalization: Normalization,
    device: torch.device,
    batch_size: int = 32,
    amp: bool = False,
) -> np.ndarray:
    """``function(normalised batch)`` for the given cache rows, in order, as float32 numpy."""
    model.eval()
    outputs = []
    channels_last = device.type == "cuda"
    try:
        with torch.inference_mode(), torch.autocast(device.type, enabled=amp):
            for batch, _ in crop_loader(cache.crops, positions, batch_size):
                images = normalize(batch.to(device), normalization)
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                outputs.append(function(images).float().cpu().numpy())
    except torch.cuda.OutOfMemoryError as error:
        raise cuda_oom_error(backbone, batch_size, device) from error
    return np.concatenate(outputs) if outputs else np.empty((0,))


def cnn_probabilities(model: torch.nn.Module, backbone: str, cache: CropCache,
                      case_ids: Sequence[str], *, normalization: Normalization,
                      device: torch.device, batch_size: int = 32, amp: bool = False,
                      calibration: PlattScaling | None = None) -> np.ndarray:
    """P(positive) of the CNN's one-logit head for the given cases, in order.

    ``calibration``: the CNN's Platt map (:mod:`dlrn.deep.calibration`, fitted on its
    validation cases); None: the raw sigmoid.
    """
    logits = batched_outputs(model, lambda images: model(images).squeeze(1), cache,
                             cache.positions(list(case_ids)), backbone=backbone,
                             normalization=normalization, device=device,
                             batch_size=batch_size, amp=amp)
    if calibration is not None:
        return calibration.probabilities(logits)
    return torch.sigmoid(torch.from_numpy(logits)).numpy()
