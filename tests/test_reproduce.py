"""Same cohort, same numbers: the demo study on row-shuffled tables, and `dlrn reproduce`.

The small demo study of the session (conftest.py, shared with the end-to-end tests)
serves every test here: run once more on the same tables with their rows shuffled, and
re-run by `dlrn reproduce`; none of them changes it (an altered image is put back).
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from dlrn.cli import main
from dlrn.result_diff import compare_folders
from dlrn.study.config import load_study
from dlrn.study.pipeline import run_study
from dlrn.study.reproduce import SUMMARY_JSON

TABLES = ("cohort/cohort.csv", "centre_b/cohort.csv")


@pytest.fixture
def demo(small_demo):
    return small_demo


def _shuffled_study(demo):
    """The demo's study file reading row-shuffled copies of both tables (same files)."""
    text = (demo / "study.yaml").read_text()
    for table in TABLES:
        rows = pd.read_csv(demo / table, dtype=str, keep_default_na=False)
        shuffled = rows.sample(frac=1, random_state=1)
        assert list(shuffled["case_id"]) != sorted(rows["case_id"])
        shuffled.to_csv(demo / table.replace("cohort.csv", "shuffled.csv"), index=False)
        text = text.replace(table, table.replace("cohort.csv", "shuffled.csv"))
    study = demo / "study_shuffled.yaml"
    study.write_text(text.replace("output: study", "output: study_shuffled"))
    return load_study(study)


@pytest.mark.slow
def test_shuffled_rows_give_the_same_tables_and_figures(demo):
    config = _shuffled_study(demo)
    run_study(config, progress=False)
    original, shuffled = demo / "study", config.output_dir
    files = [comparison for folder in ("stages", "report") for comparison in compare_folders(
        original / folder, shuffled / folder, roots=((original,), (shuffled,)))]
    assert len(files) > 200
    assert [c.line() for c in files if not c.same] == []
    cases = pd.read_csv(shuffled / "stages" / "cohort" / "cases.csv", dtype=str)
    main_ids = list(cases.loc[cases["set"] != "centre_b", "case_id"])
    assert main_ids == sorted(main_ids)  # one canonical order, main cohort first
    assert list(cases["set"]).index("centre_b") == len(main_ids)


@pytest.mark.slow
def test_reproduce_names_an_altered_image_and_reruns_nothing(demo, tmp_path, capsys):
    image = demo / "cohort" / "images" / "syn0005.png"
    pixels = image.read_bytes()
    try:
        image.write_bytes(pixels + b"\0")
        assert main(["reproduce", str(demo / "study"), "--out", str(tmp_path / "r")]) == 2
    finally:
        image.write_bytes(pixels)
    error = capsys.readouterr().err
    assert "1 input(s)" in error and "nothing was re-run" in error
    assert f"case syn0005 (main cohort): image {image}: changed (sha256 " in error
    assert not (tmp_path / "r" / "stages").exists()
    summary = json.loads((tmp_path / "r" / SUMMARY_JSON).read_text())
    assert summary["verdict"] == "inputs changed" and len(summary["input_changes"]) == 1


@pytest.mark.slow
def test_reproduce_says_identical_and_states_a_version_changed_by_hand(demo, tmp_path, capsys):
    study = tmp_path / "study"  # a copy, so that its record can be edited
    shutil.copytree(demo / "study", study)
    record = json.loads((study / "study.json").read_text())
    installed = record["versions"]["scikit-learn"]
    record["versions"]["scikit-learn"] = "1.0.0"
    (study / "study.json").write_text(json.dumps(record))
    before = {p: p.stat().st_mtime_ns for p in study.rglob("*")}
    out = tmp_path / "again"
    assert main(["reproduce", str(study), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"scikit-learn: 1.0.0 in the record, {installed} now" in printed
    assert "identical: " in printed
    summary = json.loads((out / SUMMARY_JSON).read_text())
    assert summary["verdict"] == "identical" and summary["differences"] == []
    assert summary["files_compared"] > 200
    assert (out / "reproduction.html").read_text().count("scikit-learn: 1.0.0") == 1
    assert {p: p.stat().st_mtime_ns for p in study.rglob("*")} == before  # only read


def test_reproduce_refuses_to_write_into_the_study(tmp_path, capsys):
    (tmp_path / "study").mkdir()
    assert main(["reproduce", str(tmp_path / "study"),
                 "--out", str(tmp_path / "study" / "again")]) == 2
    assert "must lie outside the original study" in capsys.readouterr().err


def test_a_difference_is_summarised_with_its_cells_and_size(tmp_path):
    from dlrn.result_diff import DIFFERS, IDENTICAL, CellDifference, FileComparison
    from dlrn.study.record import StudyRecord
    from dlrn.study.reproduce import Reproduction, write_summary

    differs = FileComparison("report/tables/comparison_metrics.csv", "table", DIFFERS,
                             cells=2, largest=0.25, shown=[CellDifference(
                                 "row 3 (DLRN)", "auc", "0.8", "0.6", 0.25)])
    reproduction = Reproduction(tmp_path / "study", tmp_path / "again",
                                StudyRecord(tmp_path / "study", {"finished": "today"}),
                                files=[differs, FileComparison("f.png", "figure", IDENTICAL)])
    assert reproduction.verdict == "different"
    assert reproduction.headline().startswith("different: 1 of 1 tables, 1 figures")
    assert differs.line() == ("report/tables/comparison_metrics.csv: 2 cell(s) differ, largest "
                              "relative difference 0.25 (row 3 (DLRN) / auc: 0.8 -> 0.6)")
    page = write_summary(reproduction)
    summary = json.loads((tmp_path / "again" / SUMMARY_JSON).read_text())
    assert summary["verdict"] == "different" and summary["files_compared"] == 2
    assert summary["differences"][0]["largest"] == 0.25
    assert "row 3 (DLRN) / auc: 0.8 -&gt; 0.6" in page.read_text()
