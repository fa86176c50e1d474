"""dlrn.radiomics: values equal PyRadiomics, presets complete, cache and failures behave."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from dlrn import radiomics
from dlrn.errors import ConfigError, DlrnError
from dlrn.radiomics import (
    expected_families,
    extract_features,
    load_params,
    preset_path,
)

BUSBRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "busbra"
SMALL_CASES = ("busbra_1041-r", "busbra_0308-r", "busbra_1019-l")  # ~276x300 px images
needs_busbra = pytest.mark.skipif(not BUSBRA.is_dir(), reason="BUS-BRA data not available")


def busbra_cases(case_ids=SMALL_CASES) -> pd.DataFrame:
    table = pd.read_csv(BUSBRA / "cases.csv", dtype={"case_id": str}).set_index("case_id")
    cases = table.loc[list(case_ids), ["image", "mask"]]
    return cases.map(lambda relative: str(BUSBRA / relative))


def direct_pyradiomics(params_file: Path, image_path: str, mask_path: str) -> dict[str, float]:
    """A direct PyRadiomics call: SimpleITK reads the PNGs (as doubles), 0/255 masks."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    image = sitk.Cast(sitk.ReadImage(image_path), sitk.sitkFloat64)
    result = RadiomicsFeatureExtractor(str(params_file)).execute(
        image, sitk.ReadImage(mask_path), label=255
    )
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def assert_same_values(ours: pd.Series, reference: dict[str, float]) -> None:
    assert list(ours.index) == list(reference), "same features in PyRadiomics' order"
    expected = np.array(list(reference.values()))
    relative = np.abs(ours.to_numpy() - expected) / np.maximum(np.abs(expected), 1e-12)
    assert np.nanmax(relative) < 1e-9
    assert np.array_equal(np.isnan(ours.to_numpy()), np.isnan(expected))


@needs_busbra
def test_fast_preset_equals_direct_pyradiomics_in_parallel():
    cases = busbra_cases()
    result = extract_features(cases, "fast", jobs=2, progress=False)
    assert result.failures.empty
    assert list(result.features.index) == list(SMALL_CASES)
    assert result.features.index.name == "case_id"
    assert result.features.shape == (3, 102)
    for case_id, row in cases.iterrows():
        reference = direct_pyradiomics(preset_path("fast"), row["image"], row["mask"])
        assert_same_values(result.features.loc[case_id], reference)


@needs_busbra
def test_seed_preset_equals_direct_pyradiomics_and_has_every_family():
    cases = busbra_cases(SMALL_CASES[:1])
    result = extract_features(cases, "seed", jobs=1, progress=False)
    features = result.features.iloc[0]
    assert len(features) == 1497
    families = {name.rsplit("_", 1)[0] for name in features.index}
    assert families == expected_families(load_params("seed"))
    image_types = {family.split("_")[0] for family in families}
    assert image_types == {
        "original", "square", "squareroot", "logarithm", "exponential", "gradient", "lbp-2D",
        *(f"log-sigma-{s}-0-mm-3D" for s in range(1, 6)),
        "wavelet-LH", "wavelet-HL", "wavelet-HH", "wavelet-LL",
    }
    row = cases.iloc[0]
    assert_same_values(features, direct_pyradiomics(preset_path("seed"), row["image"], row["mask"]))


@needs_busbra
def test_cache_hit_miss_and_changed_file(tmp_path, monkeypatch):
    cases = busbra_cases(SMALL_CASES[:2])
    local_image = tmp_path / "image.png"
    shutil.copy(cases.iloc[0]["image"], local_image)
    cases.iloc[0, cases.columns.get_loc("image")] = str(local_image)
    cache = tmp_path / "cache"

    first = extract_features(cases, "fast", jobs=1, cache_dir=cache, progress=False)
    assert first.from_cache == []
    assert len(list(cache.rglob("*.json"))) == 2

    def must_not_run(task):
        raise AssertionError(f"case {task.case_id} should have come from the cache")

    monkeypatch.setattr(radiomics, "extract_case", must_not_run)
    second = extract_features(cases, "fast", jobs=1, cache_dir=cache, progress=False)
    assert second.from_cache == list(cases.index)
    pd.testing.assert_frame_equal(second.features, first.features)
    monkeypatch.undo()

    pixels = np.asarray(Image.open(local_image)).copy()
    pixels[: pixels.shape[0] // 2] //= 2  # darken the upper half, lesion included
    Image.fromarray(pixels).save(local_image)
    third = extract_features(cases, "fast", jobs=1, cache_dir=cache, progress=False)
    assert third.from_cache == [cases.index[1]]
    changed = cases.index[0]
    assert third.features.loc[changed, "original_firstorder_Mean"] != pytest.approx(
        first.features.loc[changed, "original_firstorder_Mean"]
    )


@needs_busbra
def test_changed_parameters_miss_the_cache(tmp_path):
    cases = busbra_cases(SMALL_CASES[:1])
    params = load_params("fast")
    extract_features(cases, params, jobs=1, cache_dir=tmp_path, progress=False)
    coarser = {**params, "setting": {**params["setting"], "binWidth": 10}}
    result = extract_features(cases, coarser, jobs=1, cache_dir=tmp_path, progress=False)
    assert result.from_cache == []


@needs_busbra
def test_a_case_pyradiomics_rejects_is_reported_and_the_others_finish(tmp_path):
    cases = busbra_cases(SMALL_CASES[:2])
    one_pixel = np.zeros(np.asarray(Image.open(cases.iloc[0]["mask"])).shape, dtype=np.uint8)
    one_pixel[100, 100] = 255
    Image.fromarray(one_pixel).save(tmp_path / "one_pixel.png")
    cases.iloc[0, cases.columns.get_loc("mask")] = str(tmp_path / "one_pixel.png")
    result = extract_features(cases, "fast", jobs=1, cache_dir=tmp_path / "c", progress=False)
    assert list(result.features.index) == [cases.index[1]]
    assert list(result.failures["case_id"]) == [cases.index[0]]
    assert "ValueError" in result.failures["error"].iloc[0]
    assert "one_pixel.png" in result.failures["mask"].iloc[0]
    assert len(list((tmp_path / "c").rglob("*.json"))) == 1, "failures are not cached"


def one_case(folder: Path, case_id: str, image: np.ndarray, mask: np.ndarray) -> pd.DataFrame:
    """Write one image/mask pair as PNGs; the cases table extract_features takes."""
    Image.fromarray(image).save(folder / "img.png")
    Image.fromarray(mask).save(folder / "mask.png")
    return pd.DataFrame({"image": [str(folder / "img.png")],
                         "mask": [str(folder / "mask.png")]}, index=[case_id])


def test_a_filter_pyradiomics_skips_silently_is_a_failure(tmp_path):
    """A LoG sigma wider than the image: PyRadiomics only logs it; dlrn reports the case."""
    rng = np.random.default_rng(0)
    mask = np.zeros((12, 12), dtype=np.uint8)
    mask[3:9, 3:9] = 1
    cases = one_case(tmp_path, "tiny", rng.integers(0, 255, (12, 12), dtype=np.uint8), mask)
    params = {
        "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 20.0]}},
        "featureClass": {"firstorder": None},
        "setting": {"binWidth": 25},
    }
    result = extract_features(cases, params, jobs=1, progress=False)
    assert result.features.empty
    error = result.failures.set_index("case_id").loc["tiny", "error"]
    assert "log-sigma-20-0-mm-3D_firstorder" in error
    assert "FeatureExtractionError" in error


def test_repeat_mask_column_extracts_only_cases_that_have_it(tmp_path):
    rng = np.random.default_rng(1)
    rows = {}
    for name in ("a", "b", "c"):
        image = rng.integers(0, 255, (40, 40), dtype=np.uint8)
        mask = np.zeros((40, 40), dtype=np.uint8)
        mask[10:30, 8:28] = 255
        Image.fromarray(image).save(tmp_path / f"{name}.png")
        Image.fromarray(mask).save(tmp_path / f"{name}_mask.png")
        rows[name] = {"image": str(tmp_path / f"{name}.png"),
                      "mask": str(tmp_path / f"{name}_mask.png"),
                      "mask_reader2": str(tmp_path / f"{name}_mask.png") if name != "b" else None}
    cases = pd.DataFrame.from_dict(rows, orient="index")
    first = extract_features(cases, "fast", jobs=1, progress=False)
    repeat = extract_features(cases, "fast", mask_column="mask_reader2", jobs=1, progress=False)
    assert list(first.features.index) == ["a", "b", "c"]
    assert list(repeat.features.index) == ["a", "c"]
    pd.testing.assert_frame_equal(repeat.features, first.features.loc[["a", "c"]])


def test_mask_label_picks_one_value_of_a_label_map(tmp_path):
    rng = np.random.default_rng(2)
    labels = np.zeros((40, 40), dtype=np.uint8)
    labels[5:20, 5:20] = 1
    labels[22:38, 22:38] = 2
    cases = one_case(tmp_path, "x", rng.integers(0, 255, (40, 40), dtype=np.uint8), labels)
    area = "original_shape2D_PixelSurface"
    whole = extract_features(cases, "fast", jobs=1, progress=False).features.loc["x", area]
    second = extract_features(cases, "fast", mask_label=2, jobs=1, progress=False)
    assert whole == 15 * 15 + 16 * 16
    assert second.features.loc["x", area] == 16 * 16
    with pytest.raises(ConfigError, match="disagrees"):
        extract_features(cases, {**load_params("fast"), "setting": {"label": 1}}, mask_label=2)


def test_presets_and_parameter_files_are_validated(tmp_path):
    assert set(load_params("seed")["imageType"]) >= {"Original", "LoG", "Wavelet", "LBP2D"}
    assert list(load_params("fast")["imageType"]) == ["Original"]
    with pytest.raises(ConfigError, match="neither a preset"):
        load_params("sead")
    cases = {
        "force2D": "setting:\n  force2D: true\n",
        "needs 3D images": "featureClass:\n  shape:\n",
        "LBP3D": "imageType:\n  LBP3D: {}\n",
        "not a valid PyRadiomics": "setting:\n  binWidth: wide\n",
        "not valid YAML": "setting: [unclosed\n",
    }
    for message, text in cases.items():
        path = tmp_path / "params.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message) as caught:
            load_params(path)
        assert str(path) in str(caught.value)


def test_cohort_table_problems_are_named():
    with pytest.raises(ConfigError, match="no column 'mask_reader2'"):
        extract_features(pd.DataFrame({"image": ["a"], "mask": ["b"]}, index=["x"]),
                         "fast", mask_column="mask_reader2")
    duplicated = pd.DataFrame({"image": ["a", "b"], "mask": ["c", "d"]}, index=["x", "x"])
    with pytest.raises(DlrnError, match="duplicate case ids in the cohort table: x"):
        extract_features(duplicated, "fast")
    empty_mask = pd.DataFrame({"image": ["a"], "mask": [None]}, index=["x"])
    with pytest.raises(DlrnError, match="case x: column 'mask' is empty"):
        extract_features(empty_mask, "fast")


def test_bright_8bit_rois_are_binned_correctly(tmp_path):
    """PyRadiomics 3.0.1 overflows its bin edges on uint8 ROIs reaching 255; dlrn avoids it."""
    rng = np.random.default_rng(0)
    mask = np.zeros((60, 60), dtype=np.uint8)
    mask[10:50, 10:50] = 255
    cases = one_case(tmp_path, "bright", rng.integers(0, 256, (60, 60), dtype=np.uint8), mask)
    ours = extract_features(cases, "fast", jobs=1, progress=False).features.loc["bright"]
    reference = direct_pyradiomics(preset_path("fast"), *cases.loc["bright"])
    assert_same_values(ours, reference)
    # 52 grey-level bins of uniform noise: joint entropy near log2(52^2) = 11.4
    assert ours["original_glcm_JointEntropy"] > 10
