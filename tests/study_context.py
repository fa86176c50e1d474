"""A study context whose cohort stage is already done, for tests that run later stages
on a hand-made case table (the stages read the cohort stage's cases file)."""

from __future__ import annotations

import pandas as pd

from dlrn.study.config import StudyConfig
from dlrn.study.runner import StageRecord, StudyContext
from dlrn.study.stages.files import CASES_FILE


def mark_done(context: StudyContext, stage: str) -> None:
    """Record ``stage`` as run, with its folder, as the runner does after running it."""
    context.stage_dir(stage).mkdir(parents=True, exist_ok=True)
    context.records[stage] = StageRecord(stage, "test", "done")


def context_with_cases(config: StudyConfig, cases: pd.DataFrame) -> StudyContext:
    """A context for ``config`` whose cohort stage wrote ``cases`` (label, set, ...)."""
    context = StudyContext(config, progress=False)
    mark_done(context, "cohort")
    cases.to_csv(context.stage_dir("cohort") / CASES_FILE)
    return context
