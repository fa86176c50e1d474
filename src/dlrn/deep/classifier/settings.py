"""The classifier CNNs' fine-tuning settings (a :class:`dlrn.deep.settings.LoopSettings`
for the training engine, plus what is the classifier's own: validation split, class
weights, normalisation, augmentation, loader workers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dlrn.deep.data import Augmentation, Normalization
from dlrn.errors import DlrnError

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainSettings:
    """Fine-tuning settings; ``learning_rate=None`` means 1e-4 pretrained, 1e-3 random init.

    GPU (CUDA) only, CPU and MPS train in fp32 as before: ``precision`` ``auto`` is bf16
    autocast where the GPU supports it, else fp16 with a gradient scaler; ``amp=False``
    is ``fp32``. ``deterministic=None``: bit-repeatable on CPU; on CUDA off, so cuDNN
    may pick its fastest kernels (``cudnn.benchmark``); ``True`` there trades speed for
    repeatable runs.

    ``checkpoint_every_s``: ``resume.pt`` (weights, optimizer, best weights: 2.3 GB for
    VGG19) is written after the first epoch, then after an epoch once this many seconds
    have passed since the last write, and after the last one; ``best.safetensors`` at the
    end. On a CPU every epoch takes longer than that, so every epoch is written; on a GPU
    writing every epoch cost more than VGG19's training itself. 0 = every epoch.
    """

    epochs: int = 30
    batch_size: int = 16
    optimizer: Literal["adamw", "sgd"] = "adamw"
    learning_rate: float | None = None
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    class_weighted: bool = False
    patience: int | None = 10
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    precision: Precision = "auto"
    channels_last: bool = True
    deterministic: bool | None = None
    threads: int | None = None
    num_workers: int = 0
    normalization: Normalization | None = None
    augmentation: Augmentation = field(default_factory=Augmentation)
    progress: bool = True
    checkpoint_every_s: float = 60.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise DlrnError("epochs must be >= 1 and batch size >= 2 (batch norm needs 2)")
        if self.optimizer not in ("adamw", "sgd"):
            raise DlrnError(f"optimizer {self.optimizer!r} is not 'adamw' or 'sgd'")
        if not 0 < self.val_fraction < 1:
            raise DlrnError(f"val_fraction {self.val_fraction} must be between 0 and 1")
        if self.precision not in PRECISIONS:
            raise DlrnError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not self.checkpoint_every_s >= 0:  # NaN too
            raise DlrnError(f"checkpoint_every_s {self.checkpoint_every_s} must be 0 (every "
                            "epoch) or a positive number of seconds")
