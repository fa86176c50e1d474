"""Run a study: the stages in the paper's order, then the model bundle and the report.

The stages are in :mod:`dlrn.study.stages` (one module each), the runner that
reuses what is still valid in :mod:`dlrn.study.runner`; this module only composes
them. ``Stage``, ``StageRecord``, ``StudyContext`` and ``run_stages`` are
re-exported for code written against the former single module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from dlrn.report.html import ReportSection, build_report
from dlrn.stacking import GIVEN_SCORE_STAGE
from dlrn.study import automatic
from dlrn.study.bundle_stage import write_study_bundle
from dlrn.study.config import StudyConfig
from dlrn.study.methods import methods_summary
from dlrn.study.record import complete_record
from dlrn.study.runner import (
    STAGE_RECORD,
    STUDY_RECORD,
    Stage,
    StageListener,
    StageRecord,
    StudyContext,
    StudyResult,
    run_stages,
)
from dlrn.study.stages import STAGES, clinical, cohort, models, nomogram
from dlrn.study.stages.score import score_stage

__all__ = ["STAGE_RECORD", "STUDY_RECORD", "STUDY_STAGES", "Stage", "StageRecord",
           "StudyContext", "StudyResult", "clinical_stages", "report_sections",
           "run_clinical_study", "run_stages", "run_study"]


#: every stage of ``dlrn run``, in order: the stages, then the fully automatic pipeline
STUDY_STAGES: list[Stage] = [*STAGES, automatic.STAGE]


def report_sections(stages: list[Stage], records: dict[str, StageRecord]
                    ) -> list[ReportSection]:
    """The report's view of each stage that has a record, in the study's order."""
    return [ReportSection(stage.name, stage.title, record.status, record.summary,
                          record.reason, record.seconds)
            for stage in stages if (record := records.get(stage.name)) is not None]


def run_study(config: StudyConfig, *, force: Iterable[str] = (), progress: bool = True,
              overwrite: bool = False, on_stage: StageListener | None = None) -> StudyResult:
    """Run (or resume) the whole study, then write the report and the model bundle, and
    complete the study's record (the inputs' hashes) for ``dlrn reproduce``."""
    result = run_stages(STUDY_STAGES, config, force=force, progress=progress, overwrite=overwrite,
                        on_stage=on_stage)
    context = StudyContext(config, progress, result.records)
    write_study_bundle(context)
    build_report(config.output_dir, report_sections(STUDY_STAGES, result.records),
                 methods_summary(context))
    complete_record(config, result.input_hashes, context.summary("deep"))
    return result


def clinical_stages(score: str | None = None) -> list[Stage]:
    """The stages of ``dlrn clinical``: the table's cases (no images), the clinical
    analysis, the clinical models and, with an image score column, its nomogram."""
    stages = [cohort.table_stage((score,) if score else ()), clinical.STAGE,
              models.CLINICAL_MODELS]
    if score:
        stages += [score_stage(score),
                   dataclasses.replace(nomogram.STAGE, depends=(GIVEN_SCORE_STAGE, "clinical"),
                                       optional=("clinical",))]
    return stages


def run_clinical_study(config: StudyConfig, *, score: str | None = None,
                       progress: bool = True, overwrite: bool = False,
                       on_stage: StageListener | None = None) -> StudyResult:
    """``dlrn clinical``: the clinical part of the study on a table, with its report."""
    stages = clinical_stages(score)
    result = run_stages(stages, config, progress=progress, overwrite=overwrite,
                        on_stage=on_stage)
    context = StudyContext(config, progress, result.records)
    build_report(config.output_dir, report_sections(stages, result.records),
                 methods_summary(context, images=False))
    return result
