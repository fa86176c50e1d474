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
        (lambda t: t.assign(label=np.where(t["set"] == "test", 0, t["label"])), "set 'test'"),
    ],
)
def test_bad_predictions_are_clear_errors(predictions, change, message):
    with pytest.raises(DlrnError, match=message):
        metrics_table(change(predictions), ["s1"])


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
        assert (out / "figures" / f"{stem}.png").stat().st_size > 10_000
        assert (out / "figures" / f"{stem}.svg").is_file()
    assert written["provenance"].is_file()
    with pytest.raises(DlrnError, match="not empty"):
        write_evaluation(predictions, ["prob"], out, figures=False)
    write_evaluation(predictions, ["prob"], out, figures=False, overwrite=True)
    assert pd.read_csv(out / "metrics.csv")["model"].unique().tolist() == ["prob"]
