"""The segmentation model's settings, and its files: safetensors + JSON, checksummed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from segmentation_cases import lesion_cases

from dlrn.errors import DlrnError
from dlrn.imaging import read_image
from dlrn.segmentation import SegmentationModel, SegmentationSettings
from dlrn.segmentation.model import CARD_FILE, WEIGHTS_FILE, build_network

SMALL = SegmentationSettings(image_size=32, channels=(4, 8, 16), epochs=1, batch_size=4)


@pytest.mark.parametrize(("change", "message"), [
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"batch_size": 1}, "batch_size must be >= 2"),
    ({"optimizer": "adam"}, "optimizer 'adam'"),
    ({"image_size": 40}, "multiple of 16"),
    ({"channels": (8,)}, "channels must be 2 or more"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"threshold": 0.0}, "threshold"),
    ({"scale_shift": 0.6}, "scale_shift"),
    ({"precision": "fp64"}, "precision 'fp64'"),
    ({"patience": 0}, "patience"),
])
def test_settings_are_checked(change, message):
    with pytest.raises(DlrnError, match=message):
        SegmentationSettings(**change)


def test_settings_round_trip_as_json():
    settings = SegmentationSettings(channels=[8, 16, 32], threshold=0.4)
    assert settings.channels == (8, 16, 32)
    values = json.loads(json.dumps(settings.to_dict()))
    assert SegmentationSettings.from_dict(values) == settings
    with pytest.raises(DlrnError, match=r"unknown setting.*colour"):
        SegmentationSettings.from_dict({**values, "colour": 1})


def _model() -> SegmentationModel:
    torch.manual_seed(0)
    return SegmentationModel(build_network(SMALL).eval(), SMALL, epochs_trained=2,
                             best_epoch=1)


def test_save_and_load_give_the_same_predictions(tmp_path):
    cases = lesion_cases(tmp_path / "cases", 2, nifti_every=2)
    model = _model()
    written = model.save(tmp_path / "model")
    assert [path.name for path in written] == [WEIGHTS_FILE, CARD_FILE]
    card = json.loads((tmp_path / "model" / CARD_FILE).read_text())
    assert card["image_size"] == 32 and card["channels"] == [4, 8, 16]
    assert card["threshold"] == 0.5 and card["best_epoch"] == 1
    assert {"torch", "monai"} <= set(card["versions"]) and "z-scored" in card["normalisation"]
    assert len(card["weights"]["sha256"]) == 64
    loaded = SegmentationModel.load(tmp_path / "model")
    assert loaded.settings == SMALL and loaded.epochs_trained == 2
    for path in cases["image"]:
        image = read_image(path)
        assert np.array_equal(loaded.probabilities(image), model.probabilities(image))
    assert not list((tmp_path / "model").glob("*.pt")) and not list(
        (tmp_path / "model").glob("*.pkl"))


def test_a_changed_weights_file_is_refused_by_name(tmp_path):
    _model().save(tmp_path / "model")
    weights = tmp_path / "model" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DlrnError, match=f"{WEIGHTS_FILE} does not match its checksum"):
        SegmentationModel.load(tmp_path / "model")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DlrnError, match=CARD_FILE):
        SegmentationModel.load(tmp_path)
