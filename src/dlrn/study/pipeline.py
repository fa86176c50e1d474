"""Run a study: the stages in the paper's order, each saved as it finishes, resumable.

A stage's *fingerprint* is the hash of its settings and of the fingerprints of
the stages it reads (the cohort stage also hashes its input files). A re-run
reuses every stage whose stored fingerprint still matches and recomputes the
rest; ``force`` redoes the named stages and everything that depends on them.
Stage outputs live in ``<output>/stages/<name>/`` beside ``stage.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrn import __version__
from dlrn.errors import ConfigError, DlrnError
from dlrn.provenance import write_provenance
from dlrn.study.config import StudyConfig

log = logging.getLogger(__name__)

STAGE_RECORD = "stage.json"
STUDY_RECORD = "study.json"


@dataclass(frozen=True)
class Stage:
    """One step of the study.

    ``settings`` picks the part of the study file the stage depends on; ``skip``
    returns why the stage does not apply (or None); ``run`` writes the stage's
    outputs into ``context.stage_dir(name)`` and returns a short summary for the report.
    """

    name: str
    title: str
    depends: tuple[str, ...]
    settings: Callable[[StudyConfig], Any]
    run: Callable[[StudyContext], dict[str, Any]]
    skip: Callable[[StudyContext], str | None] = lambda context: None
    inputs: Callable[[StudyConfig], list[Path]] = lambda config: []
    optional: tuple[str, ...] = ()  # inputs the stage can do without (skipped is fine)


@dataclass
class StageRecord:
    """What ``stage.json`` stores: how the stage's outputs were made."""

    name: str
    fingerprint: str
    status: str  # "done" or "skipped"
    reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    peak_memory_mb: float = 0.0  # this process + its workers, sampled during the stage
    reused: bool = False


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


@dataclass
class StudyResult:
    output_dir: Path
    records: dict[str, StageRecord]

    @property
    def report(self) -> Path:
        return self.output_dir / "report" / "report.html"


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _input_hashes(paths: Iterable[Path]) -> dict[str, str]:
    from dlrn.provenance import file_sha256

    return {str(p): file_sha256(p) if p.is_file() else "missing" for p in paths}


def stage_fingerprint(stage: Stage, config: StudyConfig, upstream: dict[str, str]) -> str:
    """Hash of the stage's settings, its inputs' fingerprints and (for inputs) file contents."""
    return _hash({
        "stage": stage.name,
        "dlrn": __version__,
        "settings": stage.settings(config),
        "upstream": {name: upstream[name] for name in stage.depends},
        "files": _input_hashes(stage.inputs(config)),
    })


def _read_record(path: Path) -> StageRecord | None:
    try:
        return StageRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


class MemoryPeak:
    """Peak resident memory of this process plus its live worker processes, during a block.

    Sampled every ``interval`` seconds in a thread (a spike shorter than that can be
    missed), because ``getrusage`` only gives the peak since the process started and
    the largest single worker, not what the stage held with all workers at once.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # a worker that just finished
                continue
        self.peak_mb = max(self.peak_mb, total / 2**20)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemoryPeak:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


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
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise DlrnError(f"{out} exists and is not a dlrn study folder; choose another output "
                        "folder or pass --overwrite")
    write_provenance(record_path, identity=identity, settings=config.to_dict(),
                     seed=config.seed)


def run_stages(stages: list[Stage], config: StudyConfig, *, force: Iterable[str] = (),
               progress: bool = True, overwrite: bool = False) -> StudyResult:
    """Run or reuse each stage in order; return every stage's record."""
    redo = dependants(stages, force)
    claim_output(config, overwrite=overwrite)
    context = StudyContext(config, progress)
    fingerprints: dict[str, str] = {}
    for stage in stages:
        fingerprint = stage_fingerprint(stage, config, fingerprints)
        fingerprints[stage.name] = fingerprint
        folder = context.stage_dir(stage.name)
        stored = _read_record(folder / STAGE_RECORD)
        if stored and stored.fingerprint == fingerprint and stage.name not in redo:
            stored.reused = True
            context.records[stage.name] = stored
            log.info("stage %s: up to date, reused", stage.name)
            continue
        if stored:
            why = "forced" if stage.name in redo else "settings or inputs changed"
            log.info("stage %s: recomputing (%s)", stage.name, why)
        context.records[stage.name] = _execute(stage, context, fingerprint, folder)
    return StudyResult(config.output_dir, context.records)


def _execute(stage: Stage, context: StudyContext, fingerprint: str, folder: Path) -> StageRecord:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    reason = _upstream_skip(stage, context) or stage.skip(context)
    started = time.perf_counter()
    if reason:
        log.info("stage %s: skipped (%s)", stage.name, reason)
        record = StageRecord(stage.name, fingerprint, "skipped", reason)
    else:
        log.info("stage %s: running", stage.name)
        with MemoryPeak() as memory:
            summary = stage.run(context)
        record = StageRecord(stage.name, fingerprint, "done", summary=summary,
                             seconds=round(time.perf_counter() - started, 2),
                             peak_memory_mb=round(memory.peak_mb, 1))
    (folder / STAGE_RECORD).write_text(json.dumps(record.__dict__, indent=2, default=str))
    return record


def _upstream_skip(stage: Stage, context: StudyContext) -> str | None:
    """A stage whose required inputs were skipped is skipped too, saying which."""
    skipped = [name for name in stage.depends if not context.done(name)]
    required = [name for name in skipped if name not in stage.optional]
    if required:
        return f"needs {', '.join(required)}, which was skipped"
    return None


def run_study(config: StudyConfig, *, force: Iterable[str] = (), progress: bool = True,
              overwrite: bool = False) -> StudyResult:
    """Run (or resume) the whole study, then write the report and the model bundle."""
    from dlrn.report.html import build_report
    from dlrn.study.bundle_stage import write_study_bundle
    from dlrn.study.methods import methods_summary
    from dlrn.study.stages import STAGES

    result = run_stages(STAGES, config, force=force, progress=progress, overwrite=overwrite)
    context = StudyContext(config, progress, result.records)
    write_study_bundle(context)
    build_report(config.output_dir, {stage.name: stage.title for stage in STAGES},
                 methods_summary(context))
    return result
