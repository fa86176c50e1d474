"""Baseline table ("Table 2"): two groups (training vs test) compared variable by variable.

Rules (those of the reference study, reproduced in R in ../shared/stats-refs):
continuous variables are summarised as mean ± SD when Shapiro-Wilk p > 0.05 in
both groups (compared by Student's t-test, equal variances), otherwise as
median (Q1, Q3) (Mann-Whitney U, normal approximation with tie correction and
continuity correction); categorical variables as n (%) per level, compared by
chi-square with Yates' correction (2x2) or without (larger tables), or by
Fisher's exact test when any expected count is below 5 (exact for 2x2; for larger
tables scipy's Monte Carlo p-value over 9,999 random tables with the same margins,
seeded so that the same counts always give the same p; its standard error is at most
0.005, where R's fisher.test enumerates the tables exactly). SDs use n-1; quartiles
are R's type 7. Missing values are counted per group, shown as a
"missing, n (%)" row, and left out of each variable's summaries and test
(percentages are of the cases with a value). A multilabel column (tokens joined
by a separator) gets one yes/no row per token, each with its own test; an
ordinal column is shown level by level in its declared order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from dlrn.clinical.reading import tokens_of
from dlrn.clinical.spec import as_text, column_specs
from dlrn.errors import DlrnError

__all__ = ["baseline_table"]

EXPECTED_COUNT_FOR_CHI_SQUARE = 5
#: Seed of the Monte Carlo p-value of Fisher's test on tables larger than 2x2. scipy
#: draws from fresh operating-system entropy without one: Table 2 then changed on every
#: run of the same study.
FISHER_MONTE_CARLO_SEED = 0
MISSING_ROW = "missing, n (%)"

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


def _contingency_test(counts: np.ndarray) -> dict[str, object]:
    """Chi-square (Yates for 2x2) or, with an expected count below 5, Fisher's exact test."""
    expected_counts = stats.contingency.expected_freq(counts)
    note = ""
    if expected_counts.min() < EXPECTED_COUNT_FOR_CHI_SQUARE:
        method, statistic = "Fisher exact", np.nan
        p_value = _fisher_p_value(counts)
        note = (f"an expected count is below {EXPECTED_COUNT_FOR_CHI_SQUARE}: "
                "Fisher's exact test (no test statistic)")
        if counts.shape != (2, 2):
            note += "; p by Monte Carlo (9,999 seeded random tables with the same margins)"
    else:
        method = "chi-square (Yates)" if counts.shape == (2, 2) else "chi-square"
        statistic, p_value, _, _ = stats.chi2_contingency(counts, correction=True)
    return {"test": method, "statistic": float(statistic), "p_value": float(p_value),
            "min_expected": float(expected_counts.min()), "note": note}


def _fisher_p_value(counts: np.ndarray) -> float:
    """Fisher's exact test: exact on a 2x2 table, a seeded Monte Carlo p-value otherwise."""
    if counts.shape == (2, 2):
        return float(stats.fisher_exact(counts).pvalue)
    method = stats.MonteCarloMethod(rng=np.random.default_rng(FISHER_MONTE_CARLO_SEED))
    return float(stats.fisher_exact(counts, method=method).pvalue)


def _percentages(counts: np.ndarray, totals: np.ndarray) -> list[str]:
    return [f"{counts[i]} ({100 * counts[i] / totals[i]:.1f}%)" for i in range(2)]


def _categorical_rows(name: str, values: pd.Series, groups: pd.Series, levels: list,
                      order: Sequence[str] = ()) -> list[dict[str, object]]:
    """A header row with the test, then n (%) per level (in ``order`` where given)."""
    available = values.notna().to_numpy()
    observed = as_text(values) if order else _without_missing(values)
    table = pd.crosstab(groups[available], observed.dropna()).reindex(levels)
    if order:
        table = table.reindex(columns=[lv for lv in order if lv in table.columns])
    counts = table.to_numpy()
    if counts.shape[1] < 2:
        raise DlrnError(f"variable {name!r} takes a single value ({table.columns[0]!r}); "
                        "nothing to compare")
    rows = [{"variable": name, "level": "", "group_1": "", "group_2": "",
             **_contingency_test(counts)}]
    totals = counts.sum(axis=1)
    for j, level in enumerate(table.columns):
        cells = _percentages(counts[:, j], totals)
        rows.append({"variable": name, "level": str(level), "group_1": cells[0],
                     "group_2": cells[1]})
    return rows


def _token_rows(name: str, values: pd.Series, groups: pd.Series, levels: list,
                separator: str) -> list[dict[str, object]]:
    """A header row, then per token: cases holding it, n (%), and its own 2x2 test."""
    text = as_text(values).dropna()
    tokens = text.map(lambda value: set(tokens_of(value, separator)))
    rows: list[dict[str, object]] = [{"variable": name, "level": "", "group_1": "",
                                      "group_2": "", "test": "", "note": "one row per token"}]
    totals = np.array([(groups[text.index] == g).sum() for g in levels])
    for token in sorted(set().union(*tokens)):
        holds = tokens.map(lambda found, token=token: token in found)
        present = np.array([(holds & (groups[text.index] == g)).sum() for g in levels])
        cells = _percentages(present, totals)
        counts = np.c_[present, totals - present]
        test = (_contingency_test(counts) if (counts.sum(axis=0) > 0).all()
                else {"note": "held by every case or none: not tested"})
        rows.append({"variable": name, "level": token, "group_1": cells[0], "group_2": cells[1],
                     **test})
    return rows


def _missing_row(name: str, values: pd.Series, groups: pd.Series,
                 levels: list) -> list[dict[str, object]]:
    """'missing, n (%)' of each group (of all its cases), where any value is missing."""
    missing = np.array([values[groups == g].isna().sum() for g in levels])
    if not missing.any():
        return []
    cells = _percentages(missing, np.array([(groups == g).sum() for g in levels]))
    return [{"variable": name, "level": MISSING_ROW, "group_1": cells[0], "group_2": cells[1]}]


def baseline_table(cases: pd.DataFrame, group: str, variables: Sequence[str], *,
                   categorical: Sequence[str] = (), columns: Mapping[str, object] | None = None,
                   group_order: Sequence[str] | None = None, normality_alpha: float = 0.05,
                   digits: int = 2, missing_rows: bool = False) -> pd.DataFrame:
    """Baseline characteristics of two groups (e.g. train vs test), one block per variable.

    Types come from ``categorical`` or from ``columns`` (the clinical encoder's
    column specs: categorical, ordinal, multilabel, continuous). Missing values
    are allowed: each variable's first row gives the number missing in each
    group (columns "<group> missing"), and with ``missing_rows`` a
    "missing, n (%)" row follows the rows of each variable with a missing
    value; summaries, percentages and tests use the available values
    only. A variable missing for a whole group is an error naming it. Columns
    ``group_1``/``group_2`` are renamed to "<group> (n=...)" (all cases of the
    group). Continuous rows carry the Shapiro-Wilk p of each group; categorical
    header rows the smallest expected count, which decides between chi-square
    and Fisher; ``note`` says why a value is absent.
    """
    _require_complete(cases, [group])
    _require_columns(cases, variables)
    levels = _two_groups(cases, group, group_order)
    specs = {spec.name: spec for spec in column_specs(columns or {}, missing="impute",
                                                      separator="&")}
    rows: list[dict[str, object]] = []
    for name in variables:
        available = _available(name, cases[name], cases[group], levels)
        missing = {f"missing_{i + 1}": int(cases.loc[cases[group] == g, name].isna().sum())
                   for i, g in enumerate(levels)}
        kind = specs[name].type if name in specs else (
            "categorical" if name in categorical else "continuous")
        if kind == "multilabel":
            block = _token_rows(name, cases[name], cases[group], levels, specs[name].separator)
        elif kind in ("categorical", "ordinal"):
            order = specs[name].order if name in specs else ()
            block = _categorical_rows(name, cases[name], cases[group], levels, order)
        elif not pd.api.types.is_numeric_dtype(cases[name]):
            raise DlrnError(f"variable {name!r} is not numeric; list it in categorical=")
        else:
            first, second = (values.to_numpy(float) for values in available)
            block = [_continuous_row(name, first, second, normality_alpha, digits)]
        block[0].update(missing)
        rows += block
        if missing_rows:
            rows += _missing_row(name, cases[name], cases[group], levels)
    table = pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))
    table[["missing_1", "missing_2"]] = table[["missing_1", "missing_2"]].astype("Int64")
    table["note"] = table["note"].fillna("")
    sizes = cases[group].value_counts()
    names = {}
    for i, g in enumerate(levels):
        names[f"group_{i + 1}"] = f"{g} (n={sizes[g]})"
        names[f"missing_{i + 1}"] = f"{g} missing"
    return table.rename(columns=names)
