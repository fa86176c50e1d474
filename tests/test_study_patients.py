"""A study whose patients have several images: clustered statistics and patient-level tables
in the comparison, the model stages and the report (issue 10, patient-level inference)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from dlrn.evaluation import TRAIN_OOF, metrics_table
from dlrn.study.config import study_from_dict
from dlrn.study.pipeline import run_study
from dlrn.synthetic import make_synthetic_cohort


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Clinical and HCR models and their comparison on 60 images, 40% second views."""
    out = tmp_path_factory.mktemp("patients")
    csv = make_synthetic_cohort(out / "cohort", n_cases=60, seed=0, image_size=(128, 128),
                                second_view_fraction=0.4)
    config = study_from_dict({
        "cohort": {"table": str(csv), "patient": "patient_id",
                   "clinical": {"age": "continuous", "sex": "categorical"}},
        "radiomics": {"preset": "fast", "jobs": 1},
        "classifiers": {"models": ["LR", "RandomForest"], "cv_folds": 3,
                        "grids": {"LR": {"C": [1.0]}, "RandomForest": {"n_estimators": [20]}}},
        "selection": {"lasso_folds": 3, "p_threshold": 0.1},
        "evaluation": {"clinical_p_threshold": 1.0, "nomogram_bootstrap": 0},
        "dl": {"enabled": False},
        "output": str(out / "study")}, base_dir=csv.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny sets: notes on undefined calibration slopes
        run_study(config, progress=False)
    return config.output_dir


def test_the_cohort_has_patients_with_several_images(study):
    cases = pd.read_csv(study / "stages" / "cohort" / "cases.csv", dtype=str)
    assert cases["patient_id"].duplicated().any()


def test_comparison_has_patient_level_tables_and_wider_cis_than_image_level(study):
    folder = study / "stages" / "comparison"
    evaluation = folder / "evaluation"
    for name in ("patient_metrics", "patient_delong", "patient_hosmer_lemeshow",
                 "patient_predictions", "metrics_apparent"):
        assert (evaluation / f"{name}.csv").is_file()
    cases = pd.read_csv(study / "stages" / "cohort" / "cases.csv", dtype=str)
    table7 = pd.read_csv(evaluation / "metrics.csv")
    patients = pd.read_csv(evaluation / "patient_metrics.csv")
    for name in table7["set"].unique():
        in_set = cases[cases["set"] == name.split(" (")[0]]
        rows = table7[table7["set"] == name]
        assert set(rows["n_patients"]) == {in_set["patient_id"].nunique()}
        assert set(patients.loc[patients["set"] == name, "n"]) == {
            in_set["patient_id"].nunique()}
    predictions = pd.read_csv(folder / "predictions.csv", index_col="case_id")
    oof = pd.read_csv(folder / "oof.csv", index_col="case_id")
    scores = [c for c in predictions.columns if c not in ("label", "set")]
    image_level = metrics_table(predictions, scores, oof=oof[scores], auc_method="bootstrap")
    training = (table7["set"] == TRAIN_OOF).to_numpy()
    assert (image_level["set"].to_numpy() == table7["set"].to_numpy()).all()
    width = (table7["auc_ci_high"] - table7["auc_ci_low"])[training]
    image_width = (image_level["auc_ci_high"] - image_level["auc_ci_low"])[training]
    assert (width > image_width).all()
    delong = pd.read_csv(evaluation / "delong.csv")
    assert delong["method"].str.startswith("obuchowski").all()
    assert delong["p_value_holm"].notna().all()


def test_model_stages_report_out_of_fold_and_patient_level_rows(study):
    for stage in ("clinical_models", "hcr_models"):
        evaluation = study / "stages" / stage / "evaluation"
        metrics = pd.read_csv(evaluation / "metrics.csv")
        assert TRAIN_OOF in set(metrics["set"]) and "train" not in set(metrics["set"])
        assert "n_patients" in metrics.columns
        assert set(pd.read_csv(evaluation / "metrics_apparent.csv")["set"]) == {
            "train (apparent)"}
        assert (evaluation / "patient_metrics.csv").is_file()


def test_report_shows_patient_tables_with_captions_that_say_how(study):
    html = (study / "report" / "report.html").read_text()
    assert "per patient" in html and "<th>Patients</th>" in html
    assert "CIs and tests count the patient, not the image, as the unit" in html
    assert "Apparent (in-sample) training-set performance" in html
    assert "p value (Holm-adjusted)" in html
    assert "patient level" in html  # the patient-level figures' captions
    assert "grouped by patient" in html  # the methods text
    workbook = pd.ExcelFile(study / "report" / "tables.xlsx").sheet_names
    assert "patient_metrics" in workbook


def test_study_file_evaluation_settings_reach_the_evaluation(tmp_path):
    from dlrn.errors import ConfigError
    from dlrn.study.stages.evaluating import evaluation_options, evaluation_settings

    def config(**evaluation):
        return study_from_dict({"cohort": {"table": "c.csv"}, "evaluation": evaluation},
                               base_dir=tmp_path)

    options = evaluation_options(evaluation_settings(config(
        patient_aggregation="max", auc_ci="obuchowski", comparison="cluster-bootstrap",
        calibration_bins=6)))
    assert options == {"hl_groups": 6, "patient_aggregation": "max",
                       "auc_method": "obuchowski", "comparison_method": "cluster-bootstrap"}
    with pytest.raises(ConfigError, match=r"evaluation\.patient_aggregation"):
        config(patient_aggregation="median")
