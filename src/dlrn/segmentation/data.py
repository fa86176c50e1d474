"""Images and masks as the U-Net sees them: resized, z-scored, cached once, augmented.

Every image is read as the cohort reads it (:func:`dlrn.imaging.read_image`: true 2D,
grey, any format), resized to ``image_size`` x ``image_size`` (bilinear, antialiased;
the aspect ratio is not kept, the prediction is resized back to the image's own grid)
and z-scored by its own mean and standard deviation. Masks are resized by area and
thresholded at 1/2. :class:`SegmentationArrays` holds the arrays of a set of cases
(read once, with a progress bar); :class:`ShuffledBatches` serves one epoch of
augmented training batches drawn with the engine's generator.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
from torch.nn import functional

from dlrn.errors import DlrnError

#: an image has contrast when its standard deviation exceeds this share of its mean
#: absolute brightness (or of 1): a constant image resized by interpolation keeps only
#: float rounding (about 1e-5 of its level), which a z-score would blow up into structure
CONTRAST_FLOOR = 1e-3


def resized_pixels(image: sitk.Image, size: int) -> torch.Tensor:
    """A (1, size, size) float32 tensor: the image's grey values resized (bilinear,
    antialiased), not yet normalised."""
    pixels = torch.from_numpy(sitk.GetArrayFromImage(image).astype(np.float32, copy=False))
    if pixels.ndim != 2:
        raise DlrnError(f"segmentation needs a 2D grey image, got an array of shape "
                        f"{tuple(pixels.shape)}")
    return functional.interpolate(pixels[None, None], size=(size, size), mode="bilinear",
                                  align_corners=False, antialias=True)[0]


def contrast(pixels: torch.Tensor) -> float:
    """The pixels' standard deviation relative to their mean absolute brightness (or 1):
    about 0 for a blank image, whatever its grey level."""
    spread = float(pixels.std(unbiased=False))
    return spread / max(1.0, float(pixels.abs().mean()))


def image_tensor(image: sitk.Image, size: int) -> torch.Tensor:
    """A (1, size, size) float32 tensor: the image resized and z-scored (the net's input).

    An image without contrast (:data:`CONTRAST_FLOOR`) has no structure to show: it is all
    zeros, not its rounding noise divided by a near-zero standard deviation."""
    resized = resized_pixels(image, size)
    centred = resized - resized.mean()
    if contrast(resized) <= CONTRAST_FLOOR:
        return torch.zeros_like(centred)
    return centred / resized.std(unbiased=False)


def mask_tensor(mask: sitk.Image, size: int) -> torch.Tensor:
    """A (1, size, size) 0/1 float32 tensor: the mask's area share per pixel, >= 1/2."""
    roi = torch.from_numpy(np.asarray(sitk.GetArrayViewFromImage(mask) != 0, dtype=np.float32))
    shrunk = functional.interpolate(roi[None, None], size=(size, size), mode="area")[0]
    return (shrunk >= 0.5).float()


def to_image_grid(probabilities: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """(size, size) probabilities resized back to an image's (rows, cols), bilinear."""
    return functional.interpolate(probabilities[None, None].float(), size=shape,
                                  mode="bilinear", align_corners=False)[0, 0].numpy()


@dataclass
class SegmentationArrays:
    """The cases' images and masks at the net's size: ``images`` and ``masks`` are
    (n, 1, size, size) float32 tensors in the order of ``case_ids``."""

    case_ids: list[str]
    images: torch.Tensor
    masks: torch.Tensor

    @classmethod
    def read(cls, cases: pd.DataFrame, ids: Sequence[str], size: int, *,
             label: int | None = None, frame: int = 0, progress: bool = True,
             desc: str = "reading images") -> SegmentationArrays:
        """Read each case's image and mask once (``cases``: columns ``image``, ``mask``;
        ``label`` and ``frame`` as :func:`dlrn.imaging.read_image_and_mask`)."""
        from tqdm.auto import tqdm

        from dlrn.imaging import read_image_and_mask

        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in cases.index]
        if missing:
            raise DlrnError(f"segmentation: case id(s) {missing[:5]} are not in the cases table")
        images = torch.empty((len(ids), 1, size, size), dtype=torch.float32)
        masks = torch.empty_like(images)
        rows = cases.loc[ids, ["image", "mask"]].to_dict("records")
        for k, row in enumerate(tqdm(rows, desc=desc, unit="image", disable=not progress,
                                     leave=False)):
            if pd.isna(row["mask"]):
                raise DlrnError(f"segmentation: case {ids[k]} has no mask; the U-Net trains "
                                "on cases with an expert mask only")
            image, mask = read_image_and_mask(row["image"], row["mask"], label=label,
                                              frame=frame)
            images[k], masks[k] = image_tensor(image, size), mask_tensor(mask, size)
        return cls(ids, images, masks)

    def subset(self, ids: Sequence[str]) -> SegmentationArrays:
        position = {case: k for k, case in enumerate(self.case_ids)}
        rows = torch.tensor([position[str(i)] for i in ids], dtype=torch.long)
        return SegmentationArrays([str(i) for i in ids], self.images[rows], self.masks[rows])


def fit_validation_split(cases: pd.DataFrame, train_ids: Sequence[str], fraction: float,
                         seed: int) -> tuple[list[str], list[str]]:
    """(fit, validation) ids of the training cases, grouped by patient, as dlrn splits a
    cohort (:func:`dlrn.splitting.split_cohort`: stratified by label where the table has
    one; each case its own patient where there is no ``patient_id``)."""
    from dlrn.splitting import split_cohort

    ids = [str(i) for i in train_ids]
    training = cases.loc[ids]
    table = pd.DataFrame(index=training.index)
    table["label"] = (training["label"].astype(int) if "label" in training.columns
                      and training["label"].notna().all() else 0)
    table["patient_id"] = (training["patient_id"].astype(str)
                           if "patient_id" in training.columns else training.index.astype(str))
    if table["patient_id"].nunique() < 2:
        raise DlrnError(f"segmentation: {len(ids)} training case(s) from "
                        f"{table['patient_id'].nunique()} patient(s) cannot be split into "
                        "fit and validation cases; at least 2 patients are needed")
    sets = split_cohort(table, test_size=fraction, seed=seed)
    fit_ids = [str(i) for i in sets.index[sets == "train"]]
    val_ids = [str(i) for i in sets.index[sets != "train"]]
    if not fit_ids or not val_ids:
        raise DlrnError(f"segmentation: val_fraction={fraction} of {len(ids)} training cases "
                        "leaves no fit or no validation case; change val_fraction or add cases")
    return fit_ids, val_ids


def augment(images: torch.Tensor, masks: torch.Tensor, *, flip: bool, scale_shift: float,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random left-right flip and a random scale and shift, the same for image and mask.

    Draws from ``generator`` only (CPU), so a seed repeats the augmentation exactly.
    Outside the image the z-scored image is 0 (its mean) and the mask 0.
    """
    n = images.shape[0]
    draws = torch.rand((n, 4), generator=generator)
    if flip:
        mirrored = draws[:, 0] < 0.5
        images = torch.where(mirrored[:, None, None, None], images.flip(-1), images)
        masks = torch.where(mirrored[:, None, None, None], masks.flip(-1), masks)
    if scale_shift > 0:
        scale = 1 + scale_shift * (2 * draws[:, 1] - 1)
        shift = scale_shift * 2 * (2 * draws[:, 2:] - 1)  # grid units: the side is 2
        theta = torch.zeros((n, 2, 3))
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
        theta[:, :, 2] = shift
        grid = functional.affine_grid(theta.to(images.device), list(images.shape),
                                      align_corners=False)
        images = functional.grid_sample(images, grid, mode="bilinear", align_corners=False)
        masks = (functional.grid_sample(masks, grid, mode="bilinear",
                                        align_corners=False) >= 0.5).float()
    return images, masks


class ShuffledBatches:
    """One epoch of training batches: the fit cases shuffled by ``generator``, augmented,
    on ``device``. ``len()`` is the number of steps; a lone last image is dropped (batch
    norm cannot train on one image)."""

    def __init__(self, arrays: SegmentationArrays, batch_size: int, *, flip: bool,
                 scale_shift: float, generator: torch.Generator, device: torch.device):
        self.arrays, self.batch_size, self.device = arrays, batch_size, device
        self.flip, self.scale_shift, self.generator = flip, scale_shift, generator
        n = len(arrays.case_ids)
        self.n_used = n - 1 if n % batch_size == 1 else n

    def __len__(self) -> int:
        return -(-self.n_used // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.arrays.case_ids), generator=self.generator)
        order = order[:self.n_used]
        for start in range(0, self.n_used, self.batch_size):
            rows = order[start:start + self.batch_size]
            images, masks = augment(self.arrays.images[rows], self.arrays.masks[rows],
                                    flip=self.flip, scale_shift=self.scale_shift,
                                    generator=self.generator)
            yield (images.to(self.device, non_blocking=True),
                   masks.to(self.device, non_blocking=True))
