"""Univariate and multivariate logistic regression of clinical variables, through the encoder.

Each variable enters through the terms of :class:`~dlrn.clinical.encoding.ClinicalEncoder`
(a level, a token, an ordinal score, a missing indicator); the OR tables show
every term. A variable's significance is that of all its terms together: its
Wald p when it has one term, else the likelihood-ratio p of its terms together
(univariate: against the intercept-only model; multivariate: against the model
without the variable). The univariately significant variables enter the
multivariate model; its significant variables are the "independent predictors".

``regression="standard"``: statsmodels' binomial GLM (= R ``glm``), Wald CIs and
p, profile-likelihood CIs (= R ``confint``) on request, separation flagged in
notes. ``regression="firth"``: Firth's penalised regression (= R ``logistf``),
profile penalised-likelihood CIs and penalised likelihood-ratio p-values, finite
under separation.
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
from dlrn.clinical.glm import fit_logistic, fit_logistic_diagnosed, separation_notes
from dlrn.errors import DlrnError

__all__ = ["REGRESSIONS", "LogisticAnalysis", "logistic_analysis"]

REGRESSIONS = ("standard", "firth")
REGRESSION_SETTING = "evaluation.clinical_regression"
INTERCEPT = "(Intercept)"


@dataclass
class LogisticAnalysis:
    """Univariate screen, the selected variables, the multivariate model and its predictors.

    ``variables``: one row per variable with its joint p-values (univariate and
    multivariate), which decide ``selected`` and ``independent``.
    """

    univariate: pd.DataFrame
    multivariate: pd.DataFrame
    selected: list[str]
    reference_levels: dict[str, str] = field(default_factory=dict)
    model: object = None
    independent: list[str] = field(default_factory=list)
    variables: pd.DataFrame = field(default_factory=pd.DataFrame)
    regression: str = "standard"
    encoder: ClinicalEncoder | None = None
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)
    p_threshold: float = 0.05


@dataclass
class _Model:
    """One fitted model: its fit, design and the notes on its terms."""

    fit: object
    design: pd.DataFrame
    notes: dict[str, str]
    regression: str


def _profile_interval(y: pd.Series, design: pd.DataFrame, fit: object, term: str,
                      conf_level: float) -> tuple[float, float]:
    """Profile-likelihood CI of one coefficient: where the deviance rises by chi2_1(conf_level)."""
    cutoff = fit.deviance + stats.chi2.ppf(conf_level, 1)
    others = design.drop(columns=term)
    beta, se = fit.params[term], fit.bse[term]

    def excess(value: float) -> float:
        return fit_logistic(y, others, what=term, offset=value * design[term]).deviance - cutoff

    bounds = []
    for sign in (-1, 1):
        step = 2 * se
        while excess(beta + sign * step) < 0:
            step *= 2
        bounds.append(optimize.brentq(excess, beta, beta + sign * step, xtol=1e-10))
    return bounds[0], bounds[1]


def _coefficient_table(y: pd.Series, model: _Model, terms: list[str], *, profile: bool,
                       conf_level: float) -> pd.DataFrame:
    """OR, CI and p per term; flagged (separated) terms keep R's values and a note.

    Standard: Wald CI and p, profile CI on request (not for a flagged term: it is
    unbounded on one side). Firth: profile penalised-likelihood CI and penalised
    likelihood-ratio p, as logistf prints them.
    """
    z = stats.norm.ppf(0.5 + conf_level / 2)
    fit, design, notes = model.fit, model.design, model.notes
    rows = []
    for term in terms:
        beta, se = float(fit.params[term]), float(fit.bse[term])
        if model.regression == "firth":
            low, high = firth_interval(y, design, fit, term, conf_level)
            p_value = firth_lrt_p(y, design, fit, [term])
        else:
            low, high = beta - z * se, beta + z * se
            p_value = float(2 * stats.norm.sf(abs(beta / se)))
        with np.errstate(over="ignore"):  # a separated term's upper limit is inf, as in R
            ratios = np.exp([beta, low, high])
        row = {"term": term, "beta": beta, "se": se, "z": beta / se, "p_value": p_value,
               "odds_ratio": ratios[0], "ci_low": ratios[1], "ci_high": ratios[2],
               "note": notes.get(term, "")}
        if profile and model.regression == "firth":
            row["profile_ci_low"], row["profile_ci_high"] = ratios[1], ratios[2]
        elif profile and term in notes:
            row["profile_ci_low"] = row["profile_ci_high"] = np.nan
            row["note"] += "; profile CI not computed"
        elif profile:
            low, high = _profile_interval(y, design, fit, term, conf_level)
            row["profile_ci_low"], row["profile_ci_high"] = np.exp(low), np.exp(high)
        rows.append(row)
    return _note_last(pd.DataFrame(rows))


def _note_last(table: pd.DataFrame) -> pd.DataFrame:
    return table[[c for c in table.columns if c != "note"] + ["note"]]


def _fit_model(y: pd.Series, design: pd.DataFrame, terms: Mapping[str, list[str]],
               references: Mapping[str, str], *, regression: str, what: str) -> _Model:
    if regression == "firth":
        return _Model(fit_firth(y, design), design, {}, regression)
    fit, problem = fit_logistic_diagnosed(y, design, what=what)
    notes = separation_notes(y, design, fit, terms, references, problem=problem, what=what)
    return _Model(fit, design, notes, regression)


def _joint_p(y: pd.Series, model: _Model, tested: list[str], *, what: str) -> float:
    """Likelihood-ratio p of ``tested`` terms together (penalised for Firth)."""
    if model.regression == "firth":
        return firth_lrt_p(y, model.design, model.fit, tested)
    reduced, _ = fit_logistic_diagnosed(y, model.design.drop(columns=tested), what=what)
    statistic = max(2 * (model.fit.llf - reduced.llf), 0.0)
    return float(stats.chi2.sf(statistic, len(tested)))


def _variable_p(table: pd.DataFrame, joint: float) -> float:
    """A one-term variable's own p; a several-term variable's joint likelihood-ratio p."""
    return float(table["p_value"].iloc[0]) if len(table) == 1 else joint


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
        for term in encoder.terms_[name]:
            if design[term].nunique() < 2:
                raise DlrnError(f"predictor {name!r} is constant ({term}); it cannot be "
                                "estimated")
    return design, excluded


def _default_encoder(predictors: Sequence[str], categorical: Sequence[str],
                     reference: Mapping[str, object] | None) -> ClinicalEncoder:
    """Every level its own term, a missing value an error: the plain R-style coding."""
    columns = {p: "categorical" if p in categorical else "continuous" for p in predictors}
    return ClinicalEncoder(columns, missing="stop", min_level_count=1, reference=reference)


def logistic_analysis(cases: pd.DataFrame, label: str, predictors: Sequence[str], *,
                      categorical: Sequence[str] = (),
                      reference: Mapping[str, object] | None = None,
                      encoder: ClinicalEncoder | None = None, regression: str = "standard",
                      p_threshold: float = 0.05, profile_ci: bool = False,
                      conf_level: float = 0.95) -> LogisticAnalysis:
    """Univariate logistic regression per variable, multivariate on those with p < threshold.

    ``encoder``: the study's :class:`ClinicalEncoder`, fitted on training rows
    (fitted here on ``cases`` if it is not); without one, ``categorical`` columns
    are dummy-coded against ``reference`` (first level in sorted order) and a
    missing value is an error. Cases an ``exclude`` rule leaves out are listed in
    ``excluded``. Fit on training cases only when the model is later validated.
    Standard regression keeps R's numbers under separation but notes each
    affected row, with a warning (:func:`separation_notes`); a separated term's
    Wald p is near 1, so the univariate note points to the likelihood-ratio p.
    """
    from dlrn.evaluation._checks import binary_labels

    if regression not in REGRESSIONS:
        raise DlrnError(f"{REGRESSION_SETTING} is {regression!r}; choose one of "
                        f"{list(REGRESSIONS)}")
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
    references = encoder.reference_levels_
    univariate, rows = [], []
    for name in predictors:
        columns = [INTERCEPT, *terms[name]]
        model = _fit_model(y, design[columns], {name: terms[name]}, references,
                           regression=regression, what=f"univariate model of {name!r}")
        lrt_p = _joint_p(y, model, terms[name], what="intercept-only model")
        model.notes = {term: f"{note}; the likelihood-ratio p ({lrt_p:.3g}) is usable"
                       for term, note in model.notes.items()}
        table = _coefficient_table(y, model, terms[name], profile=profile_ci,
                                   conf_level=conf_level)
        table.insert(0, "variable", name)
        table["p_variable"] = _variable_p(table, lrt_p)
        table["p_lrt"] = lrt_p
        univariate.append(_note_last(table))
        rows.append({"variable": name, "terms": len(terms[name]),
                     "p_univariate": table["p_variable"].iloc[0]})
    variables = pd.DataFrame(rows)
    variables["selected"] = variables["p_univariate"] < p_threshold
    selected = variables.loc[variables["selected"], "variable"].tolist()
    multivariate, model = _multivariate(y, design, terms, selected, references,
                                        regression=regression, profile=profile_ci,
                                        conf_level=conf_level)
    p_multivariate = (multivariate.groupby("variable", sort=False)["p_variable"].first()
                      if not multivariate.empty else pd.Series(dtype=float))
    variables["p_multivariate"] = variables["variable"].map(p_multivariate)
    variables["independent"] = variables["p_multivariate"] < p_threshold
    return LogisticAnalysis(
        pd.concat(univariate, ignore_index=True), multivariate, selected, dict(references),
        model, variables.loc[variables["independent"], "variable"].tolist(), variables,
        regression, encoder, excluded, p_threshold)


def _multivariate(y: pd.Series, design: pd.DataFrame, terms: Mapping[str, list[str]],
                  selected: list[str], references: Mapping[str, str], *, regression: str,
                  profile: bool, conf_level: float) -> tuple[pd.DataFrame, object]:
    """The model of the selected variables; each variable's p of all its terms together."""
    if not selected:
        return pd.DataFrame(), None
    columns = [INTERCEPT, *[t for name in selected for t in terms[name]]]
    model = _fit_model(y, design[columns], {n: terms[n] for n in selected}, references,
                       regression=regression, what=f"multivariate model of {selected}")
    table = _coefficient_table(y, model, columns, profile=profile, conf_level=conf_level)
    variable_of = {t: name for name in selected for t in terms[name]}
    table.insert(0, "variable", table["term"].map(variable_of).fillna(INTERCEPT))
    p_variable = {INTERCEPT: np.nan}
    for name in selected:
        own = table[table["variable"] == name]
        joint = (np.nan if len(terms[name]) == 1 else
                 _joint_p(y, model, terms[name], what=f"multivariate model without {name!r}"))
        p_variable[name] = _variable_p(own, joint)
    table["p_variable"] = table["variable"].map(p_variable)
    return _note_last(table), model.fit
