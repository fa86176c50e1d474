"""Table 7 (the comparison stage): each model's own cut-off, out-of-fold training rows,
apparent rows apart, patient-aware statistics when a patient has several images.

The HCR and DLR stages are the real ones (dlrn.modeling on tiny synthetic features),
the DLRN stage is the real one; the deep stage is stood in for by its output files.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from study_context import context_with_cases, mark_done

from dlrn.errors import DlrnError
from dlrn.evaluation import TRAIN_APPARENT, TRAIN_OOF, evaluate_predictions, holm
from dlrn.evaluation.summary import metrics_table, write_evaluation
from dlrn.evaluation.threshold import youden_threshold
from dlrn.modeling import CV_SET
from dlrn.study.config import study_from_dict
from dlrn.study.runner import StudyContext
from dlrn.study.stages.clinical import fit_study_encoder
from dlrn.study.stages.comparison import DEEP_CUTOFF_SOURCE
from dlrn.study.stages.comparison import run as run_comparison
from dlrn.study.stages.files import CASES_FILE, ENCODER_FILE, OOF_FILE, PREDICTIONS_FILE
from dlrn.study.stages.models import fit_models
from dlrn.study.stages.nomogram import run as run_dlrn

EXTERNAL = "centre_b"
CUTOFF_COLUMNS = ["threshold", "sensitivity", "specificity", "tp", "fn"]


def _cases(n: int = 72, seed: int = 4, two_views: bool = False) -> pd.DataFrame:
    """Labels 0, 1, 0, ...; with ``two_views`` cases i and i + 3 of every block of six are
    two images of one patient (same label, same set)."""
    rng = np.random.default_rng(seed)
    label = np.tile([0, 1, 0], n // 3)
    sets = np.repeat(["train", "test", EXTERNAL], [48, 12, n - 60])
    patients = [f"p{(i // 6) * 6 + i % 3}" if two_views else f"p{i}" for i in range(n)]
    return pd.DataFrame({"label": label, "set": sets, "patient_id": patients,
                         "age": rng.normal(50 + 6 * label, 10).round(),
                         "site": rng.choice(["a", "b"], n)},
                        index=pd.Index([f"c{i:03d}" for i in range(n)], name="case_id"))


def _features(cases: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Two informative features and one noise; a patient's second view nearly repeats
    its first (as two views of one lesion do)."""
    rng = np.random.default_rng(seed)
    signal = cases["label"].to_numpy()[:, None] * [1.0, 0.6, 0.0]
    values = pd.DataFrame(signal + rng.normal(size=(len(cases), 3)), index=cases.index,
                          columns=[f"f{seed}_{k}" for k in range(3)])
    first_view = values.groupby(cases["patient_id"].to_numpy()).transform("first")
    return first_view + 0.1 * rng.normal(size=values.shape)


def _context(tmp_path, cases: pd.DataFrame) -> StudyContext:
    config = study_from_dict({
        "cohort": {"table": "cases.csv", "clinical": {"age": "continuous",
                                                      "site": "categorical"}},
        "classifiers": {"models": ["LR", "RandomForest"], "cv_folds": 3,
                        "grids": {"LR": {"C": [1.0]},
                                  "RandomForest": {"n_estimators": [30], "max_depth": [3]}}},
        "output": str(tmp_path / "out")}, base_dir=tmp_path)
    return context_with_cases(config, cases)


def _feature_set_stages(context: StudyContext, cases: pd.DataFrame) -> None:
    for stage, name, seed in (("hcr_models", "HCR", 1), ("dlr_models", "DLR", 2)):
        mark_done(context, stage)
        fit_models(context, stage, name, _features(cases, seed), selection=False)


def _clinical_stage(context: StudyContext, cases: pd.DataFrame) -> None:
    """The clinical stage's files: age and site chosen, the encoder fitted on training cases."""
    mark_done(context, "clinical")
    encoder, _ = fit_study_encoder(context.config, cases[cases["set"] == "train"])
    (context.stage_dir("clinical") / ENCODER_FILE).write_text(json.dumps(encoder.to_dict()))
    (context.stage_dir("clinical") / "selected.json").write_text(json.dumps(
        {"selected": ["age", "site"], "basis": "multivariate", "note": None}))


def _deep_stage(context: StudyContext, cases: pd.DataFrame) -> pd.DataFrame:
    """The deep stage's files: predictions, the chosen CNN and its metrics table, whose
    cut-off (0.42) is not the Youden cut-off Table 7 would choose itself."""
    mark_done(context, "deep")
    rng = np.random.default_rng(5)
    noise = pd.Series(rng.normal(size=len(cases)), index=cases.index)
    noise = noise.groupby(cases["patient_id"]).transform("first")  # one view, one score
    predictions = cases[["label", "set"]].assign(
        **{"DL-resnet18": 1 / (1 + np.exp(-(cases["label"] + noise)))})
    predictions.to_csv(context.stage_dir("deep") / PREDICTIONS_FILE)
    (context.stage_dir("deep") / "best.json").write_text(json.dumps({"best": "DL-resnet18"}))
    metrics = metrics_table(predictions, ["DL-resnet18"], cutoffs={"DL-resnet18": 0.42})
    (context.stage_dir("deep") / "tables").mkdir()
    metrics.to_csv(context.stage_dir("deep") / "tables" / "deep_metrics.csv", index=False)
    return metrics


def _table7(context: StudyContext, name: str = "metrics") -> pd.DataFrame:
    return pd.read_csv(context.stage_dir("comparison") / "evaluation" / f"{name}.csv")


def _rows(table: pd.DataFrame, model: str) -> pd.DataFrame:
    return table[table["model"] == model].set_index("set")[["threshold_set", *CUTOFF_COLUMNS]]


def _whole_study(tmp_path, cases: pd.DataFrame):
    context = _context(tmp_path, cases)
    _feature_set_stages(context, cases)
    _clinical_stage(context, cases)
    mark_done(context, "dlrn")
    dlrn_summary = run_dlrn(context)
    deep_metrics = _deep_stage(context, cases)
    mark_done(context, "comparison")
    return context, run_comparison(context), deep_metrics, dlrn_summary


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """HCR, DLR, DLRN, a stand-in DL stage and the comparison on 72 synthetic cases."""
    return _whole_study(tmp_path_factory.mktemp("comparison"), _cases())


@pytest.fixture(scope="module")
def clustered_study(tmp_path_factory):
    """The same study where 36 patients have two images each."""
    return _whole_study(tmp_path_factory.mktemp("clustered"), _cases(two_views=True))


@pytest.mark.parametrize("stage", ["hcr_models", "dlr_models"])
def test_table7_rows_are_the_models_own_out_of_fold_rows(study, stage):
    context, *_ = study
    best = json.loads((context.stage_dir(stage) / "best.json").read_text())["best"]
    own = _rows(pd.read_csv(context.stage_dir(stage) / "evaluation" / "metrics.csv"), best)
    table7 = _rows(_table7(context), best)
    assert list(table7.index) == [TRAIN_OOF, "test", EXTERNAL]
    assert set(table7["threshold_set"]) == {CV_SET}
    pd.testing.assert_frame_equal(table7, own.loc[table7.index])
    # the training row is dlrn.modeling's cross-validated one, at the same cut-off
    cv = pd.read_csv(context.stage_dir(stage) / "result" / "metrics_cv.csv")
    cv_row = cv[cv["model"] == best].iloc[0]
    for column in CUTOFF_COLUMNS:
        assert table7.loc[TRAIN_OOF, column] == pytest.approx(cv_row[column])
    # and not the in-sample cut-off the comparison used to choose
    predictions = pd.read_csv(context.stage_dir(stage) / PREDICTIONS_FILE)
    training = predictions[predictions["set"] == "train"]
    assert table7.loc[TRAIN_OOF, "threshold"] != youden_threshold(training["label"],
                                                                  training[best])


def test_apparent_training_performance_is_its_own_labelled_table(study):
    context, summary, *_ = study
    apparent = _table7(context, "metrics_apparent")
    assert set(apparent["set"]) == {TRAIN_APPARENT}
    assert set(apparent["model"]) == set(summary.models)
    predictions = pd.read_csv(context.stage_dir("comparison") / PREDICTIONS_FILE)
    training = predictions[predictions["set"] == "train"]
    from sklearn.metrics import roc_auc_score

    for row in apparent.itertuples():
        assert row.auc == pytest.approx(roc_auc_score(training["label"], training[row.model]))
    assert "Apparent (in-sample)" in summary.tables["evaluation/metrics_apparent"]
    assert TRAIN_APPARENT not in set(_table7(context).query("model != 'DL-resnet18'")["set"])


def test_table7_keeps_the_cutoff_the_deep_stage_chose(study):
    context, summary, deep_metrics, _ = study
    table7 = _table7(context)
    cnn = table7[table7["model"] == "DL-resnet18"].set_index("set")
    assert list(cnn.index) == [TRAIN_APPARENT, "test", EXTERNAL]  # no out-of-fold CNN scores
    assert set(cnn["threshold"]) == {0.42}
    assert set(cnn["cutoff_source"]) == {f"given: {DEEP_CUTOFF_SOURCE}"}
    own = deep_metrics.set_index("set").rename(index={"train": TRAIN_APPARENT})
    pd.testing.assert_frame_equal(cnn[CUTOFF_COLUMNS], own.loc[cnn.index, CUTOFF_COLUMNS])
    assert f"by {DEEP_CUTOFF_SOURCE} for DL-resnet18" in summary.tables["evaluation/metrics"]


def test_dlrn_cutoff_comes_from_its_cross_validated_training_probabilities(study):
    context, summary, *_ = study
    oof = pd.read_csv(context.stage_dir("dlrn") / OOF_FILE, index_col="case_id")
    predictions = pd.read_csv(context.stage_dir("dlrn") / PREDICTIONS_FILE, index_col="case_id")
    assert set(oof.index) == set(predictions.index[predictions["set"] == "train"])
    assert not np.allclose(oof["DLRN"], predictions.loc[oof.index, "DLRN"])
    table7 = _rows(_table7(context), "DLRN")
    assert set(table7["threshold_set"]) == {CV_SET}
    assert table7.loc[TRAIN_OOF, "threshold"] == youden_threshold(oof["label"], oof["DLRN"])
    caption = summary.tables["evaluation/metrics"]
    assert caption.startswith("Performance of the best model of each kind (Table 7). ")
    assert "out-of-fold training predictions for HCR-" in caption
    assert "cross-validated on the training set with the DLR models' folds" in caption
    assert "'train (apparent)' are in-sample predictions of models without out-of-fold " \
           "ones (DL-resnet18)" in caption


def test_training_rows_of_the_tests_and_calibration_are_out_of_fold(study):
    context, summary, *_ = study
    delong = _table7(context, "delong")
    hl = _table7(context, "hosmer_lemeshow")
    with_oof = [m for m in summary.models if m != "DL-resnet18"]
    assert summary.out_of_fold == with_oof
    assert set(delong["set"]) == {TRAIN_OOF, "test", EXTERNAL}  # the CNN alone is apparent
    assert set(hl.loc[hl["model"].isin(with_oof) & hl["set"].str.startswith("train"), "set"]
               ) == {TRAIN_OOF}
    for _, pairs in delong.groupby("set"):
        np.testing.assert_allclose(pairs["p_value_holm"], holm(pairs["p_value"]))
    assert "Holm-adjusted" in summary.tables["evaluation/delong"]


def test_one_image_per_patient_gives_the_unclustered_tables(study):
    context, summary, *_ = study
    folder = context.stage_dir("comparison")
    predictions = pd.read_csv(folder / PREDICTIONS_FILE, index_col="case_id")
    oof = pd.read_csv(folder / OOF_FILE, index_col="case_id")
    plain = evaluate_predictions(predictions, summary.models,
                                 oof=oof[[m for m in summary.models if m in oof]],
                                 cutoffs={"DL-resnet18": 0.42},
                                 cutoff_source={"DL-resnet18": DEEP_CUTOFF_SOURCE})
    for name in ("metrics", "delong", "hosmer_lemeshow", "metrics_apparent"):
        expected = pd.read_csv(io.StringIO(plain[name].to_csv(index=False)))
        pd.testing.assert_frame_equal(_table7(context, name), expected)
    assert "n_patients" not in _table7(context).columns
    assert not list((folder / "evaluation").glob("patient_*"))
    assert not summary.clustered and "images / patients" not in summary.facts()


def test_several_images_per_patient_give_patient_level_tables_and_wider_cis(clustered_study):
    context, summary, *_ = clustered_study
    folder = context.stage_dir("comparison") / "evaluation"
    assert summary.clustered and summary.facts()["images / patients"] == "72 / 36"
    for name in ("patient_metrics", "patient_delong", "patient_hosmer_lemeshow",
                 "patient_metrics_apparent"):
        assert f"evaluation/{name}" in summary.tables or name.endswith("apparent")
        assert (folder / f"{name}.csv").exists()
    patients = pd.read_csv(folder / "patient_metrics.csv")
    assert set(patients["n"]) == {24, 6}  # 48 and 12 images: 24 and 6 patients
    table7 = _table7(context)
    assert set(table7["n_patients"] * 2) == set(table7["n"])
    assert table7["auc_ci_method"].str.startswith("cluster bootstrap over patients").all()
    predictions = pd.read_csv(context.stage_dir("comparison") / PREDICTIONS_FILE,
                              index_col="case_id")
    oof = pd.read_csv(context.stage_dir("comparison") / OOF_FILE, index_col="case_id")
    image_level = metrics_table(predictions, summary.models,
                                oof=oof[[m for m in summary.models if m in oof]],
                                cutoffs={"DL-resnet18": 0.42}, auc_method="bootstrap")
    training = (table7["set"] == TRAIN_OOF).to_numpy()
    assert (image_level["set"].to_numpy() == table7["set"].to_numpy()).all()
    ratio = ((table7["auc_ci_high"] - table7["auc_ci_low"])
             / (image_level["auc_ci_high"] - image_level["auc_ci_low"]))[training]
    assert len(ratio) == 3 and (ratio > 1.1).all() and ratio.mean() > 1.25  # about sqrt(2)
    caption = summary.tables["evaluation/metrics"]
    assert "72 images of 36 patients" in caption and "cluster bootstrap" in caption
    figures = [stem for stem in summary.figures if "patient_roc_" in stem]
    assert figures and all("patient level" in summary.figures[stem] for stem in figures)
    for stage in ("hcr_models", "dlr_models"):
        own = context.stage_dir(stage) / "evaluation"
        assert (own / "patient_metrics.csv").exists() and (own / "metrics_apparent.csv").exists()


def _rare_level_in_fold_1(tmp_path, site: str | dict) -> tuple[StudyContext, object]:
    """The DLRN stage where a site level is held by two cases, both in CV fold 1."""
    cases = _cases()
    context = _context(tmp_path, cases)
    context.config.cohort.clinical["site"] = site
    context.config.cohort.min_level_count = 1
    _feature_set_stages(context, cases)
    folds = pd.read_csv(context.stage_dir("dlr_models") / "result" / "cv_folds.csv",
                        index_col="case_id")
    in_fold_1 = cases.loc[folds.index[folds["fold"] == 1]]
    rare = [in_fold_1.index[in_fold_1["label"] == label][0] for label in (0, 1)]
    cases.loc[rare, "site"] = "rare"  # one case of each class, both in fold 1
    cases.to_csv(context.stage_dir("cohort") / CASES_FILE)
    _clinical_stage(context, cases)
    mark_done(context, "dlrn")
    return context, run_dlrn(context)


def test_a_level_seen_in_one_fold_only_is_imputed_in_the_out_of_fold_nomogram(tmp_path):
    context, summary = _rare_level_in_fold_1(tmp_path, "categorical")
    oof = pd.read_csv(context.stage_dir("dlrn") / OOF_FILE, index_col="case_id")
    assert oof["DLRN"].notna().all()
    assert not any("in-sample training predictions" in note for note in summary.notes)


def test_a_level_a_fold_cannot_encode_falls_back_to_an_in_sample_cutoff(tmp_path):
    context, summary = _rare_level_in_fold_1(tmp_path, {"type": "categorical",
                                                        "missing": "stop"})
    assert not (context.stage_dir("dlrn") / OOF_FILE).exists()
    assert any("in-sample training predictions" in note and "'rare'" in note
               for note in summary.notes)
    mark_done(context, "comparison")
    run_comparison(context)
    assert set(_rows(_table7(context), "DLRN")["threshold_set"]) == {TRAIN_APPARENT}


def test_a_given_metrics_table_must_cover_the_scores(study, tmp_path):
    context, *_ = study
    predictions = pd.read_csv(context.stage_dir("comparison") / PREDICTIONS_FILE,
                              index_col="case_id")
    with pytest.raises(DlrnError, match="metrics table given covers models"):
        write_evaluation(predictions, ["DLRN", "DL-resnet18"], tmp_path / "evaluation",
                         metrics=_table7(context).query("model == 'DLRN'"), figures=False)
