"""Synthetic radiologist's descriptors for a real image cohort, with the traits of real exports.

Public breast-ultrasound cohorts with a radiologist's BI-RADS descriptors (for
example BrEaST-Lesions_USG) are written the way hospital exports are, and their
tables have traits that break naive logistic regression:

* ``Margin`` holds ``circumscribed`` or ``not circumscribed - angular&indistinct``:
  split at ``&``, the token ``circumscribed`` and the ``not circumscribed - ...``
  tokens add up to 1 in every row, so the tokens are aliased with the intercept
  (and Margin is the strongest descriptor, as in BI-RADS);
* ``Echogenicity`` has a level (``anechoic``, simple cysts) of about 15 cases, all
  benign: quasi-complete separation;
* ``Age`` and ``Tissue_composition`` have blank cells and cells that say
  ``not available``; ``Tissue_composition`` has a rare level and ``&``-joined values.

:func:`descriptor_table` draws such columns for given labels (benign 0 /
malignant 1), so that the study's clinical statistics can be tested and measured
on real images (BUS-BRA) with a table shaped like those cohorts'. Margin is the
strongest descriptor, as in BI-RADS; the same seed gives the same table;
``shared_severity`` makes Margin, Shape and Echogenicity correlated (the clinical
selection benchmark).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DESCRIPTOR_COLUMNS", "NOT_AVAILABLE", "descriptor_table"]

NOT_AVAILABLE = "not available"
#: The columns as a study declares them (cohort.clinical).
DESCRIPTOR_COLUMNS = {
    "Age": "continuous",
    "Shape": "categorical",
    "Margin": {"type": "multilabel", "separator": "&"},
    "Echogenicity": "categorical",
    "Posterior_features": "categorical",
    "Halo": "categorical",
    "Calcifications": "categorical",
    "Tissue_composition": {"type": "multilabel", "separator": "&"},
}
ANECHOIC_CASES = 15
MARGIN_TOKENS = ("angular", "indistinct", "microlobulated", "spiculated")
TISSUES = ("heterogeneous: predominantly fat", "heterogeneous: predominantly fibroglandular",
           "homogeneous: fat", "homogeneous: fibroglandular")
RARE_TISSUE = "lactating"


def _sigmoid(value: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-value))


def _margin(rng: np.random.Generator, malignant: int, suspicion: float = 0.0,
            shared: float = 0.0) -> str:
    """BI-RADS margin: not circumscribed for 29 % of benign and 85 % of malignant lesions.

    ``shared``: that share of its latent noise's variance is the noise of the lesion's
    ``suspicion``, and its tokens follow the suspicion instead of the label in that share.
    """
    noise = np.sqrt(shared) * (suspicion - 1.5 * malignant) + np.sqrt(1 - shared) * rng.normal()
    if 1.6 * malignant + noise <= 0.55 + 0.7 * shared:  # shared: where Shape turns
        return "circumscribed"
    looks = (1 - shared) * malignant + shared * _sigmoid(2 * (suspicion - 0.75))
    chances = np.array([0.3 + 0.2 * looks, 0.6, 0.2, 0.05 + 0.3 * looks])
    tokens = [t for t, p in zip(MARGIN_TOKENS, chances, strict=True) if rng.random() < p]
    tokens = tokens or [MARGIN_TOKENS[int(rng.integers(0, 2))]]
    return "not circumscribed - " + "&".join(tokens)


ECHOGENICITY = {  # level: (share among benign non-cystic lesions, among malignant ones)
    "hypoechoic": (0.35, 0.60), "isoechoic": (0.25, 0.10), "complex cystic/solid": (0.15, 0.12),
    "heterogeneous": (0.12, 0.14), "hyperechoic": (0.13, 0.04)}


def _echogenicity(rng: np.random.Generator, malignant: int, severity: float = 0.0,
                  shared: float = 0.0) -> str:
    """A level by label; with ``shared`` > 0, hypoechoic the more likely the more severe the
    lesion looks."""
    shares = np.array([share[malignant] for share in ECHOGENICITY.values()])
    shares[0] *= np.exp(3 * shared * severity)
    return str(rng.choice(list(ECHOGENICITY), p=shares / shares.sum()))


def _posterior(rng: np.random.Generator, suspicion: float, anechoic: bool) -> str:
    if anechoic:
        return "enhancement"
    shadow = _sigmoid(1.3 * suspicion - 1.5)
    draw = rng.random()
    if draw < shadow:
        return "shadowing"
    return str(rng.choice(["no", "enhancement", "combined"], p=[0.55, 0.35, 0.1]))


def _tissue(rng: np.random.Generator) -> str:
    first = str(rng.choice(TISSUES, p=[0.3, 0.3, 0.2, 0.2]))
    if rng.random() < 0.1:
        second = str(rng.choice([t for t in TISSUES if t != first]))
        return f"{first}&{second}"
    return first


def descriptor_table(labels: pd.Series, seed: int = 0,
                     shared_severity: float = 0.0) -> pd.DataFrame:
    """Descriptor columns (:data:`DESCRIPTOR_COLUMNS`) for cases with these 0/1 labels.

    Index and order follow ``labels``. About 15 benign cases are ``anechoic``; about 8 %
    of ages are blank and 6 % say ``not available``; 10 % of tissue compositions say
    ``not available`` and three cases are ``lactating``.

    ``shared_severity`` (0 to 1): how much Margin, Shape and Echogenicity read one latent
    "how suspicious the lesion looks" beyond its label, as a radiologist's descriptors
    do. That share of Margin's latent noise variance is the noise of the suspicion that
    draws Shape (and the posterior features, halo and calcifications), Margin's
    circumscribed cut moves towards Shape's and its tokens follow the suspicion; Shape
    reads the suspicion more sharply; Echogenicity leans to hypoechoic as it rises.
    Correlated, Margin and Shape share their signal, so a model of all descriptors at
    once often finds neither significant (0.9: the all-at-once rule drops Margin on 6 of
    8 BUS-BRA splits, backward elimination keeps it on all). 0 (the default) gives the
    table of earlier versions exactly.
    """
    rng = np.random.default_rng(seed)
    y = labels.to_numpy(dtype=int)
    n = len(y)
    suspicion = 1.5 * y + rng.normal(0, 1, n)
    benign = np.flatnonzero(y == 0)
    anechoic = np.zeros(n, bool)
    anechoic[rng.choice(benign, min(ANECHOIC_CASES, len(benign)), replace=False)] = True
    age = np.clip(np.where(y == 1, rng.normal(56, 12, n), rng.normal(45, 13, n)), 18, 90)
    table = pd.DataFrame(index=labels.index)
    table["Age"] = np.round(age).astype(int).astype(object)
    gaps = rng.permutation(n)
    table.iloc[gaps[:round(0.08 * n)], 0] = np.nan
    table.iloc[gaps[round(0.08 * n):round(0.14 * n)], 0] = NOT_AVAILABLE
    # shared severity: Shape reads the suspicion more sharply (same rate at its midpoint)
    irregular = rng.random(n) < _sigmoid((0.8 + 6 * shared_severity) * (suspicion - 1.25))
    table["Shape"] = np.where(irregular, "irregular",
                              np.where(rng.random(n) < 0.75, "oval", "round"))
    severity = suspicion - 1.5 * y
    table["Margin"] = [_margin(rng, label, level, shared_severity)
                       for label, level in zip(y, suspicion, strict=True)]
    table["Echogenicity"] = ["anechoic" if a else _echogenicity(rng, label, level,
                                                                shared_severity)
                             for label, a, level in zip(y, anechoic, severity, strict=True)]
    table["Posterior_features"] = [_posterior(rng, s, a)
                                   for s, a in zip(suspicion, anechoic, strict=True)]
    table["Halo"] = np.where(rng.random(n) < _sigmoid(0.5 * suspicion - 2.0), "yes", "no")
    table["Calcifications"] = np.where(
        rng.random(n) < _sigmoid(0.9 * suspicion - 2.2), "in a mass",
        np.where(rng.random(n) < 0.05, "intraductal", "no"))
    tissue = np.array([_tissue(rng) for _ in range(n)], dtype=object)
    order = rng.permutation(n)
    tissue[order[:round(0.1 * n)]] = NOT_AVAILABLE
    tissue[order[round(0.1 * n):round(0.1 * n) + 3]] = RARE_TISSUE
    table["Tissue_composition"] = tissue
    return table
