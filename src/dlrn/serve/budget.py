"""What one request may cost the server, checked before the costly step starts.

* Pixels: an upload's header may declare at most ``--max-megapixels`` (checked before
  decoding, :mod:`dlrn.serve.uploads`); a polygon's edges may span at most as many
  image rows in all (checked before rasterising, :func:`dlrn.serve.roi.polygon_mask`).
* Grey levels: PyRadiomics' texture matrices grow with the square of the number of grey
  levels its discretisation makes of the ROI (GLCM: levels x levels per angle). The
  study's settings fix that discretisation (``binWidth`` or ``binCount``, from the
  bundle's parameters); an image whose ROI intensities it would cut into more than
  ``MAX_GREY_LEVELS`` levels (a 16-bit or float image under an 8-bit study's bin width
  of 5: 13,108 levels, 9 GB and minutes) is refused with the reason before extraction;
  256 levels are an 8-bit image at bin width 1, any study's images at most.
* Outline: PyRadiomics' 2D shape features find the ROI's largest diameter by comparing
  every pair of outline points, a time in the square of the outline's length. A ragged
  or scattered ROI of a few megapixels (a zigzag polygon, a speckled mask) has millions
  of outline edges: hours under the lock. ROIs whose outline has more than
  ``MAX_OUTLINE_EDGES`` pixel edges (the outline of an 8000 x 8000 square) are refused.
* Time and memory: the work on images runs one request at a time (the predictor's lock),
  and :class:`dlrn.serve.http.Admission` bounds the requests holding uploads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from dlrn.serve.uploads import UploadError

# an 8-bit image at bin width 1; PyRadiomics' time grows about as levels**3 (64x64 ROI,
# load 15 on 2 cores: 128 levels 1.3 s, 256 levels 6.5 s, 512 levels 120 s)
MAX_GREY_LEVELS = 256
MAX_OUTLINE_EDGES = 32_000  # 5e8 point pairs for the shape's diameter: about a second


def grey_levels(values: np.ndarray, setting: Mapping[str, Any]) -> int:
    """How many grey levels PyRadiomics' discretisation makes of the ROI's ``values``
    under ``setting`` (its fixed bin count, else its bin width, default 25)."""
    if setting.get("binCount"):
        return int(setting["binCount"])
    width = float(setting.get("binWidth", 25))
    low, high = float(values.min()), float(values.max())
    return math.floor(high / width) - math.floor(low / width) + 1


def outline_edges(roi: np.ndarray) -> int:
    """Pixel edges between the ROI and the rest (the image's border counted as outside)."""
    padded = np.pad(roi, 1)
    return int((padded[1:, :] != padded[:-1, :]).sum() + (padded[:, 1:] != padded[:, :-1]).sum())


def check_extraction(image: np.ndarray, roi: np.ndarray,
                     params: Mapping[str, Any] | None) -> None:
    """Refuse, before PyRadiomics runs, an image whose ROI the study's discretisation cuts
    into too many levels, whose ROI holds pixels that are not numbers, or whose ROI's
    outline makes the 2D shape features quadratic beyond the budget."""
    values = image[roi]
    if not values.size or params is None:
        return  # the reader says "empty ROI"; without radiomics nothing is discretised
    classes = params.get("featureClass")
    if classes is None or "shape2D" in classes:
        edges = outline_edges(roi)
        if edges > MAX_OUTLINE_EDGES:
            raise UploadError(
                f"The ROI's outline is {edges:,} pixel edges long (a ragged or scattered "
                "ROI); the study's shape features compare every pair of outline points, "
                f"which this server does for outlines of up to {MAX_OUTLINE_EDGES:,} edges: "
                "outline the lesion as one region with a smooth border.")
    if not np.isfinite(values).all():
        raise UploadError("The image has pixels in the ROI that are not numbers (NaN or "
                          "infinite): export it again as the ultrasound system saves it.")
    setting = params.get("setting") or {}
    if setting.get("normalize"):
        return  # z-scored (times normalizeScale) first: any image's scale becomes the study's
    levels = grey_levels(values, setting)
    if levels > MAX_GREY_LEVELS:
        raise UploadError(
            f"The image's intensities in the ROI span {float(values.min()):g} to "
            f"{float(values.max()):g}; the study's radiomics (bin width "
            f"{float(setting.get('binWidth', 25)):g}) would cut them into {levels:,} grey "
            f"levels, more than this server computes ({MAX_GREY_LEVELS:,}). The image is "
            "not on the scale of the study's images (16-bit or floating point?): upload it "
            "as the study's images were saved (8-bit grey, for example).")
