"""Inference when a patient has several images: the patient, not the image, is the unit.

- AUC CI, default: **cluster bootstrap** over patients (Field & Welsh 2007):
  patients are resampled with replacement, within strata of patients with
  positive images only, negative only, or both (so every resample has both
  classes; with one image per patient this is pROC's stratified bootstrap), and
  each resample's AUC counts every image of every drawn patient. Percentile CI.
- AUC variance and paired comparisons: **Obuchowski (1997)**, the clustered
  generalisation of DeLong's structural components (as ``doAUCcluster`` of the
  FDA's iMRMC, from the Cleveland Clinic's ``funcs_clusteredROC.R``). With one
  image per patient it equals DeLong's variance and covariance.
- Proportions (sensitivity, PPV, ...): ratio estimator p = sum(a_i) / sum(m_i)
  over patients, with a **design-effect adjusted** Wilson (or Clopper-Pearson,
  i.e. Korn & Graubard 1998) interval: deff = sum((a_i - p m_i)^2) /
  (sum(m_i) p (1 - p)), truncated below at 1, and the interval of p computed with
  the effective sample size sum(m_i) / deff. With one image per patient deff = 1
  and the interval is the plain one. When p is 0 or 1 the design effect has no
  estimate and the effective size is the number of patients (as if all images of
  a patient agreed), the conservative choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from dlrn.errors import DlrnError
from dlrn.evaluation._checks import finite_scores, labels_and_scores
from dlrn.evaluation.roc import AucResult, _placements, pairwise_from_covariance
from dlrn.evaluation.threshold import CI_METHODS, PROPORTIONS, cutoff_metrics

__all__ = [
    "CLUSTERED_AUC_METHODS",
    "TooFewPatients",
    "cluster_bootstrap_aucs",
    "clustered_auc_ci",
    "clustered_cutoff_metrics",
    "clustered_pairwise",
    "clustered_proportion_ci",
    "obuchowski_covariance",
]

CLUSTERED_AUC_METHODS = ("cluster-bootstrap", "obuchowski")


class TooFewPatients(DlrnError):
    """A set has fewer than 2 patients with positive (or negative) images: no clustered CI."""


_SAME_AS = {None: "cluster-bootstrap", "bootstrap": "cluster-bootstrap",
            "cluster-bootstrap": "cluster-bootstrap", "delong": "obuchowski",
            "obuchowski": "obuchowski"}


def clustered_auc_method(auc_method: str | None) -> str:
    """Clustered counterpart of an AUC CI method (delong: obuchowski; bootstrap: cluster)."""
    if auc_method not in _SAME_AS:
        raise DlrnError(f"AUC CI method {auc_method!r} is unknown with patient ids; use one of "
                        f"{', '.join(CLUSTERED_AUC_METHODS)}")
    return _SAME_AS[auc_method]


def describe_auc_method(method: str, n_bootstrap: int, seed: int) -> str:
    if method == "obuchowski":
        return "obuchowski (clustered DeLong)"
    return f"cluster bootstrap over patients ({n_bootstrap} resamples, seed {seed})"


def describe_proportion_ci(ci_method: str) -> str:
    return f"{ci_method}, design-effect adjusted for patients"


def _matrix(y: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """Checked labels (n,) and scores as (k, n)."""
    matrix = np.asarray(scores, dtype=float)
    matrix = matrix[:, np.newaxis] if matrix.ndim == 1 else matrix
    labels, _ = labels_and_scores(y, matrix[:, 0], what="score column 0")
    for k in range(1, matrix.shape[1]):
        finite_scores(matrix[:, k], what=f"score column {k}")
    return labels, matrix.T


def _codes(groups: object, n: int) -> np.ndarray:
    codes, _ = pd.factorize(np.asarray(groups, dtype=object).ravel())
    if codes.size != n:
        raise DlrnError(f"{codes.size} patient ids for {n} cases")
    if (codes < 0).any():
        raise DlrnError("patient ids are missing for some cases")
    return codes


def obuchowski_covariance(y: object, scores: object, groups: object) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """AUCs (k,) and their clustered covariance matrix (k, k) (Obuchowski 1997, eq. for S10,
    S01, S11); ``scores`` (n,) or (n, k), ``groups`` the patient id of each of the n rows."""
    labels, matrix = _matrix(y, scores)
    codes = _codes(groups, labels.size)
    n_clusters = codes.max() + 1
    auc, v10, v01 = _placements(labels, matrix)
    pos_codes, neg_codes = codes[labels == 1], codes[labels == 0]
    m_i = np.bincount(pos_codes, minlength=n_clusters)
    n_i = np.bincount(neg_codes, minlength=n_clusters)
    big_m, big_n = m_i.sum(), n_i.sum()
    x_sums = np.stack([np.bincount(pos_codes, row, n_clusters) for row in v10])
    y_sums = np.stack([np.bincount(neg_codes, row, n_clusters) for row in v01])
    x_dev = x_sums - m_i * auc[:, np.newaxis]
    y_dev = y_sums - n_i * auc[:, np.newaxis]
    i10, i01 = np.count_nonzero(m_i), np.count_nonzero(n_i)
    if min(i10, i01) < 2:
        raise TooFewPatients(f"{i10} patient(s) with positive and {i01} with negative images; "
                             "a patient-level CI needs at least 2 of each")
    s10 = i10 / ((i10 - 1) * big_m) * x_dev @ x_dev.T
    s01 = i01 / ((i01 - 1) * big_n) * y_dev @ y_dev.T
    s11 = n_clusters / (n_clusters - 1) * x_dev @ y_dev.T
    covariance = s10 / big_m + s01 / big_n + (s11 + s11.T) / (big_m * big_n)
    return auc, np.atleast_2d(covariance)


def _resample_weights(labels: np.ndarray, codes: np.ndarray, size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(size, n) image weights: how often each image's patient was drawn, per resample."""
    n_clusters = codes.max() + 1
    has_pos = np.bincount(codes, labels == 1, n_clusters) > 0
    has_neg = np.bincount(codes, labels == 0, n_clusters) > 0
    stratum = has_pos * 2 + has_neg
    counts = np.zeros((size, n_clusters))
    for kind in np.unique(stratum):
        members = np.flatnonzero(stratum == kind)
        drawn = rng.integers(0, members.size, (size, members.size))
        drawn += members.size * np.arange(size)[:, np.newaxis]  # one bincount for all rows
        counts[:, members] = np.bincount(drawn.ravel(), minlength=size * members.size).reshape(
            size, members.size)
    return counts[:, codes]


def _weighted_aucs(labels: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC (ties 1/2) of one score row under each row of image weights (size, n)."""
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order]
    positive = labels[order] == 1
    pos_w = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)
    neg_w = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    below = np.cumsum(neg_w, axis=1) - neg_w
    wins = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
    return wins / (pos_w.sum(axis=1) * neg_w.sum(axis=1))


def cluster_bootstrap_aucs(y: object, scores: object, groups: object, *,
                           n_bootstrap: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_bootstrap, k) AUCs of k score columns over patient resamples (the same for every
    model, so differences are paired)."""
    if n_bootstrap < 100:
        raise DlrnError(f"n_bootstrap={n_bootstrap}: use at least 100 resamples for a CI")
    labels, matrix = _matrix(y, scores)
    codes = _codes(groups, labels.size)
    rng = np.random.default_rng(seed)
    aucs = np.empty((n_bootstrap, matrix.shape[0]))
    chunk = max(1, 2_000_000 // labels.size)
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        weights = _resample_weights(labels, codes, size, rng)
        for k, score in enumerate(matrix):
            aucs[start:start + size, k] = _weighted_aucs(labels, score, weights)
    return aucs


def clustered_auc_ci(y: object, score: object, groups: object, *,
                     method: str = "cluster-bootstrap", conf_level: float = 0.95,
                     n_bootstrap: int = 2000, seed: int = 0) -> AucResult:
    """AUC with a patient-level CI: cluster bootstrap (percentile) or Obuchowski Wald (clipped)."""
    method = clustered_auc_method(method)
    auc, covariance = obuchowski_covariance(y, score, groups)
    estimate = float(auc[0])
    if method == "obuchowski":
        variance = float(max(covariance[0, 0], 0.0))
        half = stats.norm.ppf(0.5 + conf_level / 2) * np.sqrt(variance)
        return AucResult(estimate, variance, float(np.sqrt(variance)), max(0.0, estimate - half),
                         min(1.0, estimate + half), "obuchowski", conf_level)
    resampled = cluster_bootstrap_aucs(y, score, groups, n_bootstrap=n_bootstrap, seed=seed)[:, 0]
    alpha = (1 - conf_level) / 2
    low, high = np.quantile(resampled, [alpha, 1 - alpha])
    variance = float(np.var(resampled, ddof=1))
    return AucResult(estimate, variance, float(np.sqrt(variance)), float(low), float(high),
                     "cluster-bootstrap", conf_level, n_bootstrap)


def clustered_pairwise(y: object, scores: pd.DataFrame, groups: object, *,
                       method: str = "obuchowski", n_bootstrap: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """Paired z-tests of every pair of score columns with a patient-level covariance.

    ``"obuchowski"`` (default): Obuchowski's covariance (= DeLong's test with one
    image per patient); ``"cluster-bootstrap"``: the covariance of the AUCs over
    paired patient resamples (pROC's bootstrap test, patients resampled). Columns
    as :func:`~dlrn.evaluation.roc.delong_pairwise`, Holm-adjusted p included.
    """
    names = list(scores.columns)
    if method == "obuchowski":
        auc, covariance = obuchowski_covariance(y, scores.to_numpy(dtype=float), groups)
    elif method == "cluster-bootstrap":
        auc, _ = obuchowski_covariance(y, scores.to_numpy(dtype=float), groups)
        resampled = cluster_bootstrap_aucs(y, scores.to_numpy(dtype=float), groups,
                                           n_bootstrap=n_bootstrap, seed=seed)
        covariance = np.atleast_2d(np.cov(resampled, rowvar=False))
    else:
        raise DlrnError(f"paired comparison method {method!r}: use one of "
                        f"{', '.join(CLUSTERED_AUC_METHODS)}")
    return pairwise_from_covariance(names, auc, covariance)


def clustered_proportion_ci(successes: np.ndarray, eligible: np.ndarray, groups: object, *,
                            method: str = "wilson",
                            conf_level: float = 0.95) -> tuple[float, float]:
    """Design-effect adjusted CI of sum(successes) / sum(eligible) over clustered images."""
    from statsmodels.stats.proportion import proportion_confint

    if method not in CI_METHODS:
        raise DlrnError(f"ci_method={method!r}: use one of {', '.join(CI_METHODS)}")
    codes = _codes(groups, np.asarray(eligible).size)
    eligible = np.asarray(eligible, dtype=bool)
    m_i = np.bincount(codes, eligible.astype(float))
    a_i = np.bincount(codes, (np.asarray(successes, dtype=bool) & eligible).astype(float))
    total, successes = m_i.sum(), a_i.sum()
    if total == 0:
        return float("nan"), float("nan")
    p = successes / total
    if 0 < p < 1:
        design_effect = max(1.0, float(((a_i - p * m_i) ** 2).sum() / (total * p * (1 - p))))
    else:
        design_effect = total / np.count_nonzero(m_i)
    low, high = proportion_confint(successes / design_effect, total / design_effect,
                                   alpha=1 - conf_level, method=CI_METHODS[method])
    return float(low), float(high)


def clustered_cutoff_metrics(y: object, score: object, threshold: float, groups: object, *,
                             ci_method: str = "wilson",
                             conf_level: float = 0.95) -> dict[str, float]:
    """:func:`~dlrn.evaluation.threshold.cutoff_metrics` with design-effect adjusted CIs."""
    result = cutoff_metrics(y, score, threshold, ci_method=ci_method, conf_level=conf_level)
    labels = np.asarray(y).astype(int).ravel()
    called = finite_scores(score) >= threshold
    cells = {"tp": called & (labels == 1), "fp": called & (labels == 0),
             "tn": ~called & (labels == 0), "fn": ~called & (labels == 1)}
    for name, (numerator, denominator) in PROPORTIONS.items():
        successes = np.logical_or.reduce([cells[c] for c in numerator])
        eligible = np.logical_or.reduce([cells[c] for c in denominator])
        result[f"{name}_ci_low"], result[f"{name}_ci_high"] = clustered_proportion_ci(
            successes, eligible, groups, method=ci_method, conf_level=conf_level)
    return result
