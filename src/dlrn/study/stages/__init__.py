"""The study's stages, in the paper's order: one module per stage.

Each module has its settings dataclass (the part of the study file it depends on),
a ``run(context)`` returning a typed summary (:mod:`dlrn.report.summary`), an integer
``VERSION`` and its :class:`~dlrn.study.runner.Stage`. Shared file names and readers
are in :mod:`dlrn.study.stages.files`.

The names below ``STAGES`` were importable from the former single module; the domain
logic among them now lives in the library (``dlrn.clinical_predictors``,
``dlrn.stacking``, ``dlrn.model_comparison``) and is re-exported for older code.
"""

from __future__ import annotations

from dlrn.clinical_predictors import clinical_choice, independent_predictors
from dlrn.model_comparison import comparison_metrics
from dlrn.stacking import DLR_SCORE, nomogram_inputs
from dlrn.study.runner import Stage
from dlrn.study.stages import (
    applicability,
    clinical,
    cohort,
    comparison,
    deep,
    models,
    nomogram,
    radiomics,
    segmentation,
)
from dlrn.study.stages.cohort import IGNORED_REPEATS
from dlrn.study.stages.deep import deep_settings
from dlrn.study.stages.files import CASES_FILE, OOF_FILE, PREDICTIONS_FILE
from dlrn.study.stages.models import fit_models

STAGES: list[Stage] = [
    cohort.STAGE,
    segmentation.STAGE,
    clinical.STAGE,
    models.CLINICAL_MODELS,
    radiomics.STAGE,
    models.HCR_MODELS,
    deep.STAGE,
    models.DLR_MODELS,
    nomogram.STAGE,
    applicability.STAGE,
    comparison.STAGE,
]

__all__ = ["CASES_FILE", "DLR_SCORE", "IGNORED_REPEATS", "OOF_FILE", "PREDICTIONS_FILE",
           "STAGES", "clinical_choice", "comparison_metrics", "deep_settings",
           "fit_models", "independent_predictors", "nomogram_inputs"]
