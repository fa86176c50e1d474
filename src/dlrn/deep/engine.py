"""The one training engine: a network in training, one epoch at a time, for every net.

Generic: it knows nothing of crops, labels or AUC. A :class:`TrainingTask` says what is
trained (the model, one epoch of batches, the loss, the held-out scores); an
:class:`EpochEngine` owns how (optimiser, warm-up + cosine schedule, autocast and
gradient scaling, channels-last, its own random state, the best epoch, resume state);
:func:`fit` runs the epochs (best epoch by a score, patience, checkpoints on a clock).
The classifier CNNs (:mod:`dlrn.deep.classifier.train`, K of them side by side in
:mod:`dlrn.deep.classifier.lockstep`) and the segmentation U-Net train through it.

Each engine owns its model, optimiser, schedule, shuffling generator and its own copy
of torch's global random state (dropout draws from it), so engines interleaved epoch
by epoch train exactly as each would alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Protocol, TypeVar

import torch
from torch import nn

from dlrn.deep.memory import PeakMemory
from dlrn.deep.runtime import autocast, autocast_dtype, cuda_oom_error
from dlrn.deep.settings import LoopSettings
from dlrn.errors import DlrnError

__all__ = ["CheckpointClock", "EpochEngine", "LoopSettings", "TrainingTask", "comparable",
           "fit", "warmup_cosine"]

Result = TypeVar("Result")


class TrainingTask(Protocol):
    """What one network learns: everything the engine needs that is not the loop.

    ``build_model`` is called right after ``torch.manual_seed(settings.seed)`` (equal
    seeds, equal initial weights); ``batches`` gives one epoch of ``(inputs, targets)``
    on ``device``, shuffled and augmented with ``generator``, with ``len()`` = steps per
    epoch (called once when the engine is built, then once per epoch); ``loss`` gets the
    model's outputs as autocast left them (bf16/fp16 on CUDA: cast to float32 in it);
    ``evaluate`` scores the model on held-out cases after an epoch (``{}`` when there are
    none), under the engine's random state and autocast type (:meth:`EpochEngine.apply`).
    """

    name: str

    def build_model(self) -> nn.Module: ...

    def batches(self, generator: torch.Generator,
                device: torch.device) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _optimizer(model: nn.Module, settings: LoopSettings, learning_rate: float,
               device: torch.device) -> torch.optim.Optimizer:
    """SGD or AdamW; on CUDA the fused kernels (one launch per step, not one per tensor)."""
    fused = {"fused": True} if device.type == "cuda" else {}
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=settings.momentum,
                               weight_decay=settings.weight_decay, nesterov=True, **fused)
    return torch.optim.AdamW(model.parameters(), lr=learning_rate,
                             weight_decay=settings.weight_decay, **fused)


def comparable(settings: LoopSettings) -> str:
    """Settings (a dataclass) that must match for a run to be resumed (not progress,
    device or how often it is saved), as JSON."""
    fields = asdict(replace(settings, progress=True, device="auto"))
    fields.pop("checkpoint_every_s")
    return json.dumps(fields, default=str)


class CheckpointClock:
    """When to write a resume state: at the first call, then once ``every_s`` seconds have
    passed since the last write (``checkpoint_every_s`` of the settings)."""

    def __init__(self, every_s: float):
        self.every_s, self.last = every_s, None

    def due(self) -> bool:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.every_s:
            return False
        self.last = now
        return True


def _random_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """torch's global random state (CPU, and the GPU's under CUDA)."""
    return (torch.get_rng_state(),
            torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _train_epoch(engine: EpochEngine) -> tuple[float, int]:
    """One pass over the task's batches: (mean loss, inputs seen).

    Losses stay on the device until the epoch ends: reading one per step would make
    the CPU wait for the GPU at every step.
    """
    model, settings, device = engine.model, engine.settings, engine.device
    model.train()
    channels_last = settings.channels_last and device.type == "cuda"
    losses, sizes = [], []
    for inputs, targets in engine.task.batches(engine.generator, device):
        if channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast(device, engine.dtype):
            outputs = model(inputs)
        loss = engine.task.loss(outputs, targets)
        engine.optimizer.zero_grad(set_to_none=True)
        engine.scaler.scale(loss).backward()
        engine.scaler.step(engine.optimizer)
        engine.scaler.update()
        engine.scheduler.step()
        losses.append(loss.detach())
        sizes.append(len(inputs))
    total = 0.0
    for value, size in zip(torch.stack(losses).tolist() if losses else [], sizes, strict=True):
        total += value * size
    return total / max(sum(sizes), 1), sum(sizes)


class EpochEngine:
    """One network being trained on ``task``, an epoch per :meth:`run_epoch`.

    Built as every dlrn training starts: ``torch.manual_seed(settings.seed)``, then the
    task's model (so equal seeds give equal initial weights), a generator seeded alike
    for shuffling and augmentation, the task's batches (their length sets the
    schedule), the optimiser at ``learning_rate`` and a warm-up + cosine schedule over
    ``settings.epochs``. Call inside :func:`dlrn.deep.runtime.torch_runtime`.
    ``best_*``, ``stale`` and ``best_state`` are the bookkeeping of the best epoch
    (:meth:`keep`; ``best_score`` is ``()`` until an epoch is kept, any score beats it);
    ``history`` the per-epoch rows (:meth:`record`). :meth:`state` / :meth:`restore`
    are what a resume file holds.
    """

    def __init__(self, task: TrainingTask, settings: LoopSettings, *, learning_rate: float,
                 device: torch.device, memory: PeakMemory):
        self.task, self.settings, self.device, self.memory = task, settings, device, memory
        torch.manual_seed(settings.seed)
        model = task.build_model().to(device)
        if settings.channels_last and device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.model, self._random = model, _random_state(device)
        self.generator = torch.Generator().manual_seed(settings.seed)
        steps = len(task.batches(self.generator, device))
        self.optimizer = _optimizer(model, settings, learning_rate, device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(
            settings.epochs * steps, round(settings.warmup_epochs * steps)))
        self.dtype = autocast_dtype(settings, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.epoch, self.best_epoch, self.stale = 0, 0, 0
        self.best_score: tuple[float, ...] = ()
        self.best_state: dict[str, torch.Tensor] = {}
        self.history: list[dict] = []

    @contextlib.contextmanager
    def _own_random_state(self) -> Iterator[None]:
        """torch's global random state as this engine left it, saved again afterwards."""
        torch.set_rng_state(self._random[0])
        if self._random[1] is not None:
            torch.cuda.set_rng_state(self._random[1], self.device)
        try:
            yield
        finally:
            self._random = _random_state(self.device)

    def _oom(self) -> DlrnError:
        return cuda_oom_error(self.task.name, self.settings.batch_size, self.device)

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch: its mean loss, inputs seen and seconds."""
        started = time.perf_counter()
        try:
            with self._own_random_state():
                loss, images = _train_epoch(self)
        except torch.cuda.OutOfMemoryError as error:
            raise self._oom() from error
        self.epoch += 1
        return {"train_loss": loss, "train_images": images,
                "train_seconds": time.perf_counter() - started}

    def apply(self, function: Callable[[nn.Module], Result]) -> Result:
        """``function(model)`` under this engine's random state and autocast type: a
        held-out prediction that leaves other engines' training untouched."""
        try:
            with self._own_random_state(), autocast(self.device, self.dtype):
                return function(self.model)
        except torch.cuda.OutOfMemoryError as error:
            raise self._oom() from error

    def evaluate(self) -> dict[str, float]:
        """The task's held-out scores of the model as it stands (:meth:`apply`)."""
        return self.apply(self.task.evaluate)

    def record(self, step: dict[str, float], started: float, **scores: float) -> None:
        """One ``history`` row for the epoch just run: its training figures, the held-out
        ``scores``, learning rate, time since ``started``, memory."""
        self.history.append({"epoch": self.epoch, "train_loss": step["train_loss"], **scores,
                             "lr": self.scheduler.get_last_lr()[0],
                             "train_seconds": step["train_seconds"],
                             "train_images": step["train_images"],
                             "seconds": time.perf_counter() - started,
                             "peak_memory_mib": self.memory.peak_mib()})

    def keep(self, score: tuple[float, ...]) -> None:
        """The epoch just run is the best so far: its score and a CPU copy of the weights."""
        self.best_score, self.best_epoch, self.stale = tuple(score), self.epoch, 0
        self.best_state = {k: v.detach().cpu().clone() for k, v in
                           self.model.state_dict().items()}

    def load_best(self) -> nn.Module:
        """The model at its kept epoch, in eval mode."""
        self.model.load_state_dict(self.best_state)
        return self.model.eval()

    def state(self) -> dict:
        """Everything needed to continue this training (a resume file)."""
        return {"settings": comparable(self.settings), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "generator": self.generator.get_state(),
                "random": self._random[0], "epoch": self.epoch, "best_epoch": self.best_epoch,
                "best_score": list(self.best_score), "stale": self.stale,
                "best_state": self.best_state, "history": self.history}

    def restore(self, state: dict, source: Path) -> None:
        """Continue from :meth:`state` (read from ``source``); other settings are refused."""
        if state["settings"] != comparable(self.settings):
            raise DlrnError(f"cannot resume from {source}: it was trained with other settings "
                            f"({state['settings']})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        if "random" in state:  # resume files written before the trainer kept it lack it
            self._random = (state["random"], self._random[1])
        self.epoch, self.best_epoch, self.stale = (state["epoch"], state["best_epoch"],
                                                   state["stale"])
        # files of the classifier's EpochTrainer held the score as best_auc, best_loss
        self.best_score = tuple(state["best_score"] if "best_score" in state
                                else (state["best_auc"], -state["best_loss"]))
        self.best_state, self.history = state["best_state"], state["history"]


def fit(engine: EpochEngine, *, last_epoch: int,
        score: Callable[[dict[str, float]], tuple[float, ...]] | None,
        resume_path: Path | None, label: str | None = None) -> None:
    """Epochs from ``engine.epoch`` to ``last_epoch``: each trained, evaluated (the
    task's held-out scores go into its ``history`` row) and kept where ``score(scores)``
    beats the best so far (a larger tuple; ``score=None``: every epoch is kept, the last
    one counts). Stops early after ``settings.patience`` epochs without a better score.
    With ``resume_path`` the engine's state is written there on the settings'
    :class:`CheckpointClock` and after the last epoch. ``label``: the progress bar's
    (default: the task's name)."""
    from tqdm.auto import tqdm

    settings = engine.settings
    bar = tqdm(range(engine.epoch, last_epoch), desc=label or engine.task.name,
               disable=not settings.progress, initial=engine.epoch, total=last_epoch,
               leave=False)
    clock, written = CheckpointClock(settings.checkpoint_every_s), engine.epoch
    for _ in bar:
        if settings.patience is not None and engine.stale >= settings.patience:
            break
        started = time.perf_counter()
        step = engine.run_epoch()
        scores = engine.evaluate()
        engine.record(step, started, **scores)
        bar.set_postfix(loss=f"{step['train_loss']:.4f}",
                        **{name: f"{value:.3f}" for name, value in scores.items()})
        epoch_score = None if score is None else tuple(score(scores))
        if epoch_score is None or epoch_score > engine.best_score:
            engine.keep(() if epoch_score is None else epoch_score)
        else:
            engine.stale += 1
        if resume_path is not None and clock.due():
            torch.save(engine.state(), resume_path)
            written = engine.epoch
    if resume_path is not None and written != engine.epoch:
        torch.save(engine.state(), resume_path)
