"""``dlrn extract``: validated cohort in, features + parameters + provenance out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from dlrn.cli import main
from dlrn.radiomics import load_params
from dlrn.synthetic import make_synthetic_cohort


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    return make_synthetic_cohort(folder, n_cases=5, image_size=(96, 96), seed=3)


def absolute_paths(cohort_csv: Path) -> pd.DataFrame:
    """The synthetic table with absolute paths, so an edited copy can live elsewhere."""
    table = pd.read_csv(cohort_csv)
    for column in ("image", "mask", "mask_reader2"):
        table[column] = [str(cohort_csv.parent / path) for path in table[column]]
    return table


def extract(*args: str | Path) -> int:
    return main(["extract", *map(str, args), "--preset", "fast", "--jobs", "1", "--no-progress"])


def test_writes_features_parameters_and_provenance(cohort_csv, tmp_path, capsys):
    out = tmp_path / "features.csv"
    assert extract(cohort_csv, "--out", out) == 0
    features = pd.read_csv(out, index_col="case_id")
    cohort = pd.read_csv(cohort_csv)
    assert list(features.index) == list(cohort["case_id"])
    assert features.shape[1] == 102
    assert not features.columns.str.startswith("diagnostics_").any()
    assert yaml.safe_load((tmp_path / "features.params.yaml").read_text()) == load_params("fast")
    provenance = json.loads((tmp_path / "features.provenance.json").read_text())
    assert provenance["versions"]["pyradiomics"] == "3.0.1"
    assert provenance["n_extracted"] == 5 and provenance["failed_cases"] == []
    assert provenance["params"] == load_params("fast")
    assert not (tmp_path / "features.failures.csv").exists()
    assert "5 cases x 102 features" in capsys.readouterr().out


def test_refuses_to_overwrite_and_reuses_the_cache(cohort_csv, tmp_path, capsys):
    out = tmp_path / "features.csv"
    assert extract(cohort_csv, "--out", out) == 0
    first = out.read_text()
    assert extract(cohort_csv, "--out", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == first
    assert extract(cohort_csv, "--out", out, "--overwrite") == 0
    assert "(5 from cache)" in capsys.readouterr().out
    assert out.read_text() == first
    assert len(list((tmp_path / "dlrn-cache" / "radiomics").rglob("*.json"))) == 5


def test_a_failing_case_is_named_and_the_rest_written(cohort_csv, tmp_path, capsys):
    table = absolute_paths(cohort_csv)
    line = np.zeros((96, 96), dtype=np.uint8)
    line[40, 20:60] = 255  # 40 pixels pass validation; PyRadiomics rejects a 1D ROI
    Image.fromarray(line).save(tmp_path / "line.png")
    table.loc[1, "mask"] = str(tmp_path / "line.png")
    table.to_csv(tmp_path / "cohort.csv", index=False)

    out = tmp_path / "features.csv"
    assert extract(tmp_path / "cohort.csv", "--out", out) == 1
    failed_id = table.loc[1, "case_id"]
    assert failed_id in capsys.readouterr().err
    failures = pd.read_csv(tmp_path / "features.failures.csv")
    assert list(failures["case_id"]) == [failed_id]
    assert "ValueError" in failures.loc[0, "error"]
    assert len(pd.read_csv(out)) == 4


def test_validation_stops_before_extraction_or_excludes(cohort_csv, tmp_path, capsys):
    table = absolute_paths(cohort_csv)
    table.loc[2, "image"] = str(tmp_path / "missing.png")
    table.to_csv(tmp_path / "cohort.csv", index=False)
    out = tmp_path / "features.csv"

    assert extract(tmp_path / "cohort.csv", "--out", out) == 2
    assert "missing.png" in capsys.readouterr().err
    assert not out.exists()

    assert extract(tmp_path / "cohort.csv", "--out", out, "--on-error", "exclude") == 0
    exclusions = pd.read_csv(tmp_path / "features.exclusions.csv")
    assert list(exclusions["case_id"]) == [table.loc[2, "case_id"]]
    assert table.loc[2, "case_id"] not in set(pd.read_csv(out)["case_id"])


def test_roi_size_limit_is_applied_before_extraction(cohort_csv, tmp_path, capsys):
    out = tmp_path / "features.csv"
    assert extract(cohort_csv, "--out", out, "--min-roi-pixels", 10**6) == 2
    assert "fewer than min_roi_pixels=1000000" in capsys.readouterr().err
    assert not out.exists()


def test_repeat_mask_column_and_custom_column_names(cohort_csv, tmp_path):
    table = absolute_paths(cohort_csv).rename(columns={"case_id": "ID", "mask": "roi"})
    table.to_csv(tmp_path / "cohort.csv", index=False)
    args = ("--id", "ID", "--mask", "roi")
    assert extract(tmp_path / "cohort.csv", "--out", tmp_path / "a.csv", *args) == 0
    assert extract(tmp_path / "cohort.csv", "--out", tmp_path / "b.csv", *args,
                   "--mask-column", "mask_reader2") == 0
    first = pd.read_csv(tmp_path / "a.csv", index_col="case_id")
    second = pd.read_csv(tmp_path / "b.csv", index_col="case_id")
    assert list(second.index) == list(table["ID"])
    assert not np.allclose(first["original_shape2D_PixelSurface"],
                           second["original_shape2D_PixelSurface"])


def test_bad_preset_and_output_name_are_clear_errors(cohort_csv, tmp_path, capsys):
    assert main(["extract", str(cohort_csv), "--out", str(tmp_path / "f.csv"),
                 "--preset", "nope"]) == 2
    assert "neither a preset" in capsys.readouterr().err
    assert extract(cohort_csv, "--out", tmp_path / "features.txt") == 2
    assert ".csv" in capsys.readouterr().err
