"""The ``dlrn evaluate`` command end to end on a small predictions CSV."""

from __future__ import annotations

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
    with pytest.warns(UserWarning, match="set 'external'"):
        code = main(["evaluate", str(path), "--label", "outcome", "--scores", "ModelA,ModelB",
                     "--set", "cohort", "--train-set", "development", "--out", str(out),
                     "--no-lowess"])
    assert code == 0
    metrics = pd.read_csv(out / "metrics.csv", keep_default_na=False).set_index(["model", "set"])
    assert metrics.loc[("ModelA", "external"), "note"].startswith("AUC and its CI undefined")
    assert metrics.loc[("ModelA", "development"), "note"] == ""
    delong = pd.read_csv(out / "delong.csv").set_index("set")
    assert delong.loc["external", "note"].startswith("DeLong test skipped")
    assert not (out / "figures" / "roc_external.png").exists()
    assert (out / "figures" / "calibration_external.png").is_file()
    assert '"smooth_calibration": false' in (out / "provenance.json").read_text()
