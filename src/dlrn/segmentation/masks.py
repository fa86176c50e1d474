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

    folder = Path(folder).absolute()  # the paths written into tables read from elsewhere
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


def blank_cells(values: pd.Series) -> pd.Series:
    """True where a table's cell is empty (NaN, or only spaces)."""
    return values.isna() | values.astype(str).str.strip().eq("")


def absolute_paths(values: pd.Series, folder: Path) -> pd.Series:
    """A table's path column made absolute against the table's folder (empty cells stay
    NA), so the table can be written elsewhere."""
    from dlrn.cohort import absolute_path

    return values.astype(object).where(~blank_cells(values)).map(
        lambda value: value if pd.isna(value) else absolute_path(str(value).strip(), folder))


def segment_table(model: SegmentationModel, table: pd.DataFrame, folder: Path,
                  masks_dir: Path, *, case_id: str, image: str, mask: str,
                  only_missing: bool = False,
                  progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A case table (as read from ``folder``) with its ``mask`` column filled by the
    U-Net's masks, written into ``masks_dir``: every case, or with ``only_missing`` the
    cases whose mask cell is empty or absent. Returns the table with absolute paths and
    :func:`segment_cases`' answer (the mask of each segmented case, or why there is none)."""
    table = table.copy()
    table[image] = absolute_paths(table[image], folder)
    if mask in table.columns:
        table[mask] = absolute_paths(table[mask], folder)
    asked = (blank_cells(table[mask]) if only_missing and mask in table.columns
             else pd.Series(True, index=table.index))
    ids = table.loc[asked, case_id].astype(str)
    cases = pd.DataFrame({"image": table.loc[asked, image].to_numpy()}, index=ids.to_numpy())
    segmented = segment_cases(model, cases, list(cases.index), masks_dir, progress=progress)
    table.loc[asked, mask] = ids.map(segmented["mask"]).to_numpy()
    return table, segmented
