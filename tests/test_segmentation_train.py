"""Training the U-Net in the generic engine: a model comes out, a seed repeats it exactly,
the validation cases are other patients' and the saved model predicts as the trained one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from segmentation_cases import lesion_cases

from dlrn.errors import DlrnError
from dlrn.imaging import read_image
from dlrn.segmentation import (
    SegmentationModel,
    SegmentationResult,
    SegmentationSettings,
    train_segmentation,
)

TINY = SegmentationSettings(image_size=32, channels=(4, 8, 16), epochs=2, batch_size=4,
                            val_fraction=0.25, threads=1, progress=False, patience=None)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return lesion_cases(tmp_path_factory.mktemp("lesions"), 16, nifti_every=4)


def test_training_returns_a_model_and_its_history(cases, tmp_path):
    result = train_segmentation(cases, list(cases.index), TINY, out_dir=tmp_path / "model")
    assert isinstance(result, SegmentationResult)
    assert isinstance(result.model, SegmentationModel)
    assert len(result.history) == 2 and {"val_dice", "val_loss"} <= set(result.history)
    assert result.best_epoch in (1, 2) and result.model.best_epoch == result.best_epoch
    assert result.train_time_s > 0
    assert not set(result.fit_ids) & set(result.val_ids)
    assert sorted(result.fit_ids + result.val_ids) == sorted(cases.index)
    patients = cases["patient_id"]
    assert not set(patients[result.fit_ids]) & set(patients[result.val_ids])
    loaded = SegmentationModel.load(tmp_path / "model")
    image = read_image(cases["image"].iloc[0])
    assert np.array_equal(loaded.probabilities(image), result.model.probabilities(image))
    assert (tmp_path / "model" / "history.csv").is_file()


def test_the_same_seed_gives_identical_weights(cases):
    settings = replace(TINY, epochs=1)
    ids = list(cases.index)[:12]
    first = train_segmentation(cases, ids, settings).model.network.state_dict()
    second = train_segmentation(cases, ids, settings).model.network.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    other = train_segmentation(cases, ids, replace(settings, seed=1)).model.network
    assert not all(torch.equal(first[name], value)
                   for name, value in other.state_dict().items())


def test_resume_needs_the_run_folder(cases):
    with pytest.raises(DlrnError, match="resume needs the output folder"):
        train_segmentation(cases, list(cases.index), TINY, resume=True)


def test_cases_without_a_mask_are_refused(cases):
    broken = cases.copy()
    broken.loc["case001", "mask"] = None
    with pytest.raises(DlrnError, match="case001 has no mask"):
        train_segmentation(broken, list(broken.index), TINY)


def test_a_finished_run_resumes_to_the_same_model(cases, tmp_path):
    first = train_segmentation(cases, list(cases.index), TINY, out_dir=tmp_path / "run")
    assert (tmp_path / "run" / "resume.pt").is_file()
    again = train_segmentation(cases, list(cases.index), TINY, out_dir=tmp_path / "run",
                               resume=True)
    assert again.best_epoch == first.best_epoch
    assert again.history["val_dice"].tolist() == first.history["val_dice"].tolist()
    before, after = (result.model.network.state_dict() for result in (first, again))
    assert all(torch.equal(before[name], after[name]) for name in before)
    with pytest.raises(DlrnError, match="other settings"):
        train_segmentation(cases, list(cases.index), replace(TINY, image_size=48),
                           out_dir=tmp_path / "run", resume=True)
