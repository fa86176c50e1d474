"""Clinical data: one encoder of clinical tables, the baseline table and logistic regression.

- :class:`ClinicalEncoder` (encoding): missing values, rare and unseen levels,
  ordinal scores and multilabel tokens, learned on training rows, saved as JSON;
- :func:`baseline_table` (baseline): training vs test, "Table 2";
- :func:`logistic_analysis` (regression): univariate and multivariate logistic
  regression through the encoder's terms, joint tests, standard or Firth;
- :func:`methods_text` (describe): what was done, in words.
"""

from dlrn.clinical.baseline import baseline_table
from dlrn.clinical.describe import methods_text, regression_methods_text
from dlrn.clinical.encoding import ClinicalEncoder
from dlrn.clinical.firth import FirthFit, fit_firth
from dlrn.clinical.glm import fit_logistic, fit_logistic_diagnosed, separation_notes
from dlrn.clinical.regression import REGRESSIONS, LogisticAnalysis, logistic_analysis
from dlrn.clinical.spec import COLUMN_TYPES, MISSING_POLICIES, ColumnSpec

__all__ = [
    "COLUMN_TYPES",
    "MISSING_POLICIES",
    "REGRESSIONS",
    "ClinicalEncoder",
    "ColumnSpec",
    "FirthFit",
    "LogisticAnalysis",
    "baseline_table",
    "fit_firth",
    "fit_logistic",
    "fit_logistic_diagnosed",
    "logistic_analysis",
    "methods_text",
    "regression_methods_text",
    "separation_notes",
]
