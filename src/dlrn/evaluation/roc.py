"""ROC analysis with pROC's conventions: AUC, DeLong variance and tests, bootstrap CI, ROC curve.

Conventions (those of ``pROC::roc(levels=c(0, 1), direction="<")``): a case is
called positive when ``score >= threshold``; the direction is fixed (a model
with AUC < 0.5 is reported as such, never flipped); ties count 1/2. DeLong
variances use the fast midrank algorithm of Sun & Xu (2014), O(n log n) and
vectorised over models, with n-1 denominators; Wald CIs are clipped to [0, 1].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from dlrn.errors import DlrnError
from dlrn.evaluation._checks import finite_scores, labels_and_scores
from dlrn.notes import Note

__all__ = [
    "AucResult",
    "DelongTest",
    "auc_ci",
    "delong_covariance",
    "delong_matrix",
    "delong_paired",
    "delong_pairwise",
    "delong_unpaired",
    "holm",
    "pairwise_from_covariance",
    "roc_curve",
]


@dataclass(frozen=True)
class AucResult:
    """An AUC with its variance and CI (``n_bootstrap`` is set for bootstrap CIs)."""

    auc: float
    variance: float
    se: float
    ci_low: float
    ci_high: float
    method: str = "delong"
    conf_level: float = 0.95
    n_bootstrap: int | None = None


@dataclass(frozen=True)
class DelongTest:
    """A DeLong test of two AUCs; ``df`` is None for the paired z-test."""

    auc1: float
    auc2: float
    auc_diff: float
    se_diff: float
    statistic: float
    p_value: float
    df: float | None = None
    method: str = "delong-paired"


def _midranks(scores: np.ndarray) -> np.ndarray:
    """Midranks along the last axis (ties share the average rank)."""
    return stats.rankdata(scores, method="average", axis=-1)


def _placements(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong placement values of k score rows, by midranks (Sun & Xu 2014).

    ``scores`` is (k, n). Returns auc (k,), v10 (k, m) for the m positives and
    v01 (k, n0) for the n0 negatives.
    """
    positive = labels == 1
    pos, neg = scores[:, positive], scores[:, ~positive]
    m, n0 = pos.shape[1], neg.shape[1]
    rank_all = _midranks(np.concatenate([pos, neg], axis=1))
    rank_pos, rank_neg = _midranks(pos), _midranks(neg)
    v10 = (rank_all[:, :m] - rank_pos) / n0
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    auc = v10.mean(axis=1)
    return auc, v10, v01


def delong_covariance(y: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance matrix (k, k) for k score columns at once.

    ``scores`` is an (n,) array or an (n, k) array/DataFrame of k models on the same cases.
    """
    matrix = np.asarray(scores, dtype=float)
    matrix = matrix[:, np.newaxis] if matrix.ndim == 1 else matrix
    labels, _ = labels_and_scores(y, matrix[:, 0], what="score column 0")
    for k in range(1, matrix.shape[1]):
        finite_scores(matrix[:, k], what=f"score column {k}")
    matrix = matrix.T
    auc, v10, v01 = _placements(labels, matrix)
    covariance = np.atleast_2d(np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1])
    return auc, covariance


def _wald_interval(auc: float, variance: float, conf_level: float) -> tuple[float, float]:
    half_width = stats.norm.ppf(0.5 + conf_level / 2) * np.sqrt(variance)
    return max(0.0, auc - half_width), min(1.0, auc + half_width)


def _bootstrap_aucs(
    labels: np.ndarray, scores: np.ndarray, n_bootstrap: int, seed: int
) -> np.ndarray:
    """AUCs of stratified bootstrap resamples (cases and controls resampled separately, as pROC)."""
    rng = np.random.default_rng(seed)
    pos, neg = scores[labels == 1], scores[labels == 0]
    aucs = np.empty(n_bootstrap)
    chunk = max(1, 2_000_000 // labels.size)
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        resampled = np.concatenate(
            [rng.choice(pos, (size, pos.size)), rng.choice(neg, (size, neg.size))], axis=1
        )
        ranks = _midranks(resampled)
        aucs[start : start + size] = (
            ranks[:, : pos.size].sum(axis=1) - pos.size * (pos.size + 1) / 2
        ) / (pos.size * neg.size)
    return aucs


def auc_ci(
    y: object,
    score: object,
    *,
    method: str = "delong",
    conf_level: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> AucResult:
    """AUC with a DeLong (default, = pROC ``ci.auc``) or stratified percentile bootstrap CI.

    Constant scores give AUC 0.5 with zero variance and a warning.
    """
    labels, scores = labels_and_scores(y, score)
    if np.ptp(scores) == 0:
        warnings.warn(Note("all scores are equal: AUC is 0.5 and its CI has zero width",
                           caution=True), stacklevel=2)
    auc, v10, v01 = _placements(labels, scores[np.newaxis, :])
    auc_value = float(auc[0])
    if method == "delong":
        variance = float(np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size)
        low, high = _wald_interval(auc_value, variance, conf_level)
        return AucResult(
            auc_value, variance, float(np.sqrt(variance)), low, high, "delong", conf_level
        )
    if method == "bootstrap":
        if n_bootstrap < 100:
            raise DlrnError(f"n_bootstrap={n_bootstrap}: use at least 100 resamples for a CI")
        aucs = _bootstrap_aucs(labels, scores, n_bootstrap, seed)
        alpha = (1 - conf_level) / 2
        low, high = np.quantile(aucs, [alpha, 1 - alpha])
        variance = float(np.var(aucs, ddof=1))
        return AucResult(
            auc_value,
            variance,
            float(np.sqrt(variance)),
            float(low),
            float(high),
            "bootstrap",
            conf_level,
            n_bootstrap,
        )
    raise DlrnError(f"AUC CI method {method!r} is unknown; use 'delong' or 'bootstrap'")


def _paired_from(auc: np.ndarray, cov: np.ndarray, i: int, j: int) -> DelongTest:
    diff = float(auc[i] - auc[j])
    variance = float(cov[i, i] + cov[j, j] - 2 * cov[i, j])
    se = float(np.sqrt(max(variance, 0.0)))
    if se == 0:
        return _degenerate_test(float(auc[i]), float(auc[j]), "delong-paired")
    z = diff / se
    return DelongTest(float(auc[i]), float(auc[j]), diff, se, z, float(2 * stats.norm.sf(abs(z))))


def _degenerate_test(auc1: float, auc2: float, method: str) -> DelongTest:
    """Zero variance of the difference: identical (or perfectly separating) curves."""
    if auc1 == auc2:
        warnings.warn(Note(
            "the two ROC curves give a zero-variance AUC difference (identical or perfect "
            "models): reported as statistic 0, p = 1"), stacklevel=3)
        return DelongTest(auc1, auc2, 0.0, 0.0, 0.0, 1.0, method=method)
    raise DlrnError(
        f"DeLong test undefined: AUCs differ ({auc1:.4f} vs {auc2:.4f}) with zero variance"
    )


def delong_paired(y: object, score1: object, score2: object) -> DelongTest:
    """Paired DeLong z-test of two models on the same cases (pROC ``roc.test(paired=TRUE)``)."""
    auc, cov = delong_covariance(y, np.column_stack([finite_scores(score1), finite_scores(score2)]))
    return _paired_from(auc, cov, 0, 1)


def delong_unpaired(y1: object, score1: object, y2: object, score2: object) -> DelongTest:
    """Unpaired DeLong test of two cohorts, as pROC: a t-test with Welch-type df."""
    first, second = auc_ci(y1, score1), auc_ci(y2, score2)
    n1, n2 = np.asarray(y1).size, np.asarray(y2).size
    variance = first.variance + second.variance
    diff = first.auc - second.auc
    if variance == 0:
        return _degenerate_test(first.auc, second.auc, "delong-unpaired")
    statistic = diff / np.sqrt(variance)
    df = variance**2 / (first.variance**2 / (n1 - 1) + second.variance**2 / (n2 - 1))
    p_value = float(2 * stats.t.sf(abs(statistic), df))
    return DelongTest(
        first.auc,
        second.auc,
        diff,
        float(np.sqrt(variance)),
        float(statistic),
        p_value,
        float(df),
        "delong-unpaired",
    )


PAIRWISE_COLUMNS = ("model_1", "model_2", "auc_1", "auc_2", "auc_diff", "se_diff", "z",
                    "p_value", "p_value_holm")


def holm(p_values: object) -> np.ndarray:
    """Holm step-down adjusted p-values (R ``p.adjust(method="holm")``); NaN stays NaN.

    The k-th smallest of m p-values becomes max over j <= k of (m - j + 1) p_(j),
    capped at 1. Written out (five lines) because statsmodels' ``multipletests``
    runs a full garbage collection on every call (0.1 s here, per table).
    """
    values = np.asarray(p_values, dtype=float)
    adjusted = np.full(values.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(values))
    order = tested[np.argsort(values[tested], kind="stable")]
    factors = np.arange(order.size, 0, -1)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(factors * values[order]))
    return adjusted


def pairwise_from_covariance(names: list[str], auc: np.ndarray,
                             covariance: np.ndarray) -> pd.DataFrame:
    """Paired z-tests of every pair from AUCs and their covariance, Holm-adjusted over the pairs."""
    rows = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            test = _paired_from(auc, covariance, i, j)
            rows.append((names[i], names[j], test.auc1, test.auc2, test.auc_diff, test.se_diff,
                         test.statistic, test.p_value))
    table = pd.DataFrame(rows, columns=list(PAIRWISE_COLUMNS[:-1]))
    table["p_value_holm"] = holm(table["p_value"])
    return table


def delong_pairwise(y: object, scores: pd.DataFrame) -> pd.DataFrame:
    """Paired DeLong tests of every pair of score columns, one row per pair.

    ``p_value_holm`` adjusts the p-values for the number of pairs (Holm 1979), the
    family being the pairs of this table.
    """
    names = list(scores.columns)
    if len(names) < 2:
        return pd.DataFrame(columns=list(PAIRWISE_COLUMNS))
    for name in names:
        finite_scores(scores[name], what=f"score column {name!r}")
    auc, cov = delong_covariance(y, scores.to_numpy(dtype=float))
    return pairwise_from_covariance(names, auc, cov)


def delong_matrix(y: object, scores: pd.DataFrame) -> pd.DataFrame:
    """Square matrix of paired DeLong p-values (diagonal 1), rows and columns in score order."""
    names = list(scores.columns)
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for row in delong_pairwise(y, scores).itertuples():
        matrix.loc[row.model_1, row.model_2] = matrix.loc[row.model_2, row.model_1] = row.p_value
    return matrix


def roc_thresholds(score: np.ndarray) -> np.ndarray:
    """pROC thresholds: -inf, midpoints between consecutive distinct scores, +inf."""
    distinct = np.unique(score)
    return np.concatenate([[-np.inf], (distinct[1:] + distinct[:-1]) / 2, [np.inf]])


def roc_curve(y: object, score: object) -> pd.DataFrame:
    """Every pROC threshold (increasing) with sensitivity, specificity and the 2x2 counts."""
    labels, scores = labels_and_scores(y, score)
    thresholds = roc_thresholds(scores)
    pos = np.sort(scores[labels == 1])
    neg = np.sort(scores[labels == 0])
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "sensitivity": tp / pos.size,
            "specificity": (neg.size - fp) / neg.size,
            "tp": tp,
            "fp": fp,
            "tn": neg.size - fp,
            "fn": pos.size - tp,
        }
    )
