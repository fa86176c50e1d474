"""Platt scaling of a CNN's logit on its own validation cases.

Why: a fine-tuned CNN's sigmoid output is not a probability on any common scale. Two
CNNs trained alike (the cross-fitting's fold CNNs, or the final CNN and the fold CNNs)
can rank cases equally well and still put them at very different heights: on BUS-BRA
after one epoch the five fold CNNs' median outputs were 0.004, 0.05, 0.34, 0.84 and
0.92. Pooling their held-out scores then mixes scales (pooled out-of-fold AUC 0.70
against 0.78-0.85 within each fold), and the Youden cut-off chosen on the pooled
scores does not transfer to the final CNN's test scores (test sensitivity 0.36 at
training sensitivity 0.58). Mapping every CNN's logit through a logistic regression
fitted on the cases that CNN did not train on (its validation split) puts them all on
the probability scale: pooled AUC 0.81, test sensitivity 0.81 at training 0.81
(benchmarks/README.md, "CNN calibration").

The map is Platt's (1999) with his prior-corrected targets ((N+ + 1) / (N+ + 2) for
positives, 1 / (N- + 2) for negatives), as scikit-learn's
``CalibratedClassifierCV(method="sigmoid")`` fits it; the targets keep the slope
finite when the validation cases are separable. It is monotone increasing, so every
AUC computed on one CNN's scores is unchanged. Where the fitted slope is not positive
(a CNN without skill on its validation cases, or too few of them to tell) no map is
applied: a decreasing map would reverse the CNN's ranking of new cases, a flat one
erase it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import expit

# methods text (dlrn.deep.classifier.crossfit.describe): with validation splits, and without
CALIBRATION_TEXT = ("Each CNN's output (the final CNN's and every fold CNN's) was "
                    "Platt-scaled on its own validation cases, which it did not train on, "
                    "so that all of them give probabilities on one scale before the "
                    "cross-fitted scores are pooled and the cut-off is carried to the test "
                    "cases.")
NO_CALIBRATION_TEXT = ("The CNNs' outputs are raw sigmoid scores (no validation split to "
                       "calibrate them on): where the fold CNNs' scales differ, the pooled "
                       "out-of-fold AUC falls below the folds' own and the cut-off may "
                       "transfer poorly to the test cases.")


@dataclass(frozen=True)
class PlattScaling:
    """P(positive) = expit(intercept + slope x logit), fitted on ``n_cases`` cases."""

    intercept: float
    slope: float
    n_cases: int

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated P(positive) of raw logits, in float64."""
        return expit(self.intercept + self.slope * np.asarray(logits, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        """For the model card and the bundle (JSON)."""
        return {"method": "platt", **asdict(self)}

    @classmethod
    def from_dict(cls, record: dict[str, Any] | None) -> PlattScaling | None:
        """The map a model card or bundle recorded; None where it recorded none."""
        if not record:
            return None
        return cls(float(record["intercept"]), float(record["slope"]), int(record["n_cases"]))


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> PlattScaling | None:
    """Platt's sigmoid fitted on held-out ``logits`` and their 0/1 ``labels``.

    None where it cannot calibrate honestly: fewer than two classes, or a slope that is
    not positive (see the module's notes).
    """
    from sklearn.linear_model import LogisticRegression

    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).astype(int).reshape(-1)
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if positives == 0 or negatives == 0 or np.ptp(logits) == 0:
        return None
    targets = np.where(labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    # a soft target t is the cross-entropy of label 1 with weight t plus label 0 with 1 - t
    features = np.concatenate([logits, logits])[:, None]
    outcome = np.concatenate([np.ones_like(labels), np.zeros_like(labels)])
    weights = np.concatenate([targets, 1 - targets])
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000)  # unpenalised
    model.fit(features, outcome, sample_weight=weights)
    slope = float(model.coef_[0, 0])
    if not slope > 0:
        return None
    return PlattScaling(float(model.intercept_[0]), slope, len(labels))


def platt_columns(calibration: PlattScaling | None) -> dict[str, float]:
    """A CNN's Platt map as table columns (NaN where its scores are the raw sigmoid)."""
    if calibration is None:
        return {"platt_intercept": np.nan, "platt_slope": np.nan}
    return {"platt_intercept": calibration.intercept, "platt_slope": calibration.slope}
