"""Clinical data: one encoder of clinical tables, the baseline table and logistic regression.

- :class:`ClinicalEncoder` (encoding): missing values, rare and unseen levels,
  ordinal scores and multilabel tokens, learned on training rows, saved as JSON;
- :func:`baseline_table` (baseline): training vs test, "Table 2";
- :func:`logistic_analysis` (regression): univariate and multivariate logistic
  regression through the encoder's terms, joint tests; R's glm (aliased terms,
  :mod:`~dlrn.clinical.glm`), Firth's regression (:mod:`~dlrn.clinical.firth`) where
  separation needs it;
- :func:`select_clinical_variables` (selection): the multivariate step as a procedure
  (backward elimination by drop-one likelihood-ratio tests, enter, none), repeatable
  inside a bootstrap;
- :class:`LogisticModel` (model): that regression as a scikit-learn classifier;
- :func:`methods_text` (describe): what was done, in words.
"""

from dlrn.clinical.baseline import baseline_table
from dlrn.clinical.describe import methods_text, regression_methods_text
from dlrn.clinical.encoding import ClinicalEncoder
from dlrn.clinical.firth import fit_firth
from dlrn.clinical.fitting import REGRESSIONS, FittedModel, fit_logistic_model
from dlrn.clinical.glm import LogisticFit, fit_glm, fit_logistic, separated_terms
from dlrn.clinical.model import LogisticModel
from dlrn.clinical.regression import LogisticAnalysis, logistic_analysis
from dlrn.clinical.selection import PROCEDURES, ClinicalSelection, select_clinical_variables
from dlrn.clinical.spec import COLUMN_TYPES, MISSING_POLICIES, ColumnSpec

__all__ = [
    "COLUMN_TYPES",
    "MISSING_POLICIES",
    "PROCEDURES",
    "REGRESSIONS",
    "ClinicalEncoder",
    "ClinicalSelection",
    "ColumnSpec",
    "FittedModel",
    "LogisticAnalysis",
    "LogisticFit",
    "LogisticModel",
    "baseline_table",
    "fit_firth",
    "fit_glm",
    "fit_logistic",
    "fit_logistic_model",
    "logistic_analysis",
    "methods_text",
    "regression_methods_text",
    "select_clinical_variables",
    "separated_terms",
]
