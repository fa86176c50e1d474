"""The study's stages, in the paper's order: one module per stage.

Each module has its settings dataclass (the part of the study file it depends on),
a ``run(context)`` returning a typed summary (:mod:`dlrn.report.summary`), an integer
``VERSION`` and its :class:`~dlrn.study.runner.Stage`. Shared file names and readers
are in :mod:`dlrn.study.stages.files`.
"""

from __future__ import annotations

from dlrn.study.runner import Stage
from dlrn.study.stages import clinical, cohort, comparison, deep, models, nomogram, radiomics

STAGES: list[Stage] = [
    cohort.STAGE,
    clinical.STAGE,
    models.CLINICAL_MODELS,
    radiomics.STAGE,
    models.HCR_MODELS,
    deep.STAGE,
    models.DLR_MODELS,
    nomogram.STAGE,
    comparison.STAGE,
]
STAGE_TITLES = {stage.name: stage.title for stage in STAGES}
