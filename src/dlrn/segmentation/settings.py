"""The settings of a lesion-segmentation training run (a 2D U-Net, see :mod:`.train`).

:class:`SegmentationSettings` has the attribute names of the generic training engine's
``LoopSettings`` (:mod:`dlrn.deep.engine`: epochs, optimiser, precision, threads,
checkpoints, ...), so the one epoch loop trains the U-Net as it trains the CNNs, plus
what only segmentation has: the square side the net sees, the U-Net's channels, the
probability threshold and the augmentation switches.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from dlrn.errors import DlrnError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
NORMALISATION_RULE = ("each image resized to image_size x image_size (bilinear, antialiased), "
                      "then z-scored by its own mean and standard deviation")


@dataclass(frozen=True)
class SegmentationSettings:
    """How the U-Net is trained and applied.

    Defaults are for lesion segmentation in 2D ultrasound on a CPU or a GPU: AdamW at
    1e-3 with one warm-up epoch then cosine decay, 40 epochs, the epoch with the best
    validation Dice kept, stopping after 10 epochs without improvement. ``image_size``:
    every image is resized to this square (128 px: about 14 s per epoch for BUS-BRA's
    1115 fit images on 2 CPU cores; 256 px about 4 times longer). ``channels``: the U-Net's feature
    channels per level (5 levels, 2 residual units each). ``threshold``: the
    probability above which a pixel is lesion. Augmentation (training batches only):
    ``flip`` mirrors left-right with probability 1/2; ``scale_shift`` scales by up to
    that fraction and shifts by up to that fraction of the side (0 turns it off).
    Engine settings (``device``, ``amp``, ``precision``, ``deterministic``, ``threads``,
    ``checkpoint_every_s``) mean what they mean for the CNNs (``dl`` section).
    ``mask_label`` and ``frame``: how the cohort's images and masks are read (the study's
    ``cohort.mask_label`` and ``cohort.frame``): the expert masks' ROI label (None: any
    non-zero pixel) and the frame of a multi-frame image; predicted masks are written
    with that label, so the cohort reader reads them back as it reads the experts'.
    """

    epochs: int = 40
    batch_size: int = 16
    optimizer: Literal["adamw", "sgd"] = "adamw"
    learning_rate: float | None = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    patience: int | None = 10
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = False
    deterministic: bool | None = None
    threads: int | None = None
    progress: bool = True
    checkpoint_every_s: float = 60.0
    image_size: int = 128
    val_fraction: float = 0.15
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    dropout: float = 0.0
    threshold: float = 0.5
    flip: bool = True
    scale_shift: float = 0.1
    mask_label: int | None = None
    frame: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        for problem in _problems(self):
            raise DlrnError(f"segmentation settings: {problem}")

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (``channels`` as a list)."""
        values = asdict(self)
        values["channels"] = list(self.channels)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SegmentationSettings:
        """Settings from :meth:`to_dict`'s values; an unknown name is an error naming it."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise DlrnError(f"segmentation settings: unknown setting(s) {unknown}; "
                            f"known: {sorted(known)}")
        return cls(**{**values, "channels": tuple(values.get("channels", cls.channels))})


def _problems(settings: SegmentationSettings):
    """Each invalid value, in words (the first one is raised)."""
    if settings.epochs < 1:
        yield f"epochs must be >= 1, got {settings.epochs}"
    if settings.batch_size < 2:
        yield f"batch_size must be >= 2 (batch norm needs 2 images), got {settings.batch_size}"
    if settings.optimizer not in ("adamw", "sgd"):
        yield f"optimizer {settings.optimizer!r} is not 'adamw' or 'sgd'"
    if settings.learning_rate is not None and not settings.learning_rate > 0:
        yield f"learning_rate must be positive, got {settings.learning_rate}"
    if settings.patience is not None and settings.patience < 1:
        yield f"patience must be >= 1 or None (no early stop), got {settings.patience}"
    if settings.precision not in PRECISIONS:
        yield f"precision {settings.precision!r} is not one of {', '.join(PRECISIONS)}"
    if not settings.checkpoint_every_s >= 0:  # NaN too
        yield (f"checkpoint_every_s must be 0 (every epoch) or a positive number of "
               f"seconds, got {settings.checkpoint_every_s}")
    levels = len(settings.channels)
    if levels < 2 or any(c < 1 for c in settings.channels):
        yield f"channels must be 2 or more positive numbers, got {list(settings.channels)}"
    elif settings.image_size < 16 or settings.image_size % 2 ** (levels - 1):
        yield (f"image_size must be >= 16 and a multiple of {2 ** (levels - 1)} (the U-Net "
               f"halves it {levels - 1} times), got {settings.image_size}")
    if not 0 < settings.val_fraction < 1:
        yield f"val_fraction must be between 0 and 1, got {settings.val_fraction}"
    if not 0 <= settings.dropout < 1:
        yield f"dropout must be in [0, 1), got {settings.dropout}"
    if not 0 < settings.threshold <= 1 or math.isnan(settings.threshold):
        yield f"threshold must be in (0, 1], got {settings.threshold}"
    if settings.mask_label is not None and not 1 <= settings.mask_label <= 255:
        yield f"mask_label must be None or 1-255, got {settings.mask_label}"
    if settings.frame < 0:
        yield f"frame must be >= 0, got {settings.frame}"
    if not 0 <= settings.scale_shift < 0.5:
        yield f"scale_shift must be in [0, 0.5), got {settings.scale_shift}"
