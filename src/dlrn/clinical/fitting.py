"""One logistic model of clinical terms by the study's rule, and the tests that read it.

The pieces every clinical regression shares (the analysis' univariate and
multivariate models, the selection procedures, :class:`~dlrn.clinical.LogisticModel`
and the nomogram): the ``regression`` rule (R's glm, Firth's regression where it
separates), the design matrix of an encoder's terms, and a variable's
likelihood-ratio p of all its terms together (R's ``anova(reduced, full, test =
"Chisq")``, penalised for a Firth fit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from dlrn.clinical.encoding import ClinicalEncoder
from dlrn.clinical.firth import firth_lrt_p, fit_firth
from dlrn.clinical.glm import (
    SEPARATION_ADVICE,
    LogisticFit,
    alias_notes,
    fit_glm,
    separated_terms,
    separation_notes,
)
from dlrn.errors import DlrnError

__all__ = ["INTERCEPT", "REGRESSIONS", "FittedModel", "check_regression", "encoded_design",
           "fit_logistic_model", "joint_p", "variable_p"]

REGRESSIONS = ("auto", "standard", "firth")
REGRESSION_SETTING = "evaluation.clinical_regression"
INTERCEPT = "(Intercept)"
AUTO_REMEDY = (f"fitted by Firth's penalised regression instead ({REGRESSION_SETTING}: auto), "
               "which keeps the estimate finite")


@dataclass
class FittedModel:
    """One fitted model: its fit, design, the notes on its terms and the separated terms."""

    fit: LogisticFit
    design: pd.DataFrame
    notes: dict[str, str]
    separated: list[str] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.fit.method

    @property
    def aic(self) -> float:
        """R's ``AIC``: deviance + 2 x estimated coefficients (a Firth fit: its deviance at
        the penalised estimates)."""
        return self.fit.deviance + 2 * self.fit.rank


def check_regression(regression: str) -> None:
    if regression not in REGRESSIONS:
        raise DlrnError(f"{REGRESSION_SETTING} is {regression!r}; choose one of "
                        f"{list(REGRESSIONS)}")


def fit_logistic_model(y: pd.Series, design: pd.DataFrame, terms: Mapping[str, list[str]],
                       references: Mapping[str, str], *, regression: str,
                       what: str, notes: bool = True) -> FittedModel:
    """One logistic model by the rule ``regression`` (auto, standard or firth), with notes.

    ``terms`` maps each variable to its columns of ``design`` (which also holds the
    constant). Notes: aliased terms (what they equal), separated terms (which level
    is all one class) and, under ``auto``, that Firth's regression was used;
    ``notes=False`` leaves them out (a selection repeated in bootstrap samples).
    """
    check_regression(regression)
    variable_of = {t: name for name, columns in terms.items() for t in columns}
    if regression == "firth":
        fit = fit_firth(y, design, what=what)
        return FittedModel(fit, design,
                           alias_notes(design, fit, variable_of) if notes else {})
    fit = fit_glm(y, design, what=what)
    separated = separated_terms(y, design)
    said: dict[str, str] = {}
    if notes:
        remedy = AUTO_REMEDY if regression == "auto" else SEPARATION_ADVICE
        said = separation_notes(y, design, separated, terms, references, remedy=remedy)
    if separated and regression == "auto":
        fit = fit_firth(y, design, what=what)
    if notes:
        said.update(alias_notes(design, fit, variable_of))
    return FittedModel(fit, design, said, separated)


def joint_p(y: pd.Series, model: FittedModel, tested: Sequence[str]) -> float:
    """Likelihood-ratio p of ``tested`` terms together (penalised for Firth); NaN when none
    of them is estimable.

    Maximum likelihood: R's ``anova(reduced, full, test = "Chisq")`` (and ``drop1(fit,
    test = "LRT")``): the deviance difference on the difference in rank (aliased terms
    count for nothing).
    """
    if model.method == "Firth":
        return firth_lrt_p(y, model.design, model.fit, list(tested))
    reduced = fit_glm(y, model.design.drop(columns=list(tested)))
    df = model.fit.rank - reduced.rank
    if df == 0:
        return np.nan
    statistic = max(reduced.deviance - model.fit.deviance, 0.0)
    return float(stats.chi2.sf(statistic, df))


def variable_p(y: pd.Series, model: FittedModel, columns: Sequence[str]) -> float:
    """A variable's p in ``model``, as the analysis tables show it: a one-term variable's
    Wald p (its likelihood-ratio p where it is separated or the fit is Firth's: the Wald p
    of a diverging estimate is near 1), a several-term variable's joint likelihood-ratio p."""
    separated = bool(set(columns) & set(model.separated))
    if len(columns) == 1 and not separated and model.method == "ML":
        name = columns[0]
        if name in model.fit.aliased:
            return np.nan
        z = model.fit.params[name] / model.fit.bse[name]
        return float(2 * stats.norm.sf(abs(z)))
    return joint_p(y, model, columns)


def encoded_design(cases: pd.DataFrame, predictors: Sequence[str], encoder: ClinicalEncoder,
                   *, constant_error: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Design matrix (constant first) of the predictors' terms, and the excluded cases.

    ``constant_error``: a term with one value is an error naming it (the analysis); without
    it the fit sets such a term aside as aliased with the constant (a bootstrap sample).
    """
    terms = encoder.terms_of(list(predictors))
    excluded = encoder.exclusions(cases)
    kept = cases.drop(index=excluded["case"].unique())
    encoded = encoder.transform(kept)
    design = pd.concat([pd.Series(1.0, index=kept.index, name=INTERCEPT), encoded[terms]],
                       axis=1)
    for name in predictors if constant_error else ():
        for one in encoder.terms_[name]:
            if design[one].nunique() < 2:
                raise DlrnError(f"predictor {name!r} is constant ({one}); it cannot be "
                                "estimated")
    return design, excluded
