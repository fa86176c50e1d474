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
evaluation: {{clinical_p_threshold: 0.9}}
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

