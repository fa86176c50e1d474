"""The U-Net in a study: the segmentation stage, the expert-vs-automatic comparison, the
bundle's U-Net in ``dlrn predict`` (cases without a mask) and in ``dlrn serve`` (the
image alone), and ``dlrn train-seg`` / ``dlrn segment`` on the same stage code.

One small study (the session's 60 synthetic cases, a tiny CNN, a 32-pixel U-Net) runs
once for the module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dlrn.cli import main
from dlrn.imaging import read_image, read_mask
from dlrn.study.bundle import Bundle
from dlrn.study.predict import predict_table

STUDY = """\
cohort:
  table: {table}
  patient: patient_id
  clinical: {{age: continuous, margin: categorical}}
radiomics: {{preset: fast, jobs: 1}}
selection: {{lasso_folds: 3}}
classifiers: {{models: [LR], cv_folds: 3}}
dl: {{backbones: [resnet18], weights: null, epochs: 1, batch_size: 16, image_size: 32,
     pca_components: 4}}
segmentation: {{enabled: true, image_size: 32, epochs: 6, batch_size: 8, patience: null}}
evaluation: {{clinical_p_threshold: 0.9, nomogram_bootstrap: 10}}
output: study
seed: 0
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory, synthetic_cohort_csv) -> Path:
    """The study, run as a user runs it from another folder: the study file, its cohort
    table and the table's images named by paths relative to the working directory or to
    the file that names them (issue 31)."""
    folder = tmp_path_factory.mktemp("segmentation_study")
    table = os.path.relpath(synthetic_cohort_csv, folder)
    (folder / "study.yaml").write_text(STUDY.format(table=table))
    here = os.getcwd()
    os.chdir(folder.parent)
    try:
        assert main(["run", f"{folder.name}/study.yaml", "--quiet"]) == 0
    finally:
        os.chdir(here)
    return folder / "study"


def _cases(study: Path) -> pd.DataFrame:
    return pd.read_csv(study / "stages" / "cohort" / "cases.csv", dtype={"case_id": str},
                       index_col="case_id")


def test_the_stage_scores_every_test_case_against_its_expert_mask(study):
    stage = study / "stages" / "segmentation"
    cases = _cases(study)
    test_ids = set(cases.index[cases["set"] == "test"])
    masks = pd.read_csv(stage / "masks.csv", dtype={"case_id": str}, index_col="case_id")
    assert set(masks.index) == set(cases.index[cases["set"] != "train"])  # none dropped
    per_case = pd.read_csv(stage / "per_case.csv", dtype={"case_id": str}, index_col="case_id")
    assert test_ids <= set(per_case.index)
    assert per_case["dice"].between(0, 1).all() and (per_case["iou"] <= per_case["dice"]).all()
    summary = pd.read_csv(stage / "tables" / "segmentation_test.csv", index_col="metric")
    assert {"dice", "iou", "hd95"} <= set(summary.index)
    dice = summary.loc["dice"]
    assert dice["ci_low"] <= dice["mean"] <= dice["ci_high"]
    record = json.loads((stage / "stage.json").read_text())["summary"]
    assert record["cases_trained"] + record["cases_validated"] == (cases["set"] == "train").sum()
    assert any(name.startswith("figures/overlay_test_worst") for name in record["figures"])
    assert (stage / "model" / "unet.safetensors").is_file()
    for path in masks["mask"].dropna():  # each written mask reads back at its image's grid
        case = Path(path).stem
        assert read_mask(path).GetSize() == read_image(cases.at[case, "image"]).GetSize()
    report = (study / "report" / "report.html").read_text()
    assert "Lesion segmentation (U-Net)" in report and "Automatic segmentation: a 2D U-Net" \
        in report


def test_expert_masks_through_the_bundle_give_the_study_s_own_test_auc(study):
    """The comparison's expert column is the study's own result: the bundle, fed the expert
    masks, reproduces the HCR model's test AUC of the models stage."""
    table = pd.read_csv(study / "stages" / "automatic_masks" / "tables" /
                        "expert_vs_automatic.csv")
    stage = json.loads((study / "stages" / "automatic_masks" / "stage.json").read_text())
    masks = pd.read_csv(study / "stages" / "segmentation" / "masks.csv")
    assert stage["summary"]["cases"] + stage["summary"]["no_lesion"] == len(masks)
    if stage["summary"]["cases"] == 0:
        pytest.skip("the tiny U-Net found no lesion in any case")
    hcr = table[(table["model"] == "HCR-LR") & (table["set"] == "test")].iloc[0]
    expert = pd.read_csv(study / "stages" / "automatic_masks" / "predictions_expert.csv",
                         dtype={"case_id": str}, index_col="case_id")
    study_rows = pd.read_csv(study / "stages" / "hcr_models" / "predictions.csv",
                             dtype={"case_id": str}, index_col="case_id")
    np.testing.assert_allclose(expert["HCR-LR"], study_rows.loc[expert.index, "HCR-LR"],
                               rtol=1e-9)
    assert 0 <= hcr["p_value"] <= 1 and hcr["cases"] == hcr["cases"]
    # the CNN crops of the U-Net's masks too; the clinical model needs no mask
    assert set(table["model"]) == {"HCR-LR", "DL-resnet18", "DLR-LR", "DLRN"}


def _table_without_masks(study: Path, folder: Path, blank_only: str | None = None) -> Path:
    cases = _cases(study)
    test = cases[cases["set"] == "test"].reset_index()
    columns = ["case_id", "image", "mask", "label", "patient_id", "age", "margin"]
    table = test[columns].copy()
    if blank_only is None:
        table = table.drop(columns="mask")
    else:
        table.loc[table["case_id"] == blank_only, "mask"] = ""
    path = folder / "new.csv"
    table.to_csv(path, index=False)
    return path


def test_predict_without_masks_uses_the_bundle_s_unet_and_says_so(study, tmp_path):
    path = _table_without_masks(study, tmp_path)
    predicted = predict_table(study / "bundle", path, progress=False,
                              masks_dir=tmp_path / "masks")
    cases = _cases(study)
    assert set(predicted.index) == set(cases.index[cases["set"] == "test"])  # none dropped
    found = predicted["HCR-LR"].notna()
    assert predicted.loc[found, "note"].str.contains("predicted by the study's U-Net").all()
    assert predicted.loc[~found, "note"].str.contains("no lesion").all()
    if not found.any():
        pytest.skip("the tiny U-Net found no lesion in any case")
    # the same numbers as dlrn predict given those masks as files
    given = pd.read_csv(tmp_path / "masks" / "cases_with_masks.csv")
    given_path = tmp_path / "given.csv"
    given.to_csv(given_path, index=False)
    again = predict_table(study / "bundle", given_path, progress=False)
    columns = [c for c in again.columns if c != "note"]
    pd.testing.assert_frame_equal(predicted.loc[found, columns], again[columns],
                                  check_dtype=False)


def test_predict_segments_only_the_case_whose_mask_cell_is_empty(study, tmp_path):
    cases = _cases(study)
    blank = cases.index[cases["set"] == "test"][0]
    path = _table_without_masks(study, tmp_path, blank_only=blank)
    predicted = predict_table(study / "bundle", path, progress=False,
                              masks_dir=tmp_path / "masks")
    written = [p.stem for p in (tmp_path / "masks").glob("*.png")]
    assert written in ([blank], [])
    others = predicted.drop(index=blank)
    assert not others["note"].fillna("").str.contains("U-Net").any()


def test_the_calculator_proposes_the_unet_s_roi_and_predicts_from_the_image_alone(study):
    from dlrn.serve.predictor import Predictor

    predictor = Predictor(study / "bundle")
    cases = _cases(study)
    case = cases.index[cases["set"] == "test"][0]
    image = read_image(cases.at[case, "image"])
    proposed = predictor.proposed_roi(image)
    model = Bundle.open(study / "bundle").segmentation()
    assert proposed.shape == sitk.GetArrayFromImage(image).shape
    try:
        expected = model.predict(image)
    except Exception:  # NoLesionFound: the proposal is empty, the page offers the tools
        expected = np.zeros_like(proposed)
    assert (proposed == expected).all()


def test_train_seg_and_segment_commands(synthetic_cohort_csv, tmp_path):
    out = tmp_path / "seg"
    assert main(["train-seg", str(synthetic_cohort_csv), "--out", str(out), "--image-size",
                 "32", "--epochs", "2", "--batch-size", "8", "--quiet"]) == 0
    assert (out / "model" / "segmentation.json").is_file()
    assert (out / "tables" / "segmentation_test.csv").is_file()
    segmented = tmp_path / "segmented"
    assert main(["segment", str(out / "model"), str(synthetic_cohort_csv), "--out",
                 str(segmented), "--quiet"]) == 0
    masks = pd.read_csv(segmented / "masks.csv")
    assert len(masks) == len(pd.read_csv(synthetic_cohort_csv))  # every case: a mask or a note
    assert (masks["mask"].notna() | masks["note"].notna()).all()
    assert (segmented / "summary.csv").is_file()  # the table's expert masks: scored
    # a case without an expert mask is segmented, and left out of the scores only
    table = pd.read_csv(synthetic_cohort_csv)
    table.loc[0, "mask"] = None
    for column in ("image", "mask"):  # the copy lies elsewhere: its paths absolute
        table[column] = [p if pd.isna(p) else str(synthetic_cohort_csv.parent / p)
                         for p in table[column]]
    partial = tmp_path / "partial.csv"
    table.to_csv(partial, index=False)
    assert main(["segment", str(out / "model"), str(partial), "--out",
                 str(tmp_path / "partial"), "--quiet"]) == 0
    assert len(pd.read_csv(tmp_path / "partial" / "masks.csv")) == len(table)
    scored = pd.read_csv(tmp_path / "partial" / "per_case.csv")
    assert len(scored) == len(table) - 1


def test_without_a_unet_in_the_bundle_a_missing_mask_is_the_reader_s_error(bundle_dir, cohort,
                                                                           tmp_path):
    """The serve tests' bundle has no U-Net: a table without masks stops as it always did,
    naming the column, and nothing is written."""
    from dlrn.cohort import CohortValidationError

    table = tmp_path / "new.csv"
    cohort.head(3).drop(columns="mask").to_csv(table, index=False)
    with pytest.raises(CohortValidationError, match=r"missing column.*'mask'"):
        predict_table(bundle_dir, table, progress=False, masks_dir=tmp_path / "masks")
    assert not (tmp_path / "masks").exists()


def test_predict_segment_and_extract_with_paths_relative_to_another_folder(study, tmp_path,
                                                                           monkeypatch):
    """Issue 31: with every path relative to the working directory (not the study's, not
    the table's), ``dlrn predict --out preds.csv`` reads back the masks its U-Net drew
    (the folder was doubled: ``preds_masks/preds_masks/...``), and ``dlrn segment``'s
    table of masks is read by ``dlrn extract`` and ``dlrn predict`` from yet another
    folder."""
    work = tmp_path / "work"
    (work / "cases").mkdir(parents=True)
    table = _table_without_masks(study, work / "cases")
    monkeypatch.chdir(work)
    bundle = os.path.relpath(study / "bundle")
    assert main(["predict", bundle, "cases/new.csv", "--out", "preds.csv", "--quiet"]) == 0
    predicted = pd.read_csv(work / "preds.csv", dtype={"case_id": str}, index_col="case_id")
    assert len(predicted) == len(pd.read_csv(table))
    drawn = predicted["note"].str.contains("predicted by the study's U-Net")
    assert predicted.loc[drawn, "HCR-LR"].notna().all()
    assert sorted(p.stem for p in (work / "preds_masks").glob("*.png")) == sorted(
        predicted.index[drawn])
    model = os.path.relpath(study / "stages" / "segmentation" / "model")
    assert main(["segment", model, "cases/new.csv", "--out", "seg", "--quiet"]) == 0
    filled = pd.read_csv(work / "seg" / "cases_with_masks.csv", dtype={"case_id": str})
    assert filled["image"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    segmented = filled.dropna(subset=["mask"])
    assert segmented["mask"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    if segmented.empty:
        pytest.skip("the tiny U-Net found no lesion in any case")
    (work / "elsewhere").mkdir()
    monkeypatch.chdir(work / "elsewhere")
    segmented.to_csv("segmented.csv", index=False)
    assert main(["extract", "segmented.csv", "--out", "features.csv", "--preset", "fast",
                 "--jobs", "1", "--no-progress"]) == 0
    assert len(pd.read_csv("features.csv")) == len(segmented)
    assert main(["predict", os.path.relpath(study / "bundle"), "segmented.csv", "--out",
                 "again.csv", "--quiet"]) == 0
    again = pd.read_csv("again.csv", dtype={"case_id": str}, index_col="case_id")
    np.testing.assert_allclose(again["HCR-LR"], predicted.loc[again.index, "HCR-LR"])


def _unlike_images(folder: Path, shape: tuple[int, int]) -> pd.DataFrame:
    """Images that hold no lesion, or no ultrasound, each with an ROI drawn in its middle:
    noise, a blank grey frame, a black one, a colour-photograph-like gradient with shapes
    (read as grey)."""
    from PIL import Image

    rng = np.random.default_rng(7)
    rows, cols = shape
    y, x = np.mgrid[:rows, :cols] / max(shape)
    photo = np.stack([200 * x + 30, 180 * y + 40, 120 * (1 - x) + 60], axis=-1)
    photo[(y - 0.5) ** 2 + (x - 0.3) ** 2 < 0.02] = (250, 240, 40)
    photo[int(rows * 0.6):int(rows * 0.8), int(cols * 0.55):int(cols * 0.9)] = (20, 90, 200)
    pictures = {"noise": rng.integers(0, 256, shape), "blank": np.full(shape, 128),
                "black": np.zeros(shape), "photo": photo}
    mask = np.zeros(shape, dtype=np.uint8)
    mask[rows // 3:2 * rows // 3, cols // 3:2 * cols // 3] = 255
    Image.fromarray(mask).save(folder / "drawn.png")
    rows_out = []
    for name, pixels in pictures.items():
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
        rows_out.append({"case_id": name, "image": f"{name}.png", "mask": "drawn.png",
                         "age": 50, "margin": "well-defined"})
    return pd.DataFrame(rows_out)


def test_the_applicability_check_is_fitted_bundled_and_reported(study):
    stage = study / "stages" / "applicability"
    domain = json.loads((stage / "domain.json").read_text())
    assert domain["quantile"] == 0.99 and domain["threshold"] > 0
    evidence = json.loads((stage / "evidence.json").read_text())
    assert evidence["calibration_images"]["background crop"] > 0
    assessed = pd.read_csv(stage / "assessment.csv", dtype={"case_id": str},
                           index_col="case_id")
    cases = _cases(study)
    assert set(assessed.index) == set(cases.index[cases["set"] != "train"])
    table = pd.read_csv(stage / "tables" / "applicability.csv")
    assert table["share_flagged"].between(0, 1).all()
    bundle = Bundle.open(study / "bundle")
    assert bundle.has("applicability/domain", ".safetensors")
    assert bundle.has("applicability/evidence", ".json")
    report = (study / "report" / "report.html").read_text()
    assert "Applicability check" in report
    # dlrn predict's verdict on the test cases is the study's own
    test = cases[cases["set"] == "test"].reset_index()
    table_path = study.parent / "test_cases.csv"
    test[["case_id", "image", "mask", "label", "patient_id", "age", "margin"]].to_csv(
        table_path, index=False)
    predicted = predict_table(study / "bundle", table_path, progress=False)
    assert predicted["applicable"].tolist() == assessed.loc[predicted.index,
                                                            "applicable"].tolist()
    np.testing.assert_allclose(predicted["feature_distance"],
                               assessed.loc[predicted.index, "feature_distance"], rtol=1e-9)


def test_predict_flags_images_without_a_lesion_or_without_ultrasound(study, tmp_path):
    """The issue's noise, blank, black and photograph: a probability, but never without
    the column and the note that say the image is unlike the study's."""
    from dlrn.applicability import UNLIKE

    cases = _cases(study)
    shape = read_image(cases["image"].iloc[0]).GetSize()[::-1]
    table = _unlike_images(tmp_path, shape)
    table.to_csv(tmp_path / "unlike.csv", index=False)
    predicted = predict_table(study / "bundle", tmp_path / "unlike.csv", progress=False)
    assert set(predicted.index) == set(table["case_id"])
    assert not predicted["applicable"].any()
    assert predicted["applicability_note"].str.startswith(UNLIKE).all()
    assert predicted.loc["blank", "applicability_note"].count("no contrast") == 1
    assert predicted.loc["black", "applicability_note"].count("no contrast") == 1


def test_the_api_returns_the_verdict_with_the_probability(study, tmp_path):
    from fastapi.testclient import TestClient

    from dlrn.applicability import UNLIKE
    from dlrn.serve.app import create_app
    from dlrn.serve.predictor import Predictor

    predictor = Predictor(study / "bundle")
    client = TestClient(create_app(predictor))
    cases = _cases(study)
    shape = read_image(cases["image"].iloc[0]).GetSize()[::-1]
    _unlike_images(tmp_path, shape)
    form = {"age": "50", "margin": "well-defined"}
    files = {"image": ("noise.png", (tmp_path / "noise.png").read_bytes()),
             "mask": ("drawn.png", (tmp_path / "drawn.png").read_bytes())}
    answer = client.post("/api/predict", data=form, files=files)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    verdict = body["applicability"]
    assert verdict["applicable"] is False and verdict["warning"].startswith(UNLIKE)
    assert verdict["reasons"] and all(reason for reason in verdict["reasons"])
    assert verdict["feature_distance"] is not None
    assert set(verdict["thresholds"]) == {"feature_distance", "features_outside_share",
                                          "lesion_evidence"}
    assert body["dlrn_probability"] is not None  # shown, with the warning
    test_case = cases[cases["set"] == "test"].iloc[0]
    files = {"image": ("scan.png", Path(test_case["image"]).read_bytes()),
             "mask": ("mask.png", Path(test_case["mask"]).read_bytes())}
    form = {"age": str(test_case["age"]), "margin": str(test_case["margin"])}
    like = client.post("/api/predict", data=form, files=files).json()["applicability"]
    assessed = pd.read_csv(study / "stages" / "applicability" / "assessment.csv",
                           dtype={"case_id": str}, index_col="case_id")
    assert like["applicable"] == bool(assessed.at[test_case.name, "applicable"])
    assert (like["warning"] == "") == like["applicable"]


def test_the_demo_trains_a_small_unet_when_asked(tmp_path):
    """dlrn demo --segmentation: the demo's study file turns the U-Net on (small and
    quick), so its bundle proposes the ROI; without the option it stays off."""
    import yaml

    from dlrn.cli.study import DEMO_STUDY
    from dlrn.study.config import study_from_dict

    for asked in (True, False):
        text = DEMO_STUDY.format(dl="true", segmentation=str(asked).lower(), external="[]")
        config = study_from_dict(yaml.safe_load(text), base_dir=tmp_path)
        assert config.segmentation.enabled is asked
        assert config.segmentation.image_size <= 64 and config.segmentation.epochs <= 20
        assert config.applicability.enabled
