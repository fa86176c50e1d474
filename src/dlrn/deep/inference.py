"""Batched forward passes of a trained network, with a clear message on GPU OOM.

The layer every net's predictions go through: the classifier CNNs' held-out logits,
probabilities and deep features (:func:`batched_outputs` over a crop cache) and any
other net's outputs over batches of input tensors (:func:`batched_forward`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from dlrn.deep.data import CropCache, Normalization, crop_loader, normalize
from dlrn.deep.runtime import cuda_oom_error


def batched_forward(
    model: torch.nn.Module,
    function: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[torch.Tensor],
    *,
    name: str,
    device: torch.device,
    batch_size: int,
    amp: bool = False,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """``function(prepare(batch on device))`` for every batch, in order, as float32 numpy.

    Eval mode, no gradients, autocast where ``amp``; channels-last on CUDA. ``name`` and
    ``batch_size`` name the net and the batch size in the message of a GPU out of memory.
    """
    model.eval()
    outputs = []
    channels_last = device.type == "cuda"
    try:
        with torch.inference_mode(), torch.autocast(device.type, enabled=amp):
            for batch in batches:
                inputs = batch.to(device)
                if prepare is not None:
                    inputs = prepare(inputs)
                if channels_last:
                    inputs = inputs.contiguous(memory_format=torch.channels_last)
                outputs.append(function(inputs).float().cpu().numpy())
    except torch.cuda.OutOfMemoryError as error:
        raise cuda_oom_error(name, batch_size, device) from error
    return np.concatenate(outputs) if outputs else np.empty((0,))


def _crops(loader: Iterable[tuple[torch.Tensor, object]]) -> Iterator[torch.Tensor]:
    for batch, _ in loader:
        yield batch


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
    return batched_forward(model, function,
                           _crops(crop_loader(cache.crops, positions, batch_size)),
                           name=backbone, device=device, batch_size=batch_size, amp=amp,
                           prepare=lambda images: normalize(images, normalization))
