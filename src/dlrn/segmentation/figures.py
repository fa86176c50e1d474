"""The report's segmentation figure: an image with the expert's and the model's contours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

EXPERT_COLOUR = "#2ca02c"  # green
PREDICTED_COLOUR = "#d62728"  # red


def overlay_figure(image: sitk.Image, expert: np.ndarray | None, predicted: np.ndarray | None,
                   path: Path, title: str) -> Path:
    """A PNG of ``image`` in grey with the expert contour (green) and the predicted contour
    (red), a legend naming both (``none`` for a missing or empty mask) and ``title``."""
    from matplotlib.figure import Figure  # no pyplot: the library never picks a backend
    from matplotlib.lines import Line2D

    pixels = sitk.GetArrayFromImage(image).astype(np.float32)
    rows, cols = pixels.shape
    figure = Figure(figsize=(5.0, 5.0 * rows / max(cols, 1) + 0.4), dpi=120)
    axes = figure.add_subplot()
    low, high = np.percentile(pixels, [0.5, 99.5])
    axes.imshow(pixels, cmap="gray", vmin=low, vmax=max(high, low + 1e-6),
                interpolation="nearest")
    handles = []
    for mask, colour, name in ((expert, EXPERT_COLOUR, "expert"),
                               (predicted, PREDICTED_COLOUR, "U-Net")):
        present = mask is not None and np.asarray(mask).any()
        if present:
            axes.contour(np.asarray(mask, dtype=float), levels=[0.5], colors=[colour],
                         linewidths=1.6)
        handles.append(Line2D([], [], color=colour, linewidth=1.6,
                              label=name if present else f"{name}: none"))
    axes.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.8)
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
