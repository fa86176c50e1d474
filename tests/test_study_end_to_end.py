"""The whole study on a small synthetic cohort: demo, report, bundle, resume and predict.

One study run (the session's small demo, `dlrn demo` in a process of its own with its
console kept: conftest.py, shared with tests/test_reproduce.py) serves every test here: an
internal train/test split of 80 cases (fewer leave a yes/no column with under
cohort.min_level_count cases of one value, which stops the clinical stage) plus a second
synthetic centre of 30 cases as external set. Both tables are "messy" (blank ages,
'&'-joined margin descriptors, a rare tissue level, and a level only the external centre
has).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dlrn.cli import main
from dlrn.evaluation import TRAIN_APPARENT, TRAIN_OOF
from dlrn.study.config import load_study
from dlrn.study.pipeline import run_study

MODEL_STAGES = ("clinical_models", "hcr_models", "deep", "dlr_models", "dlrn")
EXTERNAL = "centre_b"


@pytest.fixture
def demo_run(small_demo_run):
    return small_demo_run


@pytest.fixture
def demo(small_demo):
    return small_demo


def _run_predictions(study, stage):
    table = pd.read_csv(study / "stages" / stage / "predictions.csv", index_col="case_id",
                        dtype={"case_id": str})
    return table.drop(columns=["label", "set"])


@pytest.mark.slow
def test_demo_runs_every_stage_and_writes_report_and_bundle(demo):
    study = demo / "study"
    records = {p.parent.name: json.loads(p.read_text())
               for p in (study / "stages").glob("*/stage.json")}
    assert {name: r["status"] for name, r in records.items()} == {
        **dict.fromkeys(["cohort", "clinical", "clinical_models", "radiomics", "hcr_models",
                         "deep", "dlr_models", "dlrn", "applicability", "comparison"], "done"),
        # the U-Net is off unless the study file asks for it (see test_study_segmentation)
        **dict.fromkeys(["segmentation", "automatic_masks"], "skipped")}
    html = (study / "report" / "report.html").read_text()
    for heading in ("Methods summary", "Baseline characteristics", "Table 7", "DeLong",
                    "Decision curves", "nomogram", "Excluded cases", "Software versions"):
        assert heading in html
    assert "data:image/png;base64," in html
    # the only scripts: the interactive nomogram's (its state and its code), nothing external
    fragment = re.search(r'<div class="dlrn-interactive-nomogram".*?</script></div>', html,
                         re.S).group(0)
    assert html.count("<script") == fragment.count("<script") == 2
    assert not re.search(r"""(src|href)=["']?(https?:)?//|https?://""", html)
    # paper views: Table 2 train first, "AUC (95% CI)", the weights in words
    assert "<th>train (n=" in html.split("<th>test (n=")[0].rsplit("<table", 1)[1]
    assert "<th>AUC (95% CI)</th>" in html and "<th>Test used</th>" in html
    assert "random initialisation (no pretrained weights)" in html
    assert "with None weights" not in html
    # the CNN's scores: Platt-scaled, and the pooled AUC set beside the folds' own
    assert "Platt-scaled on its own validation cases" in html
    assert "each fold CNN on its own held-out fold" in html
    workbook = pd.read_excel(study / "report" / "tables.xlsx", sheet_name=None)
    assert {"cohort_counts", "baseline", "metrics"} <= set(workbook)
    assert workbook["cohort_counts"]["cases"].sum() == 110
    assert list((study / "report" / "figures").glob("*.svg"))
    comparison = pd.read_csv(study / "stages" / "comparison" / "evaluation" / "metrics.csv")
    assert {TRAIN_OOF, "test", EXTERNAL} <= set(comparison["set"])
    assert "train" not in set(comparison["set"])  # training rows say out-of-fold or apparent
    assert "DLRN" in set(comparison["model"])
    assert not list(study.rglob("*.pkl")) and not list(study.rglob("*.pickle"))
    assert (study / "bundle" / "clinical" / "encoder.json").exists()


STAGE_NAMES = ("cohort", "clinical", "clinical_models", "radiomics", "hcr_models", "deep",
               "dlr_models", "dlrn", "applicability", "comparison")


@pytest.mark.slow
def test_the_demo_console_has_no_python_warning_and_ends_with_the_results(demo_run):
    """Nothing a stage, a library or a worker process warns reaches the console."""
    out, stdout, stderr = demo_run
    for text in (stdout, stderr):
        assert "Warning" not in text and not re.search(r"\.py:\d+", text)
        assert not re.search(r"^(INFO|WARNING|DEBUG) ", text, re.M)  # no log lines either
    for name in STAGE_NAMES:  # a status line per stage, in order
        assert re.search(rf"^  {name} +done +\d+ s", stdout, re.M), name
    assert stdout.index("  cohort ") < stdout.index("  comparison ") < stdout.index("AUC (95%")
    auc = r"0\.\d{3} \(0\.\d{3}-[01]\.\d{3}\)"
    for row in ("LR", "SVM", "RandomForest", "ExtraTrees", "XGBoost", "LightGBM", "MLP"):
        assert re.search(rf"^  {row} +{auc}( \*)? +{auc}( \*)? +{auc}", stdout, re.M), row
    assert stdout.count(" *") >= 3  # the model each stage chose
    assert re.search(rf"^  DLRN +{auc} +{auc}$", stdout, re.M)  # test and external set
    report, bundle, log, where = stdout.splitlines()[-4:]
    assert report == f"report: {out / 'study' / 'report' / 'report.html'}"
    assert bundle == f"bundle: {out / 'study' / 'bundle'}"
    assert log.startswith(f"log:    {out / 'study' / 'logs' / 'run-'}")
    assert where.endswith(f"the study file is {out / 'study.yaml'}")


@pytest.mark.slow
def test_the_run_log_holds_every_note_the_stages_reported(demo):
    study = demo / "study"
    (log,) = (study / "logs").glob("run-*.log")
    text = log.read_text()
    reported = []
    for name in STAGE_NAMES:
        summary = json.loads((study / "stages" / name / "stage.json").read_text())["summary"]
        reported += [(name, "note", n) for n in summary["notes"]]
        reported += [(name, "caution", c) for c in summary["cautions"]]
    logged = re.findall(r" dlrn\.study\.runner: stage (\w+): (note|caution): (.*)$", text, re.M)
    assert sorted(logged) == sorted(reported) and len(reported) > 10
    # each remark with where it was raised, as the console showed it before
    occurrences = re.findall(r" dlrn\.notes: (\w+): note \((.+\.py):\d+\): (.*)$", text, re.M)
    assert {stage for stage, _, _ in occurrences} >= {"clinical_models", "hcr_models"}
    assert any("calibration intercept and slope not computed" in note
               for _, _, note in occurrences)
    for name in STAGE_NAMES:
        assert re.search(rf"stage {name}: done in [\d.]+ s, peak memory \d+ MB", text), name
    assert "settings:\ncohort:\n  table: cohort/cohort.csv" in text and "finished in" in text


@pytest.mark.slow
def test_the_report_shows_how_the_messy_clinical_table_was_handled(demo):
    html = (demo / "study" / "report" / "report.html").read_text()
    assert "age: no value for" in html and "age[missing]" in html  # imputed, indicator
    assert "margin_lexicon[" in html  # one term per token
    assert "tissue_composition" in html and "extremely dense" in html  # the rare level
    assert "fibroglandular" in html and "a value the training set never had" in html
    assert "missing, n (%)" in html


@pytest.mark.slow
def test_external_centre_is_a_set_of_its_own_and_never_trains(demo):
    study = demo / "study"
    cases = pd.read_csv(study / "stages" / "cohort" / "cases.csv", dtype={"case_id": str})
    external = set(cases.loc[cases["set"] == EXTERNAL, "case_id"])
    train = set(cases.loc[cases["set"] == "train", "case_id"])
    assert len(external) == 30 and all(case.startswith("b") for case in external)
    html = (study / "report" / "report.html").read_text()
    assert f"ROC curves (Figure 7), {EXTERNAL} set" in html
    assert (study / "report" / "figures" / f"comparison_roc_{EXTERNAL}.png").exists()
    for stage in ("clinical_models", "hcr_models", "dlr_models"):
        oof = pd.read_csv(study / "stages" / stage / "oof.csv", dtype={"case_id": str})
        assert set(oof["case_id"]) == train  # cross-validation saw training cases only
        metrics = pd.read_csv(study / "stages" / stage / "result" / "metrics.csv")
        assert EXTERNAL in set(metrics["set"])
    deep = pd.read_csv(study / "stages" / "deep" / "tables" / "deep_metrics.csv")
    assert EXTERNAL in set(deep["set"])


@pytest.mark.slow
def test_table7_shows_each_model_with_the_cutoff_and_sensitivity_of_its_own_table(demo):
    stages = demo / "study" / "stages"
    columns = ["threshold_set", "threshold", "sensitivity", "specificity"]
    table7 = pd.read_csv(stages / "comparison" / "evaluation" / "metrics.csv")
    for stage in ("clinical_models", "hcr_models", "dlr_models"):
        best = json.loads((stages / stage / "best.json").read_text())["best"]
        own = pd.read_csv(stages / stage / "evaluation" / "metrics.csv")
        own = own.set_index("model").loc[best].set_index("set")[columns]
        shown = table7.set_index("model").loc[best].set_index("set")[columns]
        pd.testing.assert_frame_equal(shown, own.loc[shown.index])
        assert set(shown["threshold_set"]) == {TRAIN_OOF}
    # the CNN: its training row and cut-off on its cross-fitted scores (dl.fusion_features:
    # crossfit), as the deep learning stage's Table 5 has them
    best = json.loads((stages / "deep" / "best.json").read_text())["best"]
    deep = pd.read_csv(stages / "deep" / "tables" / "deep_metrics.csv").set_index("model")
    deep = deep.loc[best].set_index("set")
    shown = table7.set_index("model").loc[best].set_index("set")
    assert TRAIN_OOF in shown.index
    pd.testing.assert_frame_equal(shown[columns[1:]], deep.loc[shown.index, columns[1:]])
    assert shown["cutoff_source"].str.contains("deep learning stage").all()
    # the nomogram's cross-validation can fail on tiny cohorts (separation in a fold):
    # then its cut-off is in-sample, and the DLRN section says why
    cross_validated = (stages / "dlrn" / "oof.csv").exists()
    dlrn = set(table7.set_index("model").loc["DLRN", "threshold_set"])
    assert dlrn == {TRAIN_OOF if cross_validated else TRAIN_APPARENT}
    notes = json.loads((stages / "dlrn" / "stage.json").read_text())["summary"]["notes"]
    said_in_sample = any("in-sample training predictions" in note for note in notes)
    assert said_in_sample != cross_validated  # the note exactly when there is no oof.csv


@pytest.mark.slow
def test_second_run_reuses_everything_and_a_changed_setting_reruns_its_dependants(demo):
    config = load_study(demo / "study.yaml")
    again = run_study(config, progress=False)
    assert all(record.reused for record in again.records.values())
    config.evaluation.calibration_bins = 5
    changed = run_study(config, progress=False)
    rerun = [name for name, record in changed.records.items() if not record.reused]
    assert rerun == ["comparison"]
    run_study(load_study(demo / "study.yaml"), progress=False)  # as it was, for the session


def _new_cases(demo, cohort: str, ids: set[str]) -> pd.DataFrame:
    """Rows of a demo cohort table as new cases: absolute paths, no label."""
    table = pd.read_csv(demo / cohort / "cohort.csv", dtype={"case_id": str})
    new = table[table["case_id"].isin(ids)].drop(columns=["label"])
    for column in ("image", "mask", "mask_reader2"):
        new[column] = [str(demo / cohort / p) for p in new[column]]
    return new


@pytest.mark.slow
def test_predictions_from_the_bundle_equal_those_of_the_run(demo, tmp_path):
    """dlrn predict on unlabelled test and external cases gives the frozen models' outputs."""
    study = demo / "study"
    cases = pd.read_csv(study / "stages" / "cohort" / "cases.csv", dtype={"case_id": str})
    test_ids = set(cases.loc[cases["set"] == "test", "case_id"])
    external_ids = set(cases.loc[cases["set"] == EXTERNAL, "case_id"])
    new = pd.concat([_new_cases(demo, "cohort", test_ids),
                     _new_cases(demo, EXTERNAL, external_ids)])
    new.to_csv(tmp_path / "new.csv", index=False)
    out, gradcam = tmp_path / "predictions.csv", tmp_path / "gradcam"
    cached = sorted((study / "cache" / "radiomics").rglob("*.json"))
    assert main(["predict", str(study / "bundle"), str(tmp_path / "new.csv"),
                 "--out", str(out), "--gradcam", str(gradcam), "--quiet"]) == 0
    predicted = pd.read_csv(out, index_col="case_id", dtype={"case_id": str})
    assert set(predicted.index) == test_ids | external_ids
    # every case's radiomics from the study's cache, which predicting leaves as it was
    (log,) = (tmp_path / "logs").glob("run-*.log")
    assert f"radiomics: {len(predicted)} cases from cache, 0 to extract" in log.read_text()
    assert sorted((study / "cache" / "radiomics").rglob("*.json")) == cached
    assert {"points_DLR_score", "total_points"} <= set(predicted.columns)
    for stage in MODEL_STAGES:
        expected = _run_predictions(study, stage).loc[predicted.index]
        np.testing.assert_allclose(predicted[expected.columns], expected, atol=1e-6)

    overlays = sorted(gradcam.glob("gradcam_*.png"))
    assert [p.stem.rsplit("_", 1)[1] for p in overlays] == sorted(predicted.index)
    for path in overlays:  # a drawn heat map: coloured pixels beside the grey crop
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=int)
        colour = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max(axis=2)
        assert (colour > 30).mean() > 0.01, path
    assert main(["predict", str(study / "bundle"), str(tmp_path / "new.csv"), "--out",
                 str(tmp_path / "again.csv"), "--gradcam", str(gradcam), "--quiet"]) == 2
    assert not (tmp_path / "again.csv").exists()  # refused before any work


@pytest.mark.slow
def test_predict_reads_tsv_and_notes_a_blank_value_and_an_unseen_level(demo, tmp_path):
    study = demo / "study"
    cases = pd.read_csv(study / "stages" / "cohort" / "cases.csv", dtype={"case_id": str})
    new = _new_cases(demo, "cohort", set(cases.loc[cases["set"] == "test", "case_id"]))
    selected = json.loads((study / "bundle" / "settings.json").read_text())["clinical"]["selected"]
    encoder = json.loads((study / "bundle" / "clinical" / "encoder.json").read_text())
    types = {c["name"]: c["type"] for c in encoder["columns"]}
    blank, odd = new["case_id"].iloc[0], new["case_id"].iloc[1]
    new.loc[new.index[0], selected] = None
    unseen = [c for c in selected if types[c] in ("categorical", "multilabel")]
    new.loc[new.index[1], unseen] = "never-seen"
    new.to_csv(tmp_path / "new.tsv", index=False, sep="\t")
    out, cache = tmp_path / "predictions.csv", tmp_path / "cache"
    assert main(["predict", str(study / "bundle"), str(tmp_path / "new.tsv"), "--out", str(out),
                 "--cache", str(cache), "--quiet"]) == 0
    # a cache of one's own: the cases it lacked are extracted and added to it
    assert len(list(cache.rglob("*.json"))) == len(new)
    predicted = pd.read_csv(out, index_col="case_id", dtype={"case_id": str})
    assert predicted.loc[[blank, odd], "DLRN"].between(0, 1).all()
    assert all(f"{c}: no value for 1 case(s)" in predicted.loc[blank, "note"] for c in selected)
    if unseen:
        assert "a value the training set never had" in predicted.loc[odd, "note"]


@pytest.mark.slow
def test_dlrn_extract_and_the_study_share_one_feature_cache(demo, tmp_path):
    """Features extracted by `dlrn extract --cache` are reused by the study, and back."""
    study = demo / "study"
    out = tmp_path / "features.csv"
    assert main(["extract", str(demo / "cohort" / "cohort.csv"), "--preset", "fast",
                 "--cache", str(study / "cache" / "radiomics"), "--out", str(out),
                 "--no-progress"]) == 0
    provenance = json.loads((tmp_path / "features.provenance.json").read_text())
    assert provenance["n_from_cache"] == provenance["n_cases"] == 80
    extracted = pd.read_csv(out, index_col="case_id", dtype={"case_id": str})
    in_study = pd.read_csv(study / "stages" / "radiomics" / "features.csv",
                           index_col="case_id", dtype={"case_id": str})
    pd.testing.assert_frame_equal(extracted, in_study.loc[extracted.index])
