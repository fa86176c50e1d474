"""The training loop on a planted signal: learning, selection, checkpoints, resume, errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torchvision
from deep_cohort import one_torch_thread, planted_crops  # noqa: F401 (autouse fixture)
from sklearn.metrics import roc_auc_score

import dlrn.deep.engine as engine_module
from dlrn.deep.classifier.calibration import PlattScaling, fit_platt
from dlrn.deep.classifier.gradcam import confident_cases, gradcam_maps, gradcam_overlays
from dlrn.deep.classifier.scores import cnn_probabilities
from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.train import load_trained_model, train_backbone
from dlrn.deep.engine import warmup_cosine
from dlrn.deep.inference import batched_outputs
from dlrn.deep.networks import build_model
from dlrn.errors import DlrnError

FAST = TrainSettings(epochs=5, batch_size=8, val_fraction=0.25, threads=1, progress=False,
                     patience=None)


@pytest.fixture(scope="module")
def planted():
    return planted_crops(n_cases=64, size=96)


@pytest.fixture(scope="module")
def trained(planted, tmp_path_factory):
    cache, cases, _ = planted
    out = tmp_path_factory.mktemp("model") / "resnet18"
    return train_backbone("resnet18", cache, cases, list(cases.index), weights=None,
                          settings=FAST, out_dir=out)


def test_loss_goes_down_and_the_planted_signal_is_learned(trained):
    history = trained.history
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert history["train_loss"].iloc[-1] < 0.5 * history["train_loss"].iloc[0]
    assert trained.best_val_auc >= 0.9
    assert trained.best_val_auc == history["val_auc"].max()


def test_training_cost_is_recorded(trained):
    history = trained.history
    assert (history["train_images"] == len(trained.fit_ids)).all()
    assert trained.images_per_s == pytest.approx(
        5 * len(trained.fit_ids) / history["train_seconds"].sum())
    assert trained.train_time_s == pytest.approx(history["seconds"].sum())
    assert history["train_seconds"].lt(history["seconds"]).all()
    if sys.platform.startswith("linux"):
        # weights, gradients and AdamW's two moments alone are 4x the parameters
        parameters_mib = sum(p.numel() * 4 for p in trained.model.parameters()) / 2**20
        assert 3 * parameters_mib < trained.peak_memory_mib < 4096
    card = json.loads((trained.out_dir / "model.json").read_text())
    assert card["images_per_s"] == pytest.approx(trained.images_per_s)
    assert card["device"] == "cpu"


def test_validation_cases_come_from_training_cases_only(planted):
    cache, cases, _ = planted
    train_ids = list(cases.index[:32])
    settings = TrainSettings(epochs=1, batch_size=8, val_fraction=0.25, threads=1,
                             progress=False)
    result = train_backbone("resnet18", cache, cases, train_ids, weights=None,
                            settings=settings)
    assert set(result.val_ids) | set(result.fit_ids) == set(train_ids)
    assert not set(result.val_ids) & set(result.fit_ids)


def test_best_checkpoint_and_model_card_reload_the_same_model(trained):
    model, card = load_trained_model(trained.out_dir)
    assert card["backbone"] == "resnet18" and card["best_epoch"] == trained.best_epoch
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(images), trained.model(images))


def test_probabilities_are_platt_scaled_on_the_validation_cases(trained, planted):
    """The map is fitted on the best epoch's logits of the validation cases (which the
    CNN did not train on), written to the model card, and turns logits into the
    probabilities the stage reports."""
    cache, cases, _ = planted
    options = {"normalization": trained.normalization, "device": torch.device("cpu")}
    logits = batched_outputs(trained.model, lambda images: trained.model(images).squeeze(1),
                             cache, cache.positions(trained.val_ids), backbone="resnet18",
                             **options)
    expected = fit_platt(logits, cases.loc[trained.val_ids, "label"].to_numpy())
    assert trained.calibration == pytest.approx(expected)
    assert trained.calibration.n_cases == len(trained.val_ids)
    card = json.loads((trained.out_dir / "model.json").read_text())
    assert PlattScaling.from_dict(card["calibration"]) == trained.calibration
    probabilities = cnn_probabilities(trained.model, "resnet18", cache, trained.val_ids,
                                      calibration=trained.calibration, **options)
    np.testing.assert_allclose(probabilities, trained.calibration.probabilities(logits))
    raw = cnn_probabilities(trained.model, "resnet18", cache, trained.val_ids, **options)
    assert not np.allclose(probabilities, raw)
    labels = cases.loc[trained.val_ids, "label"]
    assert roc_auc_score(labels, probabilities) == pytest.approx(roc_auc_score(labels, logits))


def test_no_validation_split_no_calibration(planted):
    cache, cases, _ = planted
    settings = TrainSettings(epochs=2, batch_size=8, threads=1, progress=False)
    result = train_backbone("resnet18", cache, cases, list(cases.index[:16]), weights=None,
                            settings=settings, stop_after=1)
    assert result.val_ids == [] and result.calibration is None


def test_existing_model_is_not_overwritten_silently(trained, planted):
    cache, cases, _ = planted
    with pytest.raises(DlrnError, match=r"--resume.*--overwrite"):
        train_backbone("resnet18", cache, cases, list(cases.index), weights=None,
                       settings=FAST, out_dir=trained.out_dir)


def test_interrupted_run_resumes_to_the_same_result(planted, tmp_path, monkeypatch):
    cache, cases, _ = planted
    ids = list(cases.index[:32])
    settings = TrainSettings(epochs=2, batch_size=8, val_fraction=0.25, threads=1,
                             progress=False, patience=None)
    straight = train_backbone("resnet18", cache, cases, ids, weights=None, settings=settings)
    real_epoch, calls = engine_module._train_epoch, []

    def crash_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(engine_module, "_train_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_backbone("resnet18", cache, cases, ids, weights=None, settings=settings,
                       out_dir=tmp_path / "run")
    monkeypatch.setattr(engine_module, "_train_epoch", real_epoch)
    resumed = train_backbone("resnet18", cache, cases, ids, weights=None, settings=settings,
                             out_dir=tmp_path / "run", resume=True)
    columns = ["epoch", "train_loss", "val_loss", "val_auc"]
    np.testing.assert_allclose(resumed.history[columns], straight.history[columns], rtol=1e-5)


@pytest.mark.parametrize(("every_s", "writes"), [(0.0, [1, 2, 3]), (3600.0, [1, 3])])
def test_resume_state_is_written_on_the_clock_and_after_the_last_epoch(
        planted, tmp_path, monkeypatch, every_s, writes):
    cache, cases, _ = planted
    settings = TrainSettings(epochs=3, batch_size=8, val_fraction=0.25, threads=1,
                             progress=False, patience=None, checkpoint_every_s=every_s)
    real_save, epochs_written = torch.save, []

    def recording_save(state, path, *args, **kwargs):
        epochs_written.append(state["epoch"])
        return real_save(state, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", recording_save)
    result = train_backbone("resnet18", cache, cases, list(cases.index[:32]), weights=None,
                            settings=settings, out_dir=tmp_path / "run")
    assert epochs_written == writes
    reloaded, _ = load_trained_model(tmp_path / "run")  # best weights written at the end
    for name, value in result.model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name


@pytest.mark.parametrize("every_s", [-1.0, float("nan")])
def test_a_negative_checkpoint_interval_is_refused(every_s):
    with pytest.raises(DlrnError, match="checkpoint_every_s"):
        TrainSettings(checkpoint_every_s=every_s)


def test_cuda_out_of_memory_suggests_a_smaller_batch(planted, monkeypatch):
    cache, cases, _ = planted

    def out_of_memory(self, images):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torchvision.models.ResNet, "forward", out_of_memory)
    with pytest.raises(DlrnError, match=r"out of memory.*batch size 8.*--batch-size 4"):
        train_backbone("resnet18", cache, cases, list(cases.index), weights=None,
                       settings=FAST)


def test_unavailable_device_is_explained(planted):
    cache, cases, _ = planted
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(DlrnError, match="device 'cuda' is not available"):
        train_backbone("resnet18", cache, cases, list(cases.index), weights=None,
                       settings=TrainSettings(device="cuda", progress=False))


def test_warmup_then_cosine_decay():
    factor = warmup_cosine(total_steps=10, warmup_steps=2)
    assert [round(factor(step), 3) for step in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]


def test_gradcam_maps_have_the_crop_size_and_range(trained, planted):
    cache, cases, _ = planted
    maps = gradcam_maps(trained.model, "resnet18", cache, list(cases.index[:6]),
                        normalization=trained.normalization,
                        positive=cases["label"].to_numpy()[:6] == 1)
    assert maps.shape == (6, 96, 96)
    assert maps.min() >= 0 and maps.max() <= 1


def test_gradcam_overlays_for_the_confident_categories(trained, planted, tmp_path):
    import pandas as pd
    from PIL import Image

    cache, cases, _ = planted
    predictions = pd.DataFrame({"label": cases["label"], "set": "test",
                                "DL-resnet18": np.where(cases["label"] == 1, 0.9, 0.2)})
    predictions.iloc[0, 2] = 0.95  # one false positive; no false negative
    assert confident_cases(predictions, "DL-resnet18", 0.5)["FN"] is None
    table = gradcam_overlays(trained.model, "resnet18", cache, predictions, tmp_path,
                             normalization=trained.normalization)
    assert table.set_index("category").loc["FN", "note"] == "no test case in this category"
    assert table.set_index("category").loc["FP", "case_id"] == predictions.index[0]
    written = table["path"].dropna()
    assert len(written) == 3
    assert Image.open(written.iloc[0]).size[0] > 1000  # 300 dpi figure


def test_class_weighting_and_sgd_run(planted):
    cache, cases, _ = planted
    settings = TrainSettings(epochs=1, batch_size=8, val_fraction=0.25, threads=1,
                             progress=False, optimizer="sgd", class_weighted=True)
    result = train_backbone("resnet18", cache, cases, list(cases.index[:16]), weights=None,
                            settings=settings)
    assert np.isfinite(result.history["train_loss"]).all()
    assert isinstance(build_model("resnet18", weights=None), torch.nn.Module)
