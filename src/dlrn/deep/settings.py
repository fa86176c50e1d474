"""What the training engine and the runtime read from a network's training settings.

A protocol, not a class: the classifier CNNs' :class:`dlrn.deep.classifier.settings.TrainSettings`
and the segmentation net's settings each declare these fields (frozen dataclasses, so
that a resume state can compare them, see :func:`dlrn.deep.engine.comparable`) beside
their own.
"""

from __future__ import annotations

from typing import Protocol


class LoopSettings(Protocol):
    """The epoch loop's settings: schedule, optimiser, device, precision and checkpoints.

    ``optimizer``: ``"adamw"`` or ``"sgd"`` (Nesterov, ``momentum``); the learning rate
    warms up linearly over ``warmup_epochs`` and decays on a cosine to 0 at ``epochs``.
    ``patience``: epochs without a better score before training stops (None: never).
    ``amp``/``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``): autocast on CUDA
    (:func:`dlrn.deep.runtime.autocast_dtype`); ``deterministic=None``: repeatable on
    CPU, cuDNN autotuning on CUDA; ``threads=None``: every CPU this process may use.
    ``checkpoint_every_s``: seconds between resume states (0: every epoch).
    """

    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float | None
    weight_decay: float
    momentum: float
    warmup_epochs: float
    patience: int | None
    seed: int
    device: str
    amp: bool
    precision: str
    channels_last: bool
    deterministic: bool | None
    threads: int | None
    progress: bool
    checkpoint_every_s: float
