"""Statistics that match R (pROC, rms, ResourceSelection): ROC/DeLong, cut-offs, calibration, DCA.

Submodules: :mod:`~dlrn.evaluation.roc`, :mod:`~dlrn.evaluation.threshold`,
:mod:`~dlrn.evaluation.calibration`, :mod:`~dlrn.evaluation.decision_curve`,
:mod:`~dlrn.evaluation.summary` (tables for a predictions file) and
:mod:`~dlrn.evaluation.figures` (imported on demand: it loads matplotlib).
"""

from dlrn.evaluation.calibration import (
    brier_score,
    calibration_bins,
    calibration_intercept_slope,
    hosmer_lemeshow,
)
from dlrn.evaluation.decision_curve import decision_curve
from dlrn.evaluation.roc import (
    AucResult,
    DelongTest,
    auc_ci,
    delong_matrix,
    delong_paired,
    delong_pairwise,
    delong_unpaired,
    roc_curve,
)
from dlrn.evaluation.summary import evaluate_predictions, metrics_table, write_evaluation
from dlrn.evaluation.threshold import YoudenThreshold, cutoff_metrics, youden_threshold

__all__ = [
    "AucResult",
    "DelongTest",
    "YoudenThreshold",
    "auc_ci",
    "brier_score",
    "calibration_bins",
    "calibration_intercept_slope",
    "cutoff_metrics",
    "decision_curve",
    "delong_matrix",
    "delong_paired",
    "delong_pairwise",
    "delong_unpaired",
    "evaluate_predictions",
    "hosmer_lemeshow",
    "metrics_table",
    "roc_curve",
    "write_evaluation",
    "youden_threshold",
]
