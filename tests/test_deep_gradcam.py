"""Grad-CAM on hand-built networks whose right answer is known: a bright-blob detector.

Why not a trained network: a randomly initialised torchvision backbone trained for a
few seconds on a planted lesion separates the classes perfectly (validation AUC 1.0)
yet its Grad-CAM maps do not reliably sit on the lesion. Measured for ResNet18 on 64
crops of 64-96 px (three lesion designs: striped vs. salt-and-pepper, striped vs. none,
bright vs. none; lesion 1/4-1/3 of the side; 5 or 15 epochs; 3-4 seeds each; 3-11 s
per run): the map's mean on the lesion beat its overall mean in 0-88 % of the positive
cases and its maximum fell on the lesion in 0-28 %, more epochs and a larger, brighter
lesion did not help. The last feature map is 2 x 2 to 3 x 3 and every cell sees the
whole crop, so nothing forces a briefly trained network to keep the evidence where the
lesion is: such a test would check the network, not dlrn, and could not be made
reliable. These tests check dlrn's part, which must be exactly right: the layer read
(the same ``gradcam_target_layer`` rule as for the real backbones, whose choice of layer
``test_deep_nets.py`` checks), the class explained, the upsampling to the crop's size
and the orientation of map and overlay. The networks below are shaped like ResNet, VGG
and DenseNet at the layers dlrn uses; their weights are set by hand so that one channel
fires on a bright blob (positive evidence) and one on the background (negative
evidence). A transposed, flipped or wrongly sized map, or the wrong class, moves the
map off the blob and fails these tests (checked by breaking each on purpose).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from deep_cohort import one_torch_thread  # noqa: F401 (autouse fixture)
from torch import nn

import dlrn.deep.classifier.gradcam as gradcam_module
from dlrn.deep.classifier.gradcam import gradcam_maps, gradcam_overlays, known_label, overlay_image
from dlrn.deep.data import CropCache, CropSettings

BLOB = 12
BACKGROUND, BRIGHT = 100, 250


def blob_detector() -> nn.Conv2d:
    """Stride 4 like a backbone's downsampling; channel 0: bright blob, channel 1: background.

    On z-scored crops the blob is ~5 SD above the mean and the background slightly
    below it: channel 0 = (5 x 5 mean) - 1 fires on the blob only, channel 1 = -(5 x 5
    mean) on the background only.
    """
    conv = nn.Conv2d(3, 2, kernel_size=5, stride=4, padding=2)
    with torch.no_grad():
        conv.weight[0], conv.weight[1] = 1 / 75, -1 / 75
        conv.bias.copy_(torch.tensor([-1.0, 0.0]))
    return conv


def evidence_head() -> nn.Linear:
    """The blob is evidence for the positive class, the background against it."""
    head = nn.Linear(2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, -1.0]]))
        head.bias.zero_()
    return head


class ResNetShaped(nn.Module):
    """Like torchvision's ResNet where dlrn looks: ``layer4[-1]``, average pool, ``fc``."""

    def __init__(self) -> None:
        super().__init__()
        self.layer4 = nn.Sequential(nn.Sequential(blob_detector(), nn.ReLU()))
        self.fc = evidence_head()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer4(images).mean(dim=(2, 3)))


class VggShaped(nn.Module):
    """Like VGG: ``features`` ends in conv, ReLU, max-pool; Grad-CAM reads the ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(blob_detector(), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = evidence_head()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images).mean(dim=(2, 3)))


class DenseNetShaped(nn.Module):
    """Like DenseNet: ``features`` ends in a norm; ReLU and pooling follow in ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(blob_detector(), nn.BatchNorm2d(2))
        self.classifier = evidence_head()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.relu(self.features(images)).mean(dim=(2, 3)))


SHAPED = [(ResNetShaped, "resnet50"), (VggShaped, "vgg19"), (DenseNetShaped, "densenet121")]
# (crop height, width), blob corners (top, left): off-centre and off-diagonal, so that a
# transposed or flipped map lands elsewhere; a non-square crop catches swapped axes
LAYOUTS = {
    "square": ((64, 64), [(4, 44), (44, 8), (26, 22), (48, 48)]),
    "wide": ((40, 96), [(4, 76), (24, 6), (14, 40)]),
    "tall": ((96, 40), [(78, 2), (6, 24)]),
}


def blob_crops(shape: tuple[int, int], corners: list[tuple[int, int]]) -> CropCache:
    crops = np.full((len(corners), 1, *shape), BACKGROUND, dtype=np.uint8)
    for crop, (top, left) in zip(crops, corners, strict=True):
        crop[0, top : top + BLOB, left : left + BLOB] = BRIGHT
    ids = [f"blob{i}" for i in range(len(corners))]
    return CropCache(crops, ids, CropSettings(image_size=max(shape)))


def blob_box(heatmap: np.ndarray, top: int, left: int, grow: int = 0) -> np.ndarray:
    return heatmap[max(top - grow, 0) : top + BLOB + grow, max(left - grow, 0) : left + BLOB + grow]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(("network", "backbone"), SHAPED)
def test_gradcam_map_lies_on_the_planted_blob(network, backbone, layout):
    shape, corners = LAYOUTS[layout]
    cache = blob_crops(shape, corners)
    torch.manual_seed(0)
    maps = gradcam_maps(network(), backbone, cache, cache.case_ids, normalization="zscore")
    assert maps.shape == (len(corners), *shape)
    for heatmap, (top, left) in zip(maps, corners, strict=True):
        row, col = np.unravel_index(heatmap.argmax(), shape)
        assert top <= row < top + BLOB and left <= col < left + BLOB, (top, left, row, col)
        # all the map's mass within one backbone cell (4 px) of the blob
        assert blob_box(heatmap, top, left, grow=4).sum() >= 0.95 * heatmap.sum()


@pytest.mark.parametrize(("network", "backbone"), SHAPED)
def test_gradcam_for_the_negative_class_shows_the_background(network, backbone):
    shape, corners = LAYOUTS["wide"]
    cache = blob_crops(shape, corners)
    maps = gradcam_maps(network(), backbone, cache, cache.case_ids, normalization="zscore",
                        positive=[False] * len(corners))
    for heatmap, (top, left) in zip(maps, corners, strict=True):
        interior = heatmap[top + 4 : top + BLOB - 4, left + 4 : left + BLOB - 4]
        assert interior.max() < 0.05  # its edge shares backbone cells with the background
        assert blob_box(heatmap, top, left).mean() < 0.15 * heatmap.mean()
        row, col = np.unravel_index(heatmap.argmax(), shape)
        assert not (top - 4 <= row < top + BLOB + 4 and left - 4 <= col < left + BLOB + 4)


def test_overlay_is_hot_on_the_blob_and_cold_elsewhere_in_the_same_orientation():
    shape, corners = LAYOUTS["wide"]
    cache = blob_crops(shape, corners[:1])
    heatmap = gradcam_maps(ResNetShaped(), "resnet50", cache, cache.case_ids,
                           normalization="zscore")[0]
    overlay = overlay_image(cache.crops[0, 0], heatmap).astype(int)
    assert overlay.shape == (*shape, 3)
    top, left = corners[0]
    red, blue = overlay[..., 0], overlay[..., 2]
    centre = (top + BLOB // 2, left + BLOB // 2)
    assert red[centre] > blue[centre] + 50  # jet colour map: hot = red
    far = (shape[0] - 1, 0)  # the opposite corner of the crop
    assert blue[far] > red[far] + 50


def test_case_without_a_known_label_is_titled_label_unknown(tmp_path, monkeypatch):
    shape, corners = LAYOUTS["square"]
    cache = blob_crops(shape, corners[:3])
    predictions = pd.DataFrame({"label": [-1, np.nan, 1], "DL-resnet50": [0.8, 0.3, 0.6]},
                               index=cache.case_ids)
    titles = []

    def record(crop, heatmap, path, title):
        titles.append(title)
        return path

    monkeypatch.setattr(gradcam_module, "save_overlay", record)
    table = gradcam_overlays(ResNetShaped(), "resnet50", cache, predictions, tmp_path,
                             normalization="zscore", cases=cache.case_ids)
    assert [title.split(": ")[1].split(",")[0] for title in titles] == [
        "label unknown", "label unknown", "label 1"]
    assert table["label"].isna().tolist() == [True, True, False]
    assert [known_label(value) for value in (0, 1.0, "1", -1, None, "x", 2)] == [
        0, 1, 1, None, None, None, None]
