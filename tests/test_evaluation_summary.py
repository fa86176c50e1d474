"""metrics_table / evaluate_predictions / write_evaluation on a predictions table."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _stats_refs import assert_close, data, expected

from dlrn.errors import DlrnError
from dlrn.evaluation import evaluate_predictions, metrics_table, write_evaluation
from dlrn.evaluation.threshold import youden_threshold


@pytest.fixture
def predictions() -> pd.DataFrame:
    """The reference scores as a wide predictions table: rows 1-150 train, 151-300 test."""
    scores = data("binary_scores")
    table = scores.rename(columns={"y": "label"})
    table["set"] = np.where(np.arange(len(table)) < 150, "train", "test")
    table["prob"] = expected("calibration_hl_dca")["insample"]["predicted"]
    table.index = pd.Index([f"case{i:03d}" for i in range(len(table))], name="case_id")
    return table


def test_metrics_table_uses_the_training_threshold_on_every_set(predictions):
    table = metrics_table(predictions, ["s1", "s2"]).set_index(["model", "set"])
    assert list(table.index.get_level_values("set")[:2]) == ["train", "test"]
    train = predictions[predictions["set"] == "train"]
    for model in ["s1", "s2"]:
        threshold = youden_threshold(train["label"], train[model])
        assert table.loc[(model, "train"), "threshold"] == threshold
        assert table.loc[(model, "test"), "threshold"] == threshold
        assert table.loc[(model, "test"), "threshold_set"] == "train"
    assert {"auc_ci_low", "sensitivity_ci_high", "f1", "tp", "fn"} <= set(table.columns)


def test_without_sets_all_cases_match_proc(predictions):
    table = metrics_table(predictions, ["s1"], set_column=None).iloc[0]
    ref = expected("roc_auc_youden")["binary_scores"]["s1"]
    assert table["set"] == "all"
    assert_close([table["auc"], table["auc_ci_low"], table["threshold"], table["tp"]],
                 [ref["auc"], ref["ci95_delong"]["lower"], ref["youden_best"][0]["threshold"],
                  ref["youden_best"][0]["tp"]])


def test_bootstrap_option_states_resamples(predictions):
    table = metrics_table(predictions, ["s1"], auc_method="bootstrap", n_bootstrap=200, seed=3)
    assert table["auc_ci_method"].iloc[0] == "bootstrap (200 resamples, seed 3)"


def test_evaluate_predictions_tables(predictions):
    with pytest.warns(UserWarning, match="not probabilities"):
        tables = evaluate_predictions(predictions, ["prob", "s2"])
    assert set(tables) == {"metrics", "delong", "calibration", "hosmer_lemeshow", "dca"}
    assert len(tables["delong"]) == 2 and set(tables["delong"]["set"]) == {"train", "test"}
    hl = tables["hosmer_lemeshow"].set_index(["model", "set"])
    assert hl.loc[("s2", "test"), "note"].startswith("scores are not probabilities")
    assert np.isfinite(hl.loc[("prob", "test"), "p_value"])
    assert set(tables["dca"]["model"]) == {"prob"} and len(tables["dca"]) == 2 * 99
    assert set(tables["calibration"]["model"]) == {"prob"}


def test_small_set_gets_a_noted_row_not_a_silent_nan(predictions):
    small = predictions.iloc[:150].copy()
    small.iloc[:8, small.columns.get_loc("set")] = "tiny"
    small.iloc[:8, small.columns.get_loc("label")] = [0, 1, 0, 1, 0, 1, 0, 1]
    with pytest.warns(UserWarning, match="fewer than the 10"):
        tables = evaluate_predictions(small, ["prob"])
    row = tables["hosmer_lemeshow"].set_index("set").loc["tiny"]
    assert "fewer than the 10" in row["note"]
    assert np.isnan(row["p_value"]) and np.isfinite(row["brier"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.assign(label=t["label"].replace({1: 2})), "not 0/1 for case"),
        (lambda t: t.assign(s1=t["s1"].where(t.index != "case007")), "case007"),
        (lambda t: t.assign(set="validation"), "training set 'train' not found"),
        (lambda t: t.drop(columns="s1"), "lack column"),
        (lambda t: t.assign(label=np.where(t["set"] == "train", 1, t["label"])),
         r"set 'train' has only positives \(1\) among 150 cases; the Youden cut-off"),
    ],
)
def test_bad_predictions_are_clear_errors(predictions, change, message):
    with pytest.raises(DlrnError, match=message):
        metrics_table(change(predictions), ["s1"])


def _with_one_class_cohort(predictions: pd.DataFrame, label: int) -> pd.DataFrame:
    """The reference table plus an 'external' set: 20 test cases of one class only."""
    test = predictions[(predictions["set"] == "test") & (predictions["label"] == label)]
    external = test.iloc[:20].copy().assign(set="external")
    external.index = "ext_" + external.index
    return pd.concat([predictions, external])


def _assert_every_nan_is_noted(table: pd.DataFrame) -> None:
    numbers = table.select_dtypes("number")
    unexplained = numbers.isna().any(axis=1) & (table["note"] == "")
    assert not unexplained.any(), table[unexplained]


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_set_gets_noted_rows_and_the_defined_metrics(predictions, label):
    cohort = _with_one_class_cohort(predictions, label)
    with pytest.warns(UserWarning, match="set 'external'.*AUC and its CI undefined"):
        table = metrics_table(cohort, ["s1", "s2"])
    _assert_every_nan_is_noted(table)
    row = table.set_index(["model", "set"]).loc[("s1", "external")]
    assert np.isnan([row["auc"], row["auc_ci_low"], row["auc_ci_high"]]).all()
    assert row["note"].startswith("AUC and its CI undefined: only "
                                  f"{'positives (1)' if label else 'negatives (0)'} among 20")
    external = cohort[cohort["set"] == "external"]
    called = external["s1"] >= row["threshold"]
    if label == 0:  # specificity is defined without positives, sensitivity is not
        assert row["specificity"] == (~called).mean() and row["tn"] == (~called).sum()
        assert np.isnan(row["sensitivity"]) and "sensitivity undefined (no positive cases)" in (
            row["note"])
    else:
        assert row["sensitivity"] == called.mean() and row["tp"] == called.sum()
        assert np.isnan(row["specificity"]) and "specificity undefined (no negative cases)" in (
            row["note"])
    assert row["accuracy"] == (row["tp"] + row["tn"]) / 20
    others = table[table["set"] != "external"]
    assert (others["note"] == "").all() and others["auc"].notna().all()


def test_one_class_set_skips_delong_with_a_note_and_keeps_the_rest(predictions):
    cohort = _with_one_class_cohort(predictions, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = evaluate_predictions(cohort, ["prob", "s1", "s2"])
    said = [str(w.message) for w in caught]
    assert "set 'external': DeLong test skipped: only negatives (0) among 20 cases " \
           "(AUC undefined)" in said
    assert any(m.startswith("prob on set 'external': calibration intercept") for m in said)
    for name in ["metrics", "delong", "hosmer_lemeshow"]:
        _assert_every_nan_is_noted(tables[name])
    delong = tables["delong"].set_index("set")
    assert len(delong.loc["external"]) == 3 and delong.loc["external", "p_value"].isna().all()
    skipped = delong.loc["external", "note"]
    assert skipped.str.startswith("DeLong test skipped: only negatives").all()
    tested = delong.loc["test"].set_index(["model_1", "model_2"])
    assert tested["p_value"].notna().all()
    # prob is a monotone function of s1 (glm fitted values): identical ROC curves
    assert tested.loc[("prob", "s1"), "note"].startswith("zero variance of the AUC difference")
    assert (tested.drop(index=[("prob", "s1")])["note"] == "").all()
    hl = tables["hosmer_lemeshow"].set_index(["model", "set"]).loc[("prob", "external")]
    assert np.isfinite(hl["p_value"]) and np.isfinite(hl["brier"])  # defined with one class
    assert np.isnan(hl["calibration_slope"]) and "no finite estimate" in hl["note"]
    assert (tables["dca"]["set"] == "external").sum() == 99 * 2  # prob and s1, not s2


def test_write_evaluation_skips_roc_figures_of_a_one_class_set(predictions, tmp_path):
    warnings.simplefilter("ignore", UserWarning)
    write_evaluation(_with_one_class_cohort(predictions, 0), ["prob", "s1"], tmp_path / "out")
    figures = {path.stem for path in (tmp_path / "out" / "figures").glob("*.png")}
    assert {"roc_test", "delong_test", "calibration_external", "decision_curve_external"} <= (
        figures)
    assert not {"roc_external", "delong_external"} & figures


def test_write_evaluation_writes_tables_workbook_figures_and_refuses_overwrite(
    predictions, tmp_path
):
    out = tmp_path / "evaluation"
    warnings.simplefilter("ignore", UserWarning)  # s2 is not a probability: noted in the tables
    written = write_evaluation(predictions, ["prob", "s2"], out, auc_method="delong")
    for name in ["metrics", "delong", "calibration", "hosmer_lemeshow", "dca"]:
        assert (out / f"{name}.csv").is_file()
    assert pd.ExcelFile(out / "evaluation.xlsx").sheet_names[:2] == ["metrics", "delong"]
    for stem in ["roc_test", "calibration_test", "decision_curve_test", "delong_test"]:
        assert (out / "figures" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert "test set (n = 150)" in (out / "figures" / f"{stem}.svg").read_text()
    assert "prob: " in (out / "figures" / "roc_test.svg").read_text()  # the AUC legend
    assert written["provenance"].is_file()
    with pytest.raises(DlrnError, match="not empty"):
        write_evaluation(predictions, ["prob"], out, figures=False)
    write_evaluation(predictions, ["prob"], out, figures=False, overwrite=True)
    assert pd.read_csv(out / "metrics.csv")["model"].unique().tolist() == ["prob"]


def test_constant_and_non_separating_models_get_notes(predictions):
    table = predictions.assign(flat=0.25, inverted=-predictions["s1"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = metrics_table(table, ["flat", "inverted", "s1"])
    said = [str(w.message) for w in caught]
    for row in ["flat on set 'train': all scores equal", "flat on set 'test': all scores equal",
                "inverted on set 'test': Youden cut-off \u2212\u221e"]:
        assert any(message.startswith(row) for message in said), row
    _assert_every_nan_is_noted(metrics)
    rows = metrics.set_index(["model", "set"])
    for name in ["train", "test"]:
        flat = rows.loc[("flat", name)]
        assert (flat["auc"], flat["auc_ci_low"], flat["auc_ci_high"]) == (0.5, 0.5, 0.5)
        assert flat["note"].startswith(
            "all scores equal: the model does not rank cases; AUC 0.5 by convention, CI "
            "degenerate; Youden cut-off \u2212\u221e: no threshold separates")
        assert "npv undefined (no case called negative)" in flat["note"]
        inverted = rows.loc[("inverted", name)]
        assert inverted["threshold"] == -np.inf and inverted["auc"] < 0.5
        assert inverted["note"].startswith("Youden cut-off \u2212\u221e")
        assert inverted["sensitivity"] == 1 and inverted["specificity"] == 0
    assert (rows.xs("s1", level="model")["note"] == "").all()
