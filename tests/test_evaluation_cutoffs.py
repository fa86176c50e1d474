"""Cut-offs chosen elsewhere, out-of-fold training rows and the apparent table, Holm p-values."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _stats_refs import data
from statsmodels.stats.multitest import multipletests

from dlrn.errors import DlrnError
from dlrn.evaluation import TRAIN_APPARENT, TRAIN_OOF, evaluate_predictions, holm, metrics_table
from dlrn.evaluation.roc import delong_pairwise
from dlrn.evaluation.threshold import cutoff_metrics, youden_threshold


@pytest.fixture
def predictions() -> pd.DataFrame:
    """Reference scores: rows 1-150 train, 151-300 test; 'apparent' scores of the training rows
    are shifted towards their labels (an overfitted refit), the out-of-fold ones are not."""
    table = data("binary_scores").rename(columns={"y": "label"})
    table["set"] = np.where(np.arange(len(table)) < 150, "train", "test")
    table.index = pd.Index([f"case{i:03d}" for i in range(len(table))], name="case_id")
    return table


@pytest.fixture
def oof(predictions) -> pd.DataFrame:
    """Out-of-fold s1/s2 of the training cases = the reference scores; the table's own
    training scores are made apparent (optimistic) by pushing them towards the labels."""
    train = predictions["set"] == "train"
    out_of_fold = predictions.loc[train, ["label", "s1", "s2"]].copy()
    for model in ("s1", "s2"):
        predictions.loc[train, model] += 3 * predictions.loc[train, "label"]
    return out_of_fold


def test_given_cutoffs_replace_the_training_youden_and_say_where_they_came_from(predictions):
    table = metrics_table(predictions, ["s1", "s2"], cutoffs={"s1": 0.3},
                          cutoff_source="CNN stage, out-of-fold").set_index(["model", "set"])
    test = predictions[predictions["set"] == "test"]
    given = table.loc[("s1", "test")]
    assert given["threshold"] == 0.3 and given["threshold_rule"] == "given"
    assert given["cutoff_source"] == "given: CNN stage, out-of-fold"
    expected = cutoff_metrics(test["label"], test["s1"], 0.3)
    assert given["sensitivity"] == expected["sensitivity"] and given["tp"] == expected["tp"]
    train = predictions[predictions["set"] == "train"]
    youden = youden_threshold(train["label"], train["s2"])
    assert table.loc[("s2", "test"), "threshold"] == youden
    assert table.loc[("s2", "test"), "cutoff_source"] == "youden (midpoint) on train"


def test_cutoff_sources_per_model_and_unknown_models(predictions):
    table = metrics_table(predictions, ["s1", "s2"], cutoffs={"s1": 0.3, "s2": 0.0},
                          cutoff_source={"s1": "stage A"})
    assert list(table.drop_duplicates("model")["threshold_set"]) == ["stage A", "given"]
    with pytest.raises(DlrnError, match=r"cut-offs given for \['s9'\]"):
        metrics_table(predictions, ["s1"], cutoffs={"s9": 0.5})


def test_out_of_fold_rows_and_cutoffs_are_labelled_and_match_the_oof_scores(predictions, oof):
    with pytest.warns(UserWarning, match="s3 on set 'train \\(apparent\\)': no out-of-fold"):
        table = metrics_table(predictions, ["s1", "s2", "s3"], oof=oof)
    assert list(table["set"][:2]) == [TRAIN_OOF, "test"]
    rows = table.set_index(["model", "set"])
    for model in ("s1", "s2"):
        threshold = youden_threshold(oof["label"], oof[model])
        assert rows.loc[(model, "test"), "threshold"] == threshold
        assert rows.loc[(model, TRAIN_OOF), "cutoff_source"] == f"youden (midpoint) on {TRAIN_OOF}"
        metrics = cutoff_metrics(oof["label"], oof[model], threshold)
        assert rows.loc[(model, TRAIN_OOF), "specificity"] == metrics["specificity"]
    s3 = rows.xs("s3", level="model")  # no out-of-fold predictions: apparent, and says so
    assert list(s3.index) == [TRAIN_APPARENT, "test"]
    assert s3.loc[TRAIN_APPARENT, "note"].startswith("no out-of-fold predictions")
    assert s3.loc["test", "threshold_set"] == TRAIN_APPARENT


def test_evaluate_uses_out_of_fold_rows_everywhere_and_apparent_on_its_own(predictions, oof):
    warnings.simplefilter("ignore", UserWarning)
    probabilities = predictions.assign(p1=1 / (1 + np.exp(-4 * (predictions["s1"] - 0.5))))
    oof = oof.assign(p1=1 / (1 + np.exp(-4 * (oof["s1"] - 0.5))))
    tables = evaluate_predictions(probabilities, ["p1", "s1", "s2"], oof=oof)
    oof_delong = tables["delong"][tables["delong"]["set"] == TRAIN_OOF]
    reference = delong_pairwise(oof["label"], oof[["p1", "s1", "s2"]])
    assert np.array_equal(oof_delong["p_value"], reference["p_value"])
    hl = tables["hosmer_lemeshow"].set_index(["model", "set"])
    assert (hl.loc[("p1", TRAIN_OOF), "brier"]
            == np.mean((oof["p1"] - oof["label"]) ** 2))
    assert set(tables["dca"]["set"]) == {TRAIN_OOF, "test"}
    apparent = tables["metrics_apparent"].set_index("model")
    assert set(apparent["set"]) == {TRAIN_APPARENT}
    main = tables["metrics"].set_index(["model", "set"])
    assert apparent.loc["s1", "threshold"] == main.loc[("s1", "test"), "threshold"]
    assert apparent.loc["s1", "auc"] > main.loc[("s1", TRAIN_OOF), "auc"]  # optimistic


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.iloc[1:], "missing case000"),
        (lambda o: o.rename(index={"case000": "other"}), "not in the training set other"),
        (lambda o: o.assign(label=1 - o["label"]), "out-of-fold labels differ"),
        (lambda o: o.drop(columns=["s1", "s2"]), "none of the score columns"),
    ],
)
def test_bad_out_of_fold_predictions_are_clear_errors(predictions, oof, change, message):
    with pytest.raises(DlrnError, match=message):
        metrics_table(predictions, ["s1"], oof=change(oof))


def test_holm_matches_r_p_adjust_by_hand():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.20), "holm") = 0.04 0.09 0.09 0.20
    # sorted 0.01, 0.03, 0.04, 0.20 times 4, 3, 2, 1 = 0.04, 0.09, 0.08, 0.20; running max
    assert np.allclose(holm([0.01, 0.04, 0.03, 0.20]), [0.04, 0.09, 0.09, 0.20], rtol=0,
                       atol=1e-15)
    assert np.isnan(holm([0.5, np.nan])[1]) and holm([0.5, np.nan])[0] == 0.5
    assert holm([0.6, 0.7])[0] == 1.0  # capped at 1
    p = np.random.default_rng(0).random(15) ** 3
    assert np.allclose(holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)


@pytest.mark.filterwarnings("ignore:.*not probabilities")
def test_every_pairwise_delong_table_has_holm_column(predictions):
    tables = evaluate_predictions(predictions, ["s1", "s2", "s3", "s4"])
    for _, pairs in tables["delong"].groupby("set"):
        assert np.allclose(pairs["p_value_holm"], holm(pairs["p_value"]), rtol=0, atol=0)
        assert (pairs["p_value_holm"] >= pairs["p_value"]).all()
    assert len(tables["delong"]) == 2 * 6
