"""The stand-alone commands and ``dlrn run`` are one wiring: same settings, same models."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from dlrn.cli import build_parser, main
from dlrn.cli import deep as deep_cli
from dlrn.cli import model as model_cli
from dlrn.study.config import ClassifierSettings, DeepSettings, SelectionSettings, study_from_dict
from dlrn.study.pipeline import run_stages
from dlrn.study.stages import STAGES


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_every_dl_setting_is_a_train_dl_option_and_back():
    assert set(deep_cli.SETTING_OPTIONS.values()) == _names(DeepSettings) - {"enabled"}
    parser = build_parser()
    args = parser.parse_args(["train-dl", "t.csv", "--out", "o", "--lr", "1e-3", "--no-augment",
                              "--margin", "10%", "--optimizer", "sgd", "--patience", "3"])
    dl = deep_cli.deep_section(args)
    assert (dl.learning_rate, dl.augment, dl.crop_margin, dl.optimizer, dl.patience) == (
        0.001, False, "10%", "sgd", 3)
    assert dl.epochs == DeepSettings().epochs  # not given: the study file's default


def test_every_classifier_and_selection_setting_is_a_model_option():
    options = set(name for _, name in model_cli.SETTING_OPTIONS.values())
    assert options | {"models"} == _names(ClassifierSettings) | _names(SelectionSettings)


def test_every_radiomics_setting_is_an_extract_option():
    from dlrn.cli import extract as extract_cli
    from dlrn.study.config import RadiomicsSettings

    args = build_parser().parse_args(["extract", "t.csv", "--out", "f.csv", "--jobs", "2",
                                      "--preset", "fast", "--cache", "c",
                                      "--scheduler", "tcp://h:1"])
    section = extract_cli.radiomics_section(args)
    assert set(dataclasses.asdict(section)) == _names(RadiomicsSettings)
    assert dataclasses.asdict(section) == {"preset": "fast", "jobs": 2, "cache_dir": "c",
                                           "scheduler": "tcp://h:1"}


def test_a_model_option_is_validated_like_the_study_file(tmp_path, capsys):
    code = main(["model", "f.csv", "--cohort", "c.csv", "--out", str(tmp_path / "o"),
                 "--p-threshold", "1.5"])
    assert code == 2
    assert "selection.p_threshold: 1.5 is above the maximum 1.0" in capsys.readouterr().err


@pytest.fixture()
def study_models(synthetic_cohort_csv, tmp_path):
    """cohort, radiomics and hcr_models of ``dlrn run`` on the synthetic cohort."""
    folder = synthetic_cohort_csv.parent
    config = study_from_dict({
        "cohort": {"table": str(synthetic_cohort_csv), "patient": "patient_id"},
        "radiomics": {"preset": "fast", "jobs": 1},
        "classifiers": {"models": ["LR", "RandomForest"], "cv_folds": 3,
                        "grids": {"LR": {"C": [1.0]}, "RandomForest": {"n_estimators": [20]}}},
        "selection": {"lasso_folds": 3, "p_threshold": 0.1},
        "output": str(tmp_path / "study")}, base_dir=folder)
    stages = [s for s in STAGES if s.name in ("cohort", "radiomics", "hcr_models")]
    run_stages(stages, config, progress=False)
    return config.output_dir / "stages"


def test_dlrn_model_and_the_study_give_the_same_models_from_the_same_inputs(study_models,
                                                                           tmp_path):
    out = tmp_path / "model"
    code = main(["model", str(study_models / "radiomics" / "features.csv"),
                 "--cohort", str(study_models / "cohort" / "cases.csv"),
                 "--split-column", "set", "--patient", "patient_id", "--out", str(out),
                 "--classifiers", "LR,RandomForest", "--cv-folds", "3", "--lasso-folds", "3",
                 "--p-threshold", "0.1",
                 "--grids", "{LR: {C: [1.0]}, RandomForest: {n_estimators: [20]}}"])
    assert code == 0
    study = study_models / "hcr_models"
    for name in ("predictions.csv", "oof.csv", "best.json"):
        assert (out / name).read_text() == (study / name).read_text(), name
    selected = pd.read_csv(out / "selected_features.csv")
    assert selected.equals(pd.read_csv(study / "result" / "selected_features.csv"))


def test_dlrn_model_refuses_a_patient_on_both_sides(study_models, tmp_path, capsys):
    cases = pd.read_csv(study_models / "cohort" / "cases.csv", dtype={"case_id": str})
    first_test = cases.index[cases["set"] == "test"][0]
    cases.loc[first_test, "patient_id"] = cases.loc[cases["set"] == "train",
                                                    "patient_id"].iloc[0]
    table = tmp_path / "cases.tsv"  # tab-separated tables read as such
    cases.to_csv(table, sep="\t", index=False)
    code = main(["model", str(study_models / "radiomics" / "features.csv"), "--cohort",
                 str(table), "--split-column", "set", "--patient", "patient_id",
                 "--out", str(tmp_path / "o"), "--classifiers", "LR"])
    assert code == 2 and "leakage" in capsys.readouterr().err


@pytest.mark.slow
def test_train_dl_and_the_study_give_the_same_cnn_results_from_the_same_inputs(
        synthetic_cohort_csv, tmp_path):
    dl = {"backbones": ["resnet18"], "weights": None, "epochs": 1, "batch_size": 8,
          "image_size": 32, "pca_components": 4}
    config = study_from_dict({
        "cohort": {"table": str(synthetic_cohort_csv), "patient": "patient_id"},
        "classifiers": {"cv_folds": 2}, "dl": dl, "output": str(tmp_path / "study")},
        base_dir=synthetic_cohort_csv.parent)
    run_stages([s for s in STAGES if s.name in ("cohort", "deep")], config, progress=False)
    stages = config.output_dir / "stages"
    out = tmp_path / "train-dl"
    code = main(["train-dl", str(stages / "cohort" / "cases.csv"), "--split-column", "set",
                 "--patient", "patient_id", "--out", str(out), "--cv-folds", "2",
                 "--backbones", "resnet18", "--weights", "none", "--epochs", "1",
                 "--batch-size", "8", "--image-size", "32", "--pca-components", "4",
                 "--no-progress"])
    assert code == 0
    # final CNN's predictions, cross-fitted training rows, fused (PCA) features, choice
    for name in ("predictions.csv", "oof.csv", "features.csv", "best.json"):
        assert (out / name).read_text() == (stages / "deep" / name).read_text(), name
