"""Binomial GLM fits as R's ``glm`` computes them: aliased terms, separation and their notes.

statsmodels' GLM disagrees with R where clinical descriptor tables need R most:
on a rank-deficient design (``&``-joined tokens that add up to 1 in every row are
aliased with the intercept) it solves with a pseudo-inverse and reports huge,
meaningless coefficients instead of dropping the aliased term, and its
convergence rule differs under separation. :func:`fit_glm` is R's ``glm.fit``
for the binomial family with the logit link, step for step:

- the rank is decided by a pivoted QR with R's limited pivoting (LINPACK
  ``dqrdc2``, tolerance ``min(1e-7, epsilon / 1000)``): a column that is, to
  that tolerance, a combination of the columns before it is *aliased*; its
  coefficient is ``NA`` and the fit goes on with the others;
- iteratively reweighted least squares from ``mustart = (y + 0.5) / 2``, R's
  clamped logit link (|eta| <= 30), stopping when the deviance changes by less
  than ``epsilon = 1e-8`` relative, at most 25 iterations.

Under (quasi-)complete separation the coefficients of the separated terms run
towards infinity while the deviance converges, so likelihood-ratio tests stay
right (R's ``anova(reduced, full, test = "Chisq")``) though Wald statistics do
not. :func:`separated_terms` detects separation exactly, by Konis' linear
program (R's ``detectseparation``), and :func:`separation_notes` says which
terms it affects and why, in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlrn.clinical.reading import MISSING, term
from dlrn.errors import DlrnError

__all__ = ["COMBINED_SEPARATION", "LogisticFit", "alias_combination", "alias_equation",
           "alias_notes", "aliased_columns", "fit_glm", "fit_logistic", "separated_terms",
           "separation_notes"]

#: R glm.control(): epsilon and maxit; glm.fit's QR tolerance min(1e-7, epsilon / 1000).
EPSILON = 1e-8
MAX_ITERATIONS = 25
QR_TOLERANCE = min(1e-7, EPSILON / 1000)
#: R's binomial()$linkinv and mu.eta clamp the linear predictor at +-30 (THRESH, MTHRESH).
_ETA_LIMIT = 30.0
_DOUBLE_EPS = np.finfo(float).eps
SEPARATION_ADVICE = ("evaluation.clinical_regression: auto (the default) or firth fits Firth's "
                     "penalised logistic regression (as R's logistf) where this happens")


@dataclass
class LogisticFit:
    """One binomial fit: coefficients (NaN where aliased), SEs, deviance, rank, convergence.

    ``loglik`` is the log-likelihood (``-deviance / 2`` for 0/1 outcomes) or, for a
    Firth fit, the penalised log-likelihood; ``method`` says which ("ML" or "Firth").
    """

    params: pd.Series
    bse: pd.Series
    deviance: float
    null_deviance: float
    aliased: list[str] = field(default_factory=list)
    iterations: int = 0
    converged: bool = True
    method: str = "ML"
    loglik: float = np.nan
    rank: int = 0
    n: int = 0

    @property
    def df_residual(self) -> int:
        return self.n - self.rank

    @property
    def kept(self) -> list[str]:
        return [name for name in self.params.index if name not in self.aliased]


def aliased_columns(X: np.ndarray, tolerance: float = QR_TOLERANCE) -> list[int]:
    """Positions of the columns R's pivoted QR (``dqrdc2``) declares aliased.

    ``dqrdc2`` takes the columns in order and moves to the end every column whose
    norm, after the Householder steps of the columns kept before it, has fallen
    below ``tolerance`` times its original norm (a zero column included). The
    same rule here by Gram-Schmidt with re-orthogonalisation.
    """
    basis = np.empty((X.shape[0], 0))
    aliased = []
    for position in range(X.shape[1]):
        column = np.asarray(X[:, position], dtype=float)
        original = np.linalg.norm(column) or 1.0
        residual = column.copy()
        for _ in range(2):
            residual -= basis @ (basis.T @ residual)
        norm = np.linalg.norm(residual)
        if norm < tolerance * original:
            aliased.append(position)
        else:
            basis = np.column_stack([basis, residual / norm])
    return aliased


def _link_inverse(eta: np.ndarray) -> np.ndarray:
    """R's binomial()$linkinv (C logit_linkinv): clamped at |eta| = 30."""
    clipped = np.where(eta < -_ETA_LIMIT, _DOUBLE_EPS,
                       np.where(eta > _ETA_LIMIT, 1 / _DOUBLE_EPS,
                                np.exp(np.clip(eta, -_ETA_LIMIT, _ETA_LIMIT))))
    return clipped / (1 + clipped)


def _mu_eta(eta: np.ndarray) -> np.ndarray:
    """R's binomial()$mu.eta (C logit_mu_eta)."""
    inside = np.abs(eta) <= _ETA_LIMIT
    exp_eta = np.exp(np.clip(eta, -_ETA_LIMIT, _ETA_LIMIT))
    return np.where(inside, exp_eta / (1 + exp_eta) ** 2, _DOUBLE_EPS)


def _deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """Binomial deviance of 0/1 outcomes (R's binomial()$dev.resids summed)."""
    with np.errstate(divide="ignore"):
        return float(-2 * np.sum(np.where(y == 1, np.log(mu), np.log1p(-mu))))


def _as_frame(design: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    if isinstance(design, pd.DataFrame):
        return design
    return pd.DataFrame(np.asarray(design, dtype=float).reshape(len(design), -1))


def fit_glm(y: object, design: pd.DataFrame | np.ndarray, *, offset: object = None,
            what: str = "model") -> LogisticFit:
    """R's ``glm(y ~ design - 1, family = binomial)``: aliased columns NA, R's IRLS.

    ``design`` carries its own constant column. Outcomes must be 0/1. Separation is
    not an error here: the deviance converges (see :func:`separated_terms`).
    """
    frame = _as_frame(design)
    X = frame.to_numpy(dtype=float)
    labels = np.asarray(y, dtype=float).reshape(-1)
    if X.shape[0] != labels.size or not np.isin(labels, (0.0, 1.0)).all():
        raise DlrnError(f"{what}: the outcome must be 0/1 with one value per case")
    shift = np.zeros(labels.size) if offset is None else np.asarray(offset, dtype=float)
    aliased = aliased_columns(X)
    kept = [i for i in range(X.shape[1]) if i not in aliased]
    Xk = X[:, kept]
    mu = (labels + 0.5) / 2
    eta = np.log(mu / (1 - mu))
    deviance_old = _deviance(labels, mu)
    converged, iterations = False, 0
    while iterations < MAX_ITERATIONS:
        iterations += 1
        derivative = _mu_eta(eta)
        z = eta - shift + (labels - mu) / derivative
        w = np.sqrt(derivative ** 2 / (mu * (1 - mu)))
        beta = np.linalg.lstsq(Xk * w[:, None], z * w, rcond=None)[0]
        eta = Xk @ beta + shift
        mu = _link_inverse(eta)
        deviance = _deviance(labels, mu)
        if abs(deviance - deviance_old) / (abs(deviance) + 0.1) < EPSILON:
            converged = True
            break
        deviance_old = deviance
    # R's summary.glm: the QR of the last weighted least-squares step (its weights come
    # from the fitted values before that step's update)
    weighted = Xk * w[:, None]
    covariance = np.linalg.pinv(weighted.T @ weighted)
    params = np.full(X.shape[1], np.nan)
    bse = np.full(X.shape[1], np.nan)
    params[kept] = beta
    bse[kept] = np.sqrt(np.clip(np.diag(covariance), 0, None))
    null_mu = _link_inverse(_null_eta(labels, shift))
    return LogisticFit(
        pd.Series(params, index=frame.columns), pd.Series(bse, index=frame.columns),
        deviance, _deviance(labels, null_mu), [frame.columns[i] for i in aliased], iterations,
        converged, "ML", -deviance / 2, len(kept), labels.size)


def _null_eta(y: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The intercept-only model's linear predictor (the offset alone when it is not zero)."""
    if np.any(offset):
        return offset
    mean = np.clip(y.mean(), _DOUBLE_EPS, 1 - _DOUBLE_EPS)
    return np.full(y.size, np.log(mean / (1 - mean)))


def separated_terms(y: object, design: pd.DataFrame) -> list[str]:
    """Terms whose maximum-likelihood estimate is infinite: [] when there is no separation.

    Konis' linear program (R ``detectseparation``): maximise sum_i s_i x_i'b subject
    to s_i x_i'b >= 0 for every case (s_i = +1 for an outcome of 1, -1 for 0), with
    |b_j| <= 1 on columns scaled to a largest value of 1. A positive maximum means a
    direction along which the likelihood increases for ever: (quasi-)complete
    separation; the terms with a non-zero b are those that diverge. Aliased columns
    are left out first.
    """
    from scipy.optimize import linprog

    labels = np.asarray(y, dtype=float).reshape(-1)
    X = design.to_numpy(dtype=float)
    kept = [i for i in range(X.shape[1]) if i not in aliased_columns(X)]
    X = X[:, kept]
    scale = np.max(np.abs(X), axis=0)
    X = X / np.where(scale > 0, scale, 1.0)
    signed = X * (2 * labels - 1)[:, None]
    result = linprog(-signed.sum(axis=0), A_ub=-signed, b_ub=np.zeros(len(labels)),
                     bounds=[(-1, 1)] * X.shape[1], method="highs")
    if result.status != 0 or -result.fun < 1e-6:
        return []
    return [design.columns[kept[j]] for j in np.flatnonzero(np.abs(result.x) > 1e-7)]


def fit_logistic(y: object, design: pd.DataFrame | np.ndarray, *, what: str,
                 offset: object = None) -> LogisticFit:
    """A fit whose estimates must be finite (calibration slopes): separation, an aliased
    column or no convergence is an error naming ``what``."""
    frame = _as_frame(design)
    fit = fit_glm(y, frame, offset=offset, what=what)
    if fit.aliased:
        raise DlrnError(f"{what}: term(s) {fit.aliased} are aliased (a combination of the "
                        "other terms)")
    separated = separated_terms(y, frame)
    if separated:
        raise DlrnError(f"{what}: (quasi-)complete separation: the outcome is predicted "
                        "perfectly for some cases, so an estimate is infinite")
    if not fit.converged:
        raise DlrnError(f"{what}: the logistic fit did not converge in {MAX_ITERATIONS} "
                        "iterations")
    return fit


def alias_combination(design: pd.DataFrame, name: str, kept: list[str]) -> dict[str, float]:
    """The aliased column as a combination of the kept ones: term -> weight (non-zero)."""
    basis = design[kept].to_numpy(dtype=float)
    weights = np.linalg.lstsq(basis, design[name].to_numpy(dtype=float), rcond=None)[0]
    return {other: float(w) for other, w in zip(kept, weights, strict=True) if abs(w) >= 1e-8}


def alias_equation(design: pd.DataFrame, name: str, kept: list[str]) -> str:
    """'a = (Intercept) - b - c': the aliased column as the combination of the others."""
    parts = []
    for other, weight in alias_combination(design, name, kept).items():
        size = "" if abs(abs(weight) - 1) < 1e-8 else f"{abs(weight):.3g}·"
        parts.append(f"{'-' if weight < 0 else '+'} {size}{other}")
    text = " ".join(parts).removeprefix("+ ")
    return f"{name} = {text}" if text else f"{name} is 0 for every case"


def alias_notes(design: pd.DataFrame, fit: LogisticFit,
                variable_of: Mapping[str, str]) -> dict[str, str]:
    """A note per aliased term: its variable, the combination it equals, what R shows."""
    notes = {}
    for name in fit.aliased:
        equation = alias_equation(design, name, fit.kept)
        variable = variable_of.get(name, name)
        notes[name] = (f"{variable}: term {name} is aliased ({equation} in every case), so it "
                       "has no estimate of its own (NA, as R's glm reports it); its effect is "
                       "carried by the terms it is a combination of")
    return notes


def _one_class(y: pd.Series, cases: pd.Series, label: str) -> list[str]:
    """['all n cases with <label> are positive (1)'] when those cases hold one class only."""
    outcomes = y[cases]
    if outcomes.empty or outcomes.nunique() > 1:
        return []
    kind = "positive (1)" if outcomes.iloc[0] == 1 else "negative (0)"
    return [f"all {len(outcomes)} cases with {label} are {kind}"]


def _binary_term(y: pd.Series, values: pd.Series, label: str) -> list[str]:
    """One-class values of a two-valued term (a 0/1 predictor, token or missing indicator)."""
    if values.nunique() != 2:
        return []
    return [reason for value in sorted(values.unique())
            for reason in _one_class(y, values == value, f"{label} = {value:g}")]


def _one_class_levels(y: pd.Series, design: pd.DataFrame, name: str, terms: list[str],
                      reference: str | None) -> dict[str, list[str]]:
    """Per term of one predictor: its levels (or values) whose cases are all of one class."""
    levels = [t for t in terms if reference is not None and t != term(name, MISSING)]
    reasons = {t: _binary_term(y, design[t], name if t == name else t)
               for t in terms if t not in levels}
    if levels:  # dummies of a categorical predictor, and its reference level
        at_reference = _one_class(y, (design[levels] == 0).all(axis=1),
                                  f"{name} = {reference} (reference level)")
        reasons.update({t: _one_class(y, design[t] == 1, f"{name} = {t[len(name) + 1:-1]}")
                        + at_reference for t in levels})
    return reasons


#: The key of the note on separation by a combination of terms (no design column has it).
COMBINED_SEPARATION = "(separation)"


def separation_notes(y: pd.Series, design: pd.DataFrame, separated: list[str],
                     terms: Mapping[str, list[str]], references: Mapping[str, str], *,
                     remedy: str = SEPARATION_ADVICE) -> dict[str, str]:
    """Notes on the terms whose estimate separation makes infinite (``separated``), and why.

    A term whose level (or value) holds cases of one class only gets a note naming it;
    terms that separate only in combination with others share one note, under
    :data:`COMBINED_SEPARATION`, listing them. ``remedy`` says what was (or can be) done.
    """
    notes, combined = {}, []
    for name, variable_terms in terms.items():
        levels = _one_class_levels(y, design, name, variable_terms, references.get(name))
        for one in variable_terms:
            if one not in separated:
                continue
            if not levels[one]:
                combined.append(one)
                continue
            notes[one] = (f"{name}: (quasi-)complete separation ({'; '.join(levels[one])}); "
                          f"the maximum-likelihood odds ratio is not finite: {remedy}")
    if len(combined) == 1:
        notes[COMBINED_SEPARATION] = (
            f"(quasi-)complete separation by {combined[0]}: it predicts the outcome perfectly "
            f"for some cases, so its maximum-likelihood estimate is not finite: {remedy}")
    elif combined:
        notes[COMBINED_SEPARATION] = (
            f"(quasi-)complete separation by a combination of {len(combined)} terms "
            f"({', '.join(combined)}): together they predict the outcome perfectly for some "
            f"cases, so their maximum-likelihood estimates are not finite: {remedy}")
    return notes
