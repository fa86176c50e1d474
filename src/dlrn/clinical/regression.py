"""Univariate and multivariate logistic regression of clinical variables, through the encoder.

Each variable enters through the terms of :class:`~dlrn.clinical.encoding.ClinicalEncoder`
(a level, a token, an ordinal score, a missing indicator); the OR tables show
every term, with its reference. A variable's significance is that of all its
terms together: the likelihood-ratio test of its terms (univariate: against the
intercept-only model; multivariate: against the model without the variable, R's
``anova(reduced, full, test = "Chisq")``), or, for a one-term variable, its Wald p
(its likelihood-ratio p where separation makes the Wald test meaningless). The
univariately significant variables enter the multivariate model; its significant
variables are the "independent predictors".

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
from dlrn.clinical.firth import firth_interval, firth_lrt_p, fit_firth
from dlrn.clinical.glm import (
    SEPARATION_ADVICE,
    LogisticFit,
    alias_notes,
    fit_glm,
    separated_terms,
    separation_notes,
)
from dlrn.clinical.reading import MISSING, term
from dlrn.errors import DlrnError

__all__ = ["REGRESSIONS", "FittedModel", "LogisticAnalysis", "fit_logistic_model",
           "logistic_analysis"]

REGRESSIONS = ("auto", "standard", "firth")
REGRESSION_SETTING = "evaluation.clinical_regression"
INTERCEPT = "(Intercept)"
AUTO_REMEDY = (f"fitted by Firth's penalised regression instead ({REGRESSION_SETTING}: auto), "
               "which keeps the estimate finite")


@dataclass
class LogisticAnalysis:
    """Univariate screen, the selected variables, the multivariate model and its predictors.

    ``variables``: one row per variable with its joint p-values (univariate and
    multivariate), which decide ``selected`` and ``independent``. ``notes``: what the
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


def check_regression(regression: str) -> None:
    if regression not in REGRESSIONS:
        raise DlrnError(f"{REGRESSION_SETTING} is {regression!r}; choose one of "
                        f"{list(REGRESSIONS)}")


def fit_logistic_model(y: pd.Series, design: pd.DataFrame, terms: Mapping[str, list[str]],
                       references: Mapping[str, str], *, regression: str,
                       what: str) -> FittedModel:
    """One logistic model by the rule ``regression`` (auto, standard or firth), with notes.

    ``terms`` maps each variable to its columns of ``design`` (which also holds the
    constant). Notes: aliased terms (what they equal), separated terms (which level
    is all one class) and, under ``auto``, that Firth's regression was used.
    """
    check_regression(regression)
    variable_of = {t: name for name, columns in terms.items() for t in columns}
    if regression == "firth":
        fit = fit_firth(y, design, what=what)
        return FittedModel(fit, design, alias_notes(design, fit, variable_of))
    fit = fit_glm(y, design, what=what)
    separated = separated_terms(y, design)
    remedy = AUTO_REMEDY if regression == "auto" else SEPARATION_ADVICE
    notes = separation_notes(y, design, separated, terms, references, remedy=remedy)
    if separated and regression == "auto":
        fit = fit_firth(y, design, what=what)
    notes.update(alias_notes(design, fit, variable_of))
    return FittedModel(fit, design, notes, separated)


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


def _joint_p(y: pd.Series, model: FittedModel, tested: list[str]) -> float:
    """Likelihood-ratio p of ``tested`` terms together (penalised for Firth).

    Maximum likelihood: R's ``anova(reduced, full, test = "Chisq")``: the deviance
    difference on the difference in rank (aliased terms count for nothing).
    """
    if model.method == "Firth":
        return firth_lrt_p(y, model.design, model.fit, tested)
    reduced = fit_glm(y, model.design.drop(columns=tested))
    df = model.fit.rank - reduced.rank
    if df == 0:
        return np.nan
    statistic = max(reduced.deviance - model.fit.deviance, 0.0)
    return float(stats.chi2.sf(statistic, df))


def _variable_p(table: pd.DataFrame, joint: float, separated: bool) -> float:
    """A one-term variable's own p (its likelihood-ratio p where it is separated: the Wald p
    of a diverging estimate is near 1); a several-term variable's joint p."""
    if len(table) == 1 and not separated:
        return float(table["p_value"].iloc[0])
    return joint


def _encoded(cases: pd.DataFrame, predictors: Sequence[str], encoder: ClinicalEncoder
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Design matrix (constant first) of the predictors' terms, and the excluded cases."""
    terms = encoder.terms_of(list(predictors))
    excluded = encoder.exclusions(cases)
    kept = cases.drop(index=excluded["case"].unique())
    encoded = encoder.transform(kept)
    design = pd.concat([pd.Series(1.0, index=kept.index, name=INTERCEPT), encoded[terms]],
                       axis=1)
    for name in predictors:
        for one in encoder.terms_[name]:
            if design[one].nunique() < 2:
                raise DlrnError(f"predictor {name!r} is constant ({one}); it cannot be "
                                "estimated")
    return design, excluded


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
                      p_threshold: float = 0.05, profile_ci: bool = False,
                      conf_level: float = 0.95) -> LogisticAnalysis:
    """Univariate logistic regression per variable, multivariate on those with p < threshold.

    ``encoder``: the study's :class:`ClinicalEncoder`, fitted on training rows
    (fitted here on ``cases`` if it is not); without one, ``categorical`` columns
    are dummy-coded against ``reference`` (the most frequent level unless given) and
    a missing value is an error. Cases an ``exclude`` rule leaves out are listed in
    ``excluded``. Fit on training cases only when the model is later validated.
    """
    from dlrn.evaluation._checks import binary_labels

    check_regression(regression)
    _require_complete(cases, [label])
    _require_columns(cases, predictors)
    encoder = encoder or _default_encoder(predictors, categorical, reference)
    try:
        check_is_fitted(encoder, "state_")
    except NotFittedError:
        encoder.fit(cases)
    design, excluded = _encoded(cases, predictors, encoder)
    y = pd.Series(binary_labels(cases.loc[design.index, label], what=f"label column {label!r}"),
                  index=design.index)
    terms = {name: encoder.terms_[name] for name in predictors}
    references = dict(encoder.reference_levels_)
    univariate, rows, notes = [], [], []
    for name in predictors:
        what = f"univariate model of {name}"
        model = fit_logistic_model(y, design[[INTERCEPT, *terms[name]]], {name: terms[name]},
                                   references, regression=regression, what=what)
        lrt_p = _joint_p(y, model, terms[name])
        table = _coefficient_table(y, model, terms[name], {t: name for t in terms[name]},
                                   references, profile=profile_ci, conf_level=conf_level)
        table.insert(0, "variable", name)
        table["p_variable"] = _variable_p(table, lrt_p, bool(model.separated))
        table["p_lrt"] = lrt_p
        univariate.append(_note_last(table))
        notes += _model_notes(model, what)
        rows.append({"variable": name, "terms": len(terms[name]),
                     "p_univariate": table["p_variable"].iloc[0], "method": model.method})
    variables = pd.DataFrame(rows)
    variables["selected"] = variables["p_univariate"] < p_threshold
    selected = variables.loc[variables["selected"], "variable"].tolist()
    multivariate, fitted = _multivariate(y, design, terms, selected, references,
                                         regression=regression, profile=profile_ci,
                                         conf_level=conf_level)
    p_multivariate = (multivariate.groupby("variable", sort=False)["p_variable"].first()
                      if not multivariate.empty else pd.Series(dtype=float))
    variables["p_multivariate"] = variables["variable"].map(p_multivariate)
    variables["independent"] = variables["p_multivariate"] < p_threshold
    if fitted is not None:
        notes += _model_notes(fitted, "multivariate model")
    return LogisticAnalysis(
        pd.concat(univariate, ignore_index=True), multivariate, selected, references,
        None if fitted is None else fitted.fit,
        variables.loc[variables["independent"], "variable"].tolist(), variables,
        regression, encoder, excluded, p_threshold, notes)


def _multivariate(y: pd.Series, design: pd.DataFrame, terms: Mapping[str, list[str]],
                  selected: list[str], references: Mapping[str, str], *, regression: str,
                  profile: bool, conf_level: float
                  ) -> tuple[pd.DataFrame, FittedModel | None]:
    """The model of the selected variables; each variable's p of all its terms together."""
    if not selected:
        return pd.DataFrame(), None
    chosen = {name: terms[name] for name in selected}
    columns = [INTERCEPT, *[t for name in selected for t in terms[name]]]
    model = fit_logistic_model(y, design[columns], chosen, references, regression=regression,
                               what="multivariate model")
    variable_of = {t: name for name in selected for t in terms[name]}
    table = _coefficient_table(y, model, columns, variable_of, references, profile=profile,
                               conf_level=conf_level)
    table.insert(0, "variable", table["term"].map(variable_of).fillna(INTERCEPT))
    p_variable = {INTERCEPT: np.nan}
    for name in selected:
        own = table[table["variable"] == name]
        separated = bool(set(terms[name]) & set(model.separated))
        joint = (_joint_p(y, model, terms[name])
                 if len(terms[name]) > 1 or separated else np.nan)
        p_variable[name] = _variable_p(own, joint, separated)
    table["p_variable"] = table["variable"].map(p_variable)
    return _note_last(table), model
