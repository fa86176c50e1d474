"""Result folders compared cell by cell and pixel by pixel (what `dlrn reproduce` reports)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from PIL import Image

from dlrn.result_diff import (
    DIFFERS,
    IDENTICAL,
    ONLY_ORIGINAL,
    ONLY_REPRODUCED,
    WITHIN_TOLERANCE,
    compare_figure,
    compare_folders,
    compare_table,
    relative_difference,
)


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_a_number_within_the_tolerance_is_equal_and_one_beyond_it_differs(tmp_path):
    a = _write(tmp_path / "a.csv", {"model": ["LR", "SVM"], "auc": ["0.8125", "0.75"]})
    close = _write(tmp_path / "b.csv", {"model": ["LR", "SVM"], "auc": ["0.8125000000000001",
                                                                       "0.75"]})
    far = _write(tmp_path / "c.csv", {"model": ["LR", "SVM"], "auc": ["0.8125", "0.8"]})
    assert compare_table(a, a, "t").status == IDENTICAL
    assert compare_table(a, close, "t").status == WITHIN_TOLERANCE
    result = compare_table(a, far, "t")
    assert result.status == DIFFERS and result.cells == 1
    assert math.isclose(result.largest, 0.05 / 0.8)
    assert result.shown[0].row == "row 3 (SVM)" and result.shown[0].column == "auc"
    assert "largest relative difference 0.0625" in result.line()


def test_a_text_that_differs_has_no_size_and_shapes_are_compared_first(tmp_path):
    a = _write(tmp_path / "a.csv", {"case_id": ["c1"], "set": ["train"]})
    b = _write(tmp_path / "b.csv", {"case_id": ["c1"], "set": ["test"]})
    assert compare_table(a, b, "t").largest == math.inf
    longer = _write(tmp_path / "c.csv", {"case_id": ["c1", "c2"], "set": ["train", "test"]})
    assert compare_table(a, longer, "t").detail == "1 and 2 rows"
    renamed = _write(tmp_path / "d.csv", {"id": ["c1"], "set": ["train"]})
    assert "columns" in compare_table(a, renamed, "t").detail


def test_run_costs_and_each_runs_own_folder_are_not_results(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for root, seconds in ((first, "1.5"), (second, "9.0")):
        _write(root / "run" / "history.csv", {"epoch": ["1"], "train_seconds": [seconds],
                                              "overlay": [str(root / "run" / "cam.png")]})
    [result] = compare_folders(first, second)
    assert result.path == "run/history.csv" and result.status == IDENTICAL


def test_files_only_on_one_side_and_caches(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _write(first / "only_here.csv", {"x": [1]})
    _write(second / "new.csv", {"x": [1]})
    _write(second / "cache" / "features.csv", {"x": [2]})
    statuses = {c.path: c.status for c in compare_folders(first, second)}
    assert statuses == {"only_here.csv": ONLY_ORIGINAL, "new.csv": ONLY_REPRODUCED}


def test_figures_are_compared_by_their_pixels(tmp_path):
    pixels = np.zeros((4, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).save(tmp_path / "b.png", pnginfo=_note("another writer"))
    pixels[1, 2] = 51
    Image.fromarray(pixels).save(tmp_path / "c.png")
    assert compare_figure(tmp_path / "a.png", tmp_path / "b.png", "f").status == IDENTICAL
    result = compare_figure(tmp_path / "a.png", tmp_path / "c.png", "f")
    assert (result.status, result.cells, result.largest) == (DIFFERS, 1, 0.2)


def _note(text):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", text)
    return info


def test_relative_difference_of_numbers_written_as_text():
    assert relative_difference("2", "2.0") == 0.0
    assert relative_difference("nan", "NaN") == 0.0
    assert relative_difference("1", "nan") == math.inf
    assert relative_difference("-4", "-5") == 0.2
    assert relative_difference("LR", "1") is None
