"""Feature selection as scikit-learn transformers, so it refits inside every CV fold.

The study's recipe (ICC >= 0.85, z-score, t-test p < 0.05, Pearson |r| > 0.9
de-duplication, greedy recursive deletion, LASSO with 10-fold CV) is often run
on the whole cohort before the split, which leaks test information into every
AUC. Here each step is an estimator: ``fit`` sees training rows only, learned
state ends in ``_``, and every step records what it removed and why in
``removed_``. Modules: :mod:`~dlrn.selection.icc` (reproducibility),
:mod:`~dlrn.selection.filters` (z-score, univariate, correlation),
:mod:`~dlrn.selection.lasso` (glmnet-style LASSO), :mod:`~dlrn.selection.pipeline`
(settings, the nested pipeline, funnel), :mod:`~dlrn.selection.plots`.
"""

from dlrn.selection._base import REMOVED_COLUMNS, SelectionWarning
from dlrn.selection.filters import (
    CONSTANT_RTOL,
    UNIVARIATE_TESTS,
    CorrelationFilter,
    GreedyCorrelationDeletion,
    UnivariateFilter,
    ZScore,
    univariate_tests,
)
from dlrn.selection.icc import (
    ICC_FORMS,
    ReproducibilityFilter,
    intraclass_correlation,
    repeat_icc,
)
from dlrn.selection.lasso import LAMBDA_RULES, LASSO_METHODS, LassoSelector, glmnet_stop
from dlrn.selection.pipeline import (
    SelectionPipeline,
    SelectionSettings,
    make_selection_pipeline,
    pipeline_radscore,
    removed_features,
    selection_funnel,
)
from dlrn.selection.plots import plot_lasso_coefficients, plot_lasso_cv, plot_lasso_path

__all__ = [
    "CONSTANT_RTOL",
    "ICC_FORMS",
    "LAMBDA_RULES",
    "LASSO_METHODS",
    "REMOVED_COLUMNS",
    "UNIVARIATE_TESTS",
    "CorrelationFilter",
    "GreedyCorrelationDeletion",
    "LassoSelector",
    "ReproducibilityFilter",
    "SelectionPipeline",
    "SelectionSettings",
    "SelectionWarning",
    "UnivariateFilter",
    "ZScore",
    "glmnet_stop",
    "intraclass_correlation",
    "make_selection_pipeline",
    "pipeline_radscore",
    "plot_lasso_coefficients",
    "plot_lasso_cv",
    "plot_lasso_path",
    "removed_features",
    "repeat_icc",
    "selection_funnel",
    "univariate_tests",
]
