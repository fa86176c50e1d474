"""The JSON API's documented shapes (OpenAPI): request form, answer, error."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dlrn.applicability import COLUMNS as APPLICABILITY_COLUMNS
from dlrn.serve.answer import Answer
from dlrn.serve.predictor import Predictor
from dlrn.serve.roi import MAX_POLYGON_POINTS, Preview
from dlrn.serve.sensitivity import DRAWING_CLAIMS, ORIGIN_WORDS


class ModelProbability(BaseModel):
    name: str = Field(description="model name as in the study's tables, e.g. DLR-LR")
    kind: str = Field(description="radiomics (HCR), CNN or fused (DLR)")
    probability: float
    best: bool = Field(description="the study's best model of its kind")


class RoiUsed(BaseModel):
    """The ROI the prediction used, as ``dlrn predict`` read it."""

    source: str = Field(description="where the ROI came from: 'mask' (a mask file), 'polygon' "
                                    "(rasterised by the server), 'automatic' (the bundle's "
                                    "segmentation model's ROI as proposed: the image sent "
                                    "alone, or a drawing equal to the proposal the server "
                                    "computes again), 'automatic_corrected', "
                                    "'mask_corrected' or 'drawn' (the page's drawing, as it "
                                    "says it started)")
    source_words: str = Field(description="the source as the page says it")
    pixels: int = Field(description="number of ROI pixels")
    mask_png_base64: str = Field(description="the ROI at the image's pixel grid (PNG, 255 "
                                             "inside, 0 outside)")
    overlay_png_base64: str = Field(description="the image as the reader reads it, with the "
                                                "ROI outlined just outside its margin (PNG)")


class RoiSensitivity(BaseModel):
    """The case predicted again with its ROI eroded and dilated: how much the answer moves
    with the outline."""

    rule: str = Field(description="how far the outline moves, and why")
    margin_pixels: int = Field(description="pixels the outline moves inward and outward")
    eroded_pixels: int | None = Field(description="ROI pixels after erosion (null: not used)")
    dilated_pixels: int
    eroded: dict[str, float] | None = Field(description="every probability column of dlrn "
                                                        "predict's row, eroded ROI")
    dilated: dict[str, float] = Field(description="the same, dilated ROI")
    probability_low: float | None = Field(description="the nomogram's lowest probability over "
                                                      "the ROI, eroded and dilated")
    probability_high: float | None
    reason: str = Field(description="why the eroded ROI was not predicted, if it was not")


class Applicability(BaseModel):
    """Is the image like the images the model was built on (dlrn predict's check)?"""

    applicable: bool | None = Field(description="false: the image is unlike the study's "
                                                "(the probability is shown only with the "
                                                "warning); null: not assessed")
    warning: str = Field(description="the plain warning to show with the probability "
                                     "(empty when applicable)")
    reasons: list[str] = Field(description="why, in plain clinical words")
    lesion_evidence: float | None = Field(description="the U-Net's lesion evidence (log-odds; "
                                                      "null without a U-Net)")
    feature_distance: float | None = Field(description="Mahalanobis distance of the image "
                                                       "features to the training cases'")
    features_outside_share: float | None = Field(description="share of the image features "
                                                             "outside the training range")
    thresholds: dict[str, float] = Field(description="the limits of those numbers: a case "
                                         "is outside above the distance or share, below the "
                                         "lesion evidence")


class Prediction(BaseModel):
    """The same numbers as a row of ``dlrn predict``'s CSV, with the cut-off's verdict."""

    nomogram: str | None = Field(description="the study's nomogram: DLRN (with deep "
                                             "learning) or RadN (radiomics nomogram)")
    dlrn_probability: float | None = Field(description="the nomogram's probability (DLRN or "
                                                       "RadN; the name is kept for clients)")
    points: dict[str, float] = Field(description="nomogram points of each predictor")
    total_points: float | None
    linear_predictor: float | None
    cutoff: float | None = Field(description="the study's cut-off of the nomogram (Youden, "
                                             "out-of-fold training predictions); null when "
                                             "the bundle has none")
    above_cutoff: bool | None = Field(description="probability >= cut-off (classified "
                                                  "positive)")
    models: list[ModelProbability] = Field(description="each image model's probability")
    predictions: dict[str, float] = Field(description="every column of dlrn predict's row")
    inputs: dict[str, str | float | None] = Field(description="the clinical values used "
                                                              "(null: imputed)")
    notes: list[str] = Field(description="how the study's rules read this case (imputed "
                                         "value, unseen level), as dlrn predict's note")
    gradcam_png_base64: str | None = Field(description="Grad-CAM overlay of the CNN (PNG), "
                                                       "when asked with gradcam=true")
    roi: RoiUsed = Field(description="the ROI that was used")
    applicability: Applicability = Field(description="the applicability check of this case")
    cautions: list[str] = Field(description="values outside the nomogram's scales: the "
                                            "probability extrapolates")
    roi_sensitivity: RoiSensitivity | None = Field(description="the answer with the ROI "
                                                               "eroded and dilated")


class ImagePreview(BaseModel):
    """An uploaded image as the cohort reader reads it, to draw the ROI on."""

    width: int = Field(description="image width in pixels (the drawing's x range: 0 to width)")
    height: int = Field(description="image height in pixels (y range: 0 to height)")
    image_png_base64: str = Field(description="the image's grey pixels as 8-bit PNG (display "
                                              "only: stretched to 0-255 when outside it)")
    roi_png_base64: str | None = Field(description="the ROI to start from (PNG, 255 inside): "
                                                   "the mask file's, or the one proposed "
                                                   "automatically; null: none")
    roi_source: str | None = Field(description="'mask file' or 'automatic'; null: no ROI")
    message: str = Field(description="what to do next, for the page")


class Problem(BaseModel):
    detail: str = Field(description="what is wrong and what to do")


def prediction_of(answer: Answer) -> Prediction:
    row = answer.row
    return Prediction(
        nomogram=answer.nomogram, dlrn_probability=answer.probability, points=answer.points,
        total_points=answer.total_points,
        linear_predictor=float(row["linear_predictor"]) if "linear_predictor" in row else None,
        cutoff=answer.cutoff, above_cutoff=answer.above_cutoff,
        models=[ModelProbability(**model) for model in answer.models],
        predictions={str(k): float(v) for k, v in row.drop(["note", *APPLICABILITY_COLUMNS],
                                                           errors="ignore").items()},
        inputs=answer.inputs, notes=answer.notes, gradcam_png_base64=answer.gradcam_base64,
        roi=RoiUsed(source=answer.roi.source, source_words=ORIGIN_WORDS[answer.roi.source],
                    pixels=answer.roi.pixels, mask_png_base64=answer.roi.mask_base64,
                    overlay_png_base64=answer.roi.overlay_base64),
        applicability=Applicability(**answer.applicability),
        cautions=answer.cautions, roi_sensitivity=_sensitivity_of(answer))


def _sensitivity_of(answer: Answer) -> RoiSensitivity | None:
    found = answer.sensitivity
    if found is None:
        return None
    span = answer.probability_range
    return RoiSensitivity(rule=found.rule, margin_pixels=found.margin_pixels,
                          eroded_pixels=found.eroded_pixels, dilated_pixels=found.dilated_pixels,
                          eroded=found.eroded, dilated=found.dilated, reason=found.reason,
                          probability_low=span[0] if span else None,
                          probability_high=span[1] if span else None)


def preview_of(preview: Preview) -> ImagePreview:
    return ImagePreview(**vars(preview))


_IMAGE = {"type": "string", "format": "binary",
          "description": "the image (PNG, JPEG, BMP, TIFF, DICOM, NIfTI, NRRD, .mha)"}
_MASK = {"type": "string", "format": "binary",
         "description": "the ROI mask, same size as the image (any format the image may have)"}


def request_schema(predictor: Predictor) -> dict[str, Any]:
    """multipart/form-data body of ``POST /api/predict``, generated from the bundle."""
    properties: dict[str, Any] = {
        "image": _IMAGE,
        "mask": {**_MASK, "description": f"{_MASK['description']}; give a mask or a polygon "
                 "(neither: the bundle's segmentation model outlines the lesion, 422 when "
                 "the bundle has none)"},
        "polygon": {"type": "string", "example": "[[10, 12], [40, 12], [25, 30]]",
                    "description": "the ROI's outline as JSON [[x, y], ...] in image pixels: "
                    "origin at the top-left corner of the top-left pixel, x right, y down, the "
                    "image spanning [0, width] x [0, height]; 3 to "
                    f"{MAX_POLYGON_POINTS:,} points on the image. A pixel is in the ROI when "
                    "its centre is inside (even-odd rule; a centre on the outline is inside "
                    "on left and top edges)"},
        "roi": {**_MASK, "description": "the page's drawing of the ROI (as a mask); say "
                "where it started with roi_source"},
        "roi_source": {"type": "string", "enum": list(DRAWING_CLAIMS), "description":
                       "where the drawing (roi) started: 'automatic' is kept only when the "
                       "drawing equals the server's own proposal for this image, else it "
                       "reads 'automatic_corrected'; a mask file is 'mask' whatever is "
                       "said here"},
    }
    for field in predictor.fields:
        if field.is_tokens:
            properties[field.name] = {"type": "array", "items": {
                "type": "string", "enum": list(field.levels)}, "description": "multilabel: "
                f"repeat the field per token, or join tokens with {field.separator!r}"}
        elif field.is_choice:
            properties[field.name] = {"type": "string", "enum": list(field.levels)}
        else:
            properties[field.name] = {"type": "number", "description": field.label}
            if field.minimum is not None and field.out_of_range == "refuse":
                properties[field.name].update(minimum=field.minimum, maximum=field.maximum)
            elif field.minimum is not None:  # accepted, with a caution in the answer
                properties[field.name]["description"] += (
                    f"; the nomogram's scale covers {field.scale_text}: a value outside it is "
                    "predicted with a caution (cautions) that the probability extrapolates")
    required = ["image", *(f.name for f in predictor.fields if not f.optional)]
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}


def preview_schema() -> dict[str, Any]:
    """multipart/form-data body of ``POST /api/preview``."""
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {"image": _IMAGE, "mask": {
            **_MASK, "description": f"{_MASK['description']} (optional: its ROI is returned "
                                    "to start from)"}},
        "required": ["image"]}}}}
