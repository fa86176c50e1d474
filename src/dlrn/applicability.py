"""Is a new case like the cases the model was built on? The applicability domain.

A model answers for any numbers it is given, including those of an image unlike every
image it was fitted on (another organ, a photograph, a blank frame). Before an answer is
shown, a case's image features (the selected features the nomogram's image model uses)
are compared with the training cases' in two ways:

- the share of the features outside the range the training cases spanned (min to max);
- the Mahalanobis distance to the training cases in that feature space, with a
  Ledoit-Wolf shrinkage covariance (stable when the features are many and the cases few)
  of the z-scored features.

:class:`ApplicabilityDomain` learns both on training rows only. Its distance threshold is
the ``quantile`` (e.g. 0.99) of the training cases' *out-of-fold* distances: each training
case's distance to a domain fitted without its fold (grouped by patient where groups are
given), because a case's distance to a domain fitted on itself is smaller than a new
case's, and a threshold set on such distances flags too many new cases. A case is outside
the domain when its distance is above the threshold or more than ``max_outside_share`` of
its features lie outside the training range. :func:`combine` adds the segmentation
model's lesion evidence (:mod:`dlrn.segmentation.evidence`) into one verdict per case:
``applicable`` and a note in plain words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from dlrn.errors import DlrnError

#: the per-case columns :func:`combine` adds to ``dlrn predict``'s rows
APPLICABLE = "applicable"
APPLICABILITY_NOTE = "applicability_note"
DISTANCE = "feature_distance"
OUTSIDE_SHARE = "features_outside_share"
LESION_EVIDENCE = "lesion_evidence"
COLUMNS = (APPLICABLE, APPLICABILITY_NOTE, LESION_EVIDENCE, DISTANCE, OUTSIDE_SHARE)
#: the words that open every warning (the page shows them as they are)
UNLIKE = "this image is unlike the images this model was built on"
FORMAT = "dlrn-applicability-1"
NOT_ASSESSED = ("applicability not assessed: the study has neither image features nor a "
                "segmentation model to compare the image with")


def _setting(help: str, minimum: float | None = None,
             maximum: float | None = None) -> dict[str, Any]:
    return {"help": help, "minimum": minimum, "maximum": maximum}


@dataclass
class ApplicabilitySettings:
    """The study file's ``applicability`` section: the rule that says a case is unlike the
    study's (its thresholds are learned on the training cases only)."""

    enabled: bool = field(default=True, metadata=_setting(
        "check every case before its answer (dlrn predict, dlrn serve, the report's test "
        "and external cases): the U-Net's evidence of a lesion and the image features "
        "against the training cases'; a case outside gets a plain warning"))
    quantile: float = field(default=0.99, metadata=_setting(
        "share of the training cases inside the domain: the distance threshold is this "
        "quantile of their out-of-fold Mahalanobis distances, and the lesion-evidence "
        "cut-off flags 1 - this of the U-Net's training images", minimum=0.5, maximum=1.0))
    max_outside_share: float = field(default=0.25, metadata=_setting(
        "a case is also outside when more than this share of the model's image features "
        "lie outside the training cases' range", minimum=0.0, maximum=1.0))
    cv_folds: int = field(default=5, metadata=_setting(
        "folds (by patient) of the out-of-fold distances and lesion-evidence scores",
        minimum=2))


def _fold_ids(n_rows: int, folds: int, groups: Sequence[Any] | None, seed: int) -> np.ndarray:
    """Each row's fold (0..folds-1): whole groups (patients) per fold, shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    keys = np.asarray(groups if groups is not None else np.arange(n_rows)).astype(str)
    unique = np.unique(keys)
    order = rng.permutation(len(unique))
    fold_of_group = dict(zip(unique[order], np.arange(len(unique)) % folds, strict=True))
    return np.array([fold_of_group[key] for key in keys])


class ApplicabilityDomain(BaseEstimator):
    """The training cases' feature range and Mahalanobis (Ledoit-Wolf) domain.

    ``fit(X, groups=None)`` on the training rows (a numeric DataFrame: the model's
    selected features), ``assess(X)`` one row per case: ``feature_distance``,
    ``features_outside_share``, ``features_outside`` (their names), ``in_domain`` and
    ``reason`` (plain words, empty inside). Learned: ``feature_names_in_``, ``low_`` and
    ``high_`` (the training range), ``mean_`` and ``scale_`` (the z-score), ``precision_``
    (the shrunk covariance's inverse), ``oof_distances_`` and ``threshold_``.
    """

    def __init__(self, quantile: float = 0.99, max_outside_share: float = 0.25,
                 cv_folds: int = 5, random_state: int = 0) -> None:
        self.quantile = quantile
        self.max_outside_share = max_outside_share
        self.cv_folds = cv_folds
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Any = None,
            groups: Sequence[Any] | None = None) -> ApplicabilityDomain:
        values = self._checked(X, fitting=True)
        if len(values) < 2 * self.cv_folds:
            raise DlrnError(f"applicability domain: {len(values)} training case(s) are too few "
                            f"for {self.cv_folds} out-of-fold distances; need at least "
                            f"{2 * self.cv_folds}")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.low_, self.high_ = values.min(axis=0), values.max(axis=0)
        self.mean_, self.scale_, self.precision_ = _shrunk_domain(values)
        folds = _fold_ids(len(values), self.cv_folds, groups, self.random_state)
        oof = np.empty(len(values))
        for fold in range(self.cv_folds):
            held = folds == fold
            if held.all() or not held.any():
                raise DlrnError(f"applicability domain: {self.cv_folds} folds need at least "
                                f"{self.cv_folds} patients among the training cases")
            mean, scale, precision = _shrunk_domain(values[~held])
            oof[held] = _distance(values[held], mean, scale, precision)
        self.oof_distances_ = oof
        self.threshold_ = float(np.quantile(oof, self.quantile))
        return self

    def _checked(self, X: pd.DataFrame, *, fitting: bool = False) -> np.ndarray:
        if not fitting:
            missing = [c for c in self.feature_names_in_ if c not in X.columns]
            if missing:
                raise DlrnError(f"applicability domain: the cases lack feature(s) "
                                f"{missing[:5]} the domain was fitted on")
            X = X[list(self.feature_names_in_)]
        values = X.to_numpy(dtype=float)
        if not np.isfinite(values).all() and fitting:
            raise DlrnError("applicability domain: the training features hold missing or "
                            "infinite values")
        return values

    def assess(self, X: pd.DataFrame) -> pd.DataFrame:
        values = self._checked(X)
        finite = np.isfinite(values)
        outside = ~finite | (values < self.low_) | (values > self.high_)
        share = outside.mean(axis=1)
        distance = _distance(np.where(finite, values, self.mean_), self.mean_, self.scale_,
                             self.precision_)
        distance[~finite.all(axis=1)] = np.inf
        names = [", ".join(self.feature_names_in_[row]) for row in outside]
        far = distance > self.threshold_
        many = share > self.max_outside_share
        reasons = []
        for k in range(len(values)):
            why = []
            if many[k]:
                why.append(f"{outside[k].sum()} of its {outside.shape[1]} image features lie "
                           "outside the range of the training images")
            if far[k]:
                why.append(f"its image features are far from the training images' (distance "
                           f"{distance[k]:.2f}, above {self.threshold_:.2f}, which only "
                           f"{1 - self.quantile:.0%} of the training images exceed)")
            reasons.append("; ".join(why))
        return pd.DataFrame({DISTANCE: distance, OUTSIDE_SHARE: share,
                             "features_outside": names, "in_domain": ~(far | many),
                             "reason": reasons}, index=X.index)

    def to_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able settings and names, arrays) for a bundle: no pickle."""
        meta = {"format": FORMAT, **self.get_params(),
                "feature_names_in": [str(c) for c in self.feature_names_in_],
                "threshold": self.threshold_}
        arrays = {"low": self.low_, "high": self.high_, "mean": self.mean_,
                  "scale": self.scale_, "precision": self.precision_,
                  "oof_distances": self.oof_distances_}
        return meta, arrays

    @classmethod
    def from_parts(cls, meta: Mapping[str, Any],
                   arrays: Mapping[str, np.ndarray]) -> ApplicabilityDomain:
        if meta.get("format") != FORMAT:
            raise DlrnError(f"not a dlrn applicability domain (format {meta.get('format')!r})")
        domain = cls(**{name: meta[name] for name in cls().get_params()})
        domain.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
        domain.threshold_ = float(meta["threshold"])
        domain.low_, domain.high_ = np.asarray(arrays["low"]), np.asarray(arrays["high"])
        domain.mean_, domain.scale_ = np.asarray(arrays["mean"]), np.asarray(arrays["scale"])
        domain.precision_ = np.asarray(arrays["precision"])
        domain.oof_distances_ = np.asarray(arrays["oof_distances"])
        return domain


def _shrunk_domain(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, scale, precision) of z-scored rows with a Ledoit-Wolf covariance; a constant
    feature keeps scale 1 (its z-score is 0 for the training cases)."""
    from sklearn.covariance import LedoitWolf

    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    covariance = LedoitWolf(assume_centered=True).fit((values - mean) / scale)
    return mean, scale, covariance.precision_


def _distance(values: np.ndarray, mean: np.ndarray, scale: np.ndarray,
              precision: np.ndarray) -> np.ndarray:
    centred = (values - mean) / scale
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, precision, centred), 0.0))


def combine(index: pd.Index, lesion: pd.DataFrame | None,
            domain: pd.DataFrame | None) -> pd.DataFrame:
    """One verdict per case from the segmentation model's lesion evidence (``lesion_found``,
    ``lesion_evidence``, ``reason``; None without a U-Net) and the feature domain's
    :meth:`ApplicabilityDomain.assess` (None without image features): the columns of
    :data:`COLUMNS`. A case either check could not assess is applicable as far as the
    other one goes; where neither could, ``applicable`` is NA and the note says why."""
    out = pd.DataFrame(index=index)
    out[LESION_EVIDENCE] = np.nan if lesion is None else lesion[LESION_EVIDENCE]
    out[DISTANCE] = np.nan if domain is None else domain[DISTANCE]
    out[OUTSIDE_SHARE] = np.nan if domain is None else domain[OUTSIDE_SHARE]
    applicable, notes = [], []
    for case in index:
        reasons = []
        if lesion is not None and not bool(lesion.at[case, "lesion_found"]):
            reasons.append(str(lesion.at[case, "reason"]))
        if domain is not None and not bool(domain.at[case, "in_domain"]):
            reasons.append(str(domain.at[case, "reason"]))
        applicable.append(pd.NA if lesion is None and domain is None else not reasons)
        notes.append(f"{UNLIKE}: {'; '.join(reasons)}" if reasons else
                     NOT_ASSESSED if lesion is None and domain is None else "")
    out[APPLICABLE] = pd.array(applicable, dtype="boolean")
    out[APPLICABILITY_NOTE] = notes
    return out[list(COLUMNS)]
