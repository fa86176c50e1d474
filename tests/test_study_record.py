"""The study's record: every input hashed with the case naming it, so that a changed,
missing, added or removed file is named with its case; versions that differ are named."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from dlrn.errors import DlrnError
from dlrn.study.config import study_from_dict
from dlrn.study.record import (
    CNN_THREADS,
    FINISHED,
    StudyRecord,
    input_changes,
    input_record,
    read_record,
    version_changes,
)


@pytest.fixture
def cohort(tmp_path, synthetic_cohort_csv):
    """A copy of the synthetic cohort (its files may be changed here) and its study."""
    folder = tmp_path / "cohort"
    shutil.copytree(synthetic_cohort_csv.parent, folder)
    config = study_from_dict({"cohort": {"table": "cohort/cohort.csv",
                                         "repeat_masks": ["mask_reader2"]},
                              "output": "study"}, base_dir=tmp_path)
    record = StudyRecord(tmp_path / "study", {
        "settings": config.to_dict(), "base_dir": str(tmp_path), FINISHED: "today",
        "inputs": input_record(config, {}), "versions": {}, "packages": {}})
    return folder, config, record


def test_every_image_and_mask_is_recorded_with_its_case(cohort):
    folder, config, record = cohort
    by_role = pd.DataFrame(record.inputs).groupby("what")["case_id"].nunique()
    assert by_role.to_dict() == {"cohort table": 1, "image": 60, "mask": 60,
                                 "mask_reader2": 60}
    entry = next(e for e in record.inputs if e["case_id"] == "syn0007" and e["what"] == "image")
    assert entry["file"] == str(folder / "images" / "syn0007.png") and entry["cohort"] == "main"
    assert input_changes(record, config) == []


def test_a_changed_image_and_a_missing_mask_are_named_with_their_cases(cohort):
    folder, config, record = cohort
    image = folder / "images" / "syn0007.png"
    image.write_bytes(image.read_bytes() + b"\0")
    (folder / "masks_reader2" / "syn0012.png").unlink()
    changes = input_changes(record, config)
    assert len(changes) == 2
    assert changes[0].startswith(f"case syn0007 (main cohort): image {image}: changed (sha256 ")
    assert changes[1] == (f"case syn0012 (main cohort): mask_reader2 "
                          f"{folder / 'masks_reader2' / 'syn0012.png'}: missing")


def test_added_and_removed_cases_and_the_changed_table_are_named(cohort):
    folder, config, record = cohort
    table = pd.read_csv(folder / "cohort.csv", dtype=str)
    table.loc[0, "case_id"] = "new0001"  # syn0001 gone, new0001 (same files) added
    table.to_csv(folder / "cohort.csv", index=False)
    changes = input_changes(record, config)
    assert any(c.startswith("main cohort table ") and c.endswith(": changed")
               for c in [line.split(" (sha256")[0] for line in changes])
    assert sum(c.startswith("case new0001 (main cohort)") and "added (not in the study)" in c
               for c in changes) == 3
    assert sum(c.startswith("case syn0001 (main cohort)") and "no longer an input" in c
               for c in changes) == 3


def test_versions_that_differ_from_the_record_are_named(cohort):
    _, _, record = cohort
    record.data["packages"] = {"numpy": "1.0.0"}
    record.data["versions"] = {"scikit-learn": "0.1"}
    changes = version_changes(record)
    assert any(c.startswith("numpy: 1.0.0 in the record, ") for c in changes)
    assert any(c.startswith("scikit-learn: 0.1 in the record, ") for c in changes)
    assert any(c.startswith("scipy: not installed in the record, ") for c in changes)


def test_the_rerun_reads_the_recorded_settings_with_the_cnns_thread_count(cohort, tmp_path):
    _, config, record = cohort
    record.data["settings"]["radiomics"]["cache_dir"] = "shared-cache"
    again = record.config(tmp_path / "again")
    assert again.output_dir == tmp_path / "again" and again.cohort == config.cohort
    assert again.radiomics.cache_dir is None  # a fresh cache in the new folder
    assert again.dl.threads is None
    record.data[CNN_THREADS] = 3
    assert record.config(tmp_path / "again").dl.threads == 3


def test_only_a_finished_study_can_be_read_back(tmp_path):
    with pytest.raises(DlrnError, match="not a dlrn study folder"):
        read_record(tmp_path)
    (tmp_path / "study.json").write_text('{"settings": {}}')
    with pytest.raises(DlrnError, match="records no finished study"):
        read_record(tmp_path)
