"""Table 7 (the comparison stage) uses each model's own cut-off: the same as its own table.

The HCR and DLR stages are the real ones (dlrn.modeling on tiny synthetic features),
the DLRN stage is the real one; the deep stage is stood in for by its output files.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dlrn.errors import DlrnError
from dlrn.evaluation.summary import metrics_table, write_evaluation
from dlrn.evaluation.threshold import youden_threshold
from dlrn.modeling import CV_SET
from dlrn.study.config import study_from_dict
from dlrn.study.runner import StageRecord, StudyContext
from dlrn.study.stages.clinical import fit_study_encoder
from dlrn.study.stages.comparison import run as run_comparison
from dlrn.study.stages.files import CASES_FILE, ENCODER_FILE, OOF_FILE, PREDICTIONS_FILE
from dlrn.study.stages.models import fit_models
from dlrn.study.stages.nomogram import run as run_dlrn

EXTERNAL = "centre_b"
CUTOFF_COLUMNS = ["threshold", "sensitivity", "specificity", "tp", "fn"]


def _cases(n: int = 72, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.tile([0, 1, 0], n // 3)
    sets = np.repeat(["train", "test", EXTERNAL], [48, 12, n - 60])
    return pd.DataFrame({"label": label, "set": sets,
                         "patient_id": [f"p{i}" for i in range(n)],
                         "age": rng.normal(50 + 6 * label, 10).round(),
                         "site": rng.choice(["a", "b"], n)},
                        index=pd.Index([f"c{i:03d}" for i in range(n)], name="case_id"))


def _features(cases: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = cases["label"].to_numpy()[:, None] * [1.0, 0.6, 0.0]
    return pd.DataFrame(signal + rng.normal(size=(len(cases), 3)), index=cases.index,
                        columns=[f"f{seed}_{k}" for k in range(3)])


def _context(tmp_path, cases: pd.DataFrame) -> StudyContext:
    config = study_from_dict({
        "cohort": {"table": "cases.csv", "clinical": {"age": "continuous",
                                                      "site": "categorical"}},
        "classifiers": {"models": ["LR", "RandomForest"], "cv_folds": 3,
                        "grids": {"LR": {"C": [1.0]},
                                  "RandomForest": {"n_estimators": [30], "max_depth": [3]}}},
        "output": str(tmp_path / "out")}, base_dir=tmp_path)
    context = StudyContext(config, progress=False)
    _done(context, "cohort")
    cases.to_csv(context.stage_dir("cohort") / CASES_FILE)
    return context


def _done(context: StudyContext, stage: str) -> None:
    context.stage_dir(stage).mkdir(parents=True, exist_ok=True)
    context.records[stage] = StageRecord(stage, "test", "done")


def _feature_set_stages(context: StudyContext, cases: pd.DataFrame) -> None:
    for stage, name, seed in (("hcr_models", "HCR", 1), ("dlr_models", "DLR", 2)):
        _done(context, stage)
        fit_models(context, stage, name, _features(cases, seed), selection=False)


def _clinical_stage(context: StudyContext, cases: pd.DataFrame) -> None:
    """The clinical stage's files: age and site chosen, the encoder fitted on training cases."""
    _done(context, "clinical")
    encoder, _ = fit_study_encoder(context.config, cases[cases["set"] == "train"])
    (context.stage_dir("clinical") / ENCODER_FILE).write_text(json.dumps(encoder.to_dict()))
    (context.stage_dir("clinical") / "selected.json").write_text(json.dumps(
        {"selected": ["age", "site"], "basis": "multivariate", "note": None}))


def _deep_stage(context: StudyContext, cases: pd.DataFrame) -> pd.DataFrame:
    """The deep stage's files: predictions and its metrics, cut-off as dlrn.deep chooses it."""
    _done(context, "deep")
    rng = np.random.default_rng(5)
    predictions = cases[["label", "set"]].assign(
        **{"DL-resnet18": 1 / (1 + np.exp(-(cases["label"] + rng.normal(size=len(cases)))))})
    predictions.to_csv(context.stage_dir("deep") / PREDICTIONS_FILE)
    (context.stage_dir("deep") / "best.json").write_text(json.dumps({"best": "DL-resnet18"}))
    return metrics_table(predictions, ["DL-resnet18"])  # as dlrn.deep.workflow does


def _table7(context: StudyContext) -> pd.DataFrame:
    return pd.read_csv(context.stage_dir("comparison") / "evaluation" / "metrics.csv")


def _rows(table: pd.DataFrame, model: str) -> pd.DataFrame:
    return table[table["model"] == model].set_index("set")[["threshold_set", *CUTOFF_COLUMNS]]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """HCR, DLR, DLRN, a stand-in DL stage and the comparison on 72 synthetic cases."""
    tmp_path = tmp_path_factory.mktemp("comparison")
    cases = _cases()
    context = _context(tmp_path, cases)
    _feature_set_stages(context, cases)
    _clinical_stage(context, cases)
    _done(context, "dlrn")
    dlrn_summary = run_dlrn(context)
    deep_metrics = _deep_stage(context, cases)
    _done(context, "comparison")
    return context, run_comparison(context), deep_metrics, dlrn_summary


@pytest.mark.parametrize("stage", ["hcr_models", "dlr_models"])
def test_table7_cutoff_and_sensitivity_equal_the_models_own_table(study, stage):
    context, *_ = study
    best = json.loads((context.stage_dir(stage) / "best.json").read_text())["best"]
    own = _rows(pd.read_csv(context.stage_dir(stage) / "result" / "metrics.csv"), best)
    table7 = _rows(_table7(context), best)
    assert list(table7.index) == ["train", "test", EXTERNAL]
    assert set(table7["threshold_set"]) == {CV_SET}
    pd.testing.assert_frame_equal(table7, own.loc[table7.index])
    # and not the in-sample cut-off the comparison used to choose
    predictions = pd.read_csv(context.stage_dir(stage) / PREDICTIONS_FILE)
    training = predictions[predictions["set"] == "train"]
    assert table7.loc["train", "threshold"] != youden_threshold(training["label"],
                                                                training[best])


def test_table7_keeps_the_cutoff_the_deep_stage_chose(study):
    context, _, deep_metrics, _ = study
    table7 = _rows(_table7(context), "DL-resnet18")
    assert set(table7["threshold_set"]) == {"train"}
    pd.testing.assert_frame_equal(table7, _rows(deep_metrics, "DL-resnet18").loc[table7.index])


def test_dlrn_cutoff_comes_from_its_cross_validated_training_probabilities(study):
    context, summary, *_ = study
    oof = pd.read_csv(context.stage_dir("dlrn") / OOF_FILE, index_col="case_id")
    predictions = pd.read_csv(context.stage_dir("dlrn") / PREDICTIONS_FILE, index_col="case_id")
    assert set(oof.index) == set(predictions.index[predictions["set"] == "train"])
    assert not np.allclose(oof["DLRN"], predictions.loc[oof.index, "DLRN"])
    table7 = _rows(_table7(context), "DLRN")
    assert set(table7["threshold_set"]) == {CV_SET}
    assert table7.loc["train", "threshold"] == youden_threshold(oof["label"], oof["DLRN"])
    caption = summary.tables["evaluation/metrics"]
    assert caption.startswith("Performance of the best model of each kind (Table 7). ")
    assert "out-of-fold training predictions for HCR-" in caption
    assert "training-set predictions for DL-resnet18" in caption
    assert "cross-validated on the training set with the DLR models' folds" in caption


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
    _done(context, "dlrn")
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
    _done(context, "comparison")
    run_comparison(context)
    assert set(_rows(_table7(context), "DLRN")["threshold_set"]) == {"train"}


def test_a_given_metrics_table_must_cover_the_scores(study, tmp_path):
    context, *_ = study
    predictions = pd.read_csv(context.stage_dir("comparison") / PREDICTIONS_FILE,
                              index_col="case_id")
    with pytest.raises(DlrnError, match="metrics table given covers models"):
        write_evaluation(predictions, ["DLRN", "DL-resnet18"], tmp_path / "evaluation",
                         metrics=_table7(context).query("model == 'DLRN'"), figures=False)
