"""Backbones with a one-logit head, their weights files, and deep feature shapes."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from deep_cohort import one_torch_thread  # noqa: F401 (autouse fixture)
from torch import nn

from dlrn.deep.classifier.features import extract_deep_features
from dlrn.deep.classifier.train import save_checkpoint
from dlrn.deep.data import CropCache, CropSettings
from dlrn.deep.networks import build_model, feature_map, gradcam_target_layer
from dlrn.errors import DlrnError

STUDY_SHAPES = {"densenet121": (1024, 2), "vgg19": (512, 2), "resnet50": (2048, 2)}


@pytest.fixture(scope="module", params=sorted(STUDY_SHAPES))
def study_model(request):
    """Each study backbone, randomly initialised, built once for this module."""
    torch.manual_seed(0)
    return request.param, build_model(request.param, weights=None).eval()


def test_study_backbones_have_a_binary_head_and_documented_features(study_model):
    name, model = study_model
    size = 64
    rng = np.random.default_rng(0)
    cache = CropCache(rng.integers(0, 256, (3, 1, size, size), dtype=np.uint8),
                      ["a", "b", "c"], CropSettings(image_size=size))
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 1)
    channels, side = STUDY_SHAPES[name]  # 224 px gives side 7: DenseNet121 1024 x 7 x 7
    pooled = extract_deep_features(model, name, cache, normalization="zscore")
    assert pooled.shape == (3, channels) and pooled.index.name == "case_id"
    assert list(pooled.columns[:2]) == [f"DL_{name}_0", f"DL_{name}_1"]
    flat = extract_deep_features(model, name, cache, ["c", "a"], normalization="zscore",
                                 mode="map", batch_size=2)
    assert flat.shape == (2, channels * side * side) and list(flat.index) == ["c", "a"]
    # the pooled value is the mean of the map over its positions
    np.testing.assert_allclose(
        flat.loc["a"].to_numpy().reshape(channels, -1).mean(axis=1), pooled.loc["a"],
        rtol=1e-4, atol=1e-5)


# the parameter-free steps from the Grad-CAM target layer to the map deep features pool ...
TO_FEATURE_MAP = {
    "resnet50": lambda maps: maps,
    "densenet121": torch.relu,
    "vgg19": lambda maps: nn.functional.max_pool2d(maps, 2),
}
# ... and from that map to the logit, as each torchvision forward does it
TO_LOGIT = {
    "resnet50": lambda model, maps: model.fc(maps.mean(dim=(2, 3))),
    "densenet121": lambda model, maps: model.classifier(maps.mean(dim=(2, 3))),
    "vgg19": lambda model, maps: model.classifier(torch.flatten(model.avgpool(maps), 1)),
}


def test_gradcam_reads_the_last_convolutional_block(study_model):
    """The target layer runs after the last convolution; only parameter-free steps (ReLU,
    VGG's last max-pool) lie between it and the map that is pooled into the head."""
    name, model = study_model
    target = gradcam_target_layer(model, name)
    finished, activations = [], []

    def record(module, inputs, output):
        finished.append(module)
        if module is target:  # DenseNet's forward applies an in-place ReLU next
            activations.append(output.detach().clone())

    hooks = [module.register_forward_hook(record) for module in model.modules()
             if isinstance(module, nn.Conv2d) or module is target]
    images = torch.randn(2, 3, 64, 64)
    try:
        with torch.no_grad():
            logits = model(images)
    finally:
        for hook in hooks:
            hook.remove()
    assert finished.count(target) == 1 and not isinstance(target, nn.Conv2d)
    last_conv = max(i for i, module in enumerate(finished) if isinstance(module, nn.Conv2d))
    assert finished.index(target) > last_conv
    with torch.no_grad():
        maps = TO_FEATURE_MAP[name](activations[0])
        torch.testing.assert_close(maps, feature_map(model, name, images))
        torch.testing.assert_close(TO_LOGIT[name](model, maps), logits)


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(DlrnError, match=r"unknown backbone 'densenet999'.*densenet121"):
        build_model("densenet999", weights=None)


def test_fine_tuned_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", weights=None).eval()
    path = save_checkpoint(model, tmp_path / "best.safetensors")
    again = build_model("resnet18", weights=path).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), again(images))


def test_imagenet_state_dict_file_loads_without_its_1000_class_head(tmp_path):
    imagenet = torchvision.models.resnet18(weights=None)
    torch.save(imagenet.state_dict(), tmp_path / "resnet18-imagenet.pth")
    model = build_model("resnet18", weights=tmp_path / "resnet18-imagenet.pth")
    torch.testing.assert_close(model.conv1.weight, imagenet.conv1.weight)
    assert model.fc.out_features == 1


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    (b"not a checkpoint at all", "could not be read"),
    ("resnet34", "does not match backbone resnet18"),
])
def test_bad_weights_files_are_explained(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content:
        torch.save(torchvision.models.get_model(content, weights=None).state_dict(), path)
    with pytest.raises(DlrnError, match=message):
        build_model("resnet18", weights=path)


def test_imagenet_without_internet_says_how_to_use_a_local_file(monkeypatch):
    def offline(name, weights=None):
        if weights is not None:
            raise urllib.error.URLError("no route to host")
        return torchvision.models.resnet18()

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(DlrnError, match=r"--weights FILE.*--weights none"):
        build_model("resnet18", weights="imagenet")
