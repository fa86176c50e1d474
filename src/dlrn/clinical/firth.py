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

An aliased column (a combination of the columns before it, decided as R's ``glm``
decides it, :func:`dlrn.clinical.glm.aliased_columns`) makes X'WX singular for
every β, so it is set aside first and reported with a coefficient of NaN, as for
the standard fit; logistf itself would stop.

Checked against logistf's published ``sex2`` and ``endometrial`` examples
(tests/data/firth).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit

from dlrn.clinical.glm import LogisticFit, aliased_columns
from dlrn.errors import DlrnError

__all__ = ["firth_interval", "firth_lrt_p", "fit_firth"]

MAX_STEP = 5.0
MAX_HALVINGS = 25
TOLERANCE = 1e-10
GRADIENT_TOLERANCE = 1e-9
#: A fit whose modified score stays above this is refused: logistf's own gconv. Where a
#: coefficient is held far out (a profile's ends), weights near 0 leave l* flat to
#: rounding and no method gets the score much below 1e-6; l* is then exact to ~1e-10.
GRADIENT_ACCEPTED = 1e-5
NEWTON_ITERATIONS = 200
LOGISTF_STEPS = 25  # logistf's maxit; then exact Newton steps


class SingularInformation(DlrnError):
    """X'WX is singular at some β: the kept columns are collinear on the fitted weights."""


class NoPenalisedMaximum(DlrnError):
    """The iterations did not reach a point where the modified score vanishes."""


def _penalised(y: np.ndarray, X: np.ndarray, beta: np.ndarray
               ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """l*(β), the modified score, the Fisher information X'WX and the fitted risks."""
    linear = X @ beta
    risk = expit(linear)
    weights = risk * (1 - risk)
    fisher = X.T @ (X * weights[:, None])
    sign, log_det = np.linalg.slogdet(fisher)
    if sign <= 0:
        raise SingularInformation("singular information matrix")
    loglik = float(np.sum(y * linear - np.logaddexp(0, linear)) + 0.5 * log_det)
    root_w_x = X * np.sqrt(weights)[:, None]
    hat = np.einsum("ij,ij->i", root_w_x @ np.linalg.inv(fisher), root_w_x)
    score = X.T @ (y - risk + hat * (0.5 - risk))
    return loglik, score, fisher, risk


def _hessian(X: np.ndarray, beta: np.ndarray, fisher: np.ndarray) -> np.ndarray:
    """The exact Hessian of l* = l + ½·log|I(β)|, I = X'WX, w = π(1-π).

    d²l*/dβ² = -I + ½·[X'diag(w''·q)X - (X∘w')'(Q∘Q)(X∘w')], with Q = X·I⁻¹·X',
    q = diag(Q), w' = w(1-2π) and w'' = w(1-6w) the derivatives of w along η.
    """
    risk = expit(X @ beta)
    w = risk * (1 - risk)
    first, second = w * (1 - 2 * risk), w * (1 - 6 * w)
    Q = X @ np.linalg.solve(fisher, X.T)
    curvature = X.T @ (X * (second * np.diag(Q))[:, None])
    spread = X * first[:, None]
    return -fisher + 0.5 * (curvature - spread.T @ (Q * Q) @ spread)


def _newton_step(X: np.ndarray, beta: np.ndarray, score: np.ndarray, fisher: np.ndarray,
                 free: np.ndarray, exact: bool) -> np.ndarray:
    """logistf's step I⁻¹U*; with ``exact``, Newton's on the exact Hessian where l* is
    concave there (quadratic convergence where logistf's step creeps linearly)."""
    delta = np.zeros_like(beta)
    block = np.ix_(free, free)
    if exact:
        negative = -_hessian(X, beta, fisher)[block]
        try:
            np.linalg.cholesky(negative)
        except np.linalg.LinAlgError:
            pass
        else:
            delta[free] = np.linalg.solve(negative, score[free])
            return delta
    delta[free] = np.linalg.solve(fisher[block], score[free])
    return delta


def _fit(y: np.ndarray, X: np.ndarray, free: np.ndarray, beta: np.ndarray
         ) -> tuple[np.ndarray, float, int]:
    """Maximise l* over the free coefficients (the others held).

    logistf's Newton steps (Fisher information, steps of at most 5, step-halving on
    l*) first; after ``LOGISTF_STEPS`` of them, Newton steps on the exact Hessian,
    because logistf's step converges only linearly (a restricted fit of a profile
    can creep for hundreds of steps). Where they stall, quasi-Newton steps on l*
    and its gradient U* finish the job.
    """
    loglik, score, fisher, _ = _penalised(y, X, beta)
    for iteration in range(1, NEWTON_ITERATIONS + 1):
        delta = _newton_step(X, beta, score, fisher, free, iteration > LOGISTF_STEPS)
        largest = np.max(np.abs(delta), initial=0.0)
        if largest > MAX_STEP:
            delta *= MAX_STEP / largest
        for halving in range(MAX_HALVINGS + 1):
            trial = beta + delta * 0.5 ** halving
            new_loglik, new_score, new_fisher, _ = _penalised(y, X, trial)
            if new_loglik >= loglik - 1e-12 * max(1.0, abs(loglik)):
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
    if np.max(np.abs(score[free]), initial=0.0) > GRADIENT_ACCEPTED:
        raise NoPenalisedMaximum("no maximum of the penalised likelihood was reached")
    return beta, loglik, NEWTON_ITERATIONS + int(result.nit)


def fit_firth(y: Sequence[float], design: pd.DataFrame, *,
              fixed: Mapping[str, float] | None = None,
              start: pd.Series | None = None, what: str = "Firth model") -> LogisticFit:
    """Penalised fit of ``design`` (with its constant column); ``fixed`` terms held at values.

    Aliased columns are set aside (NaN coefficient, listed in ``aliased``). The
    penalty is always that of the full (non-aliased) design, as in logistf's
    restricted fits. An information matrix that is singular even so is an error
    naming ``what`` and the columns.
    """
    X_all = design.to_numpy(dtype=float)
    aliased = [design.columns[i] for i in aliased_columns(X_all)]
    columns = [c for c in design.columns if c not in aliased]
    X = design[columns].to_numpy(dtype=float)
    labels = np.asarray(y, dtype=float)
    beta = (np.zeros(X.shape[1]) if start is None
            else start.reindex(columns).fillna(0.0).to_numpy(dtype=float, copy=True))
    fixed = {name: value for name, value in (fixed or {}).items() if name in columns}
    for name, value in fixed.items():
        beta[columns.index(name)] = value
    free = np.flatnonzero([c not in fixed for c in columns])
    try:
        beta, loglik, iterations = _fit(labels, X, free, beta)
        _, _, fisher, _ = _penalised(labels, X, beta)
    except SingularInformation as error:
        raise DlrnError(f"{what}: Firth regression met a singular information matrix on the "
                        f"terms {columns}; they are collinear on the fitted weights") from error
    except NoPenalisedMaximum as error:
        held = f" with {sorted(fixed)} held fixed" if fixed else ""
        raise DlrnError(f"{what}: Firth regression did not converge on the terms "
                        f"{columns}{held}: {error}") from error
    se = np.sqrt(np.diag(np.linalg.inv(fisher)))
    risk = np.clip(expit(X @ beta), 1e-300, 1 - 1e-16)
    deviance = float(-2 * np.sum(labels * np.log(risk) + (1 - labels) * np.log1p(-risk)))
    params = pd.Series(beta, index=columns).reindex(design.columns)
    bse = pd.Series(se, index=columns).reindex(design.columns)
    return LogisticFit(params, bse, deviance, np.nan, aliased, iterations, True, "Firth",
                       loglik, len(columns), labels.size)


def firth_lrt_p(y: Sequence[float], design: pd.DataFrame, fit: LogisticFit,
                terms: Sequence[str]) -> float:
    """Penalised likelihood-ratio p of ``terms`` together (all fixed at 0); df = the number
    of those terms that are not aliased (NaN when all are)."""
    tested = [t for t in terms if t not in fit.aliased]
    if not tested:
        return np.nan
    restricted = fit_firth(y, design, fixed=dict.fromkeys(tested, 0.0), start=fit.params)
    statistic = max(2 * (fit.loglik - restricted.loglik), 0.0)
    return float(stats.chi2.sf(statistic, len(tested)))


def firth_interval(y: Sequence[float], design: pd.DataFrame, fit: LogisticFit, term: str,
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
