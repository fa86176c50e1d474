"""The U-Net's own evidence that an image holds a lesion, and a no-lesion rule calibrated
on images that hold none.

A U-Net trained only on images with a lesion outlines *something* in any image: a blob
in pure noise, a strip along the edge of a blank frame. What it produced on the study's
images tells such outlines apart: :func:`lesion_evidence` measures, on the net's own
grid, the image's contrast, the peak lesion probability, the mean probability inside the
outlined region (its confidence), the region's share of the image, the number of
separate regions and the region's solidity (area over its convex hull's). The rule
(:class:`LesionEvidenceRule`) is a logistic regression of these numbers, fitted on the
U-Net's training and validation images (lesion) against images that hold none
(:func:`no_lesion_images`: background crops of the same training images, noise with
their grey levels, gradients and blank frames); its cut-off is the ``1 - quantile``
quantile of the lesion images' out-of-fold scores, so that about ``1 - quantile`` of
images like the study's are flagged. An image without contrast is flagged whatever the
score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
from sklearn.base import BaseEstimator

from dlrn.errors import DlrnError
from dlrn.segmentation.data import CONTRAST_FLOOR, contrast, image_tensor, resized_pixels

#: the numbers the rule reads, in its order
EVIDENCE = ("peak", "confidence", "log_area", "parts", "solidity")
FORMAT = "dlrn-lesion-evidence-1"
_MIN_AREA = 1e-4  # log of a region's share of the image: an empty region's floor


def _solidity(region: np.ndarray) -> float:
    """Area over the convex hull's area of a boolean region (1: convex, 0: empty)."""
    from scipy.spatial import ConvexHull, QhullError

    rows, cols = np.nonzero(region)
    if len(rows) < 3:
        return float(len(rows) > 0)
    corners = np.concatenate([np.stack([rows + dr, cols + dc], axis=1)
                              for dr in (0, 1) for dc in (0, 1)]).astype(float)
    try:
        return float(min(1.0, len(rows) / ConvexHull(corners).volume))
    except QhullError:  # the pixels on one line
        return 1.0


def evidence_of(probabilities: np.ndarray, threshold: float, image_contrast: float
                ) -> dict[str, float]:
    """The evidence numbers of one probability map (the net's grid)."""
    from scipy import ndimage

    from dlrn.segmentation.model import largest_component

    above = probabilities > threshold
    _, parts = ndimage.label(above, structure=np.ones((3, 3), dtype=bool))
    region = largest_component(above)
    area = float(region.mean())
    return {"contrast": image_contrast, "peak": float(probabilities.max()),
            "confidence": float(probabilities[region].mean()) if region.any() else 0.0,
            "log_area": float(np.log(max(area, _MIN_AREA))), "parts": float(parts),
            "solidity": _solidity(region)}


def lesion_evidence(model: Any, images: Sequence[sitk.Image] | Sequence[np.ndarray],
                    index: Sequence[str] | None = None) -> pd.DataFrame:
    """One row of evidence per image (SimpleITK images as the cohort reads them, or 2D
    arrays), from the U-Net ``model`` (:class:`dlrn.segmentation.SegmentationModel`)."""
    size = model.settings.image_size
    rows = []
    model.network.eval()
    for image in images:
        picture = image if isinstance(image, sitk.Image) else sitk.GetImageFromArray(
            np.asarray(image, dtype=np.float32))
        with torch.no_grad():
            inputs = image_tensor(picture, size)[None].to(model.device)
            probabilities = torch.sigmoid(model.network(inputs)[0, 0].float()).cpu().numpy()
        rows.append(evidence_of(probabilities, model.settings.threshold,
                                contrast(resized_pixels(picture, size))))
    return pd.DataFrame(rows, index=None if index is None else pd.Index(index, name="case_id"))


def background_crop(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The largest half or quarter of an image that holds no lesion pixel (None: none)."""
    rows, cols = pixels.shape
    halves = [(slice(0, rows // 2), slice(None)), (slice(rows // 2, None), slice(None)),
              (slice(None), slice(0, cols // 2)), (slice(None), slice(cols // 2, None))]
    quarters = [(r, c) for r in (slice(0, rows // 2), slice(rows // 2, None))
                for c in (slice(0, cols // 2), slice(cols // 2, None))]
    for part in halves + quarters:
        if not mask[part].any() and min(pixels[part].shape) >= 8:
            return pixels[part]
    return None


def no_lesion_images(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], *,
                     seed: int) -> tuple[list[np.ndarray], list[str]]:
    """Images that hold no lesion, and their kinds: a background crop of each training
    image where one lies clear of its lesion, and for about every second image one
    synthetic frame with its size and grey levels (speckle-like noise, Gaussian noise, a
    gradient with noise, a blank frame)."""
    rng = np.random.default_rng(seed)
    out, kinds = [], []
    for k, (pixels, mask) in enumerate(zip(images, masks, strict=True)):
        pixels = np.asarray(pixels, dtype=np.float32)
        crop = background_crop(pixels, np.asarray(mask) != 0)
        if crop is not None:
            out.append(crop)
            kinds.append("background crop")
        if k % 2:
            continue
        mean, spread = float(pixels.mean()), float(pixels.std()) or 1.0
        shape = pixels.shape
        kind = ("speckle", "noise", "gradient", "blank")[(k // 2) % 4]
        if kind == "speckle":
            frame = rng.rayleigh(max(mean, 1.0) / 1.25, shape)
        elif kind == "noise":
            frame = rng.normal(mean, spread, shape)
        elif kind == "gradient":
            ramp = np.linspace(mean - 2 * spread, mean + 2 * spread, shape[1])
            frame = np.broadcast_to(ramp, shape) + rng.normal(0, spread / 4, shape)
        else:
            frame = np.full(shape, mean)
        out.append(np.clip(frame, pixels.min(), pixels.max()).astype(np.float32))
        kinds.append(kind)
    return out, kinds


class LesionEvidenceRule(BaseEstimator):
    """Lesion or not, from :func:`lesion_evidence`'s numbers.

    ``fit(lesion, no_lesion)``: the evidence of images with a lesion and of images without
    one. Learned: ``mean_``, ``scale_``, ``coef_``, ``intercept_`` (a logistic regression
    of the z-scored evidence), ``threshold_`` (the ``1 - quantile`` quantile of the lesion
    images' out-of-fold scores), ``reference_`` (the lesion images' 1st and 99th
    percentiles of each number, for the note), ``oof_flagged_`` (share of each kind flagged
    out of fold: lesion images, no-lesion images).
    """

    def __init__(self, quantile: float = 0.99, cv_folds: int = 5, random_state: int = 0
                 ) -> None:
        self.quantile = quantile
        self.cv_folds = cv_folds
        self.random_state = random_state

    def fit(self, lesion: pd.DataFrame, no_lesion: pd.DataFrame) -> LesionEvidenceRule:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if len(lesion) < self.cv_folds or len(no_lesion) < self.cv_folds:
            raise DlrnError(f"lesion evidence: {len(lesion)} lesion and {len(no_lesion)} "
                            f"no-lesion image(s) are too few for {self.cv_folds} folds")
        X = pd.concat([lesion, no_lesion])[list(EVIDENCE)].to_numpy(dtype=float)
        y = np.r_[np.ones(len(lesion)), np.zeros(len(no_lesion))]
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
        folds = StratifiedKFold(self.cv_folds, shuffle=True, random_state=self.random_state)
        oof = cross_val_predict(model, X, y, cv=folds, method="decision_function")
        self.threshold_ = float(np.quantile(oof[y == 1], 1 - self.quantile))
        self.oof_flagged_ = {"lesion images": float((oof[y == 1] < self.threshold_).mean()),
                             "no-lesion images": float((oof[y == 0] < self.threshold_).mean())}
        model.fit(X, y)
        scaler, regression = model[0], model[-1]
        self.mean_, self.scale_ = scaler.mean_, scaler.scale_
        self.coef_, self.intercept_ = regression.coef_[0], float(regression.intercept_[0])
        self.reference_ = {name: [float(lesion[name].quantile(0.01)),
                                  float(lesion[name].quantile(0.99))] for name in EVIDENCE}
        return self

    def decision_function(self, evidence: pd.DataFrame) -> np.ndarray:
        """The rule's score (log-odds of a lesion) of each row."""
        X = evidence[list(EVIDENCE)].to_numpy(dtype=float)
        return (X - self.mean_) / self.scale_ @ self.coef_ + self.intercept_

    def assess(self, evidence: pd.DataFrame) -> pd.DataFrame:
        """``lesion_evidence`` (the score), ``lesion_found`` and ``reason`` per row."""
        score = self.decision_function(evidence)
        flat = evidence["contrast"].to_numpy() <= CONTRAST_FLOOR
        found = (score >= self.threshold_) & ~flat
        reasons = [self._reason(row, is_flat) if not ok else ""
                   for (_, row), is_flat, ok in zip(evidence.iterrows(), flat, found,
                                                    strict=True)]
        return pd.DataFrame({"lesion_evidence": score, "lesion_found": found,
                             "reason": reasons}, index=evidence.index)

    def _reason(self, row: pd.Series, flat: bool) -> str:
        if flat:
            return "the image has no contrast (one grey level), so it cannot show a lesion"
        if row["log_area"] <= np.log(_MIN_AREA):
            return "the segmentation model found no lesion"
        details = []
        low_confidence, _ = self.reference_["confidence"]
        if row["confidence"] < low_confidence:
            details.append(f"it is less sure of its outline ({row['confidence']:.2f}) than of "
                           f"99% of the study's lesions (at least {low_confidence:.2f})")
        small, large = np.exp(self.reference_["log_area"])
        area = float(np.exp(row["log_area"]))
        if area < small or area > large:
            details.append(f"the outlined region covers {area:.1%} of the image, the study's "
                           f"lesions {small:.1%} to {large:.1%}")
        _, most_parts = self.reference_["parts"]
        if row["parts"] > most_parts:
            details.append(f"its outline falls apart into {int(row['parts'])} pieces")
        return ("the segmentation model sees no clear lesion"
                + (f": {'; '.join(details)}" if details else
                   " (its outline is unlike those of the study's lesions)"))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.get_params(), "evidence": list(EVIDENCE),
                "contrast_floor": CONTRAST_FLOOR, "mean": list(map(float, self.mean_)),
                "scale": list(map(float, self.scale_)), "coef": list(map(float, self.coef_)),
                "intercept": self.intercept_, "threshold": self.threshold_,
                "reference": self.reference_, "oof_flagged": self.oof_flagged_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LesionEvidenceRule:
        if data.get("format") != FORMAT or list(data.get("evidence", [])) != list(EVIDENCE):
            raise DlrnError(f"not a dlrn lesion-evidence rule of this version (format "
                            f"{data.get('format')!r})")
        rule = cls(**{name: data[name] for name in cls().get_params()})
        rule.mean_, rule.scale_ = np.asarray(data["mean"]), np.asarray(data["scale"])
        rule.coef_, rule.intercept_ = np.asarray(data["coef"]), float(data["intercept"])
        rule.threshold_ = float(data["threshold"])
        rule.reference_ = {k: list(v) for k, v in data["reference"].items()}
        rule.oof_flagged_ = dict(data["oof_flagged"])
        return rule
