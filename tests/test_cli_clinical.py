"""``dlrn clinical``: the study's clinical stages on a table, and a nomogram of a given score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrn.cli import main

DESCRIPTORS = Path(__file__).parent / "data" / "descriptors" / "descriptors.csv"
COLUMNS = {"Age": "continuous", "Shape": "categorical",
           "Margin": {"type": "multilabel", "separator": "&"}, "Echogenicity": "categorical",
           "Halo": "categorical"}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """The descriptor table with a "not available" age and an image score column."""
    cases = pd.read_csv(DESCRIPTORS).rename(columns={"y": "malignant", "score": "ai_score"})
    cases["Age"] = cases["Age"].astype(object)
    cases.loc[[3, 40], "Age"] = "not available"
    path = tmp_path_factory.mktemp("clinical") / "cases.csv"
    cases.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def analysed(table, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "analysis"
    code = main(["clinical", str(table), "--label", "malignant", "--clinical",
                 json.dumps(COLUMNS), "--score", "ai_score", "--classifiers", "LR",
                 "--nomogram-bootstrap", "6", "--out", str(out), "--quiet"])
    assert code == 0
    return out


def _summary(out: Path, stage: str) -> dict:
    return json.loads((out / "stages" / stage / "stage.json").read_text())


def test_the_clinical_stages_run_on_the_table_and_enter_the_descriptors(analysed):
    variables = pd.read_csv(analysed / "stages/clinical/tables/variables.csv",
                            index_col="variable")
    assert variables.loc["Margin", "independent"] and variables.loc["Echogenicity",
                                                                    "independent"]
    assert variables.loc["Echogenicity", "method"] == "Firth"  # anechoic: all benign
    notes = _summary(analysed, "cohort")["summary"]["notes"]
    assert notes == ["Age: 2 cell(s) reading 'not available' counted as no value "
                     "(cohort.na_values)"]
    for table in ("baseline", "univariate", "multivariate", "variables", "nomogram_axes"):
        assert (analysed / "report" / "tables" / f"{table}.csv").exists()
    assert "nomogram of ai_score" in (analysed / "report" / "report.html").read_text()
    predictions = pd.read_csv(analysed / "stages/clinical_models/predictions.csv")
    assert predictions["Clinical-LR"].notna().all()


def test_the_given_score_gets_its_nomogram_with_the_clinical_predictors(analysed):
    record = _summary(analysed, "dlrn")
    assert record["status"] == "done"
    state = json.loads((analysed / "stages/dlrn/nomogram.json").read_text())
    names = [scale["name"] for scale in state["scales"]]
    assert names[0] == "ai_score" and "Echogenicity" in names
    assert all(np.isfinite(v) for scale in state["scales"]
               for v in (scale["coefficient"].values() if isinstance(scale["coefficient"], dict)
                         else [scale["coefficient"]]))
    shares = pd.read_csv(analysed / "stages/dlrn/tables/nomogram_axes.csv",
                         index_col="predictor")
    assert shares.loc["ai_score", "share"] == shares["share"].max()
    oof = pd.read_csv(analysed / "stages/dlrn/oof.csv", index_col="case_id")
    assert oof["Nomogram"].notna().all() and len(oof) == 126


def test_the_nomogram_is_validated_with_its_clinical_selection_in_each_sample(analysed):
    """rms validate / calibrate of the nomogram, the clinical selection repeated (6 samples)."""
    stage = analysed / "stages" / "dlrn"
    table = pd.read_csv(stage / "tables/nomogram_validation.csv", index_col="index")
    assert list(table.columns) == ["description", "index.orig", "training", "test",
                                   "optimism", "index.corrected", "n"]
    assert table.loc["Slope", "index.orig"] == 1 and table.loc["Intercept", "index.orig"] == 0
    assert table.loc["C", "index.corrected"] < table.loc["C", "index.orig"]
    assert (table["n"] == 6).all()
    chosen = pd.read_csv(stage / "tables/nomogram_selection.csv", index_col="predictor")
    assert chosen.loc["ai_score", "share_of_samples"] == 1
    assert set(chosen.index) <= {"ai_score", *COLUMNS}
    curve = pd.read_csv(stage / "tables/nomogram_calibration.csv")
    assert len(curve) == 50 and curve["bias_corrected"].notna().all()
    assert (stage / "figures/nomogram_calibration.png").is_file()
    summary = _summary(analysed, "dlrn")["summary"]
    assert summary["bootstrap"] == 6
    assert summary["c_corrected"] == pytest.approx(table.loc["C", "index.corrected"])
    assert any("not refitted" in note for note in summary["notes"])
    report = (analysed / "report" / "report.html").read_text()
    assert "optimism-corrected" in report and "calibration: apparent, bias-corrected" in report


def test_the_bootstrap_repeats_the_clinical_stages_own_choice(analysed):
    """The rule each sample repeats, given the training cases, chooses what the stage chose."""
    from dlrn.study.config import study_from_dict
    from dlrn.study.stages.nomogram import clinical_rule

    config = study_from_dict({"cohort": {"table": "cases.csv", "label": "malignant",
                                         "clinical": COLUMNS}})
    cases = pd.read_csv(analysed / "stages/cohort/cases.csv", index_col="case_id")
    training = cases[cases["set"] == "train"]
    chosen = clinical_rule(config)(training[list(COLUMNS)], training["label"])
    stage = json.loads((analysed / "stages/clinical/selected.json").read_text())
    assert chosen == stage["selected"] and chosen


def test_a_study_file_gives_the_settings_and_options_override_it(table, tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "cohort": {"table": str(table), "label": "malignant", "clinical": COLUMNS},
        "evaluation": {"clinical_regression": "standard", "clinical_selection": "enter"},
        "classifiers": {"models": ["LR"]}, "dl": {"enabled": False}}))
    out = tmp_path / "out"
    assert main(["clinical", "--study", str(study), "--regression", "firth", "--selection",
                 "none", "--out", str(out)]) == 0
    variables = pd.read_csv(out / "stages/clinical/tables/variables.csv")
    assert (variables["method"] == "Firth").all()
    assert variables["independent"].all()  # none: every declared variable, Halo too
    path = pd.read_csv(out / "stages/clinical/tables/selection_path.csv")
    assert len(path) == 1 and sorted(path.loc[0, "model"].split(", ")) == sorted(COLUMNS)
    printed = capsys.readouterr().out
    heading = printed.index("Events per term (the usual rule asks for at least 10")
    assert f"positive cases of 126, {path.loc[0, 'terms']} terms" in printed[heading:]
    assert printed[heading:].splitlines()[1].startswith("  multivariate model: ")


def test_the_default_selection_is_backward_and_the_report_shows_its_path(analysed):
    facts = _summary(analysed, "clinical")["summary"]
    assert facts["procedure"] == "backward" and facts["basis"] == "backward"
    path = pd.read_csv(analysed / "report/tables/selection_path.csv")
    assert path["removed"].iloc[:-1].all() and not path["removed"].iloc[-1]
    assert facts["removed"] == path.loc[path["removed"], "variable"].tolist()
    assert facts["events"][0].startswith("multivariate model before backward elimination: ")
    nomogram = _summary(analysed, "dlrn")["summary"]["events"]
    assert nomogram.startswith("Nomogram model: ") and "events per term" in nomogram
    html = (analysed / "report" / "report.html").read_text()
    assert "Backward elimination: each model fitted" in html
    assert "removed by backward elimination, in order" in html


def test_without_clinical_columns_the_error_says_what_to_give(table, tmp_path, capsys):
    assert main(["clinical", str(table), "--label", "malignant", "--out",
                 str(tmp_path / "x")]) == 2
    assert "needs clinical columns: --clinical" in capsys.readouterr().err
