"""``dlrn validate`` prints every problem, or excludes and records them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from dlrn.cli import main


@pytest.fixture
def broken_cohort(synthetic_cohort_csv: Path, tmp_path: Path) -> Path:
    shutil.copytree(synthetic_cohort_csv.parent, tmp_path / "cohort")
    table = tmp_path / "cohort" / "cohort.csv"
    (table.parent / "masks" / "syn0003.png").unlink()
    return table


def test_valid_cohort(synthetic_cohort_csv: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["validate", str(synthetic_cohort_csv), "--patient", "patient_id",
                 "--repeat-mask", "mask_reader2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "60 valid case(s)" in out
    assert "mask_reader2: 60 case(s) with a repeat mask" in out


def test_table_without_outcome(synthetic_cohort_csv: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:
    table = pd.read_csv(synthetic_cohort_csv).drop(columns="label")
    for column in ("image", "mask", "mask_reader2"):
        table[column] = [str(synthetic_cohort_csv.parent / path) for path in table[column]]
    table.to_csv(tmp_path / "unlabelled.csv", index=False)
    assert main(["validate", str(tmp_path / "unlabelled.csv")]) == 2  # label column required
    assert main(["validate", str(tmp_path / "unlabelled.csv"), "--label", "none"]) == 0
    assert "60 valid case(s)" in capsys.readouterr().out


def test_problems_are_listed(broken_cohort: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", str(broken_cohort)]) == 2
    error = capsys.readouterr().err
    assert "row 4, case 'syn0003', mask" in error and "file not found" in error


def test_exclusions_are_written(broken_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "exclusions.csv"
    assert main(["validate", str(broken_cohort), "--exclusions", str(out)]) == 0
    assert pd.read_csv(out)["case_id"].tolist() == ["syn0003"]
    assert main(["validate", str(broken_cohort), "--exclusions", str(out)]) == 2  # no overwrite
