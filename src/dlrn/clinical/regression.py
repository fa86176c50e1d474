"""Univariate and multivariate logistic regression of clinical variables, through the encoder.

Each variable enters through the terms of :class:`~dlrn.clinical.encoding.ClinicalEncoder`
(a level, a token, an ordinal score, a missing indicator); the OR tables show
every term, with its reference. A variable's significance is that of all its
terms together: the likelihood-ratio test of its terms (univariate: against the
intercept-only model; multivariate: against the model without the variable, R's
``anova(reduced, full, test = "Chisq")``), or, for a one-term variable, its Wald p
(its likelihood-ratio p where separation makes the Wald test meaningless). The
univariately significant variables enter the multivariate model, where a selection
procedure (:mod:`dlrn.clinical.selection`: backward elimination by drop-one
likelihood-ratio tests, enter, or none) decides the "independent predictors".

Every fit is R's ``glm`` (:func:`dlrn.clinical.glm.fit_glm`): an aliased term
(descriptor tokens that add up to another term) gets no estimate, as R shows
it, with a note naming what it is aliased with. ``regression``:

- ``"auto"`` (the default): maximum likelihood, and Firth's penalised regression
  (R ``logistf``) for each model whose maximum-likelihood fit shows separation
  (:func:`dlrn.clinical.glm.separated_terms`); the ``method`` column and the notes
  say which model was fitted how and why;
- ``"standard"``: maximum likelihood always, separated terms noted;
- ``"firth"``: Firth always (profile penalised-likelihood CIs, penalised
  likelihood-ratio p-values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from dlrn.clinical.baseline import _require_columns, _require_complete
from dlrn.clinical.encoding import ClinicalEncoder
from dlrn.clinical.firth import firth_interval, firth_lrt_p
from dlrn.clinical.fitting import (
    INTERCEPT,
    REGRESSIONS,
    FittedModel,
    check_regression,
    encoded_design,
    fit_logistic_model,
    joint_p,
)
from dlrn.clinical.glm import LogisticFit, fit_glm
from dlrn.clinical.reading import MISSING, term
from dlrn.clinical.selection import ClinicalSelection, check_procedure, select_variables

__all__ = ["INTERCEPT", "REGRESSIONS", "FittedModel", "LogisticAnalysis", "check_regression",
           "fit_logistic_model", "logistic_analysis"]


@dataclass
class LogisticAnalysis:
    """Univariate screen, the selected variables, the multivariate model and its predictors.

    ``variables``: one row per variable with its p-values (univariate; in the final
    multivariate model; backward: the step at which it left). ``selected``: the
    variables that entered the multivariate model; ``independent``: the predictors the
    selection procedure kept (``selection`` holds its path). ``notes``: what the
    report says about the fits (separation, Firth used, aliased terms).
    """

    univariate: pd.DataFrame
    multivariate: pd.DataFrame
    selected: list[str]
    reference_levels: dict[str, str] = field(default_factory=dict)
    model: object = None
    independent: list[str] = field(default_factory=list)
    variables: pd.DataFrame = field(default_factory=pd.DataFrame)
    regression: str = "auto"
    encoder: ClinicalEncoder | None = None
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)
    p_threshold: float = 0.05
    notes: list[str] = field(default_factory=list)
    selection: ClinicalSelection | None = None

    @property
    def procedure(self) -> str:
        return self.selection.procedure if self.selection is not None else "enter"


def _profile_interval(y: pd.Series, design: pd.DataFrame, fit: LogisticFit, name: str,
                      conf_level: float) -> tuple[float, float]:
    """Profile-likelihood CI of one coefficient: where the deviance rises by chi2_1(conf_level)."""
    cutoff = fit.deviance + stats.chi2.ppf(conf_level, 1)
    others = design.drop(columns=[name, *fit.aliased])
    beta, se = fit.params[name], fit.bse[name]

    def excess(value: float) -> float:
        return fit_glm(y, others, what=name, offset=value * design[name]).deviance - cutoff

    bounds = []
    for sign in (-1, 1):
        step = 2 * se
        while excess(beta + sign * step) < 0:
            step *= 2
        bounds.append(optimize.brentq(excess, beta, beta + sign * step, xtol=1e-10))
    return bounds[0], bounds[1]


def _reference_of(name: str, variable: str | None, references: Mapping[str, str]) -> str:
    """What a term's odds ratio compares with, in words."""
    if variable is None or name == INTERCEPT:
        return ""
    if name == term(variable, MISSING):
        return "value recorded"
    if variable in references:
        return f"{variable} = {references[variable]}"
    return "token absent" if name != variable else "per unit"


def _coefficient_row(y: pd.Series, model: FittedModel, name: str, *, profile: bool,
                     conf_level: float) -> dict:
    fit = model.fit
    note = model.notes.get(name, "")
    if not note and name in model.separated and fit.method == "ML":
        note = ("its estimate diverges: it separates the outcome together with other terms "
                "(see the notes)")
    row = {"term": name, "method": fit.method, "note": note}
    if name in fit.aliased:
        values = dict.fromkeys(["beta", "se", "z", "p_value", "odds_ratio", "ci_low",
                                "ci_high"], np.nan)
        if profile:
            values.update(profile_ci_low=np.nan, profile_ci_high=np.nan)
        return {**row, **values}
    beta, se = float(fit.params[name]), float(fit.bse[name])
    if fit.method == "Firth":
        low, high = firth_interval(y, model.design, fit, name, conf_level)
        p_value = firth_lrt_p(y, model.design, fit, [name])
    else:
        z = stats.norm.ppf(0.5 + conf_level / 2)
        low, high = beta - z * se, beta + z * se
        p_value = float(2 * stats.norm.sf(abs(beta / se)))
    with np.errstate(over="ignore"):  # a separated term's upper limit is inf, as in R
        ratios = np.exp([beta, low, high])
    row.update(beta=beta, se=se, z=beta / se, p_value=p_value, odds_ratio=ratios[0],
               ci_low=ratios[1], ci_high=ratios[2])
    if profile and fit.method == "Firth":
        row["profile_ci_low"], row["profile_ci_high"] = ratios[1], ratios[2]
    elif profile and name in model.separated:
        row["profile_ci_low"] = row["profile_ci_high"] = np.nan
        row["note"] += "; profile CI not computed"
    elif profile:
        low, high = _profile_interval(y, model.design, fit, name, conf_level)
        row["profile_ci_low"], row["profile_ci_high"] = np.exp(low), np.exp(high)
    return row


def _coefficient_table(y: pd.Series, model: FittedModel, names: list[str],
                       variable_of: Mapping[str, str], references: Mapping[str, str], *,
                       profile: bool, conf_level: float) -> pd.DataFrame:
    """OR, CI and p per term, what it is compared with, the method, and notes.

    Maximum likelihood: Wald CI and p, profile CI on request (not for a separated
    term: it is unbounded on one side). Firth: profile penalised-likelihood CI and
    penalised likelihood-ratio p, as logistf prints them. An aliased term: NA.
    """
    rows = [_coefficient_row(y, model, name, profile=profile, conf_level=conf_level)
            for name in names]
    table = pd.DataFrame(rows)
    table.insert(1, "reference", [_reference_of(n, variable_of.get(n), references)
                                  for n in names])
    return _note_last(table)


def _note_last(table: pd.DataFrame) -> pd.DataFrame:
    return table[[c for c in table.columns if c != "note"] + ["note"]]


def _default_encoder(predictors: Sequence[str], categorical: Sequence[str],
                     reference: Mapping[str, object] | None) -> ClinicalEncoder:
    """Every level its own term, a missing value an error: the plain R-style coding."""
    columns = {p: "categorical" if p in categorical else "continuous" for p in predictors}
    return ClinicalEncoder(columns, missing="stop", min_level_count=1, reference=reference)


def _model_notes(model: FittedModel, what: str) -> list[str]:
    """The report's notes on one model: each term's note (separation, Firth, aliasing)."""
    return [f"{what}: {note}" for note in model.notes.values()]


def logistic_analysis(cases: pd.DataFrame, label: str, predictors: Sequence[str], *,
                      categorical: Sequence[str] = (),
                      reference: Mapping[str, object] | None = None,
                      encoder: ClinicalEncoder | None = None, regression: str = "auto",
                      p_threshold: float = 0.05, procedure: str = "backward",
                      profile_ci: bool = False, conf_level: float = 0.95) -> LogisticAnalysis:
    """Univariate logistic regression per variable, then the multivariate selection
    ``procedure`` (:mod:`dlrn.clinical.selection`: backward, enter or none).

    ``encoder``: the study's :class:`ClinicalEncoder`, fitted on training rows
    (fitted here on ``cases`` if it is not); without one, ``categorical`` columns
    are dummy-coded against ``reference`` (the most frequent level unless given) and
    a missing value is an error. Cases an ``exclude`` rule leaves out are listed in
    ``excluded``. Fit on training cases only when the model is later validated.
    """
    from dlrn.evaluation._checks import binary_labels

    check_regression(regression)
    check_procedure(procedure)
    _require_complete(cases, [label])
    _require_columns(cases, predictors)
    encoder = encoder or _default_encoder(predictors, categorical, reference)
    try:
        check_is_fitted(encoder, "state_")
    except NotFittedError:
        encoder.fit(cases)
    design, excluded = encoded_design(cases, predictors, encoder)
    y = pd.Series(binary_labels(cases.loc[design.index, label], what=f"label column {label!r}"),
                  index=design.index)
    terms = {name: list(encoder.terms_[name]) for name in predictors}
    references = dict(encoder.reference_levels_)
    selection = select_variables(y, design, terms, references, procedure=procedure,
                                 p_threshold=p_threshold, regression=regression, notes=True)
    univariate, rows, notes = [], [], []
    for name in predictors:
        model = selection.univariate_models[name]
        table = _coefficient_table(y, model, terms[name], {t: name for t in terms[name]},
                                   references, profile=profile_ci, conf_level=conf_level)
        table.insert(0, "variable", name)
        table["p_variable"] = selection.univariate_p[name]
        table["p_lrt"] = joint_p(y, model, terms[name])
        univariate.append(_note_last(table))
        notes += _model_notes(model, f"univariate model of {name}")
        rows.append({"variable": name, "terms": len(terms[name]),
                     "p_univariate": selection.univariate_p[name], "method": model.method})
    variables = pd.DataFrame(rows)
    variables["selected"] = variables["variable"].isin(selection.entered)
    variables["p_multivariate"] = variables["variable"].map(selection.final_p)
    if procedure == "backward":
        left = selection.path.loc[selection.path["removed"].astype(bool)].set_index("variable")
        variables["removed_at_step"] = variables["variable"].map(left["step"])
        variables["p_at_removal"] = variables["variable"].map(left["p_value"])
    variables["independent"] = variables["variable"].isin(selection.selected)
    multivariate = pd.DataFrame()
    if selection.model is not None:
        multivariate = _multivariate_table(y, selection, terms, references,
                                           profile=profile_ci, conf_level=conf_level)
        notes += _model_notes(selection.model, "multivariate model")
    return LogisticAnalysis(
        pd.concat(univariate, ignore_index=True), multivariate, list(selection.entered),
        references, None if selection.model is None else selection.model.fit,
        list(selection.selected), variables, regression, encoder, excluded, p_threshold,
        notes, selection)


def _multivariate_table(y: pd.Series, selection: ClinicalSelection,
                        terms: Mapping[str, list[str]], references: Mapping[str, str], *,
                        profile: bool, conf_level: float) -> pd.DataFrame:
    """The final model's coefficients; each variable's p as the procedure read it."""
    model = selection.model
    chosen = list(selection.final_p.index)
    columns = [INTERCEPT, *[t for name in chosen for t in terms[name]]]
    variable_of = {t: name for name in chosen for t in terms[name]}
    table = _coefficient_table(y, model, columns, variable_of, references, profile=profile,
                               conf_level=conf_level)
    table.insert(0, "variable", table["term"].map(variable_of).fillna(INTERCEPT))
    table["p_variable"] = table["variable"].map(selection.final_p)
    return _note_last(table)
