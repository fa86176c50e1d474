"""Statistics that match R (pROC, rms, ResourceSelection): ROC/DeLong, cut-offs, calibration, DCA.

Submodules: :mod:`~dlrn.evaluation.roc`, :mod:`~dlrn.evaluation.threshold`,
:mod:`~dlrn.evaluation.calibration`, :mod:`~dlrn.evaluation.decision_curve`,
:mod:`~dlrn.evaluation.clustered` (patient-level inference),
:mod:`~dlrn.evaluation.patients` (patient ids, patient-level predictions),
:mod:`~dlrn.evaluation.sets` (training rows out-of-fold or apparent),
:mod:`~dlrn.evaluation.metrics` (``metrics_table``),
:mod:`~dlrn.evaluation.analysis` (``evaluate_predictions``),
:mod:`~dlrn.evaluation.summary` (``write_evaluation``) and
:mod:`~dlrn.evaluation.figures` (imported on demand: it loads matplotlib).
"""

from dlrn.evaluation.analysis import evaluate_predictions
from dlrn.evaluation.calibration import (
    brier_score,
    calibration_bins,
    calibration_intercept_slope,
    hosmer_lemeshow,
)
from dlrn.evaluation.clustered import (
    cluster_bootstrap_aucs,
    clustered_auc_ci,
    clustered_pairwise,
    clustered_proportion_ci,
    obuchowski_covariance,
)
from dlrn.evaluation.decision_curve import decision_curve
from dlrn.evaluation.metrics import metrics_table
from dlrn.evaluation.patients import patient_predictions
from dlrn.evaluation.roc import (
    AucResult,
    DelongTest,
    auc_ci,
    delong_matrix,
    delong_paired,
    delong_pairwise,
    delong_unpaired,
    holm,
    roc_curve,
)
from dlrn.evaluation.sets import TRAIN_APPARENT, TRAIN_OOF
from dlrn.evaluation.summary import write_evaluation
from dlrn.evaluation.threshold import YoudenThreshold, cutoff_metrics, youden_threshold

__all__ = [
    "TRAIN_APPARENT",
    "TRAIN_OOF",
    "AucResult",
    "DelongTest",
    "YoudenThreshold",
    "auc_ci",
    "brier_score",
    "calibration_bins",
    "calibration_intercept_slope",
    "cluster_bootstrap_aucs",
    "clustered_auc_ci",
    "clustered_pairwise",
    "clustered_proportion_ci",
    "cutoff_metrics",
    "decision_curve",
    "delong_matrix",
    "delong_paired",
    "delong_pairwise",
    "delong_unpaired",
    "evaluate_predictions",
    "holm",
    "hosmer_lemeshow",
    "metrics_table",
    "obuchowski_covariance",
    "patient_predictions",
    "roc_curve",
    "write_evaluation",
    "youden_threshold",
]
