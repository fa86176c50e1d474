"""Platt scaling of a CNN's logit: scikit-learn's sigmoid calibration, monotone, refused
where it would reverse the ranking; and the pooled out-of-fold check it exists for."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score

from dlrn.deep.classifier.calibration import PlattScaling, fit_platt, platt_columns
from dlrn.deep.classifier.crossfit import CrossfitResult, crossfit_cutoff
from dlrn.deep.classifier.diagnostics import pooling_check


class _LogitColumn(ClassifierMixin, BaseEstimator):
    """A fitted 'classifier' whose decision function is its one input column."""

    def fit(self, x, y):
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, x):
        return np.asarray(x)[:, 0]

    def predict(self, x):
        return (self.decision_function(x) > 0).astype(int)


def _logits(seed: int, n: int = 200, shift: float = 0.0, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return shift + scale * (1.2 * labels + rng.normal(size=n)), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_map_is_scikit_learns_sigmoid_calibration(seed):
    logits, labels = _logits(seed, shift=-3.0, scale=4.0)
    platt = fit_platt(logits, labels)
    oracle = CalibratedClassifierCV(FrozenEstimator(_LogitColumn().fit(None, None)),
                                    method="sigmoid").fit(logits[:, None], labels)
    new = np.linspace(-15, 10, 50)
    np.testing.assert_allclose(platt.probabilities(new),
                               oracle.predict_proba(new[:, None])[:, 1], atol=1e-6)
    assert platt.n_cases == 200


def test_the_map_keeps_the_ranking_and_puts_shifted_scores_on_one_scale():
    logits, labels = _logits(0)
    platt = fit_platt(logits, labels)
    assert roc_auc_score(labels, platt.probabilities(logits)) == roc_auc_score(labels, logits)
    assert platt.probabilities(logits).mean() == pytest.approx(labels.mean(), abs=0.01)
    # the same CNN shifted and stretched (another fold's scale): the same probabilities
    shifted = fit_platt(5 + 3 * logits, labels)
    np.testing.assert_allclose(shifted.probabilities(5 + 3 * logits),
                               platt.probabilities(logits), atol=1e-6)


def test_separable_validation_cases_still_give_a_finite_map():
    labels = np.array([0] * 10 + [1] * 10)
    logits = np.concatenate([np.linspace(-3, -1, 10), np.linspace(1, 3, 10)])
    platt = fit_platt(logits, labels)
    assert np.isfinite(platt.slope) and platt.slope > 0
    # Platt's targets: the most confident positive stays below (N+ + 1) / (N+ + 2)
    assert platt.probabilities(np.array([3.0]))[0] < 1.0


@pytest.mark.parametrize("case", ["reversed", "constant", "one class"])
def test_no_map_where_it_would_reverse_or_erase_the_ranking(case):
    logits, labels = _logits(0)
    if case == "reversed":
        logits = -logits
    elif case == "constant":
        logits = np.zeros_like(logits, dtype=float)
    else:
        labels = np.ones_like(labels)
    assert fit_platt(logits, labels) is None
    assert platt_columns(None) == {"platt_intercept": pytest.approx(np.nan, nan_ok=True),
                                   "platt_slope": pytest.approx(np.nan, nan_ok=True)}


def test_the_map_round_trips_through_json():
    platt = PlattScaling(-0.5, 0.75, 40)
    assert PlattScaling.from_dict(platt.to_dict()) == platt
    assert platt.to_dict()["method"] == "platt"
    assert PlattScaling.from_dict(None) is None
    np.testing.assert_allclose(platt.probabilities(np.array([2.0])), expit([-0.5 + 1.5]))


def _crossfit(scores: pd.Series, labels: pd.Series, folds: pd.Series) -> CrossfitResult:
    table = pd.DataFrame({"fold": [1, 2], "held_out_auc": [
        roc_auc_score(labels[folds == k], scores[folds == k]) for k in (1, 2)]})
    empty = pd.DataFrame()
    return CrossfitResult("resnet18", folds, empty, scores, labels, empty, table, {}, [], 0.0)


def test_pooling_check_flags_folds_on_different_scales_and_calibration_fixes_it():
    """Two fold CNNs that rank equally well, one scoring everything 6 logits higher:
    pooled AUC drops and the note says so; the cut-off then sits between the scales.
    Calibrated (each fold's map fitted on its own other cases), the gap closes."""
    first, first_labels = _logits(1, n=300)
    second, second_labels = _logits(2, n=300)
    ids = [f"c{i}" for i in range(600)]
    labels = pd.Series(np.concatenate([first_labels, second_labels]), index=ids)
    folds = pd.Series([1] * 300 + [2] * 300, index=ids)
    raw = pd.Series(expit(np.concatenate([first, second + 6])), index=ids)
    skewed = _crossfit(raw, labels, folds)
    assert skewed.auc < skewed.fold_table["held_out_auc"].mean() - 0.03
    assert "different scales" in pooling_check(skewed)
    maps = [fit_platt(*_logits(seed, n=300)) for seed in (11, 12)]  # each CNN's val cases
    shifted_map = replace(maps[1], intercept=maps[1].intercept - 6 * maps[1].slope)
    calibrated = pd.Series(np.concatenate([maps[0].probabilities(first),
                                           shifted_map.probabilities(second + 6)]), index=ids)
    fixed = _crossfit(calibrated, labels, folds)
    assert fixed.auc > skewed.auc + 0.03
    assert "different scales" not in pooling_check(fixed)
    assert "each fold CNN on its own held-out fold" in pooling_check(fixed)
    assert 0.2 < crossfit_cutoff(fixed) < 0.8
