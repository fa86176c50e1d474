"""Predicted masks written as files the cohort reader accepts, one per case.

A mask of an image without physical geometry (PNG, JPEG, BMP, TIFF; or any image whose
spacing is unknown and whose origin and orientation are the defaults) is written as a
0/255 PNG; a mask of an image with a spacing, origin or orientation a PNG would lose
(NIfTI, NRRD, MetaImage, calibrated DICOM) as NRRD with the image's geometry. Either
reads back with :func:`dlrn.imaging.read_mask` and passes the cohort's image/mask checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from dlrn.errors import DlrnError
from dlrn.segmentation.model import NoLesionFound, SegmentationModel

NO_LESION_NOTE = "no lesion found"
_GEOMETRY_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha")


def has_geometry(image: sitk.Image) -> bool:
    """True when a PNG would lose the image's geometry: a known spacing, or an origin or
    orientation other than the defaults."""
    from dlrn.imaging import spacing_is_known

    return (spacing_is_known(image) or any(value != 0 for value in image.GetOrigin())
            or not np.allclose(image.GetDirection(), (1.0, 0.0, 0.0, 1.0)))


def mask_suffix(image: sitk.Image) -> str:
    """``.nrrd`` for an image with geometry (:func:`has_geometry`), else ``.png``."""
    return ".nrrd" if has_geometry(image) else ".png"


def write_mask(mask: np.ndarray, image: sitk.Image, path: Path, *,
               label: int | None = None) -> Path:
    """Write boolean ``mask`` ((rows, cols) on ``image``'s grid) to ``path``: ``.png`` as
    0/255 8-bit grey; ``.nrrd``, ``.nii``, ``.nii.gz``, ``.mha`` as 0/1 uint8 with the
    image's spacing, origin and orientation; with ``label`` (the study's ROI label), the
    lesion is that value instead. The path written."""
    path = Path(path)
    mask = np.asarray(mask)
    rows_cols = sitk.GetArrayViewFromImage(image).shape
    if mask.shape != rows_cols:
        raise DlrnError(f"mask of shape {mask.shape} does not fit the image's "
                        f"{rows_cols[0]} rows x {rows_cols[1]} columns ({path})")
    pixels = (mask != 0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    if name.endswith(".png"):
        from PIL import Image

        Image.fromarray(pixels * (label or 255), mode="L").save(path)
    elif name.endswith(_GEOMETRY_SUFFIXES):
        written = sitk.GetImageFromArray(pixels * (label or 1))
        written.CopyInformation(image)
        sitk.WriteImage(written, str(path), useCompression=True)
    else:
        raise DlrnError(f"cannot write a mask as {path.name}: use .png or one of "
                        f"{', '.join(_GEOMETRY_SUFFIXES)}")
    return path


def segment_cases(model: SegmentationModel, cases: pd.DataFrame, ids: Sequence[str],
                  folder: Path, *, progress: bool = True) -> pd.DataFrame:
    """Predict each case's lesion mask and write it into ``folder``.

    Indexed by case id (the order of ``ids``): ``mask`` the written file
    (``<case_id>.png`` or ``.nrrd``, see :func:`mask_suffix`), NA where none was
    written; ``note`` why not (``no lesion found``, or the read error naming the file),
    empty otherwise. Every case of ``ids`` has a row.
    """
    from tqdm.auto import tqdm

    from dlrn.imaging import ImageReadError, read_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unknown = [str(i) for i in ids if str(i) not in cases.index]
    if unknown:
        raise DlrnError(f"segment_cases: case id(s) {unknown[:5]} are not in the cases table")
    rows = {}
    for case_id in tqdm([str(i) for i in ids], desc="segmenting", unit="image",
                        disable=not progress, leave=False):
        path, note = pd.NA, ""
        for stale in (folder / f"{case_id}.png", folder / f"{case_id}.nrrd"):
            stale.unlink(missing_ok=True)  # an earlier run's mask must not outlive its row
        try:
            image = read_image(cases.at[case_id, "image"], frame=model.settings.frame)
            mask = model.predict(image, name=f"case {case_id}")
            path = str(write_mask(mask, image, folder / f"{case_id}{mask_suffix(image)}",
                                  label=model.settings.mask_label))
        except NoLesionFound:
            note = NO_LESION_NOTE
        except ImageReadError as error:
            note = f"image not read: {error}"
        rows[case_id] = {"mask": path, "note": note}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["mask", "note"])
    table.index.name = "case_id"
    return table
