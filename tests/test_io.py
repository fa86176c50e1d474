"""dlrn.io: one table reader (CSV, TSV, Excel), one output-folder guard, one 0/1 check."""

from __future__ import annotations

import pandas as pd
import pytest

from dlrn.errors import DlrnError
from dlrn.io import (
    binary_labels,
    check_output_folder,
    read_indexed_table,
    read_table,
    table_columns,
)

TABLE = pd.DataFrame({"case_id": ["007", "008"], "image": ["a b.png", "c.png"],
                      "label": [1, 0]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".tab", ".xlsx"])
def test_every_table_format_reads_the_same(tmp_path, suffix):
    path = tmp_path / f"cases{suffix}"
    if suffix == ".xlsx":
        TABLE.to_excel(path, index=False)
    else:
        TABLE.to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    table = read_table(path, text_columns=["case_id"])
    assert list(table["case_id"]) == ["007", "008"]  # ids stay text: leading zeros kept
    assert list(table["image"]) == ["a b.png", "c.png"]
    assert table_columns(path) == ["case_id", "image", "label"]


def test_tables_that_cannot_be_read_name_the_file(tmp_path):
    with pytest.raises(DlrnError, match=r"cohort table not found: .*absent\.csv"):
        read_table(tmp_path / "absent.csv", what="cohort table")
    broken = tmp_path / "broken.xlsx"
    broken.write_text("not a workbook")
    with pytest.raises(DlrnError, match=r"cannot read features .*broken\.xlsx"):
        read_table(broken, what="features")


def test_indexed_table_needs_unique_ids(tmp_path):
    path = tmp_path / "f.csv"
    pd.concat([TABLE, TABLE.iloc[:1]]).to_csv(path, index=False)
    with pytest.raises(DlrnError, match=r"duplicate case id\(s\) \['007'\]"):
        read_indexed_table(path, "case_id", what="features")
    with pytest.raises(DlrnError, match="has no case id column 'id'"):
        read_indexed_table(path, "id", what="features")


def test_output_folder_guard(tmp_path):
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.csv").write_text("x")
    with pytest.raises(DlrnError, match=r"Grad-CAM folder .*used is not empty; choose another"):
        check_output_folder(tmp_path / "used", what="Grad-CAM folder")
    check_output_folder(tmp_path / "used", overwrite=True)


def test_binary_labels_name_the_cases_that_are_not_0_or_1():
    labels = pd.Series(["1", "0", "2", None, "yes"], index=list("abcde"))
    with pytest.raises(DlrnError, match=r"column 'y' is not 0/1 for case\(s\) c, d, e"):
        binary_labels(labels, what="column 'y'")
    assert binary_labels(labels[:2], what="y").tolist() == [1, 0]
