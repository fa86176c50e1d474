"""The ``dlrn evaluate`` command end to end on a small predictions CSV."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from dlrn.cli import main


@pytest.fixture
def predictions_csv(tmp_path):
    rng = np.random.default_rng(7)
    n = 120
    label = rng.integers(0, 2, n)
    table = pd.DataFrame({
        "case_id": [f"P{i:03d}" for i in range(n)],
        "outcome": label,
        "cohort": np.where(np.arange(n) < 80, "development", "external"),
        "ModelA": 1 / (1 + np.exp(-(1.5 * label + rng.normal(size=n) - 0.75))),
        "ModelB": 1 / (1 + np.exp(-(0.8 * label + rng.normal(size=n) - 0.4))),
    })
    path = tmp_path / "predictions.csv"
    table.to_csv(path, index=False)
    return path


def test_evaluate_writes_tables_and_figures(predictions_csv, tmp_path):
    out = tmp_path / "out"
    code = main(["evaluate", str(predictions_csv), "--label", "outcome", "--scores",
                 "ModelA,ModelB", "--set", "cohort", "--train-set", "development",
                 "--out", str(out)])
    assert code == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics[["model", "set"]].values.tolist() == [
        ["ModelA", "development"], ["ModelA", "external"],
        ["ModelB", "development"], ["ModelB", "external"],
    ]
    assert metrics.groupby("model")["threshold"].nunique().eq(1).all()
    for name in ["delong", "calibration", "hosmer_lemeshow", "dca"]:
        assert (out / f"{name}.csv").is_file()
    assert (out / "evaluation.xlsx").is_file()
    assert (out / "figures" / "roc_external.png").is_file()


def test_evaluate_refuses_a_non_empty_folder(predictions_csv, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.csv").write_text("keep me")
    args = ["evaluate", str(predictions_csv), "--label", "outcome", "--scores", "ModelA",
            "--out", str(out), "--no-figures"]
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert (out / "earlier.csv").read_text() == "keep me"


def test_evaluate_names_the_bad_column(predictions_csv, tmp_path, capsys):
    code = main(["evaluate", str(predictions_csv), "--label", "outcome", "--scores", "ModelC",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "ModelC" in capsys.readouterr().err


def test_evaluate_reports_a_one_class_external_cohort_instead_of_stopping(
    predictions_csv, tmp_path
):
    table = pd.read_csv(predictions_csv)
    table = table[(table["cohort"] == "development") | (table["outcome"] == 0)]
    path = tmp_path / "one_class.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a note in the log, not a Python warning
        code = main(["evaluate", str(path), "--label", "outcome", "--scores", "ModelA,ModelB",
                     "--set", "cohort", "--train-set", "development", "--out", str(out),
                     "--no-lowess"])
    assert code == 0
    assert "set 'external': DeLong test skipped" in _run_log(out)
    metrics = pd.read_csv(out / "metrics.csv", keep_default_na=False).set_index(["model", "set"])
    assert metrics.loc[("ModelA", "external"), "note"].startswith("AUC and its CI undefined")
    assert metrics.loc[("ModelA", "development"), "note"] == ""
    delong = pd.read_csv(out / "delong.csv").set_index("set")
    assert delong.loc["external", "note"].startswith("DeLong test skipped")
    assert not (out / "figures" / "roc_external.png").exists()
    assert (out / "figures" / "calibration_external.png").is_file()
    assert '"smooth_calibration": false' in (out / "provenance.json").read_text()


def test_hl_groups_sets_the_hosmer_lemeshow_groups_not_the_patients(predictions_csv, tmp_path):
    out = tmp_path / "out"
    assert main(["evaluate", str(predictions_csv), "--label", "outcome", "--scores", "ModelA",
                 "--hl-groups", "6", "--out", str(out), "--no-figures"]) == 0
    hl = pd.read_csv(out / "hosmer_lemeshow.csv")
    assert hl["groups"].tolist() == [6] and hl["df"].tolist() == [4]
    assert "n_patients" not in pd.read_csv(out / "metrics.csv").columns


@pytest.fixture
def two_views_csv(predictions_csv, tmp_path):
    """Every case of the predictions file twice (two views of one patient, nearly equal scores)."""
    table = pd.read_csv(predictions_csv)
    second = table.assign(case_id=table["case_id"] + "-b",
                          ModelA=table["ModelA"] * 0.99, ModelB=table["ModelB"] * 0.99)
    both = pd.concat([table, second], ignore_index=True).assign(
        patient=lambda t: t["case_id"].str.removesuffix("-b"))
    path = tmp_path / "two_views.csv"
    both.to_csv(path, index=False)
    return path


def _run_log(out):
    """The text of the one run log the command kept in its output folder."""
    (log,) = (out / "logs").glob("run-*.log")
    return log.read_text()


def _evaluate(path, out, *options):
    return main(["evaluate", str(path), "--label", "outcome", "--scores", "ModelA,ModelB",
                 "--set", "cohort", "--train-set", "development", "--out", str(out),
                 "--no-figures", "--n-bootstrap", "300", *options])


def test_patient_option_clusters_and_adds_patient_tables(two_views_csv, tmp_path):
    assert _evaluate(two_views_csv, tmp_path / "images") == 0
    assert _evaluate(two_views_csv, tmp_path / "patients", "--patient", "patient",
                     "--patient-aggregation", "max", "--comparison", "cluster-bootstrap") == 0
    images = pd.read_csv(tmp_path / "images" / "metrics.csv")
    patients = pd.read_csv(tmp_path / "patients" / "metrics.csv")
    assert set(patients["n_patients"] * 2) == set(patients["n"])
    assert patients["auc_ci_method"].str.startswith("cluster bootstrap over patients").all()
    assert images["auc_ci_method"].eq("delong").all()

    def width(table):
        return (table["auc_ci_high"] - table["auc_ci_low"]).to_numpy()

    assert (width(patients) > 1.2 * width(images)).all()  # duplicated views: about sqrt(2)
    delong = pd.read_csv(tmp_path / "patients" / "delong.csv")
    assert delong["method"].str.startswith("cluster bootstrap over patients").all()
    assert "p_value_holm" in delong.columns
    per_patient = pd.read_csv(tmp_path / "patients" / "patient_predictions.csv")
    first = pd.read_csv(two_views_csv).groupby("patient")["ModelA"].max()
    assert per_patient.set_index("patient_id")["ModelA"].to_dict() == pytest.approx(
        first.to_dict())
    assert (tmp_path / "patients" / "patient_metrics.csv").is_file()


def test_ci_option_takes_the_clustered_methods(two_views_csv, tmp_path):
    assert _evaluate(two_views_csv, tmp_path / "o", "--patient", "patient",
                     "--ci", "obuchowski") == 0
    metrics = pd.read_csv(tmp_path / "o" / "metrics.csv")
    assert metrics["auc_ci_method"].eq("obuchowski (clustered DeLong)").all()


def test_evaluate_options_are_the_study_files_evaluation_settings():
    import dataclasses

    from dlrn.cli import build_parser
    from dlrn.study.config import EvaluationSettings

    defaults = EvaluationSettings()
    args = build_parser().parse_args(["evaluate", "p.csv", "--label", "y", "--scores", "a",
                                      "--out", "o"])
    assert (args.patient_aggregation, args.ci, args.comparison, args.hl_groups) == (
        defaults.patient_aggregation, defaults.auc_ci, defaults.comparison,
        defaults.calibration_bins)
    shared = {"patient_aggregation", "auc_ci", "comparison", "calibration_bins"}
    # every evaluation setting but the clinical selection's and the nomogram's (study only)
    # is an option
    assert {f.name for f in dataclasses.fields(EvaluationSettings)
            if not f.name.startswith(("clinical_", "nomogram_"))} == shared
    for value in ("cluster-bootstrap", "obuchowski", "delong", "bootstrap"):
        assert build_parser().parse_args(["evaluate", "p.csv", "--label", "y", "--scores",
                                          "a", "--out", "o", "--ci", value]).ci == value


def test_a_patient_with_both_labels_keeps_clustered_cis_but_gets_no_patient_tables(
        two_views_csv, tmp_path):
    table = pd.read_csv(two_views_csv)
    table.loc[table["case_id"] == "P000-b", "outcome"] = 1 - table.loc[0, "outcome"]
    table.to_csv(two_views_csv, index=False)
    assert _evaluate(two_views_csv, tmp_path / "o", "--patient", "patient") == 0
    assert "patient-level tables skipped: patient(s) P000 " in _run_log(tmp_path / "o")
    metrics = pd.read_csv(tmp_path / "o" / "metrics.csv")
    assert set(metrics["n_patients"] * 2) == set(metrics["n"])
    assert not list((tmp_path / "o").glob("patient_*"))
