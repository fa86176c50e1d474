"""Clinical statistics: baseline table ("Table 2"), univariate and multivariate logistic regression.

Baseline rules (those of the reference study, reproduced in R in ../shared/stats-refs):
continuous variables are summarised as mean ± SD when Shapiro-Wilk p > 0.05 in
both groups (compared by Student's t-test, equal variances), otherwise as
median (Q1, Q3) (Mann-Whitney U, normal approximation with tie correction and
continuity correction); categorical variables as n (%) per level, compared by
chi-square with Yates' correction (2x2) or without (larger tables), or by
Fisher's exact test when any expected count is below 5. SDs use n-1; quartiles
are R's type 7. Missing values are counted per group and left out of each
variable's summaries and test (percentages are of the cases with a value).

Logistic regression uses statsmodels' binomial GLM (= R ``glm``): OR = exp(β),
Wald 95% CI exp(β ± z·SE), Wald p; profile-likelihood CIs (= R ``confint``) on
request. Categorical predictors are dummy-coded against a stated reference
level (the first level in sorted order unless given).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from dlrn.errors import DlrnError

__all__ = [
    "LogisticAnalysis",
    "baseline_table",
    "fit_logistic",
    "fit_logistic_diagnosed",
    "logistic_analysis",
    "separation_notes",
]

EXPECTED_COUNT_FOR_CHI_SQUARE = 5


# ----------------------------------------------------------------- baseline table
BASELINE_COLUMNS = ("variable", "level", "group_1", "group_2", "missing_1", "missing_2", "test",
                    "statistic", "p_value", "shapiro_p_1", "shapiro_p_2", "min_expected", "note")


def _require_columns(cases: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in cases.columns]
    if missing:
        raise DlrnError(f"column(s) {missing} not found; available: {list(cases.columns)}")


def _require_complete(cases: pd.DataFrame, columns: Sequence[str]) -> None:
    _require_columns(cases, columns)
    for column in columns:
        empty = cases.index[cases[column].isna()]
        if len(empty):
            shown = ", ".join(map(str, empty[:5]))
            raise DlrnError(f"column {column!r} is missing for {len(empty)} case(s): {shown}")


def _two_groups(cases: pd.DataFrame, group: str, order: Sequence[str] | None) -> list:
    levels = list(order) if order is not None else sorted(pd.unique(cases[group]), key=str)
    present = set(pd.unique(cases[group]))
    if len(levels) != 2 or set(levels) != present:
        raise DlrnError(
            f"group column {group!r} must have exactly two values for a baseline table; "
            f"found {sorted(present, key=str)}"
        )
    return levels


def _quartiles(values: np.ndarray) -> np.ndarray:
    return np.quantile(values, [0.25, 0.5, 0.75])  # numpy 'linear' = R type 7


def _available(name: str, values: pd.Series, groups: pd.Series, levels: list) -> list[pd.Series]:
    """Non-missing values of each group; a group with none at all is an error naming it."""
    by_group = [values[groups == g] for g in levels]
    for level, group_values in zip(levels, by_group, strict=True):
        if group_values.notna().sum() == 0:
            raise DlrnError(f"variable {name!r} is missing for all {len(group_values)} case(s) "
                            f"of group {level!r}; nothing to summarise or test")
    return [v.dropna() for v in by_group]


def _continuous_row(name: str, first: np.ndarray, second: np.ndarray, alpha: float,
                    digits: int) -> dict[str, object]:
    testable = min(first.size, second.size) >= 3
    shapiro = [stats.shapiro(v).pvalue if testable else np.nan for v in (first, second)]
    normal = testable and all(p > alpha for p in shapiro)
    note = "" if testable else ("fewer than 3 values in a group: normality not testable "
                                "(Shapiro-Wilk), summarised and tested non-parametrically")
    if normal:
        test = stats.ttest_ind(first, second, equal_var=True)
        summaries = [f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" for v in (first, second)]
        method = "Student t-test"
    else:
        test = stats.mannwhitneyu(first, second, use_continuity=True, method="asymptotic")
        summaries = []
        for values in (first, second):
            q1, median, q3 = _quartiles(values)
            summaries.append(f"{median:.{digits}f} ({q1:.{digits}f}, {q3:.{digits}f})")
        method = "Mann-Whitney U"
    return {"variable": name, "level": "mean ± SD" if normal else "median (Q1, Q3)",
            "group_1": summaries[0], "group_2": summaries[1], "test": method,
            "statistic": float(test.statistic), "p_value": float(test.pvalue),
            "shapiro_p_1": shapiro[0], "shapiro_p_2": shapiro[1], "note": note}


def _without_missing(values: pd.Series) -> pd.Series:
    """Available values; integer codes that blanks turned into floats become integers again."""
    present = values.dropna()
    if pd.api.types.is_float_dtype(present) and (present == present.round()).all():
        return present.astype(int)
    return present


def _categorical_rows(name: str, values: pd.Series, groups: pd.Series, levels: list,
                      digits: int) -> list[dict[str, object]]:
    available = values.notna().to_numpy()
    table = pd.crosstab(groups[available], _without_missing(values)).reindex(levels)
    counts = table.to_numpy()
    if counts.shape[1] < 2:
        raise DlrnError(f"variable {name!r} takes a single value ({table.columns[0]!r}); "
                        "nothing to compare")
    expected_counts = stats.contingency.expected_freq(counts)
    if expected_counts.min() < EXPECTED_COUNT_FOR_CHI_SQUARE:
        method, statistic = "Fisher exact", np.nan
        p_value = stats.fisher_exact(counts).pvalue
    else:
        method = "chi-square (Yates)" if counts.shape == (2, 2) else "chi-square"
        statistic, p_value, _, _ = stats.chi2_contingency(counts, correction=True)
    header = {"variable": name, "level": "", "group_1": "", "group_2": "", "test": method,
              "statistic": float(statistic), "p_value": float(p_value),
              "min_expected": float(expected_counts.min()), "note": ""}
    if method == "Fisher exact":
        header["note"] = (f"an expected count is below {EXPECTED_COUNT_FOR_CHI_SQUARE}: "
                          "Fisher's exact test (no test statistic)")
    totals = counts.sum(axis=1)
    rows = [header]
    for j, level in enumerate(table.columns):
        cells = [f"{counts[i, j]} ({100 * counts[i, j] / totals[i]:.1f}%)" for i in range(2)]
        rows.append({"variable": name, "level": str(level), "group_1": cells[0],
                     "group_2": cells[1]})
    return rows


def baseline_table(cases: pd.DataFrame, group: str, variables: Sequence[str], *,
                   categorical: Sequence[str] = (), group_order: Sequence[str] | None = None,
                   normality_alpha: float = 0.05, digits: int = 2) -> pd.DataFrame:
    """Baseline characteristics of two groups (e.g. train vs test), one block per variable.

    Missing values are allowed: each variable's first row gives the number
    missing in each group (columns "<group> missing"); summaries, percentages
    and tests use the available values only. A variable missing for a whole
    group is an error naming it. Columns ``group_1``/``group_2`` are renamed to
    "<group> (n=...)" (all cases of the group). Continuous rows carry the
    Shapiro-Wilk p of each group; categorical header rows the smallest expected
    count, which decides between chi-square and Fisher; ``note`` says why a
    value is absent.
    """
    _require_complete(cases, [group])
    _require_columns(cases, variables)
    levels = _two_groups(cases, group, group_order)
    rows: list[dict[str, object]] = []
    for name in variables:
        available = _available(name, cases[name], cases[group], levels)
        missing = {f"missing_{i + 1}": int(cases.loc[cases[group] == g, name].isna().sum())
                   for i, g in enumerate(levels)}
        if name in categorical:
            block = _categorical_rows(name, cases[name], cases[group], levels, digits)
        elif not pd.api.types.is_numeric_dtype(cases[name]):
            raise DlrnError(f"variable {name!r} is not numeric; list it in categorical=")
        else:
            first, second = (values.to_numpy(float) for values in available)
            block = [_continuous_row(name, first, second, normality_alpha, digits)]
        block[0].update(missing)
        rows += block
    table = pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))
    table[["missing_1", "missing_2"]] = table[["missing_1", "missing_2"]].astype("Int64")
    table["note"] = table["note"].fillna("")
    sizes = cases[group].value_counts()
    names = {}
    for i, g in enumerate(levels):
        names[f"group_{i + 1}"] = f"{g} (n={sizes[g]})"
        names[f"missing_{i + 1}"] = f"{g} missing"
    return table.rename(columns=names)


# ----------------------------------------------------------------- logistic regression
@dataclass
class LogisticAnalysis:
    """Univariate screen, the selected variables and the multivariate model."""

    univariate: pd.DataFrame
    multivariate: pd.DataFrame
    selected: list[str]
    reference_levels: dict[str, str] = field(default_factory=dict)
    model: object = None


def _design(cases: pd.DataFrame, predictors: Sequence[str], categorical: Sequence[str],
            reference: Mapping[str, object]) -> tuple[pd.DataFrame, dict[str, list[str]], dict]:
    """Numeric design matrix (with constant), the terms of each predictor and reference levels."""
    columns, terms, references = [], {}, {}
    for name in predictors:
        values = cases[name]
        if name in categorical:
            levels = sorted(pd.unique(values), key=str)
            base = reference.get(name, levels[0])
            if base not in levels:
                raise DlrnError(f"reference level {base!r} of {name!r} not among {levels}")
            references[name] = str(base)
            dummies = [
                (values == level).astype(float).rename(f"{name}[{level}]")
                for level in levels if level != base
            ]
        else:
            if not pd.api.types.is_numeric_dtype(values):
                raise DlrnError(f"predictor {name!r} is not numeric; list it in categorical=")
            dummies = [values.astype(float).rename(name)]
        for column in dummies:
            if column.nunique() < 2:
                raise DlrnError(f"predictor {name!r} is constant ({column.name}); it cannot "
                                "be estimated")
        columns += dummies
        terms[name] = [c.name for c in dummies]
    design = pd.concat([pd.Series(1.0, index=cases.index, name="(Intercept)"), *columns], axis=1)
    return design, terms, references


COMPLETE_SEPARATION = ("complete separation: the predictors classify every case perfectly, "
                       "so an odds ratio is infinite")
NOT_CONVERGED = "the logistic fit did not converge (separation or collinear predictors)"
SEPARATION_ADVICE = "merge sparse levels or use Firth's penalised logistic regression (R logistf)"
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


def _one_class_levels(y: pd.Series, design: pd.DataFrame, name: str, terms: list[str],
                      reference: str | None) -> dict[str, list[str]]:
    """Per term of one predictor: its levels whose cases are all of one class."""
    if reference is not None:  # dummies of a categorical predictor, and its reference level
        at_reference = _one_class(y, (design[terms] == 0).all(axis=1),
                                  f"{name} = {reference} (reference level)")
        return {term: _one_class(y, design[term] == 1, f"{name} = {term[len(name) + 1:-1]}")
                + at_reference for term in terms}
    values = design[name]
    if values.nunique() != 2:
        return {name: []}
    return {name: [reason for value in sorted(values.unique())
                   for reason in _one_class(y, values == value, f"{name} = {value:g}")]}


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
        for term in variable_terms:
            beta, se = float(fit.params[term]), float(fit.bse[term])
            reasons = ([fit_reason] if fit_reason else []) + levels[term]
            if abs(beta) * design[term].std() > DIVERGING_LOG_ODDS_PER_SD:
                reasons.append(f"beta = {beta:.3g} (SE {se:.3g}) diverges")
            if reasons:
                notes[term] = (f"{name}: {kind} ({'; '.join(reasons)}); the odds ratio is not "
                               "finite, so its estimate, Wald CI and p are meaningless: "
                               f"{SEPARATION_ADVICE}")
    flagged = [term for term in notes if term != "(Intercept)"]
    if notes:
        warnings.warn(f"{what}: {kind} ({', '.join(flagged)}); see the note column",
                      stacklevel=3)
    return notes


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


def _coefficient_table(y: pd.Series, design: pd.DataFrame, fit: object, terms: list[str], *,
                       profile: bool, conf_level: float,
                       notes: Mapping[str, str]) -> pd.DataFrame:
    """OR, Wald CI and p per term (profile CI on request); flagged terms keep R's values and a note.

    A flagged term's profile CI is not computed (it is unbounded on one side).
    """
    z = stats.norm.ppf(0.5 + conf_level / 2)
    rows = []
    for term in terms:
        beta, se = float(fit.params[term]), float(fit.bse[term])
        with np.errstate(over="ignore"):  # a separated term's upper limit is inf, as in R
            ratios = np.exp([beta, beta - z * se, beta + z * se])
        row = {"term": term, "beta": beta, "se": se, "z": beta / se,
               "p_value": float(2 * stats.norm.sf(abs(beta / se))), "odds_ratio": ratios[0],
               "ci_low": ratios[1], "ci_high": ratios[2], "note": notes.get(term, "")}
        if profile and term in notes:
            row["profile_ci_low"] = row["profile_ci_high"] = np.nan
            row["note"] += "; profile CI not computed"
        elif profile:
            low, high = _profile_interval(y, design, fit, term, conf_level)
            row["profile_ci_low"], row["profile_ci_high"] = np.exp(low), np.exp(high)
        rows.append(row)
    return _note_last(pd.DataFrame(rows))


def _note_last(table: pd.DataFrame) -> pd.DataFrame:
    return table[[c for c in table.columns if c != "note"] + ["note"]]


def _fit_with_notes(y: pd.Series, design: pd.DataFrame, terms: Mapping[str, list[str]],
                    references: Mapping[str, str], *, what: str) -> tuple[object, dict[str, str]]:
    fit, problem = fit_logistic_diagnosed(y, design, what=what)
    return fit, separation_notes(y, design, fit, terms, references, problem=problem, what=what)


def logistic_analysis(cases: pd.DataFrame, label: str, predictors: Sequence[str], *,
                      categorical: Sequence[str] = (),
                      reference: Mapping[str, object] | None = None,
                      p_threshold: float = 0.05, profile_ci: bool = False,
                      conf_level: float = 0.95) -> LogisticAnalysis:
    """Univariate logistic regression per predictor, then multivariate on those with p < threshold.

    A single-term predictor is selected by its Wald p; a multi-level categorical
    one by its likelihood-ratio p (column ``p_variable``). Fit these on training
    cases only when the model is later validated. Separation (a level with one
    outcome class, a diverging estimate, no convergence) keeps R's numbers but
    gets a ``note`` on each affected row and a warning (:func:`separation_notes`);
    a separated predictor's Wald p is near 1, so the univariate note points to
    its likelihood-ratio p (``p_lrt``).
    """
    from dlrn.evaluation._checks import binary_labels

    _require_complete(cases, [label, *predictors])
    y = pd.Series(binary_labels(cases[label], what=f"label column {label!r}"), index=cases.index)
    design, terms, references = _design(cases, predictors, categorical, reference or {})
    null = fit_logistic(y, design[["(Intercept)"]], what="intercept-only model")
    univariate = []
    for name in predictors:
        columns = ["(Intercept)", *terms[name]]
        fit, notes = _fit_with_notes(y, design[columns], {name: terms[name]}, references,
                                     what=f"univariate model of {name!r}")
        lrt_p = stats.chi2.sf(null.deviance - fit.deviance, len(terms[name]))
        notes = {term: f"{note}; the likelihood-ratio p ({lrt_p:.3g}) is usable"
                 for term, note in notes.items()}
        table = _coefficient_table(y, design[columns], fit, terms[name], profile=profile_ci,
                                   conf_level=conf_level, notes=notes)
        table.insert(0, "variable", name)
        table["p_variable"] = table["p_value"] if len(terms[name]) == 1 else lrt_p
        table["p_lrt"] = lrt_p
        univariate.append(_note_last(table))
    univariate_table = pd.concat(univariate, ignore_index=True)
    by_variable = univariate_table.groupby("variable", sort=False)["p_variable"].first()
    selected = [name for name in predictors if by_variable[name] < p_threshold]
    multivariate, model = pd.DataFrame(), None
    if selected:
        columns = ["(Intercept)", *[t for name in selected for t in terms[name]]]
        model, notes = _fit_with_notes(y, design[columns], {n: terms[n] for n in selected},
                                       references, what=f"multivariate model of {selected}")
        multivariate = _coefficient_table(y, design[columns], model, columns, profile=profile_ci,
                                          conf_level=conf_level, notes=notes)
    return LogisticAnalysis(univariate_table, multivariate, selected, references, model)
