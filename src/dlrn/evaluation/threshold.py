"""Cut-off analysis: a Youden threshold chosen on one set, applied to any other set.

The threshold is learned on training data only, so :class:`YoudenThreshold` is a
scikit-learn-style estimator (``fit`` on the training scores, ``metrics`` on any
set). By default the threshold is pROC's: the midpoint between consecutive
distinct scores; ``thresholds="observed"`` reports the smallest observed score
above it instead (sklearn style), which gives the identical 2x2 table on the
training set. A case is positive when ``score >= threshold``.

Proportions come with Wilson score intervals by default (Brown, Cai & DasGupta
2001); ``ci_method="clopper-pearson"`` gives the exact interval.
"""

from __future__ import annotations

import warnings

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from dlrn.errors import DlrnError
from dlrn.evaluation._checks import binary_labels, finite_scores, labels_and_scores
from dlrn.evaluation.roc import roc_curve
from dlrn.notes import Note

__all__ = [
    "CI_METHODS",
    "PROPORTIONS",
    "YoudenThreshold",
    "cutoff_metrics",
    "infinite_cutoff_note",
    "proportion_ci",
    "undefined_metrics",
    "youden_threshold",
]

CI_METHODS = {"wilson": "wilson", "clopper-pearson": "beta"}
THRESHOLD_RULES = ("midpoint", "observed")

PROPORTIONS = {  # metric: (numerator counts, denominator counts)
    "accuracy": (("tp", "tn"), ("tp", "fp", "tn", "fn")),
    "sensitivity": (("tp",), ("tp", "fn")),
    "specificity": (("tn",), ("tn", "fp")),
    "ppv": (("tp",), ("tp", "fp")),
    "npv": (("tn",), ("tn", "fn")),
}
UNDEFINED_BECAUSE = {  # metric: why its denominator can be empty
    "accuracy": "no cases",
    "sensitivity": "no positive cases",
    "specificity": "no negative cases",
    "ppv": "no case called positive",
    "npv": "no case called negative",
    "f1": "no positive case and none called positive",
}


def youden_threshold(y: object, score: object, *, thresholds: str = "midpoint") -> float:
    """Threshold maximising J = sensitivity + specificity - 1 (pROC ``coords(x="best")``).

    Tied maxima (pROC lists them all) resolve to the lowest threshold, i.e. the
    most sensitive; a :class:`~dlrn.notes.Note` says so.
    """
    if thresholds not in THRESHOLD_RULES:
        raise DlrnError(f"thresholds={thresholds!r}: use one of {', '.join(THRESHOLD_RULES)}")
    labels, scores = labels_and_scores(y, score)
    curve = roc_curve(labels, scores)
    youden = curve["sensitivity"] + curve["specificity"] - 1
    best = np.flatnonzero(np.isclose(youden, youden.max(), rtol=0, atol=1e-12))
    if youden.max() <= 0:
        warnings.warn(Note("no cut-off separates the classes (Youden J <= 0)", caution=True),
                      stacklevel=2)
    elif best.size > 1:
        warnings.warn(Note(
            "thresholds tie for the best Youden J; the lowest (most sensitive) is used",
            message=f"{best.size} thresholds tie for the best Youden J; using the lowest "
                    f"({curve['threshold'].iloc[best[0]]:g})"), stacklevel=2)
    threshold = float(curve["threshold"].iloc[best[0]])
    if thresholds == "observed" and np.isfinite(threshold):
        threshold = float(scores[scores > threshold].min())
    return threshold


def proportion_ci(
    successes: int, total: int, *, method: str = "wilson", conf_level: float = 0.95
) -> tuple[float, float]:
    """Confidence interval of a proportion (NaN, NaN for an empty denominator)."""
    if method not in CI_METHODS:
        raise DlrnError(f"ci_method={method!r}: use one of {', '.join(CI_METHODS)}")
    if total == 0:
        return float("nan"), float("nan")
    low, high = proportion_confint(
        successes, total, alpha=1 - conf_level, method=CI_METHODS[method]
    )
    return float(low), float(high)


def cutoff_metrics(
    y: object,
    score: object,
    threshold: float,
    *,
    ci_method: str = "wilson",
    conf_level: float = 0.95,
) -> dict[str, float]:
    """2x2 counts, accuracy, sensitivity, specificity, PPV, NPV (CIs), F1 at ``score >= threshold``.

    A proportion whose denominator is empty (e.g. PPV when nobody is called
    positive) is NaN, with a note naming it and why (:func:`undefined_metrics`).
    """
    labels = binary_labels(y)
    scores = finite_scores(score)
    if labels.shape != scores.shape:
        raise DlrnError(f"{scores.size} scores for {labels.size} labels")
    called = scores >= threshold
    counts = {
        "tp": int(np.sum(called & (labels == 1))),
        "fp": int(np.sum(called & (labels == 0))),
        "tn": int(np.sum(~called & (labels == 0))),
        "fn": int(np.sum(~called & (labels == 1))),
    }
    result: dict[str, float] = {"n": int(labels.size), "threshold": float(threshold)}
    for name, (numerator, denominator) in PROPORTIONS.items():
        successes = sum(counts[c] for c in numerator)
        total = sum(counts[c] for c in denominator)
        result[name] = successes / total if total else float("nan")
        result[f"{name}_ci_low"], result[f"{name}_ci_high"] = proportion_ci(
            successes, total, method=ci_method, conf_level=conf_level
        )
    f1_denominator = 2 * counts["tp"] + counts["fp"] + counts["fn"]
    result["f1"] = 2 * counts["tp"] / f1_denominator if f1_denominator else float("nan")
    undefined = undefined_metrics(result)
    if undefined:
        warnings.warn(Note("cut-off metrics undefined", "; ".join(undefined),
                           message=f"at threshold {threshold:g}: {'; '.join(undefined)}"),
                      stacklevel=2)
    return {**result, **counts}


def undefined_metrics(metrics: dict[str, float]) -> list[str]:
    """'<metric> undefined (<why>)' for each cut-off metric of ``metrics`` that is NaN."""
    return [
        f"{name} undefined ({why})"
        for name, why in UNDEFINED_BECAUSE.items()
        if name in metrics and np.isnan(metrics[name])
    ]


def infinite_cutoff_note(threshold: float) -> str:
    """Why a Youden cut-off is -inf or +inf ('' for a finite one).

    pROC's extreme thresholds win only when no midpoint beats calling every case
    positive (-inf) or negative (+inf), i.e. the best Youden J is 0: the model
    does not separate the training cases (constant scores, or AUC <= 0.5).
    """
    if np.isfinite(threshold):
        return ""
    called = "positive" if threshold < 0 else "negative"
    sign = "\u2212" if threshold < 0 else "+"
    return (f"Youden cut-off {sign}\u221e: no threshold separates the training cases better "
            f"than calling every case {called} (best Youden J = 0), so every case is called "
            f"{called}")


class YoudenThreshold:
    """Youden cut-off learned on training scores and applied unchanged to other sets."""

    def __init__(
        self, thresholds: str = "midpoint", ci_method: str = "wilson", conf_level: float = 0.95
    ) -> None:
        self.thresholds = thresholds
        self.ci_method = ci_method
        self.conf_level = conf_level

    def fit(self, score: object, y: object) -> YoudenThreshold:
        self.threshold_ = youden_threshold(y, score, thresholds=self.thresholds)
        return self

    def predict(self, score: object) -> np.ndarray:
        """1 where ``score >= threshold_``."""
        return (finite_scores(score) >= self.threshold_).astype(int)

    def metrics(self, score: object, y: object) -> dict[str, float]:
        return cutoff_metrics(
            y, score, self.threshold_, ci_method=self.ci_method, conf_level=self.conf_level
        )
