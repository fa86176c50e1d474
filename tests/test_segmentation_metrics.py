"""Segmentation metrics against hand-computed values; patient-bootstrap summaries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from segmentation_cases import lesion_cases

from dlrn.segmentation import mask_metrics, metric_summary, segment_cases
from dlrn.segmentation.metrics import case_metrics, hd95, overlap_scores


def square(top: int, left: int, side: int = 10, shape=(30, 30)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_dice_and_iou_of_a_shifted_square_are_exact():
    expert, predicted = square(5, 5), square(5, 7)  # 80 of 100 pixels shared
    dice, iou = overlap_scores(predicted, expert)
    assert dice == pytest.approx(2 * 80 / 200)
    assert iou == pytest.approx(80 / 120)
    assert overlap_scores(expert, expert) == (1.0, 1.0)
    assert overlap_scores(np.zeros_like(expert), expert) == (0.0, 0.0)


def test_hd95_of_identical_masks_is_zero_and_follows_the_spacing():
    expert = square(5, 5)
    assert hd95(expert, expert) == 0.0
    shifted = hd95(square(5, 8), expert)  # 3 columns to the right
    assert 0 < shifted <= 3
    # a horizontal shift: every nearest boundary point is on the same row, so the
    # distance is in column units and scales with the column spacing alone
    assert hd95(square(5, 8), expert, spacing=(7.0, 0.5)) == pytest.approx(shifted * 0.5)
    assert math.isnan(hd95(np.zeros_like(expert), expert))


def test_no_predicted_lesion_counts_as_zero_overlap():
    assert case_metrics(None, square(5, 5), None) == {"dice": 0.0, "iou": 0.0,
                                                       "hd95": pytest.approx(math.nan,
                                                                             nan_ok=True)}


def test_mask_metrics_on_png_and_nifti_cases_count_every_case(tmp_path):
    cases = lesion_cases(tmp_path / "cases", 6, nifti_every=2)
    predicted = pd.DataFrame({"mask": cases["mask"].astype(object)})
    predicted.loc["case002", "mask"] = pd.NA  # no lesion found: scored, not dropped
    table = mask_metrics(cases, predicted)
    assert list(table.index) == list(cases.index)
    found = table.drop(index="case002")
    assert (found["dice"] == 1.0).all() and (found["iou"] == 1.0).all()
    assert (found["hd95"] == 0.0).all()
    assert table.loc["case002", ["dice", "iou"]].tolist() == [0.0, 0.0]
    assert math.isnan(table.loc["case002", "hd95"])
    assert not table.loc["case002", "lesion_found"]
    assert table["hd95_unit"].tolist() == ["pixel", "mm"] * 3  # NIfTI: spacing known


def test_summary_ci_contains_the_mean_and_repeats_for_a_seed():
    rng = np.random.default_rng(1)
    per_case = pd.DataFrame({"dice": rng.uniform(0.5, 0.95, 40),
                             "iou": rng.uniform(0.3, 0.9, 40),
                             "hd95": np.r_[rng.uniform(1, 20, 38), np.nan, np.nan]},
                            index=[f"c{k}" for k in range(40)])
    patients = pd.Series([f"p{k // 2}" for k in range(40)], index=per_case.index)
    summary = metric_summary(per_case, patients, seed=3, n_boot=500)
    assert list(summary.index) == ["dice", "iou", "hd95"]
    assert (summary["ci_low"] <= summary["mean"]).all()
    assert (summary["mean"] <= summary["ci_high"]).all()
    assert summary.loc["dice", "n_patients"] == 20
    assert summary.loc["hd95", "n_cases"] == 38  # HD95 where a lesion was found
    assert summary.loc["dice", "mean"] == pytest.approx(per_case["dice"].mean())
    assert summary.loc["dice", "median"] == pytest.approx(per_case["dice"].median())
    pd.testing.assert_frame_equal(summary, metric_summary(per_case, patients, seed=3,
                                                          n_boot=500))
    by_case = metric_summary(per_case, seed=3, n_boot=500)
    assert by_case.loc["dice", "n_patients"] == 40


def test_patient_bootstrap_resamples_a_patients_cases_together():
    # two patients, each with identical values on its cases: every resample mean is a
    # mix of the two patient means weighted by case counts, never something in between
    per_case = pd.DataFrame({"dice": [0.2, 0.2, 0.2, 0.8]}, index=list("abcd"))
    patients = pd.Series(["p1", "p1", "p1", "p2"], index=per_case.index)
    summary = metric_summary(per_case, patients, seed=0, n_boot=200)
    possible = {0.2, 0.8, (0.2 * 3 + 0.8) / 4}
    for bound in summary.loc["dice", ["ci_low", "ci_high"]]:
        assert min(abs(bound - value) for value in possible) < 1e-12


def test_metrics_of_segmented_cases_include_those_without_a_lesion(tmp_path):
    import torch
    from torch import nn

    from dlrn.segmentation import SegmentationModel, SegmentationSettings

    cases = lesion_cases(tmp_path / "cases", 4)
    dark = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        dark.weight.zero_()
        dark.bias.fill_(-10.0)
    model = SegmentationModel(dark, SegmentationSettings(image_size=32, channels=(4, 8)))
    predicted = segment_cases(model, cases, list(cases.index), tmp_path / "pred",
                              progress=False)
    table = mask_metrics(cases, predicted)
    assert len(table) == 4 and (table["dice"] == 0).all()
    summary = metric_summary(table, cases["patient_id"], n_boot=50)
    assert summary.loc["dice", "n_cases"] == 4 and summary.loc["dice", "mean"] == 0
    assert summary.loc["hd95", "n_cases"] == 0


def test_overlay_figure_draws_both_contours_or_says_none(tmp_path):
    import SimpleITK as sitk
    from PIL import Image

    from dlrn.segmentation import overlay_figure

    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(30, 40)))
    expert = square(5, 5, shape=(30, 40))
    for predicted, name in ((square(6, 8, shape=(30, 40)), "both.png"), (None, "none.png")):
        path = overlay_figure(image, expert, predicted, tmp_path / name, "case x")
        assert path.is_file() and Image.open(path).format == "PNG"
    assert (tmp_path / "both.png").read_bytes() != (tmp_path / "none.png").read_bytes()
