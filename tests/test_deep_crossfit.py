"""Cross-fitting: folds as the classifiers' CV, each training row from a CNN that did not
train on it (bookkeeping and behaviour), fusion rows, out-of-fold cut-off, settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from deep_cohort import one_torch_thread, two_views_planted_crops  # noqa: F401 (autouse)

from dlrn.classifiers import make_cv
from dlrn.deep.classifier.calibration import PlattScaling
from dlrn.deep.classifier.crossfit import (
    CrossfitSettings,
    check_folds,
    choose_backbone,
    crossfit_cutoff,
    crossfit_deep,
    crossfit_folds,
    crossfit_stage,
    describe,
    fusion_features,
    out_of_fold_scores,
    trainings_needed,
)
from dlrn.deep.classifier.foldmean import fold_mean_features
from dlrn.deep.classifier.scores import cnn_probabilities
from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.train import load_trained_model
from dlrn.deep.classifier.workflow import DeepStageSettings
from dlrn.deep.data import Augmentation
from dlrn.errors import ConfigError, DlrnError
from dlrn.evaluation.threshold import youden_threshold

TINY = DeepStageSettings(
    backbones=("resnet18",), weights=None, pca_components=None,
    train=TrainSettings(epochs=2, batch_size=8, val_fraction=0.25, threads=1, progress=False,
                        device="cpu",
                        patience=None, augmentation=Augmentation.none()))


@pytest.fixture(scope="module")
def planted():
    return two_views_planted_crops()


@pytest.fixture(scope="module")
def train_ids(planted):
    return list(planted[1].index[:30])  # 15 patients; the last 3 patients are test cases


@pytest.fixture(scope="module")
def folds(planted, train_ids):
    _, cases = planted
    return crossfit_folds(cases, train_ids, n_splits=3, seed=0)


@pytest.fixture(scope="module")
def crossfitted(planted, folds, tmp_path_factory):
    cache, cases = planted
    return crossfit_deep(cases, folds, TINY, backbone="resnet18", cache=cache,
                         out_dir=tmp_path_factory.mktemp("crossfit"))


def test_folds_are_the_classifiers_cv_folds_grouped_by_patient(planted, train_ids, folds):
    training = planted[1].loc[train_ids]
    expected = make_cv(training["label"].to_numpy(), training["patient_id"].to_numpy(),
                       n_splits=3, seed=0)
    for number, (_, held_out) in enumerate(expected, start=1):
        assert list(folds.index[folds == number]) == list(training.index[held_out])
    assert training.groupby("patient_id").apply(lambda g: folds[g.index].nunique()).eq(1).all()
    assert not crossfit_folds(training, train_ids, n_splits=3, seed=1).equals(folds)
    assert crossfit_folds(training, train_ids, n_splits=3, seed=0).equals(folds)


def test_folds_that_split_a_patient_are_refused(planted, folds):
    _, cases = planted
    broken = folds.copy()
    broken.iloc[0] = broken.iloc[0] % 3 + 1  # case000 leaves its patient's fold
    with pytest.raises(DlrnError, match="split patient"):
        check_folds(broken, cases)


def test_no_fold_cnn_trained_on_the_cases_it_scores(crossfitted, folds):
    for fold, trained_on in crossfitted.trained_on.items():
        held_out = set(folds.index[folds == fold])
        assert not held_out & set(trained_on)
        assert set(trained_on) | held_out == set(folds.index)
    assert list(crossfitted.features.index) == list(folds.index)
    assert list(crossfitted.scores.index) == list(folds.index)
    table = crossfitted.fold_table
    assert list(table["n_held_out"]) == [int((folds == k).sum()) for k in (1, 2, 3)]
    assert (table["n_fit"] + table["n_val"] + table["n_held_out"] == len(folds)).all()


def test_held_out_scores_are_each_fold_cnns_platt_scaled_probability(planted, folds,
                                                                     crossfitted):
    """Every fold CNN's scores go through the map fitted on its own inner validation
    cases (written to its model card and the fold table), so pooled they share a scale."""
    cache, _ = planted
    table = crossfitted.fold_table.set_index("fold")
    calibrated = 0
    for fold, model_dir in zip((1, 2, 3), crossfitted.model_dirs, strict=True):
        model, card = load_trained_model(model_dir)
        platt = PlattScaling.from_dict(card["calibration"])
        if platt is None:  # a slope <= 0 on its 6 validation cases: the raw sigmoid
            assert np.isnan(table.loc[fold, "platt_slope"])
        else:
            calibrated += 1
            assert platt.n_cases == table.loc[fold, "n_val"]
            assert table.loc[fold, "platt_slope"] == platt.slope > 0
        held_out = list(folds.index[folds == fold])
        expected = cnn_probabilities(model, "resnet18", cache, held_out, calibration=platt,
                                     normalization=card["normalization"],
                                     device=torch.device("cpu"))
        np.testing.assert_allclose(crossfitted.scores.loc[held_out], expected, rtol=1e-5)
    assert calibrated >= 2


def test_a_held_out_row_does_not_depend_on_its_own_label(planted, folds, crossfitted):
    """Flip the labels of fold 1: its rows stay bit-identical (same seed, same fold CNN),
    the other folds' rows change (their CNNs trained on those labels)."""
    cache, cases = planted
    flipped = cases.copy()
    fold1 = folds.index[folds == 1]
    flipped.loc[fold1, "label"] = 1 - flipped.loc[fold1, "label"]
    again = crossfit_deep(flipped, folds, TINY, backbone="resnet18", cache=cache)
    pd.testing.assert_frame_equal(again.features.loc[fold1], crossfitted.features.loc[fold1])
    pd.testing.assert_series_equal(again.scores.loc[fold1], crossfitted.scores.loc[fold1])
    others = folds.index[folds != 1]
    assert not np.allclose(again.features.loc[others], crossfitted.features.loc[others])


def test_fusion_rows_cross_fitted_for_training_fold_mean_for_test(planted, crossfitted,
                                                                  folds):
    cache, cases = planted
    final = pd.DataFrame(-1.0, index=cases.index, columns=crossfitted.features.columns)
    fused = fusion_features(final, crossfitted, CrossfitSettings())
    assert list(fused.index) == list(cases.index)
    pd.testing.assert_frame_equal(fused.loc[folds.index], crossfitted.features)
    test_ids = list(cases.index[30:])
    pd.testing.assert_frame_equal(fused.loc[test_ids], crossfitted.other_features)
    assert fusion_features(final, crossfitted, CrossfitSettings("in_sample")) is final
    # the test rows are the mean of the saved fold CNNs' features (what predict reads)
    dirs = crossfitted.model_dirs
    assert [path.name for path in dirs] == ["fold1", "fold2", "fold3"]
    mean = fold_mean_features(dirs, cache, test_ids)
    pd.testing.assert_frame_equal(mean, crossfitted.other_features, rtol=1e-4)
    single = fold_mean_features(dirs[:1], cache, test_ids)
    assert not np.allclose(single, mean)


@pytest.mark.filterwarnings("ignore:.*thresholds tie")
def test_cutoff_and_training_rows_use_out_of_fold_scores(crossfitted, planted):
    _, cases = planted
    scores = out_of_fold_scores({"resnet18": crossfitted})
    assert list(scores.columns) == ["DL-resnet18"]
    assert crossfit_cutoff(crossfitted) == youden_threshold(
        cases.loc[scores.index, "label"], scores["DL-resnet18"])


def test_backbone_choice_on_pooled_out_of_fold_auc_ties_to_the_first(crossfitted):
    worse = replace(crossfitted, scores=-crossfitted.scores)
    tied = replace(crossfitted)
    chosen, table = choose_backbone({"a": worse, "b": crossfitted, "c": tied})
    assert chosen == "b"
    assert table["chosen"].tolist() == [False, True, False]
    assert table.loc[1, "crossfit_auc"] == pytest.approx(1 - table.loc[0, "crossfit_auc"])


@pytest.mark.parametrize("select_on", ["validation", "crossfit"])
def test_stage_crossfits_what_select_on_asks_deterministically(planted, folds, crossfitted,
                                                              select_on):
    cache, cases = planted
    backbones = ("resnet18", "vgg11") if select_on == "validation" else ("resnet18",)
    stage = crossfit_stage(cases, folds, replace(TINY, backbones=backbones),
                           CrossfitSettings(select_on=select_on),
                           chosen_on_validation="resnet18", cache=cache)
    assert list(stage.results) == ["resnet18"] and stage.chosen == "resnet18"
    assert (stage.choice is None) == (select_on == "validation")
    again = stage.results["resnet18"]
    if select_on == "crossfit":  # lockstep (tests/test_deep_lockstep.py): no inner split
        assert (again.fold_table["n_val"] == 0).all() and again.epoch is not None
        assert stage.choice["crossfit_epoch"].tolist() == [again.epoch]
        return
    assert again.epochs is None and again.epoch is None
    # same seed and folds: the very same numbers
    pd.testing.assert_frame_equal(again.features, crossfitted.features)
    pd.testing.assert_series_equal(again.scores, crossfitted.scores)


def test_in_sample_fusion_trains_no_fold_cnn(planted, folds):
    _, cases = planted
    stage = crossfit_stage(cases, folds, TINY, CrossfitSettings("in_sample"),
                           chosen_on_validation="resnet18")
    assert stage.results == {} and stage.chosen == "resnet18"


def test_settings_and_their_cost():
    with pytest.raises(ConfigError, match=r"dl\.fusion_features"):
        CrossfitSettings("apparent")
    with pytest.raises(ConfigError, match=r"dl\.select_on"):
        CrossfitSettings(select_on="test")
    with pytest.raises(ConfigError, match="in_sample"):
        CrossfitSettings("in_sample", "crossfit")
    assert trainings_needed(3, 5, CrossfitSettings()) == 8
    assert trainings_needed(3, 5, CrossfitSettings(select_on="crossfit")) == 18
    assert trainings_needed(3, 5, CrossfitSettings("in_sample")) == 3


def test_methods_text_names_what_was_done():
    assert "optimistic" in describe(CrossfitSettings("in_sample"), 5)
    crossfitted = describe(CrossfitSettings(), 5)
    assert "5 cross-validation folds" in crossfitted and "backbone was chosen" not in crossfitted
    chosen_on_crossfit = describe(CrossfitSettings(select_on="crossfit"), 5)
    assert "pooled out-of-fold AUC" in chosen_on_crossfit
    assert "number of training epochs" in chosen_on_crossfit
    assert "no inner validation split" in chosen_on_crossfit
    # Platt scaling where there are validation cases to fit it on, said either way
    assert "Platt-scaled on its own validation cases" in crossfitted
    assert "Platt" not in chosen_on_crossfit and "raw sigmoid" in chosen_on_crossfit
