"""Binomial GLM fits (= R ``glm``) and notes on (quasi-)complete separation.

statsmodels' binomial GLM is R's ``glm``: OR = exp(β), Wald CI exp(β ± z·SE).
Separation (a level whose cases are all of one class) makes the maximum
likelihood estimate infinite; R and statsmodels then "converge" to a huge OR
with a meaningless Wald CI and p. :func:`separation_notes` flags such terms and
points to Firth's penalised regression (``evaluation.clinical_regression: firth``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from dlrn.clinical.reading import MISSING, term
from dlrn.errors import DlrnError

__all__ = ["fit_logistic", "fit_logistic_diagnosed", "separation_notes"]

COMPLETE_SEPARATION = ("complete separation: the predictors classify every case perfectly, "
                       "so an odds ratio is infinite")
NOT_CONVERGED = "the logistic fit did not converge (separation or collinear predictors)"
SEPARATION_ADVICE = ("merge sparse levels (cohort.min_level_count) or set "
                     "evaluation.clinical_regression: firth (Firth's penalised logistic "
                     "regression, as R's logistf)")
SEPARATION_KINDS = {  # problem of the fit: (what the note calls it, the reason it gives)
    "": ("quasi-complete separation", ""),
    COMPLETE_SEPARATION: ("complete separation", "every case is classified perfectly"),
    NOT_CONVERGED: ("possible separation", "the fit did not converge"),
}
#: |beta| x SD(x) above this (odds x e^10 = 22 000 per SD) means the estimate diverges.
DIVERGING_LOG_ODDS_PER_SD = 10.0


def fit_logistic_diagnosed(y: pd.Series, design: pd.DataFrame, *, what: str,
                           offset: object = None) -> tuple[object, str]:
    """Binomial GLM (= R glm) and what went wrong: '', complete separation or no convergence.

    A singular (collinear) design is an error naming ``what``.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning,
        PerfectSeparationError,
        PerfectSeparationWarning,
    )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PerfectSeparationWarning)
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            fit = sm.GLM(y, design, family=sm.families.Binomial(), offset=offset).fit(
                tol=1e-12, maxiter=100
            )
        except PerfectSeparationError as error:
            raise DlrnError(f"{what}: {COMPLETE_SEPARATION}; {SEPARATION_ADVICE}") from error
        except np.linalg.LinAlgError as error:
            raise DlrnError(f"{what}: collinear predictors (singular design)") from error
    categories = {warning.category for warning in caught}
    for warning in caught:
        if warning.category not in (PerfectSeparationWarning, ConvergenceWarning):
            warnings.warn(warning.message, warning.category, stacklevel=2)
    if PerfectSeparationWarning in categories:
        return fit, COMPLETE_SEPARATION
    return fit, NOT_CONVERGED if ConvergenceWarning in categories else ""


def fit_logistic(y: pd.Series, design: pd.DataFrame, *, what: str, offset: object = None):
    """Binomial GLM (= R glm); perfect separation or non-convergence is an error naming ``what``."""
    fit, problem = fit_logistic_diagnosed(y, design, what=what, offset=offset)
    if problem:
        raise DlrnError(f"{what}: {problem}")
    return fit


def _one_class(y: pd.Series, cases: pd.Series, label: str) -> list[str]:
    """['all n cases with <label> are positive (1)'] when those cases hold one class only."""
    outcomes = y[cases]
    if outcomes.empty or outcomes.nunique() > 1:
        return []
    kind = "positive (1)" if outcomes.iloc[0] == 1 else "negative (0)"
    return [f"all {len(outcomes)} cases with {label} are {kind}"]


def _binary_term(y: pd.Series, values: pd.Series, label: str) -> list[str]:
    """One-class values of a two-valued term (a 0/1 predictor, token or missing indicator)."""
    if values.nunique() != 2:
        return []
    return [reason for value in sorted(values.unique())
            for reason in _one_class(y, values == value, f"{label} = {value:g}")]


def _one_class_levels(y: pd.Series, design: pd.DataFrame, name: str, terms: list[str],
                      reference: str | None) -> dict[str, list[str]]:
    """Per term of one predictor: its levels (or values) whose cases are all of one class."""
    levels = [t for t in terms if reference is not None and t != term(name, MISSING)]
    reasons = {t: _binary_term(y, design[t], name if t == name else t)
               for t in terms if t not in levels}
    if levels:  # dummies of a categorical predictor, and its reference level
        at_reference = _one_class(y, (design[levels] == 0).all(axis=1),
                                  f"{name} = {reference} (reference level)")
        reasons.update({t: _one_class(y, design[t] == 1, f"{name} = {t[len(name) + 1:-1]}")
                        + at_reference for t in levels})
    return reasons


def separation_notes(y: pd.Series, design: pd.DataFrame, fit: object,
                     terms: Mapping[str, list[str]], references: Mapping[str, str], *,
                     problem: str = "", what: str = "model") -> dict[str, str]:
    """A note per term of ``fit`` that shows (quasi-)complete separation, with a warning.

    Separation is flagged when the fit reports it or did not converge
    (``problem``), when a level's cases (or a binary predictor's value's) are
    all of one class, or when the estimate diverges (|beta| x SD(x) > 10);
    statsmodels, like R's glm, then "converges" to a huge OR with an enormous SE,
    a Wald CI of 0 to infinity and p near 1 (Hauck-Donner), which are meaningless.
    """
    kind, fit_reason = SEPARATION_KINDS[problem]
    notes = {}
    if problem and "(Intercept)" in design:
        notes["(Intercept)"] = f"{kind} ({fit_reason}): no estimate of this model is reliable"
    for name, variable_terms in terms.items():
        levels = _one_class_levels(y, design, name, variable_terms, references.get(name))
        for one in variable_terms:
            beta, se = float(fit.params[one]), float(fit.bse[one])
            reasons = ([fit_reason] if fit_reason else []) + levels[one]
            if abs(beta) * design[one].std() > DIVERGING_LOG_ODDS_PER_SD:
                reasons.append(f"beta = {beta:.3g} (SE {se:.3g}) diverges")
            if reasons:
                notes[one] = (f"{name}: {kind} ({'; '.join(reasons)}); the odds ratio is not "
                               "finite, so its estimate, Wald CI and p are meaningless: "
                               f"{SEPARATION_ADVICE}")
    flagged = [one for one in notes if one != "(Intercept)"]
    if notes:
        warnings.warn(f"{what}: {kind} ({', '.join(flagged)}); see the note column",
                      stacklevel=3)
    return notes


