"""Lesion crops for the CNNs: crop to the mask, cache once, normalise and augment per batch.

Decoding PNG/DICOM and cropping is done once per case and cached as uint8 at the
training size (one grey channel; it is expanded to the three channels ImageNet
backbones expect only at batch time), so a training epoch only reads memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dlrn.errors import DlrnError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Normalization = Literal["zscore", "imagenet"]


def _as_array(image: object) -> np.ndarray:
    """A 2D numpy array from a SimpleITK image or an array."""
    if isinstance(image, np.ndarray):
        array = image
    else:
        import SimpleITK as sitk

        array = sitk.GetArrayFromImage(image)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise DlrnError(f"expected a 2D image, got an array of shape {array.shape}")
    return array


def margin_pixels(margin: int | float | str, extent: int) -> int:
    """Margin in pixels: an int is pixels, ``"10%"`` is a percentage of the box side."""
    if isinstance(margin, str):
        text = margin.strip()
        try:
            value = float(text.rstrip("%"))
        except ValueError:
            raise DlrnError(
                f"crop margin {margin!r} is not a number of pixels or a percentage like '10%'"
            ) from None
        pixels = value / 100 * extent if text.endswith("%") else value
    else:
        pixels = float(margin)
    if pixels < 0:
        raise DlrnError(f"crop margin {margin!r} must not be negative")
    return round(pixels)


def roi_crop(
    image: object,
    mask: object,
    *,
    margin: int | float | str = 0,
    min_roi_pixels: int = 4,
    case_id: str | None = None,
) -> np.ndarray:
    """The image inside the mask's bounding box, grown by ``margin``, clipped at the border.

    ``margin`` is pixels (int) or a percentage of each box side (``"10%"``). A mask
    touching the image border is cropped up to the border (the margin is clipped).
    """
    where = f" (case {case_id})" if case_id else ""
    pixels, roi = _as_array(image), _as_array(mask)
    if pixels.shape != roi.shape:
        raise DlrnError(f"image and mask sizes differ{where}: {pixels.shape} vs {roi.shape}")
    rows, cols = np.nonzero(roi)
    if rows.size == 0:
        raise DlrnError(f"the mask is empty{where}: nothing to crop")
    if rows.size < min_roi_pixels:
        raise DlrnError(
            f"the ROI has only {rows.size} pixel(s){where}, fewer than min_roi_pixels="
            f"{min_roi_pixels}; check the mask or lower the limit"
        )
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    grow_rows = margin_pixels(margin, bottom - top)
    grow_cols = margin_pixels(margin, right - left)
    top, left = max(top - grow_rows, 0), max(left - grow_cols, 0)
    bottom = min(bottom + grow_rows, pixels.shape[0])
    right = min(right + grow_cols, pixels.shape[1])
    return pixels[top:bottom, left:right]


def to_uint8(crop: np.ndarray) -> np.ndarray:
    """8-bit grey: kept as is when already in 0..255 (ultrasound), else min-max scaled per crop."""
    values = crop.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 255:
        values = (values - low) / (high - low) * 255 if high > low else values * 0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def resize_square(crop: np.ndarray, size: int, *, keep_aspect: bool = False) -> np.ndarray:
    """Resize a uint8 crop to ``size`` x ``size`` (antialiased bilinear).

    By default the box is stretched to the square (as in the reference study);
    ``keep_aspect`` letterboxes it with black instead, keeping the lesion's shape.
    """
    tensor = torch.from_numpy(crop.astype(np.float32))[None, None]
    height, width = crop.shape
    if keep_aspect:
        scale = size / max(height, width)
        target = (max(1, round(height * scale)), max(1, round(width * scale)))
    else:
        target = (size, size)
    resized = F.interpolate(tensor, size=target, mode="bilinear", antialias=True,
                            align_corners=False)[0, 0]
    out = torch.zeros((size, size))
    top, left = (size - target[0]) // 2, (size - target[1]) // 2
    out[top : top + target[0], left : left + target[1]] = resized
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


@dataclass(frozen=True)
class CropSettings:
    """How crops are made; stored beside caches and models so inference crops the same way."""

    image_size: int = 224
    margin: int | str = 0
    keep_aspect: bool = False
    min_roi_pixels: int = 4
    mask_label: int | None = None
    frame: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise DlrnError(f"image size {self.image_size} is too small (at least 16 pixels)")
        margin_pixels(self.margin, 100)


@dataclass
class CropCache:
    """Crops of a cohort, decoded once: ``crops[i]`` is case ``case_ids[i]`` (uint8, 1 x S x S)."""

    crops: np.ndarray
    case_ids: list[str]
    settings: CropSettings

    def __post_init__(self) -> None:
        self._position = {case_id: i for i, case_id in enumerate(self.case_ids)}

    def positions(self, case_ids: Sequence[str]) -> np.ndarray:
        """Row numbers of the given cases; a case not in the cache is an error."""
        missing = [case_id for case_id in case_ids if case_id not in self._position]
        if missing:
            raise DlrnError(f"cases not in the crop cache: {', '.join(map(str, missing[:5]))}")
        return np.array([self._position[case_id] for case_id in case_ids], dtype=np.int64)

    def images(self, case_ids: Sequence[str]) -> np.ndarray:
        return self.crops[self.positions(case_ids)]


def _crop_case(row: pd.Series, case_id: str, settings: CropSettings) -> np.ndarray:
    from dlrn.imaging import read_image, read_mask

    try:
        image = read_image(row["image"], frame=settings.frame)
        mask = read_mask(row["mask"], label=settings.mask_label, frame=settings.frame)
    except DlrnError as error:
        raise DlrnError(f"case {case_id}: {error}") from error
    crop = roi_crop(image, mask, margin=settings.margin, case_id=case_id,
                    min_roi_pixels=settings.min_roi_pixels)
    return resize_square(to_uint8(crop), settings.image_size, keep_aspect=settings.keep_aspect)


def _cache_key(cases: pd.DataFrame, settings: CropSettings) -> dict:
    return {"settings": asdict(settings), "case_ids": [str(i) for i in cases.index],
            "images": cases["image"].astype(str).tolist(),
            "masks": cases["mask"].astype(str).tolist()}


def build_crop_cache(
    cases: pd.DataFrame,
    settings: CropSettings = CropSettings(),
    *,
    cache_path: str | Path | None = None,
    progress: bool = True,
) -> CropCache:
    """Decode and crop every case once.

    In memory by default; with ``cache_path`` (``.npy``) the crops are written to a
    memory-mapped file and reused by later runs with the same cases and settings
    (1875 cases at 224 px take 94 MB).
    """
    from tqdm.auto import tqdm

    key = _cache_key(cases, settings)
    shape = (len(cases), 1, settings.image_size, settings.image_size)
    if cache_path is not None:
        cache_path = Path(cache_path)
        key_path = cache_path.with_suffix(".json")
        if cache_path.exists() and key_path.exists() and json.loads(key_path.read_text()) == key:
            return CropCache(np.load(cache_path, mmap_mode="r"), key["case_ids"], settings)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        crops = np.lib.format.open_memmap(cache_path, mode="w+", dtype=np.uint8, shape=shape)
    else:
        crops = np.empty(shape, dtype=np.uint8)
    rows = tqdm(cases.iterrows(), total=len(cases), desc="crops", disable=not progress,
                leave=False)
    for i, (case_id, row) in enumerate(rows):
        crops[i, 0] = _crop_case(row, str(case_id), settings)
    if cache_path is not None:
        crops.flush()
        key_path.write_text(json.dumps(key))
    return CropCache(crops, key["case_ids"], settings)


def normalize(batch: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    """uint8 N x 1 x H x W -> float N x 3 x H x W.

    ``zscore``: each image to mean 0, SD 1 (the study's choice; right for random init).
    ``imagenet``: 0..1 then ImageNet channel mean/SD (what pretrained filters expect).
    """
    values = batch.float()
    if normalization == "zscore":
        mean = values.mean(dim=(1, 2, 3), keepdim=True)
        std = values.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        return ((values - mean) / std).expand(-1, 3, -1, -1)
    if normalization == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=batch.device).view(1, 3, 1, 1)
        return (values / 255 - mean) / std
    raise DlrnError(f"normalization {normalization!r} is not one of 'zscore', 'imagenet'")


def default_normalization(weights: object) -> Normalization:
    """ImageNet statistics for pretrained weights, per-image z-score for random init."""
    return "zscore" if weights in (None, "none") else "imagenet"


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation; the test set is only normalised."""

    random_crop: bool = True
    crop_scale: tuple[float, float] = (0.75, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    horizontal_flip: bool = True
    vertical_flip: bool = True

    @classmethod
    def none(cls) -> Augmentation:
        return cls(random_crop=False, horizontal_flip=False, vertical_flip=False)


def _random_box(size: int, augmentation: Augmentation, generator: torch.Generator) -> tuple:
    """A random sub-box (torchvision RandomResizedCrop's rule) of a size x size image."""
    area = size * size
    low, high = augmentation.crop_scale
    log_low, log_high = math.log(augmentation.crop_ratio[0]), math.log(augmentation.crop_ratio[1])
    for _ in range(10):
        draws = torch.rand(2, generator=generator).tolist()
        target = area * (low + (high - low) * draws[0])
        ratio = math.exp(log_low + (log_high - log_low) * draws[1])
        width, height = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < width <= size and 0 < height <= size:
            top = int(torch.randint(0, size - height + 1, (1,), generator=generator))
            left = int(torch.randint(0, size - width + 1, (1,), generator=generator))
            return top, left, height, width
    return 0, 0, size, size


def augment(batch: torch.Tensor, augmentation: Augmentation,
            generator: torch.Generator) -> torch.Tensor:
    """Random resized crop and flips per image, on a uint8 N x 1 x S x S batch."""
    size = batch.shape[-1]
    out = batch.clone()
    for i in range(batch.shape[0]):
        image = batch[i : i + 1]
        if augmentation.random_crop:
            top, left, height, width = _random_box(size, augmentation, generator)
            patch = image[..., top : top + height, left : left + width].float()
            image = F.interpolate(patch, size=(size, size), mode="bilinear",
                                  align_corners=False).round().clamp(0, 255).to(torch.uint8)
        flips = torch.rand(2, generator=generator).tolist()
        if augmentation.horizontal_flip and flips[0] < 0.5:
            image = image.flip(-1)
        if augmentation.vertical_flip and flips[1] < 0.5:
            image = image.flip(-2)
        out[i : i + 1] = image
    return out


def _draw_boxes(n: int, size: int, augmentation: Augmentation,
                generator: torch.Generator) -> torch.Tensor:
    """``n`` random sub-boxes (top, left, height, width) by :func:`_random_box`'s rule, at once.

    Ten candidate (scale, ratio) draws per image; the first that fits is used, else the
    whole image, as torchvision's RandomResizedCrop (without its centre-crop fallback).
    """
    low, high = augmentation.crop_scale
    log_low, log_high = math.log(augmentation.crop_ratio[0]), math.log(augmentation.crop_ratio[1])
    draws = torch.rand(n, 10, 2, generator=generator, dtype=torch.float64)
    target = size * size * (low + (high - low) * draws[..., 0])
    ratio = torch.exp(log_low + (log_high - log_low) * draws[..., 1])
    width, height = (target * ratio).sqrt().round(), (target / ratio).sqrt().round()
    fits = (width > 0) & (width <= size) & (height > 0) & (height <= size)
    first = fits.to(torch.int8).argmax(dim=1)
    chosen = torch.arange(n)
    width = torch.where(fits.any(dim=1), width[chosen, first], float(size))
    height = torch.where(fits.any(dim=1), height[chosen, first], float(size))
    corner = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    top = (corner[:, 0] * (size - height + 1)).floor()
    left = (corner[:, 1] * (size - width + 1)).floor()
    return torch.stack([top, left, height, width], dim=1)


def _source_coordinates(start: torch.Tensor, extent: torch.Tensor, size: int,
                        flip: torch.Tensor) -> torch.Tensor:
    """Where each output pixel samples the image: ``F.interpolate``'s rule inside the box.

    Bilinear, ``align_corners=False``: output pixel j of a box of ``extent`` pixels reads
    box position (j + 0.5) * extent / size - 0.5, clamped to the box (so no pixel outside
    the box leaks in); a flip reverses the output order. Returns n x size absolute positions.
    """
    j = torch.arange(size, device=start.device, dtype=torch.float32)
    j = torch.where(flip[:, None], size - 1 - j, j)
    scale = (extent / size).float()[:, None]
    inside = ((j + 0.5) * scale - 0.5).clamp(min=0)
    inside = torch.minimum(inside, (extent.float() - 1)[:, None])
    return start.float()[:, None] + inside


def resample_boxes(batch: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Each image's box (top, left, height, width) resized to the full size, then flipped.

    One ``grid_sample`` for the whole batch, equal to ``F.interpolate`` (bilinear,
    ``align_corners=False``) of each box alone; ``flips`` is N x 2 (horizontal, vertical).
    Returns float N x 1 x S x S rounded to whole grey levels 0..255.
    """
    n, size = batch.shape[0], batch.shape[-1]
    rows = _source_coordinates(boxes[:, 0], boxes[:, 2], size, flips[:, 1])
    cols = _source_coordinates(boxes[:, 1], boxes[:, 3], size, flips[:, 0])
    grid = torch.stack([(2 * cols[:, None, :].expand(n, size, size) + 1) / size - 1,
                        (2 * rows[:, :, None].expand(n, size, size) + 1) / size - 1], dim=-1)
    resampled = F.grid_sample(batch.float(), grid, mode="bilinear", padding_mode="border",
                              align_corners=False)
    return resampled.round_().clamp_(0, 255)


def augment_batch(batch: torch.Tensor, augmentation: Augmentation,
                  generator: torch.Generator) -> torch.Tensor:
    """:func:`augment` for a whole batch at once on its own device (GPU training).

    The same random resized crop and flips, drawn from the CPU ``generator`` (a few
    numbers per image, sent to the device without blocking); the resampling is one
    :func:`resample_boxes` on the device instead of a Python loop over images.
    Returns float N x 1 x S x S of whole grey levels, like :func:`augment`'s uint8.
    """
    if not (augmentation.random_crop or augmentation.horizontal_flip
            or augmentation.vertical_flip):
        return batch.float()
    n, size = batch.shape[0], batch.shape[-1]
    boxes = (_draw_boxes(n, size, augmentation, generator) if augmentation.random_crop
             else torch.tensor([0.0, 0.0, size, size], dtype=torch.float64).expand(n, 4))
    flips = torch.rand(n, 2, generator=generator) < 0.5
    flips &= torch.tensor([augmentation.horizontal_flip, augmentation.vertical_flip])
    return resample_boxes(batch, boxes.to(batch.device, non_blocking=True),
                          flips.to(batch.device, non_blocking=True))


class DeviceCrops:
    """All crops as one uint8 tensor where training runs, so a batch is an index, not a copy.

    On the device when they take at most ``max_fraction`` of its free memory (1875
    crops at 224 px: 94 MB), else in pinned host memory, copied per batch without
    blocking. Batches come in a seeded random order drawn from the CPU generator.
    """

    def __init__(self, crops: np.ndarray, positions: Sequence[int], batch_size: int, *,
                 device: torch.device, generator: torch.Generator, drop_last: bool = False,
                 max_fraction: float = 0.25) -> None:
        host = torch.from_numpy(np.ascontiguousarray(crops))
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 0
        if host.numel() <= max_fraction * free:
            self.crops = host.to(device)
        else:
            self.crops = host.pin_memory() if device.type == "cuda" else host
        self.positions = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        self.batch_size, self.device = batch_size, device
        self.generator, self.drop_last = generator, drop_last

    def __len__(self) -> int:
        full, rest = divmod(len(self.positions), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        """(uint8 crops on the device, their row numbers on the device) per batch."""
        order = self.positions[torch.randperm(len(self.positions), generator=self.generator)]
        for step in range(len(self)):
            rows = order[step * self.batch_size : (step + 1) * self.batch_size]
            rows_here = rows.to(self.crops.device, non_blocking=True)
            batch = self.crops[rows_here]
            if batch.device.type != self.device.type:  # pinned host crops
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            yield batch, rows.to(self.device, non_blocking=True)


class CropDataset(torch.utils.data.Dataset):
    """Cached crops as a torch dataset of (uint8 1 x S x S crop, row number)."""

    def __init__(self, crops: np.ndarray, positions: Sequence[int]) -> None:
        self.crops = crops
        self.positions = np.asarray(positions, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        position = int(self.positions[index])
        return torch.from_numpy(np.array(self.crops[position])), position


def crop_loader(
    crops: np.ndarray,
    positions: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """Batches of cached crops; workers help only for on-disk caches on slow storage."""
    return torch.utils.data.DataLoader(
        CropDataset(crops, positions), batch_size=batch_size, shuffle=shuffle,
        generator=generator, num_workers=num_workers, persistent_workers=num_workers > 0,
        drop_last=drop_last,
    )
