"""A study on real images with a radiologist's descriptor table (issue 18's traits), end to end.

BUS-BRA images and masks (100 patients, one image each) with the descriptor columns of
:func:`dlrn.synthetic_descriptors.descriptor_table`: margin tokens aliased with the
intercept, an all-benign ``anechoic`` level, blank and "not available" cells, a rare
tissue level. Declared the natural way, the clinical settings at their defaults: the
strongest descriptor must enter, the nomogram must leave the image score a fair share of
its points, and ``dlrn predict`` and ``dlrn serve`` must give the study's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrn.synthetic_descriptors import DESCRIPTOR_COLUMNS, NOT_AVAILABLE, descriptor_table

PATIENTS = 100


def _busbra_table(busbra: Path) -> pd.DataFrame:
    cases = pd.read_csv(busbra / "cases.csv", dtype={"case_id": str, "patient_id": str})
    first = cases.drop_duplicates("patient_id").set_index("case_id")
    rng = np.random.default_rng(0)
    chosen = first.iloc[np.sort(rng.choice(len(first), PATIENTS, replace=False))].copy()
    for column in ("image", "mask"):
        chosen[column] = [str(busbra / path) for path in chosen[column]]
    chosen["label"] = chosen["malignant"].astype(int)
    return chosen[["patient_id", "image", "mask", "label"]].join(
        descriptor_table(chosen["label"], seed=0))


@pytest.fixture(scope="module")
def study(busbra_dir, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    from dlrn.study.config import load_study
    from dlrn.study.pipeline import run_study

    folder = tmp_path_factory.mktemp("descriptor_study")
    table = _busbra_table(busbra_dir)
    assert (table == NOT_AVAILABLE).any().any()
    table.to_csv(folder / "cases.csv", index_label="case_id")
    (folder / "study.yaml").write_text(yaml.safe_dump({
        "cohort": {"table": "cases.csv", "patient": "patient_id",
                   "clinical": DESCRIPTOR_COLUMNS},
        "radiomics": {"preset": "fast"}, "dl": {"enabled": False},
        "classifiers": {"models": ["LR"]}, "evaluation": {"nomogram_bootstrap": 0},
        "output": "out"}))
    run_study(load_study(folder / "study.yaml"), progress=False)
    return folder / "out", table


def _stage(out: Path, name: str) -> dict:
    return json.loads((out / "stages" / name / "stage.json").read_text())["summary"]


def test_the_strongest_descriptor_enters_with_finite_odds_ratios(study):
    out, _ = study
    chosen = json.loads((out / "stages/clinical/selected.json").read_text())
    assert "Margin" in chosen["selected"]
    univariate = pd.read_csv(out / "stages/clinical/tables/univariate.csv")
    margin = univariate[univariate["variable"] == "Margin"]
    assert margin["p_variable"].iloc[0] < 1e-4
    # a term is NA exactly where the encoder foresaw aliasing (here the rare first token is
    # folded away, so the tokens are not exhaustive); every other estimate is finite
    encoder = json.loads((out / "stages/clinical/encoder.json").read_text())
    foreseen = [note for note in encoder["notes"] if "is aliased" in note]
    assert len(margin[margin["beta"].isna()]) == len(foreseen)
    assert np.isfinite(univariate["odds_ratio"].dropna()).all()
    notes = _stage(out, "cohort")["notes"]
    assert any("reading 'not available' counted as no value" in note for note in notes)


def test_the_nomogram_is_finite_and_leaves_the_image_score_a_fair_share(study):
    out, _ = study
    state = json.loads((out / "stages/dlrn/nomogram.json").read_text())
    clinical = [v for scale in state["scales"] if scale["name"] != "Rad_score" for v in
                (scale["coefficient"].values() if isinstance(scale["coefficient"], dict)
                 else [scale["coefficient"]])]
    assert np.isfinite(clinical).all() and max(map(abs, clinical)) < 10  # ML: 20-80
    shares = pd.read_csv(out / "stages/dlrn/tables/nomogram_axes.csv", index_col="predictor")
    assert shares.loc["Rad_score", "share"] >= 0.2
    assert shares["share"].max() < 0.5


def test_predict_and_serve_give_the_study_s_numbers_for_every_test_case(study, tmp_path):
    from dlrn.applicability import COLUMNS as APPLICABILITY_COLUMNS
    from dlrn.serve.predictor import Predictor
    from dlrn.study.predict import predict_table

    out, table = study
    cases = pd.read_csv(out / "stages/cohort/cases.csv", index_col="case_id",
                        dtype={"case_id": str})
    test = table.loc[cases.index[cases["set"] == "test"]]
    test.to_csv(tmp_path / "new.csv", index_label="case_id")
    predicted = predict_table(out / "bundle", tmp_path / "new.csv", progress=False)
    numbers = predicted.drop(columns=["label", "note", *APPLICABILITY_COLUMNS])
    assert numbers.notna().all().all()
    for stage, column in (("dlrn", "RadN"), ("hcr_models", "HCR-LR"),
                          ("clinical_models", "Clinical-LR")):
        study_rows = pd.read_csv(out / "stages" / stage / "predictions.csv",
                                 index_col="case_id", dtype={"case_id": str})
        np.testing.assert_allclose(predicted[column], study_rows.loc[test.index, column],
                                   rtol=1e-9)
    imputed = test.index[test[["Age", "Tissue_composition"]].isna().any(axis=1)
                         | (test[["Age", "Tissue_composition"]] == NOT_AVAILABLE).any(axis=1)]
    selected = json.loads((out / "stages/clinical/selected.json").read_text())["selected"]
    if {"Age", "Tissue_composition"} & set(selected):
        assert (predicted.loc[imputed, "note"].str.contains("no value")).all()
    predictor = Predictor(out / "bundle")
    case = test.iloc[0]
    form = {field.name: "" if pd.isna(case[field.name]) else str(case[field.name])
            for field in predictor.fields}
    answer = predictor.predict(form, Path(case["image"]).read_bytes(),
                               Path(case["mask"]).read_bytes())
    assert answer.probability == pytest.approx(predicted.loc[case.name, "RadN"], rel=1e-12)
