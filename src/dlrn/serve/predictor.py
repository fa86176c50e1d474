"""The one bridge between the web app and ``dlrn predict``.

Every prediction goes through :func:`dlrn.study.predict.read_new_cases` and
:func:`dlrn.study.predict.predict_cases`, the functions behind ``dlrn predict``: the
uploaded files and the form's values become a one-row case table in a private
temporary folder, so validation and numbers are those of ``dlrn predict`` to the
digit. The form itself (fields, levels, ranges) is generated from the bundle
(:mod:`dlrn.serve.form`).
"""

from __future__ import annotations

import functools
import math
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from dlrn.case_files import CaseCheck
from dlrn.errors import DlrnError
from dlrn.imaging import read_image, read_mask
from dlrn.outline import OutlineVariants, outline_variants
from dlrn.serve.answer import Answer
from dlrn.serve.budget import check_extraction
from dlrn.serve.display import PageWords
from dlrn.serve.form import form_fields
from dlrn.serve.gradcam import gradcam_picture
from dlrn.serve.messages import (
    AUTOMATIC,
    DRAW_PROMPT,
    MASK,
    MASK_FILE_SHOWN,
    NO_SEGMENTATION_MODEL,
    POLYGON,
    PROPOSAL_SHOWN,
    clinician_messages,
    empty_roi_message,
    mask_size_message,
    problems_message,
)
from dlrn.serve.roi import (
    Preview,
    Roi,
    base64_text,
    display_grey,
    mask_file_png,
    overlay_png,
    parse_polygon,
    png_bytes,
    polygon_mask,
)
from dlrn.serve.sensitivity import (
    drawing_origin,
    roi_sensitivity,
    variant_case_id,
)
from dlrn.serve.uploads import UploadError, UploadLimits, save_upload
from dlrn.stacking import DLRN, NOMOGRAMS
from dlrn.study.applicability_check import limits as applicability_limits
from dlrn.study.bundle import Bundle, BundleError
from dlrn.study.predict import predict_cases, read_new_cases

_CASE_ID = "patient"
_IMAGE_STAGES = {"hcr_models": "radiomics (HCR)", "deep": "CNN", "dlr_models": "fused (DLR)"}


class _LoadedBundle(Bundle):
    """A verified bundle whose files are read once: what was checked is what is used."""

    @functools.cache  # noqa: B019 - one bundle per server, kept for its lifetime
    def json(self, name: str) -> Any:
        return super().json(name)

    @functools.cache  # noqa: B019
    def estimator(self, name: str) -> Any:
        return super().estimator(name)

    @functools.cache  # noqa: B019
    def arrays(self, name: str) -> dict:
        return super().arrays(name)


# One request's work on images at a time in the process: a loaded CNN is shared (Grad-CAM
# hooks it), and reading, rasterising and extracting are what takes memory
# (dlrn.serve.budget). Re-entrant: a locked method calls others that lock.
_PREDICTION_LOCK = threading.RLock()


def _one_at_a_time(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _PREDICTION_LOCK:
            return method(*args, **kwargs)
    return locked


def _file_signature(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


class Predictor:
    """A verified bundle, its form, and predictions one at a time (a lock serializes them)."""

    def __init__(self, bundle_dir: str | Path, *, cutoff: float | None = None,
                 limits: UploadLimits | None = None) -> None:
        opened = Bundle.open(bundle_dir)  # checksums and version: a tampered bundle stops here
        self.bundle = _LoadedBundle(opened.folder, opened.manifest)
        self.settings = self.bundle.json("settings")
        self.nomogram = (self.bundle.json("dlrn/nomogram")
                         if self.bundle.has("dlrn/nomogram", ".json") else None)
        self.nomogram_name = (self.settings.get("nomogram", DLRN.name)
                              if self.nomogram is not None else None)
        self.cutoff = _bundle_cutoff(self.settings, self.nomogram_name, cutoff)
        self.limits = limits or UploadLimits()
        self.fields = form_fields(self.settings, self._encoder(), self.nomogram)
        self.words = PageWords.of(self.settings)
        self.has_cnn = bool(self.settings.get("deep"))
        # how dlrn predict reads this study's images (bundles before these settings: defaults)
        self.frame = self.settings.get("frame", 0)
        self.mask_label = self.settings.get("mask_label")
        self.applicability_limits = applicability_limits(self.bundle)
        self._warm_up()

    def _warm_up(self) -> None:
        """Load every estimator and the CNN now, once, from the files just verified."""
        for stage, names in self.settings["models"].items():
            for name in names:
                self.bundle.estimator(f"{stage}/{name}")
        for name in ("radiomics/params", "deep/pca"):
            if self.bundle.has(name, ".json"):
                self.bundle.json(name)
        if self.bundle.has("deep/pca", ".safetensors"):
            self.bundle.arrays("deep/pca")
        if self.has_cnn:
            self.bundle.cnn(self.settings["deep"]["backbone"])
            self._cnn_signature = _file_signature(self._cnn_path)

    def _encoder(self) -> Mapping[str, Any] | None:
        return (self.bundle.json("clinical/encoder")
                if self.bundle.has("clinical/encoder", ".json") else None)

    @property
    def score_model(self) -> str | None:
        """The image model whose probability is the nomogram's score (DLR or HCR model)."""
        if self.nomogram_name is None:
            return None
        return self.settings["best"].get(NOMOGRAMS[self.nomogram_name].score_stage)

    def axis_value(self, answer: Answer, axis: str) -> str:
        """What the patient has on one nomogram axis, in words, for the points table."""
        kind = NOMOGRAMS[self.nomogram_name]
        if axis == kind.score:
            return f"{float(answer.row[self.score_model]):.4f} ({self.score_model})"
        column, _, level = axis.partition("[")
        value = answer.inputs.get(column)
        if not level:
            return "unknown (imputed)" if value is None else str(value)
        field = next((f for f in self.fields if f.name == column), None)
        if level == "missing]":
            return "yes" if value is None else "no"
        if field is not None and field.is_tokens and value is not None:
            return "yes" if level[:-1] in str(value).split(field.separator) else "no"
        return ""

    @property
    def _cnn_path(self) -> Path:
        return (self.bundle.folder / "deep" / "cnn.safetensors").resolve()

    def _check_unchanged(self) -> None:
        """The CNN file is the one verified at start (the other files are held in memory)."""
        if self.has_cnn and (not self._cnn_path.is_file()
                             or _file_signature(self._cnn_path) != self._cnn_signature):
            raise BundleError(f"the bundle's CNN weights ({self._cnn_path.name}) changed since "
                              "the server verified them; restart dlrn serve to verify the "
                              "bundle again")

    def parse_values(self, form: Mapping[str, Any]) -> dict[str, str | float]:
        """Every predictor's value from the form, checked (missing, unknown level, range)."""
        return {f.name: f.parse(form.get(f.name)) for f in self.fields}

    @_one_at_a_time
    def predict(self, form: Mapping[str, Any], image: bytes, mask: bytes | None = None, *,
                polygon: str | None = None, drawing: bytes | None = None,
                drawing_source: str | None = None, gradcam: bool = False) -> Answer:
        """One patient through ``read_new_cases`` and ``predict_cases``, as ``dlrn predict``.

        The ROI is one of ``mask`` (a mask file), ``polygon`` (JSON ``[[x, y], ...]``,
        rasterised by :func:`dlrn.serve.roi.polygon_mask`), ``drawing`` (the page's ROI at
        the image's pixel grid, with ``drawing_source`` saying where it came from:
        :func:`dlrn.serve.sensitivity.drawing_origin` checks the claim) or, with none, the
        segmentation model's (:meth:`proposed_roi`). The case is predicted again with the
        ROI eroded and dilated (:mod:`dlrn.outline`): the answer's sensitivity to the outline.
        """
        values = self.parse_values(form)
        given = [name for name, roi in (("a mask file", mask), ("a polygon", polygon),
                                        ("a drawing", drawing)) if roi is not None]
        if len(given) > 1:
            raise UploadError(f"give the ROI once: {' and '.join(given)} were sent, not both")
        source = MASK if mask is not None or drawing is not None else \
            POLYGON if polygon is not None else AUTOMATIC
        with tempfile.TemporaryDirectory(prefix="dlrn-serve-") as folder:
            root = Path(folder)
            with clinician_messages(root, self.settings["columns"]["image"], source):
                image_path = save_upload(image, root, "image", self.limits)
                uploaded = mask if mask is not None else drawing
                mask_path = (save_upload(uploaded, root, "mask", self.limits)
                             if uploaded is not None
                             else self._mask_file(root, image_path, polygon, source))
                picture, roi = self._image_and_roi(image_path, mask_path, source)
                self._check_budget(picture, roi)
                with _PREDICTION_LOCK:
                    self._check_unchanged()
                    cases = read_new_cases(self._case_table(root, image_path, mask_path,
                                                            values), self.settings,
                                           progress=False)
                    origin = (drawing_origin(drawing_source, roi,
                                             lambda: self.proposed_roi(picture))
                              if drawing is not None else
                              {MASK: "mask", POLYGON: "polygon"}.get(source, "automatic"))
                    shapes = outline_variants(roi)
                    variants, reason = self._variant_cases(root, image_path, shapes, values)
                    rows = predict_cases(self.bundle, pd.concat([cases, *variants.values()]),
                                         progress=False, jobs=1)  # 3 cases: no pool
                    row = rows.loc[_CASE_ID]
                    png = (gradcam_picture(self.bundle, cases, row) if gradcam and self.has_cnn
                           else None)
        return Answer(row=row, inputs=values, cutoff=self.cutoff, nomogram=self.nomogram_name,
                      models=self._models(row), roi=self._roi_used(picture, roi, origin),
                      points={name: float(row[f"points_{name}"]) for name in self.point_names
                              if f"points_{name}" in row},
                      gradcam_png=png, limits=self.applicability_limits,
                      sensitivity=roi_sensitivity(shapes, rows, variants, reason),
                      cautions=[caution for f in self.fields
                                if (caution := f.range_caution(values[f.name]))])

    def _variant_cases(self, root: Path, image_path: Path, shapes: OutlineVariants,
                       values: dict[str, str | float]) -> tuple[dict[str, pd.DataFrame], str]:
        """The case with its ROI eroded and dilated (:func:`dlrn.outline.outline_variants`),
        each read as ``dlrn predict`` reads a case; one the reader refuses (an eroded ROI
        below the study's smallest) is left out, with the reason."""
        from dlrn.cohort import CohortValidationError

        variants, reasons = {}, []
        for name, shape in (("eroded", shapes.eroded), ("dilated", shapes.dilated)):
            if shape is None:
                reasons.append(f"the ROI eroded by {shapes.margin} pixel(s) is empty")
                continue
            path = root / f"mask-{name}.png"
            path.write_bytes(mask_file_png(shape, self.mask_label))
            table = self._case_table(root, image_path, path, values,
                                     case_id=variant_case_id(name))
            try:
                variants[name] = read_new_cases(table, self.settings, progress=False)
            except CohortValidationError as error:
                problems = [("mask", problem) for problem in error.problems["problem"]]
                reasons.append(f"the ROI {name} by {shapes.margin} pixel(s) cannot be used: "
                               f"{problems_message(problems, MASK)}")
        return variants, " ".join(reasons)

    def proposed_roi(self, image: sitk.Image) -> np.ndarray | None:
        """The lesion's ROI proposed by the bundle's segmentation model: a boolean (rows,
        columns) array at the pixel grid of ``image`` (as the cohort reader reads it), or
        None when the bundle has no segmentation model.

        The one place where the calculator asks for an automatic ROI (the page's proposal
        and the API's image-only requests). Where the U-Net finds no lesion the ROI is
        empty: the page then says so and offers the drawing tools.
        """
        from dlrn.segmentation import NoLesionFound

        model = self.bundle.segmentation()
        if model is None:
            return None
        try:
            return model.predict(image)
        except NoLesionFound:
            width, height = image.GetSize()
            return np.zeros((height, width), dtype=bool)

    @_one_at_a_time
    def preview(self, image: bytes, mask: bytes | None = None) -> Preview:
        """The image as the cohort reader reads it, to draw on, and the ROI to start from:
        the mask file's, else the segmentation model's proposal."""
        with tempfile.TemporaryDirectory(prefix="dlrn-serve-") as folder:
            root = Path(folder)
            picture = self._read(save_upload(image, root, "image", self.limits), "image", MASK)
            if mask is not None:
                roi, source = self._mask_file_roi(root, picture, mask), "mask file"
                message = empty_roi_message(MASK) if not roi.any() else MASK_FILE_SHOWN
            else:
                roi, source = self._automatic_roi(picture), AUTOMATIC
                message = (DRAW_PROMPT if roi is None else
                           empty_roi_message(AUTOMATIC) if not roi.any() else PROPOSAL_SHOWN)
        width, height = picture.GetSize()
        roi_png = (None if roi is None or not roi.any()
                   else base64_text(png_bytes(roi.astype(np.uint8) * 255)))
        return Preview(width=width, height=height, image_png_base64=base64_text(png_bytes(
                           display_grey(sitk.GetArrayFromImage(picture)))),
                       roi_png_base64=roi_png, roi_source=source if roi_png else None,
                       message=message)

    def _mask_file_roi(self, root: Path, picture: sitk.Image, mask: bytes) -> np.ndarray:
        found = self._read(save_upload(mask, root, "mask", self.limits), "mask", MASK)
        if found.GetSize() != picture.GetSize():
            raise UploadError(mask_size_message(_size(found), _size(picture)))
        return sitk.GetArrayFromImage(found) != 0

    def _automatic_roi(self, picture: sitk.Image) -> np.ndarray | None:
        with _PREDICTION_LOCK:  # a segmentation model is shared between requests
            return self.proposed_roi(picture)

    def _mask_file(self, root: Path, image_path: Path, polygon: str | None,
                   source: str) -> Path:
        """The polygon's (or the segmentation model's) ROI as a mask file at the image's grid."""
        picture = self._read(image_path, "image", source)
        width, height = picture.GetSize()
        if polygon is not None:
            roi = polygon_mask(parse_polygon(polygon, width, height), height, width,
                               max_crossings=self.limits.max_pixels)
        else:
            roi = self._automatic_roi(picture)
            if roi is None:
                raise UploadError(NO_SEGMENTATION_MODEL)
            # an empty one goes on: the reader refuses it, said as "no lesion found"
        path = root / "mask.png"
        path.write_bytes(mask_file_png(roi, self.mask_label))
        return path

    def _read(self, path: Path, what: str, source: str) -> sitk.Image:
        """The uploaded image (``what`` "image") or mask as the cohort reader reads it (the
        study's frame and ROI label), refused in the clinician's words when unreadable."""
        reader = (functools.partial(read_image, frame=self.frame) if what == "image" else
                  functools.partial(read_mask, label=self.mask_label, frame=self.frame))
        check = CaseCheck(0, _CASE_ID, None, 0)
        picture = check.read(str(path), what, reader)
        if picture is None:
            raise UploadError(problems_message([(what, p.problem) for p in check.problems],
                                               source))
        return picture

    def _check_budget(self, picture: sitk.Image, roi: np.ndarray) -> None:
        """Refuse, before extraction, what the study's radiomics would take too long or too
        much memory for (:mod:`dlrn.serve.budget`): grey levels, outline length."""
        params = (self.bundle.json("radiomics/params")
                  if self.bundle.has("radiomics/params", ".json") else None)
        image = sitk.GetArrayFromImage(picture)
        if roi.shape == image.shape:  # else the reader refuses the pair, in its words
            check_extraction(image, roi, params)

    def _image_and_roi(self, image_path: Path, mask_path: Path, source: str
                       ) -> tuple[sitk.Image, np.ndarray]:
        """The image and its ROI (boolean, rows x columns) as ``dlrn predict`` read them."""
        picture = self._read(image_path, "image", source)
        return picture, sitk.GetArrayFromImage(self._read(mask_path, "mask", source)) != 0

    def _roi_used(self, picture: sitk.Image, roi: np.ndarray, origin: str) -> Roi:
        """The ROI used, where it came from, and the image with it outlined."""
        return Roi(source=origin, pixels=int(roi.sum()),
                   mask_png=png_bytes(roi.astype(np.uint8) * 255),
                   overlay_png=overlay_png(sitk.GetArrayFromImage(picture), roi))

    @property
    def point_names(self) -> list[str]:
        return [scale["name"] for scale in (self.nomogram or {}).get("scales", [])]

    def _case_table(self, root: Path, image: Path, mask: Path,
                    values: dict[str, str | float], *, case_id: str = _CASE_ID) -> Path:
        columns = self.settings["columns"]
        row = {columns["case_id"]: case_id, columns["image"]: image.name,
               columns["mask"]: mask.name, **values}
        path = root / f"{case_id}.csv"
        pd.DataFrame([row]).to_csv(path, index=False)
        return path

    def _models(self, row: pd.Series) -> list[dict[str, Any]]:
        """Each image model's probability (radiomics, CNN, fused), the study's best marked."""
        best = self.settings.get("best", {})
        names = {stage: list(self.settings["models"].get(stage, [])) for stage in _IMAGE_STAGES}
        if self.has_cnn:
            names["deep"] = [f"DL-{self.settings['deep']['backbone']}"]
        return [{"name": name, "kind": _IMAGE_STAGES[stage], "probability": float(row[name]),
                 "best": best.get(stage) == name}
                for stage, stage_names in names.items() for name in stage_names if name in row]


def _bundle_cutoff(settings: Mapping[str, Any], name: str | None,
                   given: float | None) -> float | None:
    """The nomogram's cut-off: the bundle's own where it has one, else the one given at start."""
    stored = (settings.get("cutoffs") or {}).get(name) if name else None
    if stored is not None and given is not None and not math.isclose(stored, given):
        raise DlrnError(f"the bundle's {name} cut-off is {stored}; --cutoff {given} disagrees")
    return stored if stored is not None else given


def _size(image: sitk.Image) -> str:
    return " x ".join(map(str, image.GetSize()))
