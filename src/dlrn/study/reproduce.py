"""``dlrn reproduce``: re-run a finished study from its record; is every number the same?

First the inputs: every cohort table, image and mask is hashed again and compared with
the study's record; a changed, missing, added or removed one stops here (nothing is
re-run: the study could not come out the same). Then the versions: every package whose
version differs from the record is stated, and the re-run goes on (whether they change
the numbers is what it finds out). Then the whole study runs again from the recorded
settings into a new folder, without the original's caches, and every table, figure and
the two bundles' predictions of the held-out cases are compared
(:mod:`dlrn.result_diff`). The original folder is only read.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlrn.errors import DlrnError
from dlrn.lockfile import lock_status, status_text
from dlrn.result_diff import (
    RELATIVE_TOLERANCE,
    WITHIN_TOLERANCE,
    FileComparison,
    compare_folders,
    compare_table,
)
from dlrn.study.pipeline import run_study
from dlrn.study.record import (
    BLAS_THREADS,
    CNN_THREADS,
    StudyRecord,
    input_changes,
    read_record,
    version_changes,
)
from dlrn.study.stages.cohort import cohort_tables

SUMMARY_JSON = "reproduction.json"
SUMMARY_PAGE = "reproduction.html"
#: The bundles' predictions, beside the re-run study (never in the original folder).
PREDICTIONS_DIR = "reproduction"
#: The folders of a study that hold its results (tables and figures).
RESULT_FOLDERS = ("stages", "report")
IDENTICAL = "identical"
DIFFERENT = "different"
INPUTS_CHANGED = "inputs changed"


@dataclass
class Reproduction:
    """What ``dlrn reproduce`` found: input and version changes, then each file's comparison."""

    study: Path
    out: Path
    record: StudyRecord
    input_changes: list[str] = field(default_factory=list)
    version_changes: list[str] = field(default_factory=list)
    lock_recorded: str = ""
    lock_now: str = ""
    files: list[FileComparison] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.input_changes:
            return INPUTS_CHANGED
        return IDENTICAL if all(file.same for file in self.files) else DIFFERENT

    @property
    def differing(self) -> list[FileComparison]:
        return [file for file in self.files if not file.same]

    def headline(self) -> str:
        """One sentence: the verdict and what it covers."""
        if self.verdict == INPUTS_CHANGED:
            return (f"inputs changed: {len(self.input_changes)} input(s) are not what the study "
                    "read; nothing was re-run")
        counts = {kind: sum(file.kind == kind for file in self.files)
                  for kind in ("table", "figure", "predictions")}
        covered = (f"{counts['table']} tables, {counts['figure']} figures and the bundle's "
                   f"predictions of the held-out cases of {counts['predictions']} cohort(s)")
        if self.verdict == IDENTICAL:
            close = sum(file.status == WITHIN_TOLERANCE for file in self.files)
            return (f"identical: {covered} equal the original's (numbers within "
                    f"{RELATIVE_TOLERANCE:g} relative"
                    + (f", {close} file(s) not to the last digit" if close else "")
                    + "; columns of run time and memory not compared)")
        return f"different: {len(self.differing)} of {covered} differ from the original's"


def prepare(study: Path, out: Path, *, overwrite: bool = False) -> Reproduction:
    """Read the record, check the output folder, the inputs and the versions."""
    study, out = study.resolve(), out.resolve()
    _check_folders(study, out, overwrite)
    record = read_record(study)
    reproduction = Reproduction(study, out, record)
    reproduction.input_changes = input_changes(record, record.config(out))
    reproduction.version_changes = version_changes(record)
    reproduction.lock_recorded = status_text(record.data.get("lock") or {})
    reproduction.lock_now = status_text(lock_status())
    return reproduction


def _check_folders(study: Path, out: Path, overwrite: bool) -> None:
    """Never write into the original study, nor over anything but an earlier
    reproduction, and that only when told."""
    from dlrn.io import check_output_folder

    if out == study or study in out.parents or out in study.parents:
        raise DlrnError(f"--out {out} must lie outside the original study {study} (and not "
                        "hold it): the original is only read")
    check_output_folder(out, overwrite=overwrite, what="reproduction folder")
    if out.is_dir() and any(out.iterdir()) and not (out / SUMMARY_JSON).is_file():
        raise DlrnError(f"reproduction folder {out} holds something other than an earlier "
                        "reproduction; choose another folder")


def rerun(reproduction: Reproduction, *, progress: bool = True) -> None:
    """Run the whole study again into ``reproduction.out`` and compare everything."""
    if reproduction.input_changes:
        raise DlrnError("the inputs changed; nothing is re-run")
    from threadpoolctl import threadpool_limits

    config = reproduction.record.config(reproduction.out)
    shutil.rmtree(reproduction.out, ignore_errors=True)  # nothing of an earlier one is reused
    # as many BLAS threads as the study had: a PCA's last digits depend on the count
    with threadpool_limits(reproduction.record.data.get(BLAS_THREADS), user_api="blas"):
        run_study(config, progress=progress)
    roots = ((reproduction.study, reproduction.record.output_dir), (reproduction.out,))
    files = []
    for folder in RESULT_FOLDERS:
        files += [_within(folder, file) for file in compare_folders(
            reproduction.study / folder, reproduction.out / folder, roots=roots)]
    reproduction.files = files + _bundle_predictions(reproduction, config, progress)


def _within(folder: str, comparison: FileComparison) -> FileComparison:
    comparison.path = f"{folder}/{comparison.path}"
    return comparison


def _bundle_predictions(reproduction: Reproduction, config: Any,
                        progress: bool) -> list[FileComparison]:
    """``dlrn predict`` with the original and with the new bundle, on each cohort's
    held-out cases (test and external: the bundle's new patients)."""
    from dlrn.study.predict import Bundle, predict_cases, read_new_cases
    from dlrn.study.stages.files import CASES_FILE, read_case_frame

    cases = read_case_frame(reproduction.study / "stages" / "cohort" / CASES_FILE)
    held_out = cases.index[cases["set"] != "train"]
    bundles = [Bundle.open(folder / "bundle") for folder in (reproduction.study,
                                                              reproduction.out)]
    folder = reproduction.out / PREDICTIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    comparisons = []
    for cohort, table in cohort_tables(config):
        new_cases = read_new_cases(table, bundles[1].json("settings"), progress=progress)
        new_cases = new_cases.loc[new_cases.index.isin(held_out)]
        paths = [folder / f"predictions_{cohort}_{which}.csv" for which in ("original", "new")]
        for bundle, path in zip(bundles, paths, strict=True):
            predict_cases(bundle, new_cases, progress=progress).to_csv(path)
        comparison = compare_table(*paths, f"bundle predictions of the {cohort} cohort")
        comparison.kind = "predictions"
        comparisons.append(comparison)
    return comparisons


def write_summary(reproduction: Reproduction) -> Path:
    """``reproduction.json`` and a short page, ``reproduction.html``, in the new folder."""
    reproduction.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "study": str(reproduction.study), "reproduction": str(reproduction.out),
        "verdict": reproduction.verdict, "headline": reproduction.headline(),
        "relative_tolerance": RELATIVE_TOLERANCE,
        "study_finished": reproduction.record.data.get("finished"),
        "input_changes": reproduction.input_changes,
        "version_changes": reproduction.version_changes,
        "lock": {"study": reproduction.lock_recorded, "now": reproduction.lock_now},
        "threads": _threads(reproduction.record),
        "files_compared": len(reproduction.files),
        "differences": [asdict(file) for file in reproduction.differing],
        "within_tolerance": [file.path for file in reproduction.files
                             if file.status == WITHIN_TOLERANCE],
    }
    (reproduction.out / SUMMARY_JSON).write_text(json.dumps(summary, indent=2, default=str))
    page = reproduction.out / SUMMARY_PAGE
    page.write_text(_page(reproduction))
    return page


def _threads(record: StudyRecord) -> dict[str, Any]:
    """The CPU threads the study ran with, which the re-run used too."""
    return {"cnn": record.data.get(CNN_THREADS), "blas": record.data.get(BLAS_THREADS)}


def _items(lines: list[str], empty: str) -> str:
    if not lines:
        return f"<p>{html.escape(empty)}</p>"
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def _page(reproduction: Reproduction) -> str:
    """The short page: verdict, inputs, versions, the lock, then every difference."""
    rows = "".join(
        f"<tr><td>{html.escape(file.path)}</td><td>{html.escape(file.status)}</td>"
        f"<td>{file.cells}</td><td>{'' if file.largest is None else f'{file.largest:.3g}'}"
        f"</td><td>{html.escape(file.line().partition(': ')[2])}</td></tr>"
        for file in reproduction.differing)
    table = (f"<table><tr><th>file</th><th>status</th><th>cells</th><th>largest relative "
             f"difference</th><th>detail</th></tr>{rows}</table>" if rows else
             "<p>No table, figure or prediction differs.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dlrn reproduce</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}
td,th{{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}}
table{{border-collapse:collapse}}</style></head><body>
<h1>Reproduction of {html.escape(str(reproduction.study))}</h1>
<p><strong>{html.escape(reproduction.headline())}</strong></p>
<p>Re-run in {html.escape(str(reproduction.out))} from the settings recorded when the study
finished ({html.escape(str(reproduction.record.data.get("finished")))}).</p>
<h2>Inputs (sha256 of every table, image and mask against the record)</h2>
{_items(reproduction.input_changes, "Every input is the one the study read.")}
<h2>Versions that differ from the record</h2>
{_items(reproduction.version_changes, "None: every package has the recorded version.")}
<p>Study: {html.escape(reproduction.lock_recorded)}. Now: {html.escape(reproduction.lock_now)}.
CPU threads of the study, used again: {html.escape(str(_threads(reproduction.record)))}.</p>
<h2>Differences</h2>
{table}
</body></html>
"""
