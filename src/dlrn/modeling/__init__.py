"""One feature set -> leakage-safe selection + seven tuned classifiers -> predictions + metrics.

Modules: :mod:`~dlrn.modeling.fit` (the fit and the result),
:mod:`~dlrn.modeling.importance` (held-out-fold permutation importance),
:mod:`~dlrn.modeling.output` (tables, figures, provenance).
"""

from dlrn.modeling.fit import (
    CV_SET,
    DEFAULT_SELECTION,
    TRAIN,
    FeatureSetResult,
    check_modeling_inputs,
    fit_feature_set,
)
from dlrn.modeling.importance import (
    IMPORTANCE_FIGURE_ROWS,
    IMPORTANCE_METHOD,
    IMPORTANCE_REPEATS,
    fold_permutation_importance,
    permutation_auc_drops,
    plot_importance,
)
from dlrn.modeling.output import result_tables, write_feature_set_result

__all__ = [
    "CV_SET",
    "DEFAULT_SELECTION",
    "IMPORTANCE_FIGURE_ROWS",
    "IMPORTANCE_METHOD",
    "IMPORTANCE_REPEATS",
    "TRAIN",
    "FeatureSetResult",
    "check_modeling_inputs",
    "fit_feature_set",
    "fold_permutation_importance",
    "permutation_auc_drops",
    "plot_importance",
    "result_tables",
    "write_feature_set_result",
]
