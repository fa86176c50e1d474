"""A trained lesion-segmentation U-Net: predict a mask on an image's own grid, save, load.

Saved without pickle: ``unet.safetensors`` (the weights) and ``segmentation.json``
(settings, how images were normalised, epochs, versions and the sha256 of the weights
file, checked on load).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn

from dlrn.errors import DlrnError
from dlrn.segmentation.data import (
    CONTRAST_FLOOR,
    contrast,
    image_tensor,
    resized_pixels,
    to_image_grid,
)
from dlrn.segmentation.settings import NORMALISATION_RULE, SegmentationSettings

WEIGHTS_FILE = "unet.safetensors"
CARD_FILE = "segmentation.json"
FORMAT = "dlrn-segmentation-1"


class NoLesionFound(DlrnError):
    """The segmentation model found no lesion in an image (its thresholded mask is empty)."""


def no_lesion_message(name: str = "this image") -> str:
    return (f"no lesion was found in {name}: the segmentation model marked no pixel as "
            "lesion; draw the lesion's ROI on the image or give its mask file")


def no_contrast_message(name: str = "this image") -> str:
    return (f"no lesion was found in {name}: the image has no contrast (it is of one grey "
            "level), so it cannot show a lesion; check that the right file was given")


def build_network(settings: SegmentationSettings) -> nn.Module:
    """The 2D U-Net of ``settings`` (MONAI's UNet, 1 grey channel in, 1 logit out)."""
    from dlrn.deep.networks import build_unet

    return build_unet(settings.channels, dropout=settings.dropout)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a boolean mask, its holes filled (a lesion ROI
    is one solid region); an empty mask stays empty."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return labels > 0
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.binary_fill_holes(labels == (int(np.argmax(sizes)) + 1))


@dataclass
class SegmentationModel:
    """The U-Net (eval mode, CPU unless moved), its settings and what training gave.

    ``epochs_trained`` and ``best_epoch`` come from the training run; ``normalisation``
    says how an image becomes the net's input (:data:`NORMALISATION_RULE`).
    """

    network: nn.Module
    settings: SegmentationSettings
    epochs_trained: int = 0
    best_epoch: int = 0
    normalisation: str = NORMALISATION_RULE

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def probabilities(self, image: sitk.Image) -> np.ndarray:
        """Lesion probability of each pixel of ``image``, (rows, cols) float32."""
        inputs = image_tensor(image, self.settings.image_size)[None].to(self.device)
        self.network.eval()
        with torch.no_grad():
            logits = self.network(inputs)[0, 0].float().cpu()
        rows, cols = sitk.GetArrayViewFromImage(image).shape
        return to_image_grid(torch.sigmoid(logits), (rows, cols))

    def predict(self, image: sitk.Image, *, name: str = "this image") -> np.ndarray:
        """The lesion mask of ``image`` (as :func:`dlrn.imaging.read_image` returns it):
        boolean (rows, cols) on the image's grid, probabilities above ``threshold``, the
        largest connected region kept and its holes filled. :class:`NoLesionFound`
        (naming ``name``) when no pixel is above the threshold, or when the image has no
        contrast (one grey level: nothing a lesion could be told from)."""
        if contrast(resized_pixels(image, self.settings.image_size)) <= CONTRAST_FLOOR:
            raise NoLesionFound(no_contrast_message(name))
        mask = largest_component(self.probabilities(image) > self.settings.threshold)
        if not mask.any():
            raise NoLesionFound(no_lesion_message(name))
        return mask

    def card(self, weights_sha256: str) -> dict:
        """What ``segmentation.json`` holds."""
        import monai

        return {"format": FORMAT, "network": "monai.networks.nets.UNet (2D, 1 in, 1 out, "
                "2 residual units per level)", "settings": self.settings.to_dict(),
                "image_size": self.settings.image_size, "channels": list(self.settings.channels),
                "threshold": self.settings.threshold, "normalisation": self.normalisation,
                "epochs_trained": self.epochs_trained, "best_epoch": self.best_epoch,
                "versions": {"torch": torch.__version__, "monai": monai.__version__},
                "weights": {"file": WEIGHTS_FILE, "sha256": weights_sha256}}

    def save(self, folder: Path) -> list[Path]:
        """Write ``unet.safetensors`` and ``segmentation.json`` into ``folder``; their paths."""
        from safetensors.torch import save_file

        from dlrn.provenance import file_sha256

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / WEIGHTS_FILE
        state = {name: tensor.detach().cpu().contiguous()
                 for name, tensor in self.network.state_dict().items()}
        save_file(state, str(weights), metadata={"format": FORMAT})
        card = folder / CARD_FILE
        card.write_text(json.dumps(self.card(file_sha256(weights)), indent=2) + "\n")
        return [weights, card]

    @classmethod
    def load(cls, folder: Path, *, device: str | torch.device = "cpu") -> SegmentationModel:
        """The model saved in ``folder``; the weights file must match its recorded sha256."""
        from safetensors.torch import load_file

        from dlrn.provenance import file_sha256

        folder = Path(folder)
        card_path, weights = folder / CARD_FILE, folder / WEIGHTS_FILE
        for path in (card_path, weights):
            if not path.is_file():
                raise DlrnError(f"segmentation model: {path} is missing")
        try:
            card = json.loads(card_path.read_text())
        except json.JSONDecodeError as error:
            raise DlrnError(f"segmentation model: {card_path} is not valid JSON ({error})") \
                from error
        if card.get("format") != FORMAT:
            raise DlrnError(f"segmentation model: {card_path} is not a dlrn segmentation "
                            f"model card (format {card.get('format')!r}, expected {FORMAT!r})")
        expected, actual = card["weights"]["sha256"], file_sha256(weights)
        if actual != expected:
            raise DlrnError(f"segmentation model: {weights} does not match its checksum in "
                            f"{card_path} (sha256 {actual}, recorded {expected}); the file "
                            "was changed or damaged")
        return cls.from_parts(card, load_file(str(weights)), device=device)

    @classmethod
    def from_parts(cls, card: dict, state: Mapping[str, Any], *,
                   device: str | torch.device = "cpu") -> SegmentationModel:
        """The model of a card (``segmentation.json``'s content) and its weights (tensors
        or numpy arrays), checked by the caller: a study bundle seals both by checksum."""
        settings = SegmentationSettings.from_dict(card["settings"])
        network = build_network(settings)
        network.load_state_dict({name: torch.as_tensor(value) for name, value in state.items()})
        network.to(device).eval()
        return cls(network, settings, epochs_trained=int(card["epochs_trained"]),
                   best_epoch=int(card["best_epoch"]), normalisation=card["normalisation"])
