"""The stage runner: run each stage once, reuse it while its fingerprint still matches.

A stage's *fingerprint* hashes its settings (a dataclass built from the study
file), its integer ``version`` (raised when the stage's code changes what it
produces), the fingerprints of the stages it reads and the content of its input
files: the cohort tables and every image and mask they name, so replacing a mask
in place reruns the cohort stage and all that depends on it. Captions and other
prose are not hashed. ``force`` redoes the named stages and their dependants.
Stage outputs live in ``<output>/stages/<name>/`` beside ``stage.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrn.errors import ConfigError, DlrnError
from dlrn.lockfile import installed_versions
from dlrn.notes import collect
from dlrn.provenance import blas_threads, file_sha256, write_provenance
from dlrn.report.summary import StageSummary
from dlrn.study.config import StudyConfig
from dlrn.study.memory import MemoryPeak

log = logging.getLogger(__name__)

STAGE_RECORD = "stage.json"
STUDY_RECORD = "study.json"


@dataclass(frozen=True)
class Stage:
    """One step of the study.

    ``settings`` picks the part of the study file the stage depends on (a dataclass);
    ``version`` is raised when the stage's code changes its outputs; ``skip`` returns
    why the stage does not apply (or None); ``run`` writes the stage's outputs into
    ``context.stage_dir(name)`` and returns its typed summary (a ``summary_type``).
    """

    name: str
    title: str
    depends: tuple[str, ...]
    settings: Callable[[StudyConfig], Any]
    run: Callable[[StudyContext], StageSummary]
    skip: Callable[[StudyContext], str | None] = lambda context: None
    inputs: Callable[[StudyConfig], list[Path]] = lambda config: []
    optional: tuple[str, ...] = ()  # inputs the stage can do without (skipped is fine)
    version: int = 1
    summary_type: type[StageSummary] = StageSummary


@dataclass
class StageRecord:
    """What ``stage.json`` stores: how the stage's outputs were made."""

    name: str
    fingerprint: str
    status: str  # "done" or "skipped"
    reason: str | None = None
    summary: StageSummary = field(default_factory=StageSummary)
    seconds: float = 0.0
    peak_memory_mb: float = 0.0  # this process + its workers, sampled during the stage
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "summary": self.summary.to_dict()}


@dataclass
class StudyContext:
    """What a stage sees: the study settings, the output folder and earlier stages' records."""

    config: StudyConfig
    progress: bool = True
    records: dict[str, StageRecord] = field(default_factory=dict)

    @property
    def output_dir(self) -> Path:
        return self.config.output_dir

    def stage_dir(self, name: str) -> Path:
        return self.output_dir / "stages" / name

    def done(self, name: str) -> bool:
        record = self.records.get(name)
        return record is not None and record.status == "done"

    def summary(self, name: str) -> StageSummary | None:
        """The typed summary of a stage that ran, else None."""
        return self.records[name].summary if self.done(name) else None


@dataclass
class StudyResult:
    output_dir: Path
    records: dict[str, StageRecord]
    #: sha256 of every input file of every stage, as the fingerprints hashed them
    input_hashes: dict[str, str] = field(default_factory=dict)

    @property
    def report(self) -> Path:
        return self.output_dir / "report" / "report.html"


def _plain(settings: Any) -> Any:
    return dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _content_hashes(paths: Iterable[Path]) -> dict[str, str]:
    return {str(p): file_sha256(p) if p.is_file() else "missing" for p in paths}


def stage_fingerprint(stage: Stage, config: StudyConfig, upstream: dict[str, str],
                      files: dict[str, str] | None = None) -> str:
    """Hash of the stage's settings, version, upstream fingerprints and input file contents
    (``files``: their sha256 where already computed)."""
    return _hash({
        "stage": stage.name,
        "version": stage.version,
        "settings": _plain(stage.settings(config)),
        "upstream": {name: upstream[name] for name in stage.depends},
        "files": _content_hashes(stage.inputs(config)) if files is None else files,
    })


def _read_record(path: Path, stage: Stage) -> StageRecord | None:
    try:
        data = json.loads(path.read_text())
        data["summary"] = stage.summary_type.from_dict(data.get("summary") or {})
        return StageRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def dependants(stages: list[Stage], names: Iterable[str]) -> set[str]:
    """The named stages and every stage downstream of them."""
    known = {stage.name for stage in stages}
    chosen = set(names)
    unknown = chosen - known
    if unknown:
        raise ConfigError(f"--force names unknown stage(s) {', '.join(sorted(unknown))}; "
                          f"stages: {', '.join(s.name for s in stages)}")
    for stage in stages:  # stages are in dependency order
        if chosen.intersection(stage.depends):
            chosen.add(stage.name)
    return chosen


def claim_output(config: StudyConfig, *, overwrite: bool = False) -> None:
    """Refuse to write into a folder that holds something other than this study's results."""
    from dlrn.io import check_output_folder

    out = config.output_dir
    record_path = out / STUDY_RECORD
    identity = {"cohort_table": str(config.resolve(config.cohort.table)),
                "label": config.cohort.label}
    if record_path.exists():
        stored = json.loads(record_path.read_text()).get("identity")
        if stored != identity and not overwrite:
            raise DlrnError(
                f"{out} holds the results of another study ({stored}); choose another output "
                "folder or pass --overwrite to replace them")
        if stored != identity:
            shutil.rmtree(out / "stages", ignore_errors=True)
    else:
        check_output_folder(out, overwrite=overwrite,
                            remedy="it is not a dlrn study folder; choose another output "
                                   "folder or pass --overwrite")
    # the study file's folder (its relative paths resolve there), every installed
    # package's version and the BLAS threads: what `dlrn reproduce` re-runs from and with
    write_provenance(record_path, identity=identity, settings=config.to_dict(),
                     seed=config.seed, base_dir=str(config.base_dir),
                     packages=installed_versions(), blas_threads=blas_threads())


#: told of each stage's record as soon as the stage is done, reused or skipped
StageListener = Callable[[StageRecord], None]


def run_stages(stages: list[Stage], config: StudyConfig, *, force: Iterable[str] = (),
               progress: bool = True, overwrite: bool = False,
               on_stage: StageListener | None = None) -> StudyResult:
    """Run or reuse each stage in order; return every stage's record.

    ``on_stage`` hears of each record when its stage ends (the console's status line).
    """
    redo = dependants(stages, force)
    claim_output(config, overwrite=overwrite)
    context = StudyContext(config, progress)
    fingerprints: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for stage in stages:
        files = _content_hashes(stage.inputs(config))
        hashes.update(files)
        fingerprint = stage_fingerprint(stage, config, fingerprints, files)
        fingerprints[stage.name] = fingerprint
        folder = context.stage_dir(stage.name)
        stored = _read_record(folder / STAGE_RECORD, stage)
        if stored and stored.fingerprint == fingerprint and stage.name not in redo:
            stored.reused = True
            log.info("stage %s: up to date, reused", stage.name)
            record = stored
        else:
            if stored:
                why = "forced" if stage.name in redo else "settings, code or inputs changed"
                log.info("stage %s: recomputing (%s)", stage.name, why)
            record = _execute(stage, context, fingerprint, folder)
        context.records[stage.name] = record
        if on_stage is not None:
            on_stage(record)
    return StudyResult(config.output_dir, context.records, hashes)


def _execute(stage: Stage, context: StudyContext, fingerprint: str, folder: Path) -> StageRecord:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    reason = _upstream_skip(stage, context) or stage.skip(context)
    started = time.perf_counter()
    if reason:
        log.info("stage %s: skipped (%s)", stage.name, reason)
        record = StageRecord(stage.name, fingerprint, "skipped", reason,
                             summary=stage.summary_type())
    else:
        log.info("stage %s: running", stage.name)
        with MemoryPeak() as memory, collect(stage.name) as raised:
            summary = stage.run(context)
        summary.notes += raised.remarks
        summary.cautions += raised.cautions
        record = StageRecord(stage.name, fingerprint, "done", summary=summary,
                             seconds=round(time.perf_counter() - started, 2),
                             peak_memory_mb=round(memory.peak_mb, 1))
        _log_done(record)
    (folder / STAGE_RECORD).write_text(json.dumps(record.to_dict(), indent=2, default=str))
    return record


def _log_done(record: StageRecord) -> None:
    """The run log's account of a stage: its time, memory and every note it reported."""
    log.info("stage %s: done in %.1f s, peak memory %.0f MB", record.name, record.seconds,
             record.peak_memory_mb)
    for caution in record.summary.cautions:
        log.info("stage %s: caution: %s", record.name, caution)
    for note in record.summary.notes:
        log.info("stage %s: note: %s", record.name, note)


def _upstream_skip(stage: Stage, context: StudyContext) -> str | None:
    """A stage whose required inputs were skipped is skipped too, saying which."""
    skipped = [name for name in stage.depends if not context.done(name)]
    required = [name for name in skipped if name not in stage.optional]
    if required:
        return f"needs {', '.join(required)}, which was skipped"
    return None
