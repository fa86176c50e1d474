"""Which clinical variables become predictors: backward elimination, enter, or none.

The multivariate step of the clinical analysis, as a procedure the study file names
(``evaluation.clinical_selection``):

- ``backward`` (the default): the univariately significant variables (p < threshold)
  enter one model; the variable whose drop-one likelihood-ratio test (all its terms
  together) has the largest p leaves, the model is refitted, and so on until every
  remaining variable has p < threshold: R's ``drop1(fit, test = "LRT")`` in a loop,
  SPSS's "Backward: LR". Correlated descriptors that share the signal do not all
  lose it at once: each refit gives the signal back to those that stay;
- ``enter``: the univariately significant variables in one model, those with a
  multivariate p < threshold are the predictors (a several-term variable's joint
  likelihood-ratio p, a one-term variable's Wald p): the literal reading of
  "univariate, then multivariate";
- ``none``: every declared variable is a predictor, in one pre-specified model
  (Harrell's recommendation); the drop-one p-values are reported, not used.

Every model is fitted by the analysis' rule (:func:`dlrn.clinical.fitting.fit_logistic_model`:
R's glm with aliased terms set aside, Firth's regression where it separates under
``auto``), so a drop-one test of a Firth model is its penalised likelihood-ratio test.
A variable whose test cannot be computed (no estimable term; a penalised fit without it
that meets a singular information matrix, as a small bootstrap sample can) gets p NaN
and is the first to leave. A model that cannot be fitted at all is a ``DlrnError``.
:func:`select_clinical_variables` runs on a cases table through the study's encoder
(the nomogram's bootstrap repeats it in each sample); :func:`select_variables` on a
design matrix already encoded (the analysis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from dlrn.clinical.encoding import ClinicalEncoder
from dlrn.clinical.firth import firth_lrt_p
from dlrn.clinical.fitting import (
    INTERCEPT,
    FittedModel,
    check_regression,
    encoded_design,
    fit_logistic_model,
    variable_p,
)
from dlrn.clinical.glm import fit_glm
from dlrn.errors import DlrnError

__all__ = ["PATH_COLUMNS", "PROCEDURES", "ClinicalSelection", "select_clinical_variables",
           "select_variables"]

PROCEDURES = ("backward", "enter", "none")
SELECTION_SETTING = "evaluation.clinical_selection"
#: One row per fitted multivariate model: its variables and estimated terms, the variable
#: with the largest drop-one p (``enter``: none tested), that p and its df, whether it left,
#: the model's AIC and deviance and how it was fitted (ML or Firth).
PATH_COLUMNS = ["step", "model", "terms", "variable", "p_value", "df", "removed", "aic",
                "deviance", "method"]


@dataclass
class ClinicalSelection:
    """The outcome of one selection procedure.

    ``selected``: the predictors, in the input order. ``univariate_kept``: the variables
    with a univariate p < threshold; ``entered``: those that entered the multivariate
    model (``univariate_kept``, or every variable under ``none``). ``path``: the models
    fitted, in order (:data:`PATH_COLUMNS`). ``final_p``: each predictor's p in the final
    model (its drop-one likelihood-ratio p, or under ``enter`` the p its rule reads).
    ``model``: the final model (None when no variable is left).
    """

    procedure: str
    selected: list[str]
    path: pd.DataFrame
    univariate_kept: list[str]
    entered: list[str] = field(default_factory=list)
    univariate_p: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    univariate_models: dict[str, FittedModel] = field(default_factory=dict)
    final_p: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    model: FittedModel | None = None
    p_threshold: float = 0.05
    regression: str = "auto"

    @property
    def removed(self) -> list[str]:
        """The variables backward elimination took out, in the order they left."""
        if self.path.empty:
            return []
        return self.path.loc[self.path["removed"].astype(bool), "variable"].tolist()


def check_procedure(procedure: str) -> None:
    if procedure not in PROCEDURES:
        raise DlrnError(f"{SELECTION_SETTING} is {procedure!r}; choose one of "
                        f"{list(PROCEDURES)}")


def drop_one(y: pd.Series, model: FittedModel, columns: Sequence[str]) -> tuple[float, int]:
    """R's ``drop1(fit, test = "LRT")`` row of one variable: the likelihood-ratio p of all
    its terms together and its degrees of freedom (penalised for a Firth fit; p NaN and df
    0 when none of its terms is estimable; p NaN when the penalised fit without them meets
    a singular information matrix, as a small bootstrap sample can)."""
    if model.method == "Firth":
        df = len([c for c in columns if c not in model.fit.aliased])
        try:
            return firth_lrt_p(y, model.design, model.fit, list(columns)), df
        except DlrnError:
            return np.nan, df
    reduced = fit_glm(y, model.design.drop(columns=list(columns)))
    df = model.fit.rank - reduced.rank
    if df == 0:
        return np.nan, 0
    statistic = max(reduced.deviance - model.fit.deviance, 0.0)
    return float(stats.chi2.sf(statistic, df)), df


def _path_row(step: int, variables: list[str], model: FittedModel, variable: str | None,
              p_value: float, df: int, removed: bool) -> dict:
    return {"step": step, "model": ", ".join(variables), "terms": model.fit.rank - 1,
            "variable": variable, "p_value": p_value, "df": df, "removed": removed,
            "aic": model.aic, "deviance": model.fit.deviance, "method": model.method}


def select_variables(y: pd.Series, design: pd.DataFrame, terms: Mapping[str, list[str]],
                     references: Mapping[str, str] | None = None, *,
                     procedure: str = "backward", p_threshold: float = 0.05,
                     regression: str = "auto", notes: bool = False) -> ClinicalSelection:
    """The procedure on an encoded ``design`` (constant column first) whose columns of each
    variable ``terms`` names; ``references`` names categorical variables' reference levels
    (for the separation notes). ``notes``: give each model its notes (separation, Firth,
    aliasing) for the report; a bootstrap does without them. See the module's docstring
    for the procedures."""
    check_procedure(procedure)
    check_regression(regression)
    references = references or {}
    variables = list(terms)

    def fit(names: list[str], what: str) -> FittedModel:
        columns = [INTERCEPT, *[t for name in names for t in terms[name]]]
        return fit_logistic_model(y, design[columns], {n: terms[n] for n in names},
                                  references, regression=regression, what=what, notes=notes)

    models = {name: fit([name], f"univariate model of {name}") for name in variables}
    univariate_p = pd.Series({name: variable_p(y, models[name], terms[name])
                              for name in variables}, dtype=float)
    kept = [name for name in variables if univariate_p[name] < p_threshold]
    entered = variables if procedure == "none" else kept
    result = ClinicalSelection(procedure, [], pd.DataFrame(columns=PATH_COLUMNS), kept,
                               list(entered), univariate_p, models, p_threshold=p_threshold,
                               regression=regression)
    if not entered:
        return result
    if procedure == "enter":
        model = fit(entered, "multivariate model")
        final_p = pd.Series({n: variable_p(y, model, terms[n]) for n in entered}, dtype=float)
        result.path = pd.DataFrame([_path_row(1, entered, model, None, np.nan, 0, False)],
                                   columns=PATH_COLUMNS)
        result.selected = [n for n in entered if final_p[n] < p_threshold]
        result.final_p, result.model = final_p, model
        return result
    rows, current = [], list(entered)
    while current:
        model = fit(current, "multivariate model")
        tests = {name: drop_one(y, model, terms[name]) for name in current}
        p_values = pd.Series({name: p for name, (p, _) in tests.items()}, dtype=float)
        # a variable whose test cannot be computed (NaN: no estimable term) leaves first
        weakest = p_values.fillna(np.inf).idxmax()
        leaves = procedure == "backward" and not p_values[weakest] < p_threshold
        rows.append(_path_row(len(rows) + 1, current, model, weakest, p_values[weakest],
                              tests[weakest][1], leaves))
        if not leaves:
            result.selected, result.final_p, result.model = list(current), p_values, model
            break
        current.remove(weakest)
    result.path = pd.DataFrame(rows, columns=PATH_COLUMNS)
    return result


def select_clinical_variables(cases: pd.DataFrame, y: pd.Series, variables: list[str], *,
                              encoder: ClinicalEncoder, procedure: str = "backward",
                              p_threshold: float = 0.05,
                              regression: str = "auto") -> ClinicalSelection:
    """The procedure on ``cases`` (their ``variables`` encoded by the fitted ``encoder``) and
    outcomes ``y`` (0/1, same index; a bootstrap sample's repeated ids are matched by
    position): the study's clinical selection, repeatable in each
    bootstrap sample of the training cases. Cases an ``exclude`` rule leaves out are left
    out; a term with one value in ``cases`` is set aside as aliased, as R does."""
    if not cases.index.is_unique:  # a bootstrap sample: rows matched by position
        if len(y) != len(cases):
            raise DlrnError(f"{len(cases)} cases with repeated ids but {len(y)} outcomes")
        cases, y = cases.reset_index(drop=True), y.reset_index(drop=True)
    design, _ = encoded_design(cases, variables, encoder, constant_error=False)
    labels = pd.Series(np.asarray(y.loc[design.index], dtype=float), index=design.index)
    terms = {name: list(encoder.terms_[name]) for name in variables}
    return select_variables(labels, design, terms, dict(encoder.reference_levels_),
                            procedure=procedure, p_threshold=p_threshold,
                            regression=regression)
