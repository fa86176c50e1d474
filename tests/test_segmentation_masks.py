"""Predicted masks as files: PNG or NRRD by the image's geometry, read back as the cohort
reads masks; every case reported, none dropped; no lesion is a message, not a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from segmentation_cases import lesion_cases
from torch import nn

from dlrn.case_files import roi_problems
from dlrn.errors import DlrnError
from dlrn.imaging import read_image, read_image_and_mask, read_mask, spacing_is_known
from dlrn.segmentation import (
    NO_LESION_NOTE,
    NoLesionFound,
    SegmentationModel,
    SegmentationSettings,
    mask_metrics,
    segment_cases,
    write_mask,
)

SETTINGS = SegmentationSettings(image_size=32, channels=(4, 8))


def pixel_rule(weight: float, bias: float) -> SegmentationModel:
    """A 'network' whose logit is weight * z-scored pixel + bias (bright = lesion)."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(weight)
        conv.bias.fill_(bias)
    return SegmentationModel(conv, SETTINGS)


def test_segment_cases_writes_masks_the_cohort_reader_accepts(tmp_path):
    cases = lesion_cases(tmp_path / "cases", 4, nifti_every=2)
    out = segment_cases(pixel_rule(8.0, -6.0), cases, list(cases.index), tmp_path / "pred",
                        progress=False)
    assert list(out.index) == list(cases.index) and (out["note"] == "").all()
    assert [p.rsplit(".", 1)[1] for p in out["mask"]] == ["png", "nrrd"] * 2
    for case_id, path in out["mask"].items():
        image, mask = read_image_and_mask(cases.at[case_id, "image"], path)  # same checks
        written = read_mask(path)
        assert written.GetSize() == image.GetSize()
        if spacing_is_known(image):  # the NIfTI case: its geometry written with the mask
            assert spacing_is_known(written)
            assert np.allclose(written.GetSpacing(), image.GetSpacing())
            assert np.allclose(written.GetOrigin(), image.GetOrigin())
        assert not list(roi_problems(mask, image, None, 1))
        expert = sitk.GetArrayFromImage(read_mask(cases.at[case_id, "mask"])) != 0
        found = sitk.GetArrayFromImage(mask) != 0
        assert (found & expert).sum() / (found | expert).sum() > 0.7  # the bright ellipse


def test_png_masks_are_0_and_255(tmp_path):
    cases = lesion_cases(tmp_path / "cases", 1)
    out = segment_cases(pixel_rule(8.0, -6.0), cases, list(cases.index), tmp_path / "pred",
                        progress=False)
    from PIL import Image

    values = np.unique(np.asarray(Image.open(out["mask"].iloc[0])))
    assert values.tolist() == [0, 255]


def test_no_lesion_and_unreadable_images_are_noted_not_dropped(tmp_path):
    cases = lesion_cases(tmp_path / "cases", 3)
    stale = tmp_path / "pred" / "case000.png"
    stale.parent.mkdir()
    stale.write_bytes(b"an earlier run's mask")
    cases.loc["case002", "image"] = str(tmp_path / "missing.png")
    out = segment_cases(pixel_rule(0.0, -10.0), cases, list(cases.index), tmp_path / "pred",
                        progress=False)
    assert list(out.index) == ["case000", "case001", "case002"]
    assert out["mask"].isna().all()
    assert out.loc[["case000", "case001"], "note"].tolist() == [NO_LESION_NOTE] * 2
    assert "missing.png" in out.loc["case002", "note"]
    assert not stale.exists()


def test_predict_raises_no_lesion_found_with_what_to_do(tmp_path):
    cases = lesion_cases(tmp_path / "cases", 1)
    image = read_image(cases["image"].iloc[0])
    with pytest.raises(NoLesionFound, match=r"no lesion was found in case x.*draw.*mask"):
        pixel_rule(0.0, -10.0).predict(image, name="case x")
    assert issubclass(NoLesionFound, DlrnError)
    dark = sitk.GetImageFromArray(np.zeros((40, 48), dtype=np.float32))
    with pytest.raises(NoLesionFound):
        pixel_rule(8.0, -6.0).predict(dark)  # all dark: nothing above the threshold
    certain = SegmentationModel(pixel_rule(8.0, 50.0).network,
                                SegmentationSettings(image_size=32, channels=(4, 8),
                                                     threshold=1.0))
    with pytest.raises(NoLesionFound):
        certain.predict(image)  # no probability is above 1.0


def test_predict_keeps_the_largest_region_solid_on_the_image_grid():
    pixels = np.zeros((50, 70), dtype=np.float32)
    pixels[10:30, 10:30] = 200  # the lesion
    pixels[18:22, 18:22] = 0  # a dark hole inside it
    pixels[40:44, 60:64] = 200  # a small bright spot elsewhere
    mask = pixel_rule(8.0, -6.0).predict(sitk.GetImageFromArray(pixels))
    assert mask.shape == (50, 70) and mask.dtype == bool
    assert mask[12, 12] and mask[20, 20] and not mask[42, 62]  # one solid region


def test_write_mask_refuses_a_mask_of_another_size_and_unknown_formats(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((10, 12), dtype=np.float32))
    with pytest.raises(DlrnError, match="10 rows x 12 columns"):
        write_mask(np.zeros((12, 10), dtype=bool), image, tmp_path / "m.png")
    with pytest.raises(DlrnError, match=r"\.bmp"):
        write_mask(np.zeros((10, 12), dtype=bool), image, tmp_path / "m.bmp")
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    for name in ("m.png", "m.nii.gz", "m.nrrd"):
        back = sitk.GetArrayFromImage(read_mask(write_mask(mask, image, tmp_path / name)))
        assert np.array_equal(back != 0, mask)


def test_segment_cases_refuses_unknown_ids(tmp_path):
    cases = pd.DataFrame({"image": [], "mask": []})
    with pytest.raises(DlrnError, match="nope"):
        segment_cases(pixel_rule(1.0, 0.0), cases, ["nope"], tmp_path, progress=False)


def test_masks_are_written_with_the_study_s_roi_label_and_read_back_with_it(tmp_path):
    """A study whose masks mark the lesion with label 2 (``cohort.mask_label``): the
    predicted masks carry 2 too, so the reader finds the lesion with that label, and the
    scores read the experts' masks with it."""
    from dataclasses import replace

    cases = lesion_cases(tmp_path / "cases", 4, nifti_every=2)
    for path in cases["mask"]:  # relabel the expert lesions 1 -> 2
        mask = read_mask(path)
        relabelled = sitk.Cast(mask != 0, sitk.sitkUInt8) * 2
        relabelled.CopyInformation(mask)
        sitk.WriteImage(relabelled, path)
    model = pixel_rule(8.0, -6.0)
    model.settings = replace(model.settings, mask_label=2)
    out = segment_cases(model, cases, list(cases.index), tmp_path / "pred", progress=False)
    for path in out["mask"]:
        values = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(path)))
        assert values.tolist() == [0, 2]
        assert sitk.GetArrayFromImage(read_mask(path, label=2)).any()
        assert not sitk.GetArrayFromImage(read_mask(path, label=1)).any()
    scores = mask_metrics(cases, out, label=2)
    assert (scores["dice"] > 0.5).all()
