"""The study's clinical rules end to end in the stages: one encoder fitted on training cases,
exclusions that every later stage respects, and a nomogram without deep learning (RadN)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from study_context import context_with_cases, mark_done

from dlrn.study.config import study_from_dict
from dlrn.study.runner import StudyContext
from dlrn.study.stages.clinical import run as run_clinical
from dlrn.study.stages.cohort import clinical_exclusions
from dlrn.study.stages.comparison import run as run_comparison
from dlrn.study.stages.files import ENCODER_FILE, OOF_FILE, PREDICTIONS_FILE
from dlrn.study.stages.models import fit_models
from dlrn.study.stages.nomogram import run as run_nomogram

CLINICAL = {"age": "continuous", "site": "categorical",
            "margin": {"type": "multilabel", "separator": "&"}}


def _cases(n: int = 90, seed: int = 3) -> pd.DataFrame:
    """Blank ages, '&'-joined descriptors, a level held by two training cases only."""
    rng = np.random.default_rng(seed)
    label = np.tile([0, 1, 0], n // 3)
    age = rng.normal(50 + 8 * label, 8).round()
    age[rng.choice(n, 9, replace=False)] = np.nan
    margin = np.where(label == 1, rng.choice(["angular&indistinct", "angular", "indistinct",
                                              "circumscribed"], n),
                      rng.choice(["circumscribed", "indistinct", "circumscribed", "angular"], n))
    sets = np.repeat(["train", "test", "centre_b"], [60, 18, n - 78])
    return pd.DataFrame({"label": label, "set": sets, "patient_id": [f"p{i}" for i in range(n)],
                         "age": age, "site": rng.choice(["a", "b"], n), "margin": margin},
                        index=pd.Index([f"c{i:03d}" for i in range(n)], name="case_id"))


def _context(tmp_path, cases: pd.DataFrame, **cohort) -> StudyContext:
    config = study_from_dict({
        "cohort": {"table": "cases.csv", "clinical": CLINICAL, **cohort,
                   "external": [{"name": "centre_b", "table": "b.csv"}]},
        "evaluation": {"clinical_p_threshold": 0.5},
        "classifiers": {"models": ["LR"], "cv_folds": 3, "grids": {"LR": {"C": [1.0]}}},
        "output": str(tmp_path / "out")}, base_dir=tmp_path)
    return context_with_cases(config, cases)


def _encoder_after_clinical_stage(tmp_path, cases: pd.DataFrame) -> dict:
    context = _context(tmp_path, cases)
    mark_done(context, "clinical")
    run_clinical(context)
    return json.loads((context.stage_dir("clinical") / ENCODER_FILE).read_text())


def test_the_clinical_stage_fits_its_encoder_on_training_cases_only(tmp_path):
    cases = _cases()
    before = _encoder_after_clinical_stage(tmp_path / "a", cases)
    changed = cases.copy()
    others = changed["set"] != "train"
    changed.loc[others, "age"] = 1000.0  # test/external values never move the median
    changed.loc[others, "site"] = "c"  # nor add a level
    changed.loc[others, "margin"] = "spiculated&angular"  # nor a token
    after = _encoder_after_clinical_stage(tmp_path / "b", changed)
    assert after["state"] == before["state"]
    assert before["state"]["age"]["fill"] == cases.loc[cases["set"] == "train", "age"].median()
    assert "c" not in after["state"]["site"]["levels"]


def test_a_yes_no_column_made_constant_by_the_rare_level_rule_is_left_out_with_a_note(
        tmp_path):
    cases = _cases()
    training = cases.index[cases["set"] == "train"]
    cases["site"] = "a"
    cases.loc[training[:3], "site"] = "b"  # 3 < min_level_count 5: merged away, constant
    context = _context(tmp_path, cases)
    mark_done(context, "clinical")
    summary = run_clinical(context)  # before: "predictor 'site' is constant", a stop
    assert any(note.startswith("site is left out of the logistic regressions")
               for note in summary.notes)
    variables = pd.read_csv(context.stage_dir("clinical") / "tables" / "variables.csv")
    assert "site" not in set(variables["variable"]) and "age" in set(variables["variable"])


def test_the_report_notes_imputed_and_unseen_values_by_set(tmp_path):
    cases = _cases()
    cases.loc[cases["set"] == "centre_b", "site"] = "c"
    context = _context(tmp_path, cases)
    mark_done(context, "clinical")
    summary = run_clinical(context)
    notes = " | ".join(summary.notes)
    assert "training set: age: no value for" in notes and "age[missing]" in notes
    assert "centre_b set: site: a value the training set never had" in notes
    assert "imputed with" in summary.encoding
    baseline = pd.read_csv(context.stage_dir("clinical") / "tables" / "baseline.csv")
    assert "missing, n (%)" in set(baseline["level"].astype(str))


def test_an_exclude_rule_lists_each_case_with_its_reason(tmp_path):
    cases = _cases()
    context = _context(tmp_path, cases, missing="exclude")
    excluded = clinical_exclusions(context.config, cases)
    blank = set(cases.index[cases["age"].isna()])
    assert set(excluded["case_id"]) == blank  # training, test and external cases alike
    assert excluded["problem"].str.contains("no value for 'age'").all()
    assert excluded["problem"].str.contains("cohort.missing: exclude").all()
    assert set(excluded["cohort"]) <= {"main", "centre_b"}
    impute = _context(tmp_path / "impute", cases)
    assert clinical_exclusions(impute.config, cases).empty


@pytest.fixture(scope="module")
def radiomics_only(tmp_path_factory):
    """No DL: clinical stage, HCR models, the nomogram stage and Table 7."""
    tmp_path = tmp_path_factory.mktemp("radn")
    cases = _cases()
    context = _context(tmp_path, cases)
    mark_done(context, "clinical")
    run_clinical(context)
    mark_done(context, "hcr_models")
    rng = np.random.default_rng(1)
    features = pd.DataFrame(cases["label"].to_numpy()[:, None] * [0.8, 0.4]
                            + rng.normal(size=(len(cases), 2)), index=cases.index,
                            columns=["f1", "f2"])
    fit_models(context, "hcr_models", "HCR", features, selection=False)
    mark_done(context, "dlrn")
    summary = run_nomogram(context)
    mark_done(context, "comparison")
    run_comparison(context)
    return context, summary


def test_without_dl_the_nomogram_is_the_radiomics_nomogram(radiomics_only):
    context, summary = radiomics_only
    folder = context.stage_dir("dlrn")
    assert summary.nomogram == "RadN" and "radiomics nomogram" in summary.title
    predictions = pd.read_csv(folder / PREDICTIONS_FILE, index_col="case_id")
    oof = pd.read_csv(folder / OOF_FILE, index_col="case_id")
    assert predictions["RadN"].notna().all() and set(oof.index) == set(
        predictions.index[predictions["set"] == "train"])
    saved = json.loads((folder / "nomogram.json").read_text())
    assert saved["scales"][0]["name"] == "Rad_score"
    assert (folder / "figures" / "nomogram.png").exists()
    table7 = pd.read_csv(context.stage_dir("comparison") / "evaluation" / "metrics.csv")
    assert "RadN" in set(table7["model"])


def test_the_nomogram_encodes_clinical_columns_as_the_study_encoder(radiomics_only):
    context, _ = radiomics_only
    study = json.loads((context.stage_dir("clinical") / ENCODER_FILE).read_text())
    nomogram = json.loads((context.stage_dir("dlrn") / "nomogram.json").read_text())
    chosen = json.loads((context.stage_dir("clinical") / "selected.json").read_text())
    assert chosen["selected"]
    for column in chosen["selected"]:
        assert nomogram["encoder"]["state"][column] == study["state"][column]


class _Bundle:
    """The two bundle calls predict's clinical notes make."""

    def __init__(self, encoder: dict) -> None:
        self.encoder = encoder

    def has(self, name: str, suffix: str) -> bool:
        return name == "clinical/encoder"

    def json(self, name: str) -> dict:
        return self.encoder


def test_predict_notes_each_case_and_leaves_out_only_those_a_rule_refuses():
    from dlrn.clinical import ClinicalEncoder
    from dlrn.study.predict import _clinical_notes

    cases = _cases()
    training = cases[cases["set"] == "train"].dropna(subset=["age"])
    encoder = ClinicalEncoder({"age": {"type": "continuous", "missing": "stop"},
                               "site": "categorical"}).fit(training)
    new = pd.DataFrame({"age": [np.nan, 60.0, 55.0], "site": ["a", "z", "b"]},
                       index=["blank", "unseen", "plain"])
    left_out, notes = _clinical_notes(_Bundle(encoder.to_dict()), ["age", "site"], new)
    assert list(left_out) == ["blank"]
    assert notes["blank"].startswith("no clinical prediction:") and "'age'" in notes["blank"]
    assert "a value the training set never had" in notes["unseen"] and "(z)" in notes["unseen"]
    assert notes["plain"] == ""
