"""Firth's penalised logistic regression, as R's ``logistf`` computes it.

The penalised log-likelihood l*(β) = l(β) + ½·log|X'WX| (Jeffreys prior) has a
finite maximum even under separation, where the ordinary estimate runs to
infinity (Firth 1993; Heinze & Schemper 2002). As in logistf:

- the estimate solves the modified score U*(β) = X'(y − π + h·(½ − π)) = 0, h the
  diagonal of the hat matrix W½X(X'WX)⁻¹X'W½, by Newton steps of at most 5 per
  coefficient with step-halving on l*;
- SEs are √diag((X'WX)⁻¹) at the estimate;
- confidence intervals are profile penalised-likelihood intervals: the values b
  of β_j where 2·(l*(β̂) − max l*(β | β_j = b)) equals χ²₁(level);
- p-values are penalised likelihood-ratio tests: β_j (or a variable's terms
  together) fixed at 0 and the others refitted, the penalty always that of the
  full design (logistf's ``col.fit``).

Checked against logistf's published ``sex2`` and ``endometrial`` examples
(tests/data/firth).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit

from dlrn.errors import DlrnError

__all__ = ["FirthFit", "firth_interval", "firth_lrt_p", "fit_firth"]

MAX_STEP = 5.0
MAX_HALVINGS = 25
TOLERANCE = 1e-10
GRADIENT_TOLERANCE = 1e-9
NEWTON_ITERATIONS = 50


@dataclass
class FirthFit:
    """A penalised fit: coefficients, their SEs and the penalised log-likelihood."""

    params: pd.Series
    bse: pd.Series
    loglik: float
    iterations: int


def _penalised(y: np.ndarray, X: np.ndarray, beta: np.ndarray
               ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """l*(β), the modified score, the Fisher information X'WX and the fitted risks."""
    linear = X @ beta
    risk = expit(linear)
    weights = risk * (1 - risk)
    fisher = X.T @ (X * weights[:, None])
    sign, log_det = np.linalg.slogdet(fisher)
    if sign <= 0:
        raise DlrnError("Firth regression: singular information matrix (collinear predictors)")
    loglik = float(np.sum(y * linear - np.logaddexp(0, linear)) + 0.5 * log_det)
    root_w_x = X * np.sqrt(weights)[:, None]
    hat = np.einsum("ij,ij->i", root_w_x @ np.linalg.inv(fisher), root_w_x)
    score = X.T @ (y - risk + hat * (0.5 - risk))
    return loglik, score, fisher, risk


def _fit(y: np.ndarray, X: np.ndarray, free: np.ndarray, beta: np.ndarray
         ) -> tuple[np.ndarray, float, int]:
    """Maximise l* over the free coefficients (the others held).

    logistf's Newton steps (Fisher information, steps of at most 5, step-halving)
    first; where they stall (a term held by one or two cases can make them
    oscillate), quasi-Newton steps on l* and its gradient U* finish the job.
    """
    loglik, score, fisher, _ = _penalised(y, X, beta)
    for iteration in range(1, NEWTON_ITERATIONS + 1):
        delta = np.zeros_like(beta)
        delta[free] = np.linalg.solve(fisher[np.ix_(free, free)], score[free])
        largest = np.max(np.abs(delta), initial=0.0)
        if largest > MAX_STEP:
            delta *= MAX_STEP / largest
        for halving in range(MAX_HALVINGS + 1):
            trial = beta + delta * 0.5 ** halving
            new_loglik, new_score, new_fisher, _ = _penalised(y, X, trial)
            if new_loglik >= loglik - 1e-12:
                break
        beta, loglik, score, fisher = trial, new_loglik, new_score, new_fisher
        if largest < TOLERANCE or np.max(np.abs(score[free]), initial=0.0) < TOLERANCE:
            return beta, loglik, iteration
    return _quasi_newton(y, X, free, beta)


def _quasi_newton(y: np.ndarray, X: np.ndarray, free: np.ndarray, beta: np.ndarray
                  ) -> tuple[np.ndarray, float, int]:
    """BFGS on -l* with gradient -U* from ``beta``, then the Newton iterations' tolerance."""
    def negative(values: np.ndarray) -> tuple[float, np.ndarray]:
        trial = beta.copy()
        trial[free] = values
        loglik, score, _, _ = _penalised(y, X, trial)
        return -loglik, -score[free]

    result = optimize.minimize(negative, beta[free], jac=True, method="BFGS",
                               options={"gtol": GRADIENT_TOLERANCE, "maxiter": 2000})
    beta = beta.copy()
    beta[free] = result.x
    loglik, score, _, _ = _penalised(y, X, beta)
    if np.max(np.abs(score[free]), initial=0.0) > 1e3 * GRADIENT_TOLERANCE:
        raise DlrnError("Firth regression did not converge (the penalised likelihood has no "
                        "maximum the iterations could reach; check for collinear predictors)")
    return beta, loglik, NEWTON_ITERATIONS + int(result.nit)


def fit_firth(y: Sequence[float], design: pd.DataFrame, *,
              fixed: Mapping[str, float] | None = None,
              start: pd.Series | None = None) -> FirthFit:
    """Penalised fit of ``design`` (with its constant column); ``fixed`` terms held at values.

    The penalty is always that of the full design, as in logistf's restricted fits.
    """
    X = design.to_numpy(dtype=float)
    labels = np.asarray(y, dtype=float)
    beta = (np.zeros(X.shape[1]) if start is None
            else start.reindex(design.columns).to_numpy(dtype=float, copy=True))
    fixed = dict(fixed or {})
    for name, value in fixed.items():
        beta[design.columns.get_loc(name)] = value
    free = np.flatnonzero([c not in fixed for c in design.columns])
    beta, loglik, iterations = _fit(labels, X, free, beta)
    _, _, fisher, _ = _penalised(labels, X, beta)
    se = np.sqrt(np.diag(np.linalg.inv(fisher)))
    return FirthFit(pd.Series(beta, index=design.columns), pd.Series(se, index=design.columns),
                    loglik, iterations)


def firth_lrt_p(y: Sequence[float], design: pd.DataFrame, fit: FirthFit,
                terms: Sequence[str]) -> float:
    """Penalised likelihood-ratio p of ``terms`` together (all fixed at 0), df = len(terms)."""
    restricted = fit_firth(y, design, fixed=dict.fromkeys(terms, 0.0), start=fit.params)
    statistic = max(2 * (fit.loglik - restricted.loglik), 0.0)
    return float(stats.chi2.sf(statistic, len(terms)))


def firth_interval(y: Sequence[float], design: pd.DataFrame, fit: FirthFit, term: str,
                   conf_level: float = 0.95) -> tuple[float, float]:
    """Profile penalised-likelihood CI of one coefficient (log-odds scale)."""
    cutoff = stats.chi2.ppf(conf_level, 1)
    beta, se = float(fit.params[term]), float(fit.bse[term])

    def excess(value: float) -> float:
        held = fit_firth(y, design, fixed={term: value}, start=fit.params)
        return 2 * (fit.loglik - held.loglik) - cutoff

    bounds = []
    for sign in (-1, 1):
        step = 2 * se
        for _ in range(60):
            if excess(beta + sign * step) > 0:
                break
            step *= 2
        else:
            bounds.append(sign * np.inf)
            continue
        bounds.append(optimize.brentq(excess, beta, beta + sign * step, xtol=1e-10))
    return bounds[0], bounds[1]
