"""The networks: torchvision classifier backbones with a one-logit head, their weights
and the layers we read, and the segmentation U-Net (MONAI's).

Knows nothing about files of images or training: it builds networks, loads weights and
says which layer holds the last feature map (for deep features and Grad-CAM).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dlrn.errors import DlrnError

STUDY_BACKBONES = ("densenet121", "vgg19", "resnet50")
_RESNET_FAMILIES = ("resnet", "resnext", "wide_resnet")
_FEATURES_FAMILIES = ("densenet", "vgg", "efficientnet", "mobilenet", "convnext")


def available_backbones() -> list[str]:
    """torchvision classification models dlrn can fine-tune and read features from."""
    import torchvision

    return [name for name in torchvision.models.list_models(module=torchvision.models)
            if name.startswith(_RESNET_FAMILIES + _FEATURES_FAMILIES)]


def _check_name(name: str) -> None:
    if name not in available_backbones():
        raise DlrnError(
            f"unknown backbone {name!r}; use one of: {', '.join(available_backbones())}"
        )


def _replace_head(model: nn.Module, name: str) -> None:
    """Swap the ImageNet classifier for a single logit (positive class)."""
    if name.startswith(_RESNET_FAMILIES):
        model.fc = nn.Linear(model.fc.in_features, 1)
        return
    head = model.classifier
    if isinstance(head, nn.Linear):
        model.classifier = nn.Linear(head.in_features, 1)
        return
    last = max(i for i, layer in enumerate(head) if isinstance(layer, nn.Linear))
    head[last] = nn.Linear(head[last].in_features, 1)


def _head_prefix(name: str) -> str:
    return "fc." if name.startswith(_RESNET_FAMILIES) else "classifier."


def _imagenet_model(name: str) -> nn.Module:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise DlrnError(
            f"could not get the ImageNet weights for {name} ({weights.url}): {error}. "
            f"Without internet, download that file on another machine and either put it in "
            f"{cache} or pass it with --weights FILE (weights=FILE); --weights none trains "
            f"from random initialisation."
        ) from error


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or .pt/.pth (tensors only: no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise DlrnError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise DlrnError(
            f"weights file {path} could not be read ({type(error).__name__}: {error}); "
            f"it should be a PyTorch state dict (.pt/.pth) or a .safetensors file"
        ) from error
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DlrnError(f"weights file {path} does not hold a state dict of tensors")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _load_file(model: nn.Module, name: str, path: str | Path) -> None:
    """Load backbone weights from a file; an ImageNet head (1000 classes) is dropped."""
    state = read_state_dict(path)
    own = model.state_dict()
    head = _head_prefix(name)
    state = {k: v for k, v in state.items()
             if not (k.startswith(head) and k in own and own[k].shape != v.shape)}
    missing = [k for k in own if k not in state and not k.startswith(head)]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        problems = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected),
                                ("wrong shape", wrong)) if keys
        )
        raise DlrnError(f"weights file {path} does not match backbone {name} ({problems})")
    model.load_state_dict(state, strict=False)


def build_model(name: str, *, weights: str | Path | None = "imagenet") -> nn.Module:
    """A torchvision backbone with a one-logit binary head.

    ``weights``: ``"imagenet"`` (torchvision's weights API, cached by torch),
    a local ``.pt``/``.pth``/``.safetensors`` file (ImageNet or fine-tuned), or
    ``None``/``"none"`` for random initialisation.
    """
    import torchvision

    _check_name(name)
    if weights == "imagenet":
        model = _imagenet_model(name)
    else:
        model = torchvision.models.get_model(name, weights=None)
    _replace_head(model, name)
    if weights not in (None, "none", "imagenet"):
        _load_file(model, name, weights)
    return model


def feature_map(model: nn.Module, name: str, images: torch.Tensor) -> torch.Tensor:
    """The last convolutional feature map (e.g. DenseNet121: N x 1024 x 7 x 7 at 224 px)."""
    if name.startswith(_RESNET_FAMILIES):
        x = model.maxpool(model.relu(model.bn1(model.conv1(images))))
        return model.layer4(model.layer3(model.layer2(model.layer1(x))))
    maps = model.features(images)
    return torch.relu(maps) if name.startswith("densenet") else maps


def gradcam_target_layer(model: nn.Module, name: str) -> nn.Module:
    """Where Grad-CAM reads activations: the last layer of the last feature block.

    ResNet: ``layer4[-1]``; DenseNet: ``features[-1]`` (the final norm of the last
    dense block); VGG: the last ReLU before the final max-pool (``features[-2]``,
    14 x 14 at 224 px, sharper than the pooled 7 x 7).
    """
    if name.startswith(_RESNET_FAMILIES):
        return model.layer4[-1]
    if name.startswith("vgg"):
        return model.features[-2]
    return model.features[-1]


def build_unet(channels: tuple[int, ...] = (16, 32, 64, 128, 256), *,
               dropout: float = 0.0) -> nn.Module:
    """MONAI's 2D U-Net for lesion segmentation: one grey channel in, one mask logit out.

    ``channels``: feature channels per level (each level halves the resolution: an
    input side must divide by ``2 ** (len(channels) - 1)``); two residual units per
    block. Random initialisation (seed torch first for repeatable weights).
    """
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=channels,
                strides=(2,) * (len(channels) - 1), num_res_units=2, dropout=dropout)
