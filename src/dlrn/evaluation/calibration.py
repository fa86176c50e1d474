"""Calibration of predicted probabilities: bins, Hosmer-Lemeshow, intercept/slope, Brier.

Grouping rules for bins and the Hosmer-Lemeshow test (g groups, default 10):

- ``"quantile_cut"`` (default, = ResourceSelection::hoslem.test, pandas.qcut):
  breaks are R type-7 quantiles of p; bins (a, b] with the first closed;
  duplicated breaks are dropped (fewer groups, a warning).
- ``"quantile_cut_left_closed"``: the same breaks with [a, b) bins, last closed
  (the binning of sklearn ``calibration_curve(strategy="quantile")``).
- ``"equal_size_rank"``: group = ceil(rank * g / n), ties broken by order.

HL = sum over groups of (O1-E1)^2/E1 + (O0-E0)^2/E0, df = g - 2 with g the
groups asked for, as ResourceSelection::hoslem.test (``PVAL = 1 - pchisq(chisq,
g - 2)``) even when tied predictions form fewer groups.
Calibration slope and intercept come from glm(y ~ logit(p)); calibration in
the large is the intercept of glm(y ~ offset(logit(p))). The smoothed curve is
rms ``val.prob``'s: ``lowess(p, y, iter=0)`` with R's defaults (f = 2/3,
delta = 1% of the range of p).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from dlrn.errors import DlrnError
from dlrn.evaluation._checks import binary_labels, probabilities
from dlrn.notes import Note

__all__ = [
    "GROUPINGS",
    "HosmerLemeshowResult",
    "brier_score",
    "calibration_bins",
    "calibration_intercept_slope",
    "calibration_lowess",
    "group_predictions",
    "hosmer_lemeshow",
]

GROUPINGS = ("quantile_cut", "quantile_cut_left_closed", "equal_size_rank")


@dataclass(frozen=True)
class HosmerLemeshowResult:
    """HL statistic, df, p and the per-group table it was computed from."""

    statistic: float
    df: int
    p_value: float
    grouping: str
    table: pd.DataFrame


def quantile_type7(values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's ``quantile(type=7)`` computed exactly as R does (breaks must match R bit for bit)."""
    ordered = np.sort(values)
    index = (ordered.size - 1) * probs
    low = np.floor(index).astype(int)
    high = np.ceil(index).astype(int)
    weight = index - low
    result = ordered[low].copy()
    interpolate = (index > low) & (ordered[high] != result)
    result[interpolate] = (1 - weight[interpolate]) * result[interpolate] + (
        weight[interpolate] * ordered[high][interpolate]
    )
    return result


def _checked(y: object, p: object) -> tuple[np.ndarray, np.ndarray]:
    labels, probs = binary_labels(y), probabilities(p)
    if labels.shape != probs.shape:
        raise DlrnError(f"{probs.size} probabilities for {labels.size} labels")
    return labels, probs


def group_predictions(
    p: np.ndarray, *, groups: int = 10, grouping: str = "quantile_cut"
) -> np.ndarray:
    """Group number (1..groups) of each prediction under one of :data:`GROUPINGS`."""
    if grouping not in GROUPINGS:
        raise DlrnError(f"grouping={grouping!r}: use one of {', '.join(GROUPINGS)}")
    if p.size < groups:
        raise DlrnError(f"{p.size} cases are fewer than the {groups} calibration groups asked for")
    if grouping == "equal_size_rank":
        ranks = np.empty(p.size)
        ranks[np.argsort(p, kind="stable")] = np.arange(1, p.size + 1)
        return np.ceil(ranks * groups / p.size).astype(int)
    breaks = quantile_type7(p, np.linspace(0, 1, groups + 1))
    unique_breaks = np.unique(breaks)
    if unique_breaks.size < breaks.size:
        warnings.warn(Note(
            "tied predictions give fewer distinct Hosmer-Lemeshow quantile groups than asked; "
            "df stays groups - 2 (ResourceSelection's convention)",
            message=f"tied predictions give only {unique_breaks.size - 1} distinct quantile "
                    f"groups instead of {groups}; df stays {groups} - 2 (ResourceSelection's "
                    "convention)"), stacklevel=3)
    if grouping == "quantile_cut":
        return np.maximum(np.searchsorted(unique_breaks, p, side="left"), 1)
    return np.minimum(np.searchsorted(unique_breaks, p, side="right"), unique_breaks.size - 1)


def _group_table(labels: np.ndarray, probs: np.ndarray, group: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"group": group, "y": labels, "p": probs})
    table = (
        frame.groupby("group")
        .agg(
            n=("y", "size"),
            p_min=("p", "min"),
            p_max=("p", "max"),
            observed_events=("y", "sum"),
            expected_events=("p", "sum"),
            mean_predicted=("p", "mean"),
            observed_rate=("y", "mean"),
        )
        .reset_index()
    )
    table["observed_nonevents"] = table["n"] - table["observed_events"]
    table["expected_nonevents"] = table["n"] - table["expected_events"]
    return table


def calibration_bins(
    y: object, p: object, *, groups: int = 10, grouping: str = "quantile_cut"
) -> pd.DataFrame:
    """Observed event rate and mean predicted probability per non-empty group."""
    labels, probs = _checked(y, p)
    table = _group_table(labels, probs, group_predictions(probs, groups=groups, grouping=grouping))
    return table[
        [
            "group",
            "n",
            "p_min",
            "p_max",
            "mean_predicted",
            "observed_rate",
            "observed_events",
            "expected_events",
        ]
    ]


def calibration_lowess(y: object, p: object, *, frac: float = 2 / 3) -> pd.DataFrame:
    """Smoothed observed against predicted risk, as rms ``val.prob``: ``lowess(p, y, iter=0)``.

    One row per case in increasing ``predicted`` order; ``observed`` is the lowess
    fit (no robustness iterations, so it is a local tricube-weighted linear fit).
    """
    from statsmodels.nonparametric.smoothers_lowess import lowess

    labels, probs = _checked(y, p)
    curve = lowess(labels.astype(float), probs, frac=frac, it=0, delta=0.01 * np.ptp(probs),
                   return_sorted=True)
    return pd.DataFrame({"predicted": curve[:, 0], "observed": curve[:, 1]})


def hosmer_lemeshow(
    y: object, p: object, *, groups: int = 10, grouping: str = "quantile_cut"
) -> HosmerLemeshowResult:
    """Hosmer-Lemeshow goodness-of-fit test (default grouping = ResourceSelection::hoslem.test).

    df = ``groups`` - 2 (the groups asked for, as ResourceSelection), not the number
    of groups formed; ``table`` lists the groups formed. The test assumes independent
    cases (see :mod:`dlrn.evaluation.clustered` for several images per patient).
    """
    labels, probs = _checked(y, p)
    table = _group_table(labels, probs, group_predictions(probs, groups=groups, grouping=grouping))
    if len(table) < 3:
        raise DlrnError(
            f"Hosmer-Lemeshow needs at least 3 groups; the predictions form only {len(table)} "
            "(too few distinct values)"
        )
    expected = table[["expected_events", "expected_nonevents"]].to_numpy()
    if (expected <= 0).any():
        raise DlrnError(
            "Hosmer-Lemeshow undefined: a group has zero expected events or non-events "
            "(predictions of exactly 0 or 1)"
        )
    observed = table[["observed_events", "observed_nonevents"]].to_numpy()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    df = groups - 2
    return HosmerLemeshowResult(statistic, df, float(stats.chi2.sf(statistic, df)), grouping, table)


def brier_score(y: object, p: object) -> float:
    """Mean squared difference between predicted probability and outcome."""
    labels, probs = _checked(y, p)
    return float(np.mean((probs - labels) ** 2))


def calibration_intercept_slope(y: object, p: object) -> dict[str, float]:
    """Logistic recalibration: slope and joint intercept of glm(y ~ logit(p)), and CITL.

    Probabilities of exactly 0 or 1 have no logit, and outcomes of one class (or
    perfectly separated by p) have no finite estimate: both are errors.
    """
    from dlrn.clinical import fit_logistic

    labels, probs = _checked(y, p)
    if ((probs <= 0) | (probs >= 1)).any():
        raise DlrnError("calibration slope needs probabilities strictly between 0 and 1")
    if np.ptp(probs) == 0:
        raise DlrnError("all predicted probabilities are equal: the calibration slope is undefined")
    if labels.min() == labels.max():
        raise DlrnError(
            f"only {'positives (1)' if labels[0] else 'negatives (0)'} among {labels.size} "
            "cases: the calibration intercept and slope have no finite estimate"
        )
    logit = np.log(probs / (1 - probs))
    constant = np.ones((logit.size, 1))
    joint = fit_logistic(labels, np.column_stack([constant, logit]), what="calibration slope")
    in_the_large = fit_logistic(labels, constant, what="calibration in the large", offset=logit)
    return {
        "calibration_intercept": float(joint.params[0]),
        "calibration_slope": float(joint.params[1]),
        "calibration_in_the_large": float(in_the_large.params[0]),
    }
