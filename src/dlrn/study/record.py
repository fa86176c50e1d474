"""The study's record (``study.json``): what a reviewer needs to re-run the study.

``dlrn run`` writes it as it starts (settings, seed, the study file's folder, every
package's version and whether they are the lock's: ``runner.claim_output``) and
completes it when the study has finished (:func:`complete_record`): the sha256 of
every input file, each image and mask with the case that names it. ``dlrn reproduce``
reads it back (:func:`read_record`) and compares the inputs (:func:`input_changes`) and
the versions (:func:`version_changes`) with today's before re-running anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlrn.errors import DlrnError
from dlrn.lockfile import installed_versions, normalized
from dlrn.provenance import file_sha256, package_versions
from dlrn.study.config import StudyConfig, study_from_dict
from dlrn.study.runner import STUDY_RECORD
from dlrn.study.stages import STAGES
from dlrn.study.stages.cohort import COHORT_TABLE, input_files

FINISHED = "finished"
#: The CPU threads the deep stage ran with (dl.threads, or all the machine allowed).
CNN_THREADS = "cnn_threads"
#: The BLAS threads of numpy and scipy when the study ran (``runner.claim_output``).
BLAS_THREADS = "blas_threads"
MISSING = "missing"  # the runner's hash of a file that is not there


@dataclass
class StudyRecord:
    """A finished study's ``study.json``, read back."""

    folder: Path
    data: dict[str, Any]

    @property
    def inputs(self) -> list[dict[str, str]]:
        return self.data["inputs"]

    @property
    def output_dir(self) -> Path:
        """Where the study was written (it may have been moved since)."""
        return study_from_dict(self.data["settings"],
                               base_dir=self.data["base_dir"]).output_dir

    def config(self, output: Path) -> StudyConfig:
        """The recorded settings, writing into ``output`` and with no feature cache of the
        original (a fresh one inside ``output``), relative paths resolved as they were,
        and the CNN on as many CPU threads as it had (its numbers depend on the count)."""
        settings = json.loads(json.dumps(self.data["settings"]))
        settings["output"] = str(output)
        settings["radiomics"]["cache_dir"] = None
        if settings["dl"]["threads"] is None and self.data.get(CNN_THREADS):
            settings["dl"]["threads"] = self.data[CNN_THREADS]
        return study_from_dict(settings, base_dir=self.data["base_dir"],
                               source=f"the settings in {self.folder / STUDY_RECORD}")

    def versions(self) -> dict[str, str]:
        """Every recorded version by normalised package name (the tracked ones last, as the
        report shows them)."""
        recorded = {normalized(name): version
                    for name, version in self.data.get("packages", {}).items()}
        recorded.update({normalized(name): version
                         for name, version in self.data.get("versions", {}).items()})
        return recorded


def input_record(config: StudyConfig, hashes: dict[str, str]) -> list[dict[str, str]]:
    """Every input file of every stage with its sha256 (from ``hashes`` where the runner
    computed it), role, cohort and naming case: the cohort tables and their cases' images
    and masks, then any other stage's files (a PyRadiomics parameter file, CNN weights)."""
    entries = [{"file": str(file.path), "what": file.what, "cohort": file.cohort,
                "case_id": file.case_id} for file in input_files(config)]
    listed = {entry["file"] for entry in entries}
    for stage in STAGES[1:]:  # the cohort stage's files are listed above, with their cases
        entries += [{"file": str(path), "what": f"{stage.name} input", "cohort": "",
                     "case_id": ""} for path in stage.inputs(config) if str(path) not in listed]
    for entry in entries:
        entry["sha256"] = hashes.get(entry["file"]) or _sha256(Path(entry["file"]))
    return entries


def _sha256(path: Path) -> str:
    return file_sha256(path) if path.is_file() else MISSING


def complete_record(config: StudyConfig, hashes: dict[str, str], deep: Any = None) -> None:
    """Add the inputs' hashes, the deep stage's CPU threads (``deep``: its summary, if it
    ran) and the finishing time to the study's ``study.json``."""
    path = config.output_dir / STUDY_RECORD
    data = json.loads(path.read_text())
    data["inputs"] = input_record(config, hashes)
    if deep is not None:
        data[CNN_THREADS] = deep.threads
    data[FINISHED] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path.write_text(json.dumps(data, indent=2, default=str))


def read_record(folder: Path) -> StudyRecord:
    """The record of a finished study; a clear error for anything else."""
    path = folder / STUDY_RECORD
    if not path.is_file():
        raise DlrnError(f"{folder} is not a dlrn study folder (no {STUDY_RECORD}); give the "
                        "output folder of `dlrn run`")
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise DlrnError(f"{path} is not readable JSON: {error}") from error
    if FINISHED not in data or "inputs" not in data or "base_dir" not in data:
        raise DlrnError(f"{path} records no finished study (no input hashes): the study "
                        "stopped before its end, an older dlrn ran it, or `dlrn clinical` "
                        "made the folder (only `dlrn run` studies are reproduced); run `dlrn "
                        "run` on its study file to finish it")
    return StudyRecord(folder, data)


def _key(entry: dict[str, str]) -> tuple[str, ...]:
    """What an input is, whatever its path: a cohort's table, a case's image or mask, or
    another stage's file."""
    if entry["case_id"] or entry["what"] == COHORT_TABLE:
        return entry["what"], entry["cohort"], entry["case_id"]
    return entry["what"], entry["file"]


def _named(entry: dict[str, str]) -> str:
    if entry["case_id"]:
        return f"case {entry['case_id']} ({entry['cohort']} cohort): {entry['what']}"
    if entry["what"] == COHORT_TABLE:
        return f"{entry['cohort']} cohort table"
    return entry["what"]


def input_changes(record: StudyRecord, config: StudyConfig) -> list[str]:
    """Every input that is no longer what the study read, one line each: a changed,
    missing, added or removed table, image or mask named with its case id."""
    before = {_key(entry): entry for entry in record.inputs}
    now = {_key(entry): entry for entry in input_record(config, {})}
    changes = []
    for key in sorted(before.keys() | now.keys()):
        old, new = before.get(key), now.get(key)
        if new is None:
            changes.append(f"{_named(old)} {old['file']}: no longer an input (removed from "
                           "the table)")
        elif old is None:
            changes.append(f"{_named(new)} {new['file']}: added (not in the study)")
        elif new["sha256"] == MISSING:
            changes.append(f"{_named(old)} {old['file']}: missing")
        elif old["file"] != new["file"]:
            changes.append(f"{_named(old)}: now {new['file']} (the study read {old['file']})")
        elif old["sha256"] != new["sha256"]:
            changes.append(f"{_named(old)} {old['file']}: changed (sha256 "
                           f"{old['sha256'][:12]} in the record, {new['sha256'][:12]} now)")
    return changes


def version_changes(record: StudyRecord) -> list[str]:
    """Every package (and Python) whose version differs from the record, one line each."""
    recorded = record.versions()
    now = {**installed_versions(), **{normalized(name): version
                                      for name, version in package_versions().items()}}
    return [f"{name}: {recorded.get(name, 'not installed')} in the record, "
            f"{now.get(name, 'not installed')} now"
            for name in sorted(recorded.keys() | now.keys())
            if recorded.get(name) != now.get(name)]
