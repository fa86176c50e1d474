"""The cohort stage of a study: exclusion counts, repeat masks, and the image settings passed on."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dlrn.errors import DlrnError
from dlrn.report.html import build_report
from dlrn.study.config import study_from_dict
from dlrn.study.pipeline import report_sections, run_stages
from dlrn.study.stages import STAGES
from dlrn.study.stages.cohort import IGNORED_REPEATS
from dlrn.study.stages.deep import deep_settings

COHORT_STAGE = [stage for stage in STAGES if stage.name == "cohort"]


@pytest.fixture()
def damaged_table(synthetic_cohort_csv, tmp_path):
    """The synthetic cohort (absolute paths) with case 2's mask gone twice over and
    case 5's repeat mask gone: one excluded case (two problems), one ignored repeat mask."""
    folder = synthetic_cohort_csv.parent
    table = pd.read_csv(synthetic_cohort_csv, dtype={"case_id": str})
    for column in ("image", "mask", "mask_reader2"):
        table[column] = [str(folder / path) for path in table[column]]
    table.loc[1, "mask"] = str(tmp_path / "lost.png")
    table.loc[1, "label"] = 7  # a second problem of the same case
    table.loc[4, "mask_reader2"] = str(tmp_path / "lost_reader2.png")
    path = tmp_path / "cases.csv"
    table.to_csv(path, index=False)
    return path


def _study(table, tmp_path, **cohort):
    return study_from_dict({"cohort": {"table": str(table), "patient": "patient_id",
                                       "repeat_masks": ["mask_reader2"], **cohort},
                            "output": str(tmp_path / "out")}, base_dir=tmp_path)


def test_excluded_cases_are_counted_once_and_ignored_repeat_masks_apart(damaged_table,
                                                                          tmp_path):
    config = _study(damaged_table, tmp_path, on_error="exclude", min_roi_mm=5.0)
    record = run_stages(COHORT_STAGE, config, progress=False).records["cohort"]
    facts = record.summary.facts()
    assert facts["cases analysed"] == 59
    assert facts["cases excluded"] == 1
    assert facts[IGNORED_REPEATS] == 1
    tables = config.output_dir / "stages" / "cohort" / "tables"
    excluded = pd.read_csv(tables / "excluded_cases.csv", dtype={"case_id": str})
    assert len(excluded) == 2 and set(excluded["case_id"]) == {"syn0002"}
    ignored = pd.read_csv(tables / "ignored_repeat_masks.csv", dtype={"case_id": str})
    assert list(ignored["case_id"]) == ["syn0005"]
    # PNG images carry no spacing: the size criterion cannot apply, and the report says so
    assert any("min_roi_mm=5" in note for note in record.summary.notes)
    cases = pd.read_csv(config.output_dir / "stages" / "cohort" / "cases.csv",
                        dtype={"case_id": str}).set_index("case_id")
    assert pd.isna(cases.loc["syn0005", "mask_reader2"])
    html = build_report(config.output_dir, report_sections(COHORT_STAGE, {"cohort": record}),
                        []).read_text()
    assert "Note: min_roi_mm=5" in html
    assert "Repeat masks left out of the ICC analysis" in html


def test_image_settings_and_open_dl_settings_reach_the_deep_stage(tmp_path):
    config = study_from_dict({"cohort": {"table": "cases.csv", "mask_label": 2, "frame": 3},
                              "dl": {"weights": "weights/densenet.safetensors"}},
                             base_dir=tmp_path)
    settings = deep_settings(config, progress=False)
    assert (settings.crop.mask_label, settings.crop.frame) == (2, 3)
    assert settings.train.learning_rate is None  # left to dlrn.deep
    assert settings.weights == str(tmp_path / "weights" / "densenet.safetensors")


def test_on_error_stop_lists_every_problem(damaged_table, tmp_path):
    with pytest.raises(DlrnError, match=r"(?s)syn0002.*syn0005"):
        run_stages(COHORT_STAGE, _study(damaged_table, tmp_path), progress=False)


def test_mask_label_reaches_the_cohort_reader(synthetic_cohort_csv, tmp_path):
    """Masks hold 0 and one ROI value; asking for label 7 leaves every ROI empty."""
    config = _study(synthetic_cohort_csv, tmp_path, mask_label=7)
    with pytest.raises(DlrnError, match=r"syn0001.*empty mask"):
        run_stages(COHORT_STAGE, config, progress=False)
    stored = json.loads((config.output_dir / "study.json").read_text())
    assert stored["settings"]["cohort"]["mask_label"] == 7
