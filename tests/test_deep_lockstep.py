"""select_on: crossfit: fold CNNs in lockstep, the epoch chosen on their pooled out-of-fold
AUC; the final CNN stops at that epoch; no fold CNN trains on the cases it scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from deep_cohort import one_torch_thread, two_views_planted_crops  # noqa: F401 (autouse)

import dlrn.deep.engine as engine_module
from dlrn.deep.classifier.crossfit import crossfit_deep, crossfit_folds
from dlrn.deep.classifier.features import extract_deep_features
from dlrn.deep.classifier.scores import cnn_probabilities
from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.task import classifier_engine
from dlrn.deep.classifier.train import load_trained_model, train_backbone
from dlrn.deep.classifier.workflow import DeepStageSettings
from dlrn.deep.data import Augmentation
from dlrn.deep.memory import PeakMemory
from dlrn.deep.runtime import torch_runtime
from dlrn.errors import DlrnError

TINY = DeepStageSettings(
    backbones=("resnet18",), weights=None, pca_components=None,
    train=TrainSettings(epochs=3, batch_size=8, threads=1, progress=False, device="cpu",
                        patience=None, augmentation=Augmentation.none()))
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def planted():
    return two_views_planted_crops()


@pytest.fixture(scope="module")
def train_ids(planted):
    return list(planted[1].index[:30])  # the last 3 patients are test cases


@pytest.fixture(scope="module")
def folds(planted, train_ids):
    return crossfit_folds(planted[1], train_ids, n_splits=3, seed=0)


@pytest.fixture(scope="module")
def lockstep(planted, folds, tmp_path_factory):
    cache, cases = planted
    return crossfit_deep(cases, folds, TINY, backbone="resnet18", cache=cache, lockstep=True,
                         out_dir=tmp_path_factory.mktemp("lockstep"))


def test_the_epoch_kept_has_the_best_pooled_out_of_fold_auc(lockstep):
    epochs = lockstep.epochs
    assert list(epochs["epoch"]) == [1, 2, 3] and (epochs["backbone"] == "resnet18").all()
    best = epochs.sort_values(["pooled_oof_auc", "pooled_oof_loss", "epoch"],
                              ascending=[False, True, True]).iloc[0]
    assert lockstep.epoch == best["epoch"]
    assert (lockstep.fold_table["best_epoch"] == best["epoch"]).all()
    # the AUC recorded for that epoch is the AUC of the cross-fitted scores kept
    assert lockstep.auc == best["pooled_oof_auc"]


def test_cross_fitted_rows_are_each_fold_cnns_predictions_at_that_epoch(lockstep, planted,
                                                                        folds):
    cache, _ = planted
    assert [path.name for path in lockstep.model_dirs] == ["fold1", "fold2", "fold3"]
    for fold, model_dir in enumerate(lockstep.model_dirs, start=1):
        held_out = list(folds.index[folds == fold])
        model, card = load_trained_model(model_dir)
        assert card["best_epoch"] == lockstep.epoch and card["n_val"] == 0
        scores = cnn_probabilities(model, "resnet18", cache, held_out,
                                   normalization=card["normalization"], device=CPU,
                                   batch_size=8)
        np.testing.assert_array_equal(scores, lockstep.scores.loc[held_out].to_numpy())
        features = extract_deep_features(model, "resnet18", cache, held_out,
                                         normalization=card["normalization"], batch_size=8)
        np.testing.assert_array_equal(features, lockstep.features.loc[held_out])
        history = pd.read_csv(model_dir / "history.csv")
        assert list(history["epoch"]) == [1, 2, 3]
        assert history["pooled_oof_auc"].tolist() == lockstep.epochs["pooled_oof_auc"].tolist()


def test_no_fold_cnn_trained_on_the_cases_it_scores(lockstep, planted, folds):
    """Fold 1's CNN at the kept epoch is, bit for bit, a CNN trained alone on the other
    folds' cases (the held-out cases' labels and crops not even given to it)."""
    cache, cases = planted
    for fold, trained_on in lockstep.trained_on.items():
        held_out = set(folds.index[folds == fold])
        assert not held_out & set(trained_on)
        assert set(trained_on) | held_out == set(folds.index)
    assert (lockstep.fold_table["n_val"] == 0).all()
    fit_ids = list(folds.index[folds != 1])
    with torch_runtime(TINY.train, CPU):
        alone = classifier_engine("resnet18", cache, cases.loc[fit_ids], fit_ids, TINY.train,
                                  weights=None, device=CPU, memory=PeakMemory.start(CPU))
        for _ in range(lockstep.epoch):
            alone.run_epoch()
            # its random state moves as in lockstep
            alone.apply(lambda model: alone.task.logits(model, cache.positions(fit_ids[:3])))
    fold1, _ = load_trained_model(lockstep.model_dirs[0])
    for key, value in alone.model.state_dict().items():
        assert torch.equal(value, fold1.state_dict()[key]), key


def test_final_cnn_fits_every_training_case_and_stops_at_the_epoch(planted, train_ids):
    """``stop_after``: no validation split; the same schedule as the full run, cut."""
    cache, cases = planted
    cut = train_backbone("resnet18", cache, cases, train_ids, weights=None,
                         settings=TINY.train, stop_after=2)
    full = train_backbone("resnet18", cache, cases, train_ids, weights=None,
                          settings=TINY.train, stop_after=3)
    assert cut.fit_ids == train_ids and cut.val_ids == [] and np.isnan(cut.best_val_auc)
    assert list(cut.history["epoch"]) == [1, 2] and cut.best_epoch == 2
    assert (cut.history["train_images"] == len(train_ids)).all()
    columns = ["train_loss", "lr"]
    pd.testing.assert_frame_equal(cut.history[columns], full.history[columns].iloc[:2],
                                  check_exact=True)
    assert full.history["lr"].iloc[-1] < full.history["lr"].iloc[1]  # the decay goes on
    with pytest.raises(DlrnError, match="stop_after 4"):
        train_backbone("resnet18", cache, cases, train_ids, weights=None,
                       settings=TINY.train, stop_after=4)


def test_an_interrupted_lockstep_resumes_to_the_same_result(planted, folds, lockstep,
                                                            tmp_path, monkeypatch):
    cache, cases = planted
    real_epoch, calls = engine_module._train_epoch, []

    def crash_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # fold 2 of epoch 2
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(engine_module, "_train_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        crossfit_deep(cases, folds, TINY, backbone="resnet18", cache=cache, lockstep=True,
                      out_dir=tmp_path)
    monkeypatch.setattr(engine_module, "_train_epoch", real_epoch)
    with pytest.raises(DlrnError, match="--resume"):
        crossfit_deep(cases, folds, TINY, backbone="resnet18", cache=cache, lockstep=True,
                      out_dir=tmp_path)
    resumed = crossfit_deep(cases, folds, TINY, backbone="resnet18", cache=cache,
                            lockstep=True, out_dir=tmp_path, resume=True)
    columns = ["epoch", "pooled_oof_auc", "pooled_oof_loss"]
    pd.testing.assert_frame_equal(resumed.epochs[columns], lockstep.epochs[columns])
    pd.testing.assert_series_equal(resumed.scores, lockstep.scores)


def test_patience_counts_epochs_without_a_better_pooled_auc(planted, folds, monkeypatch):
    import dlrn.deep.classifier.lockstep as lockstep_module

    cache, cases = planted
    real_epoch, planned = lockstep_module._lockstep_epoch, iter([0.6, 0.7, 0.65, 0.9])

    def planned_auc(*args):
        return {**real_epoch(*args), "pooled_oof_auc": next(planned)}

    monkeypatch.setattr(lockstep_module, "_lockstep_epoch", planned_auc)
    settings = replace(TINY, train=replace(TINY.train, epochs=4, patience=1))
    result = crossfit_deep(cases, folds, settings, backbone="resnet18", cache=cache,
                           lockstep=True)
    assert result.epochs["pooled_oof_auc"].tolist() == [0.6, 0.7, 0.65]  # 0.9 never run
    assert result.epoch == 2


def test_fold_cnns_in_lockstep_train_as_each_would_alone_dropout_included(planted, folds,
                                                                          monkeypatch):
    """Each trainer keeps its own random state: MobileNetV3's dropout draws of fold 1 do
    not depend on the other folds' epochs run in between."""
    import dlrn.deep.classifier.lockstep as lockstep_module

    cache, cases = planted
    real_epoch, planned = lockstep_module._lockstep_epoch, iter([0.6, 0.7])
    monkeypatch.setattr(lockstep_module, "_lockstep_epoch",  # keep epoch 2, the last
                        lambda *args: {**real_epoch(*args), "pooled_oof_auc": next(planned)})
    settings = replace(TINY.train, epochs=2)
    run = lockstep_module.train_folds_lockstep("mobilenet_v3_small", cache,
                                               cases.loc[folds.index], folds, settings,
                                               weights=None)
    assert run.best_epoch == 2
    fit_ids = list(folds.index[folds != 1])
    with torch_runtime(settings, CPU):
        alone = classifier_engine("mobilenet_v3_small", cache, cases.loc[fit_ids], fit_ids,
                                  settings, weights=None, device=CPU,
                                  memory=PeakMemory.start(CPU))
        for _ in range(2):
            alone.run_epoch()
            alone.apply(lambda model: alone.task.logits(model, cache.positions(fit_ids[:3])))
    fold1 = run.models[1].model.state_dict()
    for key, value in alone.model.state_dict().items():
        assert torch.equal(value, fold1[key]), key
