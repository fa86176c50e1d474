"""Where the ROI of an answer came from, and how much the answer moves with its outline.

Origins (the API's ``roi.source``; :data:`ORIGIN_WORDS` says them on the page):

- ``mask``: a mask file was uploaded (whatever else the client says);
- ``polygon``: the API's polygon;
- ``automatic``: the bundle's segmentation model's ROI as it proposed it: the image sent
  alone (the server outlined it), or a drawing equal, pixel for pixel, to the proposal the
  server computes again for this image (a client's word is not enough);
- ``automatic_corrected``: the page's drawing, started from the proposal and changed;
- ``mask_corrected``: the page's drawing, started from a mask file and changed;
- ``drawn``: the page's drawing, drawn by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlrn.applicability import COLUMNS as APPLICABILITY_COLUMNS
from dlrn.outline import RULE, OutlineVariants
from dlrn.serve.uploads import UploadError

ORIGIN_WORDS = {
    "mask": "from the mask file",
    "polygon": "drawn as a polygon",
    "automatic": "outlined automatically (U-Net), used as proposed",
    "automatic_corrected": "outlined automatically (U-Net), then corrected by hand",
    "mask_corrected": "from the mask file, then corrected by hand",
    "drawn": "drawn by hand",
}
#: what the page may say about its drawing (``roi_source``)
DRAWING_CLAIMS = ("automatic", "automatic_corrected", "mask_corrected", "drawn")


def drawing_origin(claim: str | None, roi: np.ndarray,
                   proposal: Callable[[], np.ndarray | None]) -> str:
    """The origin of the page's drawing: its ``claim`` (absent: "drawn"), except that the
    segmentation model's ROI "as proposed" is only what equals the server's own proposal
    for this image (computed again by ``proposal``; another ROI is a corrected one), and a
    drawing equal to that proposal is the proposal whatever the claim."""
    claim = claim or "drawn"
    if claim not in DRAWING_CLAIMS:
        raise UploadError(f"roi_source {claim!r} is not one of {', '.join(DRAWING_CLAIMS)}")
    if claim not in ("automatic", "automatic_corrected"):
        return claim
    proposed = proposal()
    if proposed is None:  # no segmentation model: nothing was proposed
        return "drawn"
    return "automatic" if np.array_equal(proposed, roi) else "automatic_corrected"


def variant_case_id(name: str) -> str:
    """The case id of the ROI's ``eroded`` or ``dilated`` variant in the predicted table."""
    return f"outline-{name}"


@dataclass(frozen=True)
class RoiSensitivity:
    """The case predicted again with its ROI eroded and dilated (:mod:`dlrn.outline`):
    each variant's ROI size and every probability of its row (``eroded`` None, with
    ``reason``, where the eroded ROI could not be used)."""

    margin_pixels: int
    dilated_pixels: int
    dilated: dict[str, float]
    eroded_pixels: int | None = None
    eroded: dict[str, float] | None = None
    reason: str = ""
    rule: str = RULE

    def range_of(self, column: str, value: float) -> tuple[float, float] | None:
        """Lowest and highest of ``column`` over the three outlines (None: not predicted)."""
        found = [value, *(v.get(column) for v in (self.eroded, self.dilated) if v is not None)]
        numbers = [float(v) for v in found if v is not None and np.isfinite(v)]
        return (min(numbers), max(numbers)) if len(numbers) > 1 else None


def roi_sensitivity(shapes: OutlineVariants, rows: pd.DataFrame,
                    variants: Mapping[str, pd.DataFrame], reason: str) -> RoiSensitivity | None:
    """The variants' rows of ``predict_cases`` (``rows``) as a :class:`RoiSensitivity`;
    None when the dilated ROI, the one always drawn, was refused too."""
    if "dilated" not in variants:
        return None

    def probabilities(name: str) -> dict[str, float] | None:
        if name not in variants:
            return None
        row = rows.loc[variant_case_id(name)].drop(["label", "note", *APPLICABILITY_COLUMNS],
                                                   errors="ignore")
        return {str(k): float(v) for k, v in row.items() if pd.notna(v)}

    return RoiSensitivity(
        margin_pixels=shapes.margin, dilated_pixels=int(shapes.dilated.sum()),
        dilated=probabilities("dilated") or {},
        eroded_pixels=None if "eroded" not in variants else int(shapes.eroded.sum()),
        eroded=probabilities("eroded"), reason=reason)
