"""Tiny lesion images for the segmentation tests: a bright ellipse on noise, PNG or NIfTI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from PIL import Image


def ellipse(shape: tuple[int, int], centre: tuple[float, float],
            radii: tuple[float, float]) -> np.ndarray:
    """Boolean (rows, cols) ellipse."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    return ((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2 <= 1


def lesion_image(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """(uint8 grey image, boolean mask): a bright ellipse at a random place on noise."""
    radii = (rng.uniform(0.15, 0.25) * shape[0], rng.uniform(0.15, 0.25) * shape[1])
    centre = (rng.uniform(radii[0] + 1, shape[0] - radii[0] - 1),
              rng.uniform(radii[1] + 1, shape[1] - radii[1] - 1))
    mask = ellipse(shape, centre, radii)
    pixels = rng.normal(60, 20, shape) + 120 * mask
    return np.clip(pixels, 0, 255).astype(np.uint8), mask


def write_case(folder: Path, case_id: str, pixels: np.ndarray, mask: np.ndarray, *,
               nifti: bool = False, spacing: tuple[float, float] = (0.2, 0.3),
               origin: tuple[float, float] = (5.0, -3.0)) -> dict[str, str]:
    """Write one case's image and mask; NIfTI with ``spacing`` and ``origin``, else PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    if nifti:
        paths = {"image": folder / f"{case_id}.nii.gz", "mask": folder / f"{case_id}_mask.nii.gz"}
        for key, array in (("image", pixels.astype(np.float32)),
                           ("mask", mask.astype(np.uint8))):
            written = sitk.GetImageFromArray(array)
            written.SetSpacing(spacing)
            written.SetOrigin(origin)
            sitk.WriteImage(written, str(paths[key]))
    else:
        paths = {"image": folder / f"{case_id}.png", "mask": folder / f"{case_id}_mask.png"}
        Image.fromarray(pixels).save(paths["image"])
        Image.fromarray(mask.astype(np.uint8) * 255).save(paths["mask"])
    return {key: str(path) for key, path in paths.items()}


def lesion_cases(folder: Path, n_cases: int = 24, *, shape: tuple[int, int] = (40, 48),
                 seed: int = 0, nifti_every: int = 0, per_patient: int = 2) -> pd.DataFrame:
    """A cases table (index case_id; image, mask, patient_id, label) of ``n_cases`` images,
    ``per_patient`` per patient; every ``nifti_every``-th case NIfTI (0: none)."""
    rng = np.random.default_rng(seed)
    rows = {}
    for k in range(n_cases):
        pixels, mask = lesion_image(rng, shape)
        case_id = f"case{k:03d}"
        nifti = bool(nifti_every) and k % nifti_every == nifti_every - 1
        rows[case_id] = {**write_case(folder, case_id, pixels, mask, nifti=nifti),
                         "patient_id": f"p{k // per_patient:03d}", "label": k % 2}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "case_id"
    return table
