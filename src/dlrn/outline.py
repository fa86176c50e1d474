"""How much a prediction depends on where the lesion's outline was drawn.

Two readers outlining the same lesion disagree by a band along its margin; a model fed
radiomics and crops of the ROI moves with that band. The rule measured here: the ROI
eroded and dilated by a margin of 5 % of its equivalent diameter (the diameter of the
disc of the same area), at least 1 pixel, and the case predicted with each. For a disc,
moving the outline by 5 % of the diameter gives a Dice of 0.89 to 0.91 with the
original, the agreement usually reported between two readers of breast and parotid
ultrasound lesions, so the range is what a second reader's outline could plausibly
change. A rule relative to the lesion's size (not a fixed number of pixels) holds
whatever the image's resolution: 2 pixels are a sliver of a 300-pixel lesion and a third
of a 12-pixel one.

The erosion and dilation are Euclidean (a disc-shaped structuring element, through the
distance transform), so the margin is the same in every direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MARGIN_FRACTION = 0.05
RULE = ("the ROI eroded and dilated by 5 % of its equivalent diameter (at least 1 pixel), "
        "about the band by which two readers' outlines differ")


@dataclass(frozen=True)
class OutlineVariants:
    """The ROI moved inward and outward by ``margin`` pixels (``eroded`` None: nothing left)."""

    margin: int
    eroded: np.ndarray | None
    dilated: np.ndarray


def outline_margin(roi: np.ndarray) -> int:
    """Pixels the outline moves by: 5 % of the ROI's equivalent diameter, at least 1."""
    diameter = 2 * math.sqrt(float(np.count_nonzero(roi)) / math.pi)
    return max(1, round(MARGIN_FRACTION * diameter))


def outline_variants(roi: np.ndarray) -> OutlineVariants:
    """The ROI eroded and dilated by :func:`outline_margin` pixels (Euclidean distance: a
    pixel is removed when within ``margin`` of the outside, added when within ``margin``
    of the ROI); the image's border counts as outside for the erosion."""
    from scipy.ndimage import distance_transform_edt

    roi = np.asarray(roi, dtype=bool)
    margin = outline_margin(roi)
    inside_depth = distance_transform_edt(np.pad(roi, 1))[1:-1, 1:-1]
    eroded = inside_depth > margin
    dilated = distance_transform_edt(~roi) <= margin
    return OutlineVariants(margin=margin, eroded=eroded if eroded.any() else None,
                           dilated=dilated)
