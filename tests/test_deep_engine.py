"""The one training engine on a toy task (a two-layer net on random tensors): the loop,
the best epoch, patience, resume and the settings check, with nothing of crops or AUC."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
from deep_cohort import one_torch_thread  # noqa: F401 (autouse)
from torch import nn

from dlrn.deep.engine import EpochEngine, TrainingTask, fit
from dlrn.deep.memory import PeakMemory
from dlrn.deep.runtime import torch_runtime
from dlrn.errors import DlrnError

CPU = torch.device("cpu")


@dataclass(frozen=True)
class ToySettings:
    """Every field of :class:`dlrn.deep.settings.LoopSettings`, nothing else."""

    epochs: int = 4
    batch_size: int = 8
    optimizer: str = "adamw"
    learning_rate: float | None = 0.01
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    patience: int | None = None
    seed: int = 0
    device: str = "cpu"
    amp: bool = True
    precision: str = "auto"
    channels_last: bool = True
    deterministic: bool | None = None
    threads: int | None = 1
    progress: bool = False
    checkpoint_every_s: float = 0.0


class _Epoch:
    def __init__(self, task: ToyTask, generator: torch.Generator):
        self.task, self.generator = task, generator

    def __len__(self) -> int:
        return math.ceil(len(self.task.inputs) / self.task.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.task.inputs), generator=self.generator)
        for start in range(0, len(order), self.task.batch_size):
            rows = order[start:start + self.task.batch_size]
            noise = 0.05 * torch.randn(len(rows), 4, generator=self.generator)  # "augmentation"
            yield self.task.inputs[rows] + noise, self.task.targets[rows]


class ToyTask:
    """Regression of a fixed linear map through a small MLP with dropout (which draws
    from torch's global random state: the engine's own copy of it)."""

    name = "toy"

    def __init__(self, batch_size: int = 8, planned: list[float] | None = None):
        data = torch.Generator().manual_seed(123)
        self.inputs = torch.randn(40, 4, generator=data)
        self.targets = self.inputs @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
        self.batch_size, self.planned, self.evaluated = batch_size, planned, []

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))

    def batches(self, generator: torch.Generator, device: torch.device) -> _Epoch:
        return _Epoch(self, generator)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(outputs.float(), targets)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """The planned score of this epoch where given, else minus the loss; the weights
        as they were scored are kept to compare with the engine's best."""
        self.evaluated.append({k: v.clone() for k, v in model.state_dict().items()})
        if self.planned is not None:
            return {"score": self.planned[len(self.evaluated) - 1]}
        model.eval()
        with torch.no_grad():
            return {"score": -float(self.loss(model(self.inputs), self.targets))}


def _engine(task: TrainingTask, settings: ToySettings = ToySettings()) -> EpochEngine:
    return EpochEngine(task, settings, learning_rate=settings.learning_rate, device=CPU,
                       memory=PeakMemory.start(CPU))


def _by_score(scores: dict[str, float]) -> tuple[float]:
    return (scores["score"],)


def _same_weights(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_fit_runs_every_epoch_and_records_it():
    task = ToyTask()
    with torch_runtime(ToySettings(), CPU):
        engine = _engine(task)
        fit(engine, last_epoch=4, score=_by_score, resume_path=None)
    history = engine.history
    assert [row["epoch"] for row in history] == [1, 2, 3, 4] and engine.epoch == 4
    assert all(row["train_images"] == 40 for row in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns
    assert history[-1]["lr"] < history[1]["lr"]  # the cosine decays
    assert {"score", "lr", "seconds", "peak_memory_mib"} <= history[0].keys()


def test_the_best_epoch_by_score_is_kept_and_loaded():
    task = ToyTask(planned=[0.1, 0.5, 0.3, 0.4])
    with torch_runtime(ToySettings(), CPU):
        engine = _engine(task)
        fit(engine, last_epoch=4, score=_by_score, resume_path=None)
    assert engine.best_epoch == 2 and engine.best_score == (0.5,) and engine.stale == 2
    model = engine.load_best()
    assert not model.training
    assert _same_weights(model.state_dict(), task.evaluated[1])


def test_without_a_score_every_epoch_is_kept_the_last_counts():
    task = ToyTask(planned=[0.9, 0.1, 0.2])
    with torch_runtime(ToySettings(epochs=3), CPU):
        engine = _engine(task, ToySettings(epochs=3))
        fit(engine, last_epoch=3, score=None, resume_path=None)
    assert engine.best_epoch == 3 and engine.stale == 0
    assert _same_weights(engine.load_best().state_dict(), task.evaluated[-1])


def test_patience_stops_after_epochs_without_a_better_score():
    settings = ToySettings(epochs=6, patience=2)
    task = ToyTask(planned=[0.5, 0.4, 0.6, 0.3, 0.2, 0.9])
    with torch_runtime(settings, CPU):
        engine = _engine(task, settings)
        fit(engine, last_epoch=6, score=_by_score, resume_path=None)
    assert engine.epoch == 5 and engine.best_epoch == 3  # 0.9 is never reached


def _train(last_epoch: int, resume_path: Path | None = None,
           restore_from: Path | None = None) -> EpochEngine:
    settings = ToySettings()
    with torch_runtime(settings, CPU):
        engine = _engine(ToyTask(), settings)
        if restore_from is not None:
            engine.restore(torch.load(restore_from, weights_only=True), restore_from)
        fit(engine, last_epoch=last_epoch, score=_by_score, resume_path=resume_path)
    return engine


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    straight = _train(4)
    state = tmp_path / "resume.pt"
    interrupted = _train(2, resume_path=state)
    assert torch.load(state, weights_only=True)["epoch"] == 2
    resumed = _train(4, restore_from=state)
    assert interrupted.epoch == 2 and resumed.epoch == 4
    assert _same_weights(resumed.model.state_dict(), straight.model.state_dict())
    assert [row["train_loss"] for row in resumed.history] == [
        row["train_loss"] for row in straight.history]
    assert resumed.best_epoch == straight.best_epoch
    assert _same_weights(resumed.best_state, straight.best_state)


def test_resume_state_is_written_on_the_clock_and_after_the_last_epoch(tmp_path, monkeypatch):
    written, real_save = [], torch.save
    monkeypatch.setattr(torch, "save", lambda state, path: (written.append(state["epoch"]),
                                                           real_save(state, path)))
    settings = ToySettings(checkpoint_every_s=3600.0)
    with torch_runtime(settings, CPU):
        engine = _engine(ToyTask(), settings)
        fit(engine, last_epoch=3, score=_by_score, resume_path=tmp_path / "resume.pt")
    assert written == [1, 3]


def test_a_state_of_other_settings_is_refused(tmp_path):
    state = _train(1).state()
    other = replace(ToySettings(), learning_rate=0.02)
    with torch_runtime(other, CPU):
        engine = _engine(ToyTask(), other)
        with pytest.raises(DlrnError, match=r"cannot resume from run\.pt: it was trained "
                                            r"with other settings"):
            engine.restore(state, Path("run.pt"))
    quiet = replace(ToySettings(), progress=True, checkpoint_every_s=5.0)  # not compared
    with torch_runtime(quiet, CPU):
        _engine(ToyTask(), quiet).restore(state, Path("run.pt"))


def test_a_resume_file_of_the_classifier_trainer_before_the_engine_restores():
    """Its best score was two fields: the validation AUC and loss."""
    state = _train(1).state()
    del state["best_score"]
    state |= {"best_auc": 0.75, "best_loss": 0.5}
    with torch_runtime(ToySettings(), CPU):
        engine = _engine(ToyTask())
        engine.restore(state, Path("resume.pt"))
    assert engine.best_score == (0.75, -0.5) and engine.epoch == 1


def test_engines_interleaved_epoch_by_epoch_train_as_each_alone():
    """Each engine keeps its own copy of torch's random state (the dropout draws)."""
    settings, other = ToySettings(epochs=3), ToySettings(epochs=3, seed=7)
    with torch_runtime(settings, CPU):
        alone = _engine(ToyTask(), settings)
        for _ in range(3):
            alone.run_epoch()
        first, second = _engine(ToyTask(), settings), _engine(ToyTask(), other)
        for _ in range(3):
            first.run_epoch()
            second.run_epoch()
            torch.rand(5)  # the global state moves between epochs too
    assert _same_weights(first.model.state_dict(), alone.model.state_dict())
    assert not _same_weights(second.model.state_dict(), alone.model.state_dict())


def test_gpu_out_of_memory_names_the_task_and_batch_size(monkeypatch):
    task = ToyTask()

    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with torch_runtime(ToySettings(), CPU):
        engine = _engine(task)
        monkeypatch.setattr(engine.model, "forward", out_of_memory)
        with pytest.raises(DlrnError, match=r"out of memory with toy at batch size 8.*"
                                            r"--batch-size 4"):
            engine.run_epoch()
