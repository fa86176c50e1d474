"""Train the lesion-segmentation U-Net on the training cases' expert masks.

The training cases are split into fit and validation cases by patient
(:func:`.data.fit_validation_split`); the U-Net trains on the fit cases in the generic
engine's epoch loop (:mod:`dlrn.deep.engine`: optimiser, warm-up + cosine schedule,
precision, early stopping, resume file on a clock) and the epoch with the best
validation Dice (then the lower validation loss) is kept. Test and external cases are
never seen here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from dlrn.errors import DlrnError
from dlrn.segmentation.data import SegmentationArrays, fit_validation_split
from dlrn.segmentation.model import SegmentationModel
from dlrn.segmentation.settings import SegmentationSettings
from dlrn.segmentation.task import SegmentationTask, epoch_score

RESUME_FILE = "resume.pt"
HISTORY_FILE = "history.csv"


@dataclass
class SegmentationResult:
    """A trained U-Net (its best epoch) and how it got there.

    ``history``: one row per epoch (training loss, ``val_loss``, ``val_dice``, seconds,
    ...); ``train_time_s``: wall time of the epochs (reading the images not included);
    ``read_time_s``: reading and resizing the images.
    """

    model: SegmentationModel
    history: pd.DataFrame
    fit_ids: list[str]
    val_ids: list[str]
    best_epoch: int
    train_time_s: float
    read_time_s: float = 0.0
    out_dir: Path | None = None

    @property
    def best_val_dice(self) -> float:
        rows = self.history[self.history["epoch"] == self.best_epoch]
        return float(rows["val_dice"].iloc[0]) if len(rows) else float("nan")


def train_segmentation(cases: pd.DataFrame, train_ids: Sequence[str],
                       settings: SegmentationSettings, *,
                       out_dir: Path | None = None, resume: bool = False) -> SegmentationResult:
    """Train the U-Net on ``train_ids`` of ``cases`` (indexed by case id; columns ``image``,
    ``mask``, optionally ``patient_id`` and ``label``); see the module doc.

    With ``out_dir`` the model is saved there (:meth:`SegmentationModel.save`) with
    ``history.csv``, and a resume file is kept while training; ``resume=True`` continues
    from it (same settings), otherwise an old resume file there is replaced.
    Deterministic on the CPU for a given seed and number of threads.
    """
    from dlrn.deep.engine import EpochEngine, fit
    from dlrn.deep.memory import PeakMemory
    from dlrn.deep.runtime import select_device, torch_runtime

    if not len(train_ids):
        raise DlrnError("segmentation: no training cases")
    out_dir = Path(out_dir) if out_dir is not None else None
    resume_path = out_dir / RESUME_FILE if out_dir is not None else None
    if resume and resume_path is None:
        raise DlrnError("segmentation: resume needs the output folder of the run to continue")
    if resume_path is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            resume_path.unlink(missing_ok=True)
    fit_ids, val_ids = fit_validation_split(cases, train_ids, settings.val_fraction,
                                            settings.seed)
    started = time.perf_counter()
    arrays = SegmentationArrays.read(cases, fit_ids + val_ids, settings.image_size,
                                     label=settings.mask_label, frame=settings.frame,
                                     progress=settings.progress)
    read_time = time.perf_counter() - started
    task = SegmentationTask(arrays.subset(fit_ids), arrays.subset(val_ids), settings)
    device = select_device(settings.device)
    started = time.perf_counter()
    with torch_runtime(settings, device):
        memory = PeakMemory.start(device)  # before the model: weights and optimiser count
        engine = EpochEngine(task, settings, learning_rate=settings.learning_rate or 1e-3,
                             device=device, memory=memory)
        if resume and resume_path.exists():
            engine.restore(torch.load(resume_path, map_location="cpu", weights_only=True),
                           resume_path)
        fit(engine, last_epoch=settings.epochs, score=epoch_score, resume_path=resume_path,
            label="segmentation")
        network = engine.load_best()
    train_time = time.perf_counter() - started
    history = pd.DataFrame(engine.history)
    model = SegmentationModel(network.eval(), settings,
                              epochs_trained=int(history["epoch"].max()) if len(history) else 0,
                              best_epoch=int(engine.best_epoch))
    if out_dir is not None:
        model.save(out_dir)
        history.to_csv(out_dir / HISTORY_FILE, index=False)
    return SegmentationResult(model, history, fit_ids, val_ids, int(engine.best_epoch),
                              train_time, read_time, out_dir)
