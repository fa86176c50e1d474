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
        predictions={str(k): float(v) for k, v in row.drop("note", errors="ignore").items()},
        inputs=answer.inputs, notes=answer.notes, gradcam_png_base64=answer.gradcam_base64)


def request_schema(predictor: Predictor) -> dict[str, Any]:
    """multipart/form-data body of ``POST /api/predict``, generated from the bundle."""
    properties: dict[str, Any] = {
        "image": {"type": "string", "format": "binary",
                  "description": "the image (PNG, JPEG, BMP, TIFF, DICOM, NIfTI, NRRD, .mha)"},
        "mask": {"type": "string", "format": "binary",
                 "description": "the ROI mask, same size as the image"},
    }
    for field in predictor.fields:
        if field.is_tokens:
            properties[field.name] = {"type": "array", "items": {
                "type": "string", "enum": list(field.levels)}, "description": "multilabel: "
                f"repeat the field per token, or join tokens with {field.separator!r}"}
        elif field.is_choice:
            properties[field.name] = {"type": "string", "enum": list(field.levels)}
        else:
            properties[field.name] = {"type": "number", "description": field.unit or "number"}
            if field.minimum is not None:
                properties[field.name].update(minimum=field.minimum, maximum=field.maximum)
    required = ["image", "mask", *(f.name for f in predictor.fields if not f.optional)]
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}
