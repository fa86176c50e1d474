"""Which clinical features the clinical models and the nomogram use, and the methods text."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dlrn.clinical_predictors import clinical_choice
from dlrn.report.html import build_report
from dlrn.study.config import study_from_dict
from dlrn.study.methods import methods_summary, weights_text
from dlrn.study.pipeline import StudyContext, report_sections, run_stages
from dlrn.study.stages import STAGES

CLINICAL_STAGES = [s for s in STAGES if s.name in ("cohort", "clinical", "clinical_models")]


def test_independent_predictors_are_used_when_there_are_any():
    assert clinical_choice(["a", "b"], ["b"], fallback="univariate", p_threshold=0.05) == (
        ["b"], "multivariate", None)


def test_without_independent_predictors_the_univariate_ones_are_used_with_a_note():
    selected, basis, note = clinical_choice(["a", "b"], [], fallback="univariate",
                                            p_threshold=0.05)
    assert (selected, basis) == (["a", "b"], "univariate")
    assert "multivariate analysis (p < 0.05)" in note and "(a, b)" in note


@pytest.mark.parametrize(("univariate", "fallback", "why"), [
    ([], "univariate", "in the univariate analysis"),
    (["a"], "none", "clinical_fallback is none")])
def test_no_clinical_model_when_nothing_qualifies(univariate, fallback, why):
    selected, basis, note = clinical_choice(univariate, [], fallback=fallback, p_threshold=0.05)
    assert (selected, basis) == ([], "none")
    assert why in note and "DLR score alone" in note


@pytest.fixture()
def collinear_table(synthetic_cohort_csv, tmp_path):
    """The synthetic cohort with two near-copies of one predictive measurement: each is
    significant alone, neither beside the other (the multivariate SEs explode)."""
    folder = synthetic_cohort_csv.parent
    table = pd.read_csv(synthetic_cohort_csv, dtype={"case_id": str})
    for column in ("image", "mask", "mask_reader2"):
        table[column] = [str(folder / path) for path in table[column]]
    rng = np.random.default_rng(1)
    table["size_a"] = 1.5 * table["label"] + rng.normal(size=len(table))
    table["size_b"] = table["size_a"] + rng.normal(scale=0.05, size=len(table))
    path = tmp_path / "cases.csv"
    table.to_csv(path, index=False)
    return path


def _study(table, tmp_path, fallback: str, selection: str = "enter"):
    return study_from_dict({
        "cohort": {"table": str(table), "patient": "patient_id",
                   "clinical": {"size_a": "continuous", "size_b": "continuous"}},
        "classifiers": {"models": ["LR"], "cv_folds": 3, "grids": {"LR": {"C": [1.0]}}},
        "dl": {"weights": None},
        "evaluation": {"clinical_fallback": fallback, "clinical_selection": selection,
                       "nomogram_bootstrap": 0},
        "output": str(tmp_path / "out")}, base_dir=tmp_path)


def test_no_independent_predictor_falls_back_to_univariate_or_skips_as_set(collinear_table,
                                                                           tmp_path):
    """Under the enter rule, neither near-copy is significant beside the other."""
    config = _study(collinear_table, tmp_path, "univariate")
    result = run_stages(CLINICAL_STAGES, config, progress=False)
    folder = config.output_dir / "stages"
    record = json.loads((folder / "clinical" / "selected.json").read_text())
    assert record["univariate"] == ["size_a", "size_b"] and record["independent"] == []
    assert (record["selected"], record["basis"]) == (["size_a", "size_b"], "univariate")
    models = result.records["clinical_models"]
    assert models.status == "done"
    assert list(pd.read_csv(folder / "clinical_models" / "feature_names.csv").columns) == [
        "case_id", "size_a", "size_b"]
    assert models.summary.notes == [record["note"]]
    html = build_report(config.output_dir, report_sections(CLINICAL_STAGES, result.records),
                        methods_summary(StudyContext(config, False, result.records)))
    assert html.read_text().count("univariate analysis instead (size_a, size_b)") >= 3

    config.evaluation.clinical_fallback = "none"
    again = run_stages(CLINICAL_STAGES, config, progress=False)
    assert again.records["cohort"].reused and not again.records["clinical"].reused
    skipped = again.records["clinical_models"]
    assert skipped.status == "skipped" and "clinical_fallback is none" in skipped.reason


def test_backward_elimination_keeps_one_of_two_near_copies_and_the_report_shows_its_path(
        collinear_table, tmp_path):
    """The default procedure refits after dropping the weaker copy: the other one stays, as R's
    drop1 loop keeps it; the path, the events per term and the methods text say so, and
    changing the procedure reruns the clinical stage."""
    config = _study(collinear_table, tmp_path, "univariate", selection="backward")
    stages = CLINICAL_STAGES[:2]
    result = run_stages(stages, config, progress=False)
    folder = config.output_dir / "stages" / "clinical"
    record = json.loads((folder / "selected.json").read_text())
    assert len(record["independent"]) == 1 and record["basis"] == "backward"
    path = pd.read_csv(folder / "tables" / "selection_path.csv")
    assert path["removed"].tolist() == [True, False]
    assert path.loc[0, "model"] == "size_a, size_b" and path.loc[0, "df"] == 1
    assert path.loc[1, "variable"] == record["independent"][0]
    assert path.loc[1, "p_value"] < 0.05 <= path.loc[0, "p_value"]
    summary = result.records["clinical"].summary
    facts = summary.facts()
    assert facts["removed by backward elimination, in order"] == path.loc[0, "variable"]
    cases = pd.read_csv(config.output_dir / "stages" / "cohort" / "cases.csv")
    labels = cases.loc[cases["set"] == "train", "label"]
    events = min(labels.sum(), len(labels) - labels.sum())  # training cases only
    outcome = "positive" if events == labels.sum() else "negative (the rarer class)"
    counted = f"{events} {outcome} cases of {len(labels)}"
    assert summary.events == [
        f"multivariate model before backward elimination: {counted}, 2 terms, "
        f"{events / 2:.1f} events per term",
        f"final multivariate model: {counted}, 1 terms, {events:.1f} events per term"]
    sentences = " ".join(s for _, s in methods_summary(StudyContext(config, False,
                                                                    result.records)))
    assert "then backward elimination by likelihood-ratio tests (p < 0.05" in sentences
    assert "drop1(fit, test = \"LRT\") in a loop" in sentences
    assert "Events per term: multivariate model before backward elimination" in sentences

    config.evaluation.clinical_selection = "enter"
    again = run_stages(stages, config, progress=False)
    assert again.records["cohort"].reused and not again.records["clinical"].reused
    assert json.loads((folder / "selected.json").read_text())["independent"] == []
    assert len(pd.read_csv(folder / "tables" / "selection_path.csv")) == 1


def test_methods_name_the_initial_weights_in_words(tmp_path):
    assert weights_text(None) == "random initialisation (no pretrained weights)"
    assert weights_text("imagenet") == "ImageNet-pretrained weights (torchvision)"
    assert weights_text(str(tmp_path / "w" / "cnn.safetensors")) == (
        "pretrained weights from the file cnn.safetensors")
    config = study_from_dict({"cohort": {"table": "cases.csv"},
                              "dl": {"weights": None, "epochs": 1, "backbones": ["resnet18"]}},
                             base_dir=tmp_path)
    text = " ".join(sentence for _, sentence in methods_summary(StudyContext(config, False)))
    assert "random initialisation (no pretrained weights), trained for 1 epoch " in text
    for leak in ("None", "[]", "{}", "True", "False", "epochs"):
        assert leak not in text


def test_descriptor_tokens_become_feature_names_every_classifier_accepts():
    # "heterogeneous: predominantly fat" stopped LightGBM (JSON characters in a feature name)
    from lightgbm import LGBMClassifier
    from xgboost import XGBClassifier

    from dlrn.clinical_predictors import model_feature_names

    terms = ["tissue[heterogeneous: predominantly fat]", "tissue[a,b]", "tissue[a_b]",
             "shape[irregular]", "age"]
    names = model_feature_names(terms)
    assert names == ["tissue_heterogeneous_ predominantly fat", "tissue_a_b", "tissue_a_b_2",
                     "shape_irregular", "age"]
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.integers(0, 2, (40, len(names))).astype(float), columns=names)
    y = rng.integers(0, 2, 40)
    LGBMClassifier(n_estimators=2, verbose=-1).fit(X, y)
    XGBClassifier(n_estimators=2).fit(X, y)
