"""Crops follow the mask; margins, borders, tiny ROIs; the crop cache; normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from deep_cohort import write_png_cohort

from dlrn.deep.data import (
    Augmentation,
    CropSettings,
    augment,
    build_crop_cache,
    normalize,
    resize_square,
    roi_crop,
)
from dlrn.errors import DlrnError

IMAGE = np.arange(40 * 50, dtype=np.float32).reshape(40, 50) % 251


def box_mask(top: int, bottom: int, left: int, right: int) -> np.ndarray:
    mask = np.zeros(IMAGE.shape, dtype=np.uint8)
    mask[top:bottom, left:right] = 1
    return mask


def test_crop_is_the_mask_bounding_box():
    mask = box_mask(10, 20, 5, 30)
    mask[12, 7] = 0  # holes inside do not shrink the box
    np.testing.assert_array_equal(roi_crop(IMAGE, mask), IMAGE[10:20, 5:30])


def test_margin_in_pixels_and_percent():
    mask = box_mask(10, 20, 10, 30)
    np.testing.assert_array_equal(roi_crop(IMAGE, mask, margin=3), IMAGE[7:23, 7:33])
    # 10 % of a 10-row, 20-column box: 1 row, 2 columns
    np.testing.assert_array_equal(roi_crop(IMAGE, mask, margin="10%"), IMAGE[9:21, 8:32])


def test_mask_touching_the_border_is_clipped_not_an_error():
    mask = box_mask(0, 8, 44, 50)
    np.testing.assert_array_equal(roi_crop(IMAGE, mask, margin=5), IMAGE[0:13, 39:50])


@pytest.mark.parametrize(("mask", "message"), [
    (np.zeros((40, 50), dtype=np.uint8), "mask is empty"),
    (box_mask(3, 4, 3, 4), "only 1 pixel"),
    (np.ones((10, 10), dtype=np.uint8), "sizes differ"),
])
def test_bad_masks_are_named(mask, message):
    with pytest.raises(DlrnError, match=message) as error:
        roi_crop(IMAGE, mask, case_id="c7")
    assert "case c7" in str(error.value)


def test_bad_margin_is_named():
    with pytest.raises(DlrnError, match="margin 'wide'"):
        roi_crop(IMAGE, box_mask(1, 9, 1, 9), margin="wide")


def test_keep_aspect_letterboxes_instead_of_stretching():
    crop = np.full((10, 40), 200, dtype=np.uint8)
    stretched, boxed = resize_square(crop, 32), resize_square(crop, 32, keep_aspect=True)
    assert (stretched == 200).all()
    assert (boxed[:8] == 0).all() and (boxed[16] == 200).all()


def test_crop_cache_from_files_follows_the_mask_and_is_reused(tmp_path):
    from dlrn.cohort import CohortColumns, read_cohort

    table = write_png_cohort(tmp_path / "cohort", n_cases=4)
    cases = read_cohort(table, CohortColumns(label="malignant", patient="patient"),
                        progress=False).cases
    settings = CropSettings(image_size=32)
    cache = build_crop_cache(cases, settings, cache_path=tmp_path / "crops.npy", progress=False)
    assert cache.crops.shape == (4, 1, 32, 32) and cache.crops.dtype == np.uint8
    # the synthetic lesion fills its mask: bright (malignant) or dark (benign) crops
    means = cache.crops.reshape(4, -1).mean(axis=1)
    labels = cases["label"].to_numpy()
    assert means[labels == 1].min() > 150 > 60 > means[labels == 0].max()
    again = build_crop_cache(cases, settings, cache_path=tmp_path / "crops.npy", progress=False)
    assert isinstance(again.crops, np.memmap)
    np.testing.assert_array_equal(again.crops, cache.crops)
    with pytest.raises(DlrnError, match="not in the crop cache: nope"):
        cache.positions(["nope"])


def test_unreadable_case_is_named(tmp_path):
    cases = pd.DataFrame({"image": [str(tmp_path / "gone.png")], "mask": ["m.png"]},
                         index=pd.Index(["c1"], name="case_id"))
    with pytest.raises(DlrnError, match="case c1"):
        build_crop_cache(cases, CropSettings(image_size=32), progress=False)


def test_normalisations():
    batch = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    z = normalize(batch, "zscore")
    assert z.shape == (3, 3, 16, 16)
    torch.testing.assert_close(z.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[:, 0].std(dim=(1, 2)), torch.ones(3), atol=1e-5, rtol=0)
    imagenet = normalize(batch, "imagenet")
    expected_red = (batch[:, 0].float() / 255 - 0.485) / 0.229
    torch.testing.assert_close(imagenet[:, 0], expected_red)


def test_augmentation_is_seeded_and_none_is_identity():
    batch = torch.randint(0, 256, (4, 1, 24, 24), dtype=torch.uint8)
    first = augment(batch, Augmentation(), torch.Generator().manual_seed(1))
    second = augment(batch, Augmentation(), torch.Generator().manual_seed(1))
    assert torch.equal(first, second) and not torch.equal(first, batch)
    assert torch.equal(augment(batch, Augmentation.none(), torch.Generator()), batch)
