"""``dlrn model`` end to end on tiny files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlrn.cli import main


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    n = 80
    ids = [f"P{i:02d}-{side}" for i in range(n // 2) for side in ("L", "R")]  # 2 cases/patient
    label = rng.integers(0, 2, n)
    features = pd.DataFrame(rng.normal(size=(n, 12)), columns=[f"f{i}" for i in range(12)])
    features["f0"] += 2.0 * label
    features.insert(0, "case_id", ids)
    cohort = pd.DataFrame(
        {"case_id": ids, "label": label, "patient_id": [case.split("-")[0] for case in ids]}
    )
    repeat = features.iloc[::2].copy()
    repeat.iloc[:, 1:] += rng.normal(scale=0.05, size=(len(repeat), 12))
    repeat["f5"] = rng.normal(size=len(repeat))  # not reproducible
    paths = {name: tmp_path / f"{name}.csv" for name in ("features", "cohort", "repeat")}
    features.to_csv(paths["features"], index=False)
    cohort.to_csv(paths["cohort"], index=False)
    repeat.to_csv(paths["repeat"], index=False)
    return paths


def model_args(files, out, *options: str) -> list[str]:
    """``dlrn model`` on the fixture's features and cohort, plus the given options."""
    return ["model", str(files["features"]), "--cohort", str(files["cohort"]),
            "--out", str(out), *options]


def test_model_command_writes_results_with_icc_and_grouped_split(files, tmp_path) -> None:
    out = tmp_path / "out"
    code = main(model_args(files, out, "--classifiers", "LR,LightGBM", "--jobs", "1",
                           "--repeat-features", str(files["repeat"]),
                           "--class-weight", "balanced"))
    assert code == 0
    split = pd.read_csv(out / "split.csv")
    sides = split.groupby("patient_id")["set"].nunique()
    assert (sides == 1).all()  # both cases of a patient on the same side
    icc = pd.read_csv(out / "icc.csv").set_index("feature")
    assert icc.loc["f5", "repeat"] < 0.5 < icc.loc["f0", "repeat"]
    removed = pd.read_csv(out / "selection_removed.csv")
    assert "f5" in set(removed.loc[removed["step"] == "reproducibility", "feature"])
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["case_id", "label", "set", "HCR-LR", "HCR-LightGBM"]
    assert (out / "figures" / "lasso_path.png").exists()
    assert (out / "tables.xlsx").exists()


def test_model_command_reports_mismatched_case_ids(files, tmp_path, capsys) -> None:
    cohort = pd.read_csv(files["cohort"])
    cohort.loc[0, "case_id"] = "stranger"
    cohort.to_csv(files["cohort"], index=False)
    code = main(model_args(files, tmp_path / "out", "--classifiers", "LR"))
    assert code == 2
    message = capsys.readouterr().err
    assert "P00-L" in message and "stranger" in message


def test_model_command_uses_a_given_split_and_refuses_to_overwrite(files, tmp_path) -> None:
    cohort = pd.read_csv(files["cohort"])
    cohort["group"] = np.where(np.arange(len(cohort)) < 60, "train", "test")
    cohort.to_csv(files["cohort"], index=False)
    out = tmp_path / "out"
    args = model_args(files, out, "--classifiers", "LR", "--split-column", "group",
                      "--no-selection", "--jobs", "1")
    assert main(args) == 0
    predictions = pd.read_csv(out / "predictions.csv")
    assert (predictions["set"] == "test").sum() == 20
    assert not (out / "figures" / "lasso_path.png").exists()
    assert main(args) == 2
