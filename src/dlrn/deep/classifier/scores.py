"""A classifier CNN's one-logit head over cached crops: logits and P(positive).

Training (held-out AUC), the deep stage (probabilities) and prediction of new cases
all score cases through :func:`cnn_logits`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dlrn.deep.classifier.calibration import PlattScaling
from dlrn.deep.data import CropCache, Normalization
from dlrn.deep.inference import batched_outputs


def cnn_logits(model: torch.nn.Module, backbone: str, cache: CropCache,
               positions: Sequence[int], *, normalization: Normalization,
               device: torch.device, batch_size: int = 32, amp: bool = False) -> np.ndarray:
    """The CNN's logits for cache rows ``positions``, in order (float32)."""
    return batched_outputs(model, lambda images: model(images).squeeze(1), cache, positions,
                           backbone=backbone, normalization=normalization, device=device,
                           batch_size=batch_size, amp=amp)


def cnn_probabilities(model: torch.nn.Module, backbone: str, cache: CropCache,
                      case_ids: Sequence[str], *, normalization: Normalization,
                      device: torch.device, batch_size: int = 32, amp: bool = False,
                      calibration: PlattScaling | None = None) -> np.ndarray:
    """P(positive) of the CNN's one-logit head for the given cases, in order.

    ``calibration``: the CNN's Platt map (:mod:`dlrn.deep.classifier.calibration`,
    fitted on its validation cases); None: the raw sigmoid.
    """
    logits = cnn_logits(model, backbone, cache, cache.positions(list(case_ids)),
                        normalization=normalization, device=device, batch_size=batch_size,
                        amp=amp)
    if calibration is not None:
        return calibration.probabilities(logits)
    return torch.sigmoid(torch.from_numpy(logits)).numpy()
