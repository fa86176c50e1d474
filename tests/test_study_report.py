"""The report's paper views of the tables: metrics, baseline (Table 2), logistic regression."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dlrn.clinical import baseline_table
from dlrn.report.html import (
    ReportSection,
    _html_table,
    _paper_view,
    baseline_view,
    build_report,
    estimate_with_ci,
    format_p,
    metrics_view,
)
from dlrn.report.summary import StageSummary


def _metrics(note: str = "") -> pd.DataFrame:
    return pd.DataFrame({
        "model": ["HCR-LR", "HCR-LR"], "set": ["train", "test"], "n": [84, 36],
        "n_positive": [25, 11], "auc": [0.90912, 0.5], "auc_ci_low": [0.88149, np.nan],
        "auc_ci_high": [0.93712, np.nan], "threshold": [0.4511, -np.inf],
        "auc_ci_method": ["delong", "delong"], "accuracy": [0.8929, 0.3056],
        "accuracy_ci_low": [0.81, 0.17], "sensitivity": [0.84, 1.0], "specificity": [0.9153, 0.0],
        "ppv": [0.8077, 0.3056], "npv": [0.931, np.nan], "f1": [0.8235, 0.468],
        "tp": [21, 11], "note": ["", note]})


def test_metrics_view_reads_like_a_paper_table():
    view = metrics_view(_metrics("npv undefined (no case called negative)"))
    assert list(view.columns) == ["Model", "Set", "n", "Positive", "AUC (95% CI)", "Accuracy",
                                  "Sensitivity", "Specificity", "PPV", "NPV", "F1",
                                  "Cut\u2011off", "Note"]
    first, second = view.iloc[0], view.iloc[1]
    assert first["AUC (95% CI)"] == "0.909 (0.881–0.937)"
    assert (first["n"], first["Sensitivity"], first["Cut\u2011off"]) == ("84", "0.840", "0.451")
    assert second["AUC (95% CI)"] == "0.500"  # no CI: the estimate alone
    assert (second["NPV"], second["Cut\u2011off"]) == ("", "−∞")
    assert second["Note"] == "npv undefined (no case called negative)"


def test_note_column_only_when_a_row_has_a_note():
    assert "Note" not in metrics_view(_metrics())
    # an all-blank note column reads back from CSV as numbers, not text
    assert "Note" not in metrics_view(_metrics().assign(note=pd.array([pd.NA] * 2, "Int64")))


def test_metrics_view_shows_patients_and_where_each_cutoff_was_chosen():
    clustered = _metrics().assign(
        set=["train (out-of-fold)", "test"], n_patients=[42, 18],
        cutoff_source=["youden (midpoint) on train (out-of-fold)",
                       "youden (midpoint) on train (out-of-fold)"])
    view = metrics_view(clustered)
    assert list(view.columns[:4]) == ["Model", "Set", "n", "Patients"]
    assert view["Patients"].tolist() == ["42", "18"]
    assert view["Cut\u2011off chosen"].iloc[0] == "youden (midpoint) on train (out-of-fold)"
    assert "Patients" not in metrics_view(_metrics())  # one image per patient: no column


def test_pairwise_tests_show_the_holm_adjusted_p_value():
    delong = pd.DataFrame({"set": ["test"] * 3, "model_1": ["A", "A", "B"],
                           "model_2": ["B", "C", "C"], "auc_diff": [0.1, 0.2, 0.1],
                           "p_value": [0.01, 0.02, 0.3], "p_value_holm": [0.03, 0.04, 0.3],
                           "method": ["delong"] * 3, "note": [""] * 3})
    view = _paper_view(delong)
    assert view["p value (Holm-adjusted)"].tolist() == ["0.030", "0.040", "0.300"]
    assert view["p value"].tolist() == ["0.010", "0.020", "0.300"]


def test_formatting_helpers():
    assert estimate_with_ci(np.nan, 0.1, 0.2) == ""
    assert estimate_with_ci(1.2345, 0.5, 3.0) == "1.234 (0.500–3.000)"
    assert [format_p(p) for p in (0.0004, 0.05, 1.0, np.nan)] == ["<0.001", "0.050", "1.000",
                                                                   ""]


@pytest.fixture()
def cohort():
    rng = np.random.default_rng(3)
    n = 60
    return pd.DataFrame({
        "set": np.where(np.arange(n) < 42, "train", "test"),
        "age": rng.normal(50, 10, n).round(),
        "sex": rng.choice(["female", "male"], n)},
        index=[f"c{i}" for i in range(n)])


def _round_trip(table: pd.DataFrame, tmp_path) -> pd.DataFrame:
    """The table as the report reads it back from the stage's CSV."""
    table.to_csv(tmp_path / "table.csv", index=False)
    return pd.read_csv(tmp_path / "table.csv", dtype_backend="numpy_nullable")


def test_baseline_view_shows_the_papers_columns_train_first(cohort, tmp_path):
    table = baseline_table(cohort, "set", ["age", "sex"], categorical=["sex"],
                           group_order=["train", "test"])
    view = _paper_view(_round_trip(table, tmp_path))
    assert list(view.columns) == ["Variable", "Level", "train (n=42)", "test (n=18)", "p",
                                  "Test used"]
    assert list(view["Variable"]) == ["age", "sex", "", ""]  # the variable once per block
    assert list(view["Level"])[2:] == ["female", "male"]
    assert view["p"].str.fullmatch(r"<0\.001|\d\.\d{3}|").all()
    assert "0.000" not in set(view.iloc[:, 2:4].to_numpy().ravel())


def test_baseline_view_shows_missing_counts_as_integers_when_any(cohort, tmp_path):
    cohort.loc[["c0", "c1", "c50"], "age"] = np.nan
    table = baseline_table(cohort, "set", ["age", "sex"], categorical=["sex"],
                           group_order=["train", "test"])
    view = baseline_view(_round_trip(table, tmp_path))
    assert list(view["Missing, train"]) == ["2", "0", "", ""]
    assert list(view["Missing, test"]) == ["1", "0", "", ""]


def test_logistic_view_gives_odds_ratios_with_ci_and_leaves_out_the_intercept():
    table = pd.DataFrame({"term": ["(Intercept)", "shape[regular]"], "beta": [0.1, -1.9],
                          "odds_ratio": [1.1, 0.145], "ci_low": [0.5, 0.0231],
                          "ci_high": [2.0, 0.915], "p_value": [0.35, 0.0004]})
    view = _paper_view(table)
    assert view.to_dict("records") == [{"Term": "shape[regular]",
                                        "OR (95% CI)": "0.145 (0.023–0.915)", "p": "<0.001"}]


def test_generic_tables_show_counts_whole_flags_in_words_and_parameters_readably():
    table = pd.DataFrame({"classifier": ["SVM", "LR"],
                          "params": ['{"estimator__C": 1.0}', '{"C": 0.1, "penalty": "l2"}'],
                          "groups": [10.0, np.nan], "chosen": [True, False],
                          "train_time_s": [9.3081, 120.44], "images_per_s": [3.5, 1200.0],
                          "median_auc": [0.8, 1e-6]})
    view = _paper_view(table)
    assert list(view.columns) == ["classifier", "params", "groups", "chosen", "train time (s)",
                                  "images/s", "median AUC"]
    assert list(view["params"]) == ["C = 1.0", "C = 0.1; penalty = l2"]
    assert list(view["groups"]) == ["10", ""]
    assert list(view["chosen"]) == ["yes", "no"]
    assert list(view["train time (s)"]) == ["9.308", "120.4"]
    assert list(view["median AUC"]) == ["0.800", "0.000"]


def test_numbers_align_right_and_short_names_do_not_wrap():
    html = _html_table(pd.DataFrame({"Model": ["Clinical-RandomForest"],
                                     "AUC (95% CI)": ["0.909 (0.881–0.937)"],
                                     "Note": ["npv undefined (no case called negative)"]}))
    assert '<td class="text short">Clinical-RandomForest</td>' in html
    assert '<td class="num">0.909 (0.881–0.937)</td>' in html
    assert '<td class="text">npv undefined' in html


def test_report_shows_the_paper_views_and_keeps_every_column_in_the_workbook(cohort,
                                                                            tmp_path):
    stage = tmp_path / "stages" / "clinical"
    (stage / "tables").mkdir(parents=True)
    baseline_table(cohort, "set", ["age", "sex"], categorical=["sex"],
                   group_order=["train", "test"]).to_csv(stage / "tables" / "baseline.csv",
                                                          index=False)
    _metrics("npv undefined").to_csv(stage / "tables" / "metrics.csv", index=False)
    summary = StageSummary(tables={"tables/baseline": "Baseline characteristics (Table 2)",
                                   "tables/metrics": "Performance"})
    (tmp_path / "study.json").write_text(json.dumps({"identity": {}, "versions": {}}))
    section = ReportSection("clinical", "Clinical", "done", summary)
    html = build_report(tmp_path, [section], []).read_text()
    assert "<th>Test used</th>" in html and "<th>AUC (95% CI)</th>" in html
    assert "shapiro_p_1" not in html and "auc_ci_low" not in html
    workbook = pd.read_excel(tmp_path / "report" / "tables.xlsx", sheet_name=None)
    assert {"shapiro_p_1", "statistic", "min_expected", "note"} <= set(workbook["baseline"])
    assert {"auc_ci_low", "accuracy_ci_low", "tp"} <= set(workbook["metrics"])
