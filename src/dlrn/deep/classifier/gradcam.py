"""Grad-CAM heatmaps (pytorch-grad-cam) over the lesion crop, for chosen cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlrn.deep.data import CropCache, Normalization, normalize
from dlrn.deep.networks import gradcam_target_layer
from dlrn.errors import DlrnError

CATEGORIES = ("TP", "TN", "FP", "FN")


def gradcam_maps(
    model: torch.nn.Module,
    backbone: str,
    cache: CropCache,
    case_ids: Sequence[str],
    *,
    normalization: Normalization,
    positive: Sequence[bool] | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Grad-CAM maps in 0..1, shape (cases, crop height, crop width).

    By default the target is the positive-class logit; ``positive[i] = False``
    explains the negative class (the negated logit) for case i instead.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    device = torch.device(device)
    model = model.to(device).eval()
    images = normalize(torch.from_numpy(np.asarray(cache.images(case_ids))).to(device),
                       normalization)
    targets = [BinaryClassifierOutputTarget(int(p)) for p in
               (positive if positive is not None else [True] * len(case_ids))]
    with GradCAM(model=model, target_layers=[gradcam_target_layer(model, backbone)]) as cam:
        return cam(input_tensor=images, targets=targets)


def confident_cases(predictions: pd.DataFrame, score: str, threshold: float,
                    *, set_name: str = "test") -> dict[str, str | None]:
    """The most confident TP, TN, FP and FN of one set (None where a category is empty)."""
    rows = predictions[predictions["set"] == set_name]
    predicted, label = rows[score] >= threshold, rows["label"] == 1
    groups = {"TP": predicted & label, "TN": ~predicted & ~label,
              "FP": predicted & ~label, "FN": ~predicted & label}
    chosen: dict[str, str | None] = {}
    for category, members in groups.items():
        scores = rows.loc[members, score]
        if scores.empty:
            chosen[category] = None
        else:
            chosen[category] = str(scores.idxmax() if category in ("TP", "FP")
                                   else scores.idxmin())
    return chosen


def overlay_image(crop: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """RGB uint8 (H x W x 3): the grey crop under the heatmap in the jet colour map (hot = red)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    grey = crop.astype(np.float32) / 255
    return show_cam_on_image(np.repeat(grey[..., None], 3, axis=2), heatmap, use_rgb=True,
                             image_weight=0.55)


def save_overlay(crop: np.ndarray, heatmap: np.ndarray, path: Path, title: str) -> Path:
    """The crop and its Grad-CAM overlay side by side, as a 300 dpi PNG."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(6, 3.3))
    axes[0].imshow(crop, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("ROI crop", fontsize=9)
    axes[1].imshow(overlay_image(crop, heatmap))
    axes[1].set_title("Grad-CAM", fontsize=9)
    for axis in axes:
        axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=300)
    plt.close(figure)
    return path


def known_label(value: object) -> int | None:
    """0 or 1; None for a case without a known outcome (NaN, -1 or any other value)."""
    try:
        label = float(value)
    except (TypeError, ValueError):
        return None
    return int(label) if label in (0.0, 1.0) else None


def overlay_title(case_id: str, category: str, label: int | None, probability: float) -> str:
    """The figure title; a case without a known outcome says so instead of showing a code."""
    outcome = "label unknown" if label is None else f"label {label}"
    return f"{case_id} ({category}): {outcome}, predicted p = {probability:.3f}"


def gradcam_overlays(
    model: torch.nn.Module,
    backbone: str,
    cache: CropCache,
    predictions: pd.DataFrame,
    out_dir: str | Path,
    *,
    normalization: Normalization,
    score: str | None = None,
    threshold: float = 0.5,
    cases: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Overlay PNGs for ``cases`` (default: most confident test TP, TN, FP, FN).

    Returns one row per requested category or case: case_id, category, label (empty
    where the outcome is unknown, e.g. -1 or NaN from ``dlrn predict``), probability,
    path (empty with a note where a category has no case).
    """
    score = score or f"DL-{backbone}"
    if score not in predictions.columns:
        raise DlrnError(f"predictions have no column {score!r} for Grad-CAM")
    if cases is None:
        chosen = list(confident_cases(predictions, score, threshold).items())
    else:
        unknown = [c for c in cases if c not in predictions.index]
        if unknown:
            raise DlrnError(f"Grad-CAM cases not in the predictions: {', '.join(unknown[:5])}")
        chosen = [("selected", str(c)) for c in cases]
    rows = [{"category": name, "case_id": None, "label": None, "probability": None,
             "path": None, "note": "no test case in this category"}
            for name, case in chosen if case is None]
    found = [(name, case) for name, case in chosen if case is not None]
    if found:
        ids = [case for _, case in found]
        probabilities = predictions.loc[ids, score].to_numpy()
        maps = gradcam_maps(model, backbone, cache, ids, normalization=normalization,
                            positive=probabilities >= threshold, device=device)
        for (name, case_id), heatmap, crop, probability in zip(
                found, maps, cache.images(ids)[:, 0], probabilities, strict=True):
            label = known_label(predictions.loc[case_id, "label"])
            path = save_overlay(crop, heatmap, Path(out_dir) / f"gradcam_{name}_{case_id}.png",
                                overlay_title(case_id, name, label, probability))
            rows.append({"category": name, "case_id": case_id, "label": label,
                         "probability": float(probability), "path": str(path), "note": ""})
    return pd.DataFrame(rows, columns=["category", "case_id", "label", "probability", "path",
                                       "note"])
