"""The applicability check's pieces: the feature domain (range + Ledoit-Wolf Mahalanobis
distance, out-of-fold threshold), the U-Net's lesion-evidence rule, the verdict's words,
and the segmentation input of an image without contrast (issue 31)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dlrn.applicability import UNLIKE, ApplicabilityDomain, combine
from dlrn.errors import DlrnError
from dlrn.segmentation.data import CONTRAST_FLOOR, contrast, image_tensor, resized_pixels
from dlrn.segmentation.evidence import (
    EVIDENCE,
    LesionEvidenceRule,
    background_crop,
    no_lesion_images,
)


def _features(rng: np.random.Generator, rows: int, columns: int = 6) -> pd.DataFrame:
    mixing = np.eye(columns) + 0.5  # correlated features, as radiomics features are
    return pd.DataFrame(rng.normal(size=(rows, columns)) @ mixing,
                        columns=[f"original_f{k}" for k in range(columns)])


def test_the_out_of_fold_threshold_flags_about_the_promised_share_of_like_cases():
    rng = np.random.default_rng(0)
    train = _features(rng, 120)
    domain = ApplicabilityDomain(quantile=0.95, cv_folds=5).fit(
        train, groups=np.arange(120) // 2)
    like = domain.assess(_features(rng, 4000))
    assert 0.02 < (~like["in_domain"]).mean() < 0.10  # about 5 %
    # in-sample distances are smaller: a threshold set on them would flag more new cases
    in_sample = domain.assess(train)["feature_distance"]
    assert np.quantile(in_sample, 0.95) < domain.threshold_
    unlike = domain.assess(_features(rng, 200) * 5 + 3)
    assert not unlike["in_domain"].any()
    assert unlike["reason"].str.contains("outside the range of the training images|far from "
                                         "the training images").all()


def test_the_range_rule_counts_features_outside_the_training_range():
    rng = np.random.default_rng(1)
    train = _features(rng, 60)
    domain = ApplicabilityDomain(max_outside_share=0.25).fit(train)
    case = train.iloc[[0]].copy()
    case.iloc[0, :2] = train.iloc[:, :2].max() + 1e-3  # 2 of 6 just above the maximum
    assessed = domain.assess(case).iloc[0]
    assert assessed["features_outside_share"] == pytest.approx(2 / 6)
    assert assessed["features_outside"] == "original_f0, original_f1"
    assert not assessed["in_domain"] and "2 of its 6 image features" in assessed["reason"]
    case.iloc[0, 0] = np.nan  # a feature that could not be computed counts as outside
    assert np.isinf(domain.assess(case)["feature_distance"].iloc[0])


def test_the_domain_round_trips_through_json_and_arrays_and_refuses_too_few_cases():
    rng = np.random.default_rng(2)
    train, new = _features(rng, 40), _features(rng, 30)
    domain = ApplicabilityDomain().fit(train)
    meta, arrays = domain.to_parts()
    import json

    again = ApplicabilityDomain.from_parts(json.loads(json.dumps(meta)), arrays)
    pd.testing.assert_frame_equal(again.assess(new), domain.assess(new))
    with pytest.raises(DlrnError, match="too few"):
        ApplicabilityDomain(cv_folds=5).fit(train.head(6))
    with pytest.raises(DlrnError, match="lack feature"):
        domain.assess(new.drop(columns="original_f3"))


def test_the_verdict_joins_both_checks_in_plain_words():
    index = pd.Index(["a", "b", "c"])
    lesion = pd.DataFrame({"lesion_evidence": [2.0, -4.0, 1.0],
                           "lesion_found": [True, False, True],
                           "reason": ["", "the segmentation model found no lesion", ""]},
                          index=index)
    domain = pd.DataFrame({"feature_distance": [1.0, 9.0, 8.0],
                           "features_outside_share": [0.0, 0.5, 0.5],
                           "in_domain": [True, False, False],
                           "reason": ["", "far", "far"]}, index=index)
    verdict = combine(index, lesion, domain)
    assert verdict["applicable"].tolist() == [True, False, False]
    assert verdict.at["a", "applicability_note"] == ""
    assert verdict.at["b", "applicability_note"] == (
        f"{UNLIKE}: the segmentation model found no lesion; far")
    unassessed = combine(index, None, None)
    assert unassessed["applicable"].isna().all()
    assert unassessed["applicability_note"].str.contains("not assessed").all()


def test_an_image_without_contrast_is_not_turned_into_structure():
    """The issue's blank frame: a z-score by a std floored at 1e-6 magnified the float
    rounding of the resize into a pattern the U-Net outlined; now it is all zeros."""
    for level in (0.0, 128.0, 4095.0):
        blank = sitk.GetImageFromArray(np.full((97, 131), level, dtype=np.float32))
        assert contrast(resized_pixels(blank, 64)) <= CONTRAST_FLOOR
        assert not image_tensor(blank, 64).any()
    rng = np.random.default_rng(3)
    faint = sitk.GetImageFromArray(rng.normal(100, 2, (64, 64)).astype(np.float32))
    assert contrast(resized_pixels(faint, 64)) > CONTRAST_FLOOR  # faint, but an image
    tensor = image_tensor(faint, 64)
    assert float(tensor.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)


def test_no_lesion_images_crop_clear_of_the_lesion_and_keep_the_grey_levels():
    rng = np.random.default_rng(4)
    pixels = rng.normal(80, 20, (60, 80)).astype(np.float32)
    mask = np.zeros((60, 80), dtype=bool)
    mask[5:20, 50:70] = True  # top right
    crop = background_crop(pixels, mask)
    assert crop.shape == (30, 80) and (crop == pixels[30:]).all()  # the bottom half
    everywhere = np.ones_like(mask)
    assert background_crop(pixels, everywhere) is None
    images, kinds = no_lesion_images([pixels] * 8, [mask] * 8, seed=0)
    assert kinds.count("background crop") == 8
    assert {"speckle", "noise", "gradient", "blank"} <= set(kinds)
    assert all(image.min() >= pixels.min() and image.max() <= pixels.max() for image in images)


def _evidence(rng: np.random.Generator, rows: int, lesion: bool) -> pd.DataFrame:
    """Lesion images: confident, one solid region; none: weak, scattered outlines."""
    centre = np.array([0.95, 0.85, -2.5, 1.0, 0.9]) if lesion else np.array(
        [0.7, 0.6, -4.0, 6.0, 0.5])
    values = centre + rng.normal(0, [0.03, 0.05, 0.4, 0.5, 0.05], (rows, 5))
    frame = pd.DataFrame(values, columns=list(EVIDENCE))
    frame["parts"] = frame["parts"].round().clip(lower=1)
    frame["contrast"] = 0.3
    return frame


def test_the_lesion_evidence_rule_is_calibrated_out_of_fold_and_says_why():
    rng = np.random.default_rng(5)
    rule = LesionEvidenceRule(quantile=0.95).fit(_evidence(rng, 100, True),
                                                 _evidence(rng, 60, False))
    assert rule.oof_flagged_["lesion images"] <= 0.06
    assert rule.oof_flagged_["no-lesion images"] > 0.9
    like = rule.assess(_evidence(rng, 1000, True))
    assert like["lesion_found"].mean() > 0.9
    evidence = _evidence(rng, 200, False)
    none = rule.assess(evidence)
    assert not none["lesion_found"].any()
    assert none["reason"].str.startswith("the segmentation model sees no clear lesion").all()
    flat = _evidence(rng, 1, True).assign(contrast=0.0)
    assert rule.assess(flat)["reason"].iloc[0].startswith("the image has no contrast")
    again = LesionEvidenceRule.from_dict(rule.to_dict())
    pd.testing.assert_frame_equal(again.assess(evidence), none)


def test_the_settings_are_in_the_stage_s_fingerprint_and_the_stage_follows_the_nomogram():
    from dlrn.study.config import study_from_dict
    from dlrn.study.runner import stage_fingerprint
    from dlrn.study.stages import STAGES
    from dlrn.study.stages.applicability import STAGE

    names = [stage.name for stage in STAGES]
    assert names.index("dlrn") < names.index("applicability") < names.index("comparison")
    upstream = dict.fromkeys(STAGE.depends, "upstream")

    def fingerprint(**section: float) -> str:
        config = study_from_dict({"cohort": {"table": "t.csv"}, "applicability": section})
        return stage_fingerprint(STAGE, config, upstream, files={})

    assert fingerprint() == fingerprint(quantile=0.99)
    assert fingerprint() != fingerprint(quantile=0.95)
    assert fingerprint() != fingerprint(max_outside_share=0.5)
