"""The JSON API's documented shapes (OpenAPI): request form, answer, error."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dlrn.serve.predictor import Answer, Predictor


class ModelProbability(BaseModel):
    name: str = Field(description="model name as in the study's tables, e.g. DLR-LR")
    kind: str = Field(description="radiomics (HCR), CNN or fused (DLR)")
    probability: float
    best: bool = Field(description="the study's best model of its kind")


class Prediction(BaseModel):
    """The same numbers as a row of ``dlrn predict``'s CSV, with the cut-off's verdict."""

    dlrn_probability: float | None = Field(description="the DLRN nomogram's probability")
    points: dict[str, float] = Field(description="nomogram points of each predictor")
    total_points: float | None
    linear_predictor: float | None
    cutoff: float | None = Field(description="the study's DLRN cut-off (Youden, training "
                                             "data); null when the bundle has none")
    above_cutoff: bool | None = Field(description="probability >= cut-off (classified "
                                                  "positive)")
    models: list[ModelProbability] = Field(description="each image model's probability")
    predictions: dict[str, float] = Field(description="every column of dlrn predict's row")
    inputs: dict[str, str | float] = Field(description="the clinical values used")
    gradcam_png_base64: str | None = Field(description="Grad-CAM overlay of the CNN (PNG), "
                                                       "when asked with gradcam=true")


class Problem(BaseModel):
    detail: str = Field(description="what is wrong and what to do")


def prediction_of(answer: Answer) -> Prediction:
    row = answer.row
    return Prediction(
        dlrn_probability=answer.probability, points=answer.points,
        total_points=answer.total_points,
        linear_predictor=float(row["linear_predictor"]) if "linear_predictor" in row else None,
        cutoff=answer.cutoff, above_cutoff=answer.above_cutoff,
        models=[ModelProbability(**model) for model in answer.models],
        predictions={str(k): float(v) for k, v in row.items()},
        inputs=answer.inputs, gradcam_png_base64=answer.gradcam_base64)


def request_schema(predictor: Predictor) -> dict[str, Any]:
    """multipart/form-data body of ``POST /api/predict``, generated from the bundle."""
    properties: dict[str, Any] = {
        "image": {"type": "string", "format": "binary",
                  "description": "the image (PNG, JPEG, BMP, TIFF, DICOM, NIfTI, NRRD, .mha)"},
        "mask": {"type": "string", "format": "binary",
                 "description": "the ROI mask, same size as the image"},
    }
    for field in predictor.fields:
        if field.is_choice:
            properties[field.name] = {"type": "string", "enum": list(field.levels)}
        else:
            properties[field.name] = {"type": "number", "description": field.unit or "number"}
            if field.minimum is not None:
                properties[field.name].update(minimum=field.minimum, maximum=field.maximum)
    required = ["image", "mask", *(field.name for field in predictor.fields)]
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}
