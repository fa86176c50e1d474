"""The fold CNNs of one backbone trained side by side, the epoch chosen on their pooled
out-of-fold AUC (``dl.select_on: crossfit``).

Why: a validation split of a few dozen training cases is a noisy yardstick for the
epoch (on a real 252-patient cohort DenseNet121 won with validation AUC 0.958 at epoch
1 of 10, test 0.795). Here the K fold CNNs of the cross-fitting (one per DLR CV fold,
each fitted on ALL cases outside its fold: no inner validation split) advance one epoch
at a time together. After every epoch each predicts its held-out fold; the pooled
out-of-fold AUC over all training cases is recorded, and where it is the best so far
(ties: lower pooled loss) every fold CNN's weights are kept; ``patience`` counts epochs
without a better pooled AUC. The chosen epoch E* is ordinary cross-validated model
selection of one hyperparameter, like a grid point chosen by CV AUC: a held-out case's
label enters only through that one shared number, never into any CNN's weights. (The
pooled AUC at E* is the maximum over epochs, so it is mildly optimistic, as any CV
score of a tuned setting.) The caller then trains the backbone's final CNN on all
training cases with the same schedule and stops it after E*
(``train_backbone(stop_after=E*)``).

Each fold CNN is a :class:`dlrn.deep.engine.EpochEngine` over a
:class:`dlrn.deep.classifier.task.ClassifierTask`, with its own optimiser, schedule,
seeded generator and random state: fold k here trains exactly as it would alone on the
same cases. Memory: K models with their optimiser states at once, plus K
CPU copies of the best weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.task import classifier_engine, held_out_loss_auc
from dlrn.deep.classifier.train import (
    MODEL_CARD,
    TrainResult,
    save_checkpoint,
    write_model_card,
)
from dlrn.deep.data import CropCache, DeviceCrops
from dlrn.deep.engine import CheckpointClock, EpochEngine
from dlrn.deep.memory import PeakMemory
from dlrn.deep.runtime import precision_name, select_device, torch_runtime
from dlrn.errors import DlrnError

LOCKSTEP_STATE = "lockstep.pt"


@dataclass
class LockstepResult:
    """The fold CNNs at the chosen epoch and the pooled out-of-fold AUC of every epoch.

    ``epochs``: one row per epoch run (``epoch``, ``pooled_oof_auc``,
    ``pooled_oof_loss``, ``seconds``); ``best_epoch``: E*, the row with the highest
    pooled AUC (ties: lower loss, then earlier).
    """

    models: dict[int, TrainResult]
    epochs: pd.DataFrame
    best_epoch: int


def _probabilities(logits: np.ndarray) -> np.ndarray:
    """P(positive) as :func:`dlrn.deep.classifier.scores.cnn_probabilities` gives it (float32)."""
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


def _check_output(out_dir: Path | None, folds: list[int], resume: bool,
                  overwrite: bool) -> None:
    if out_dir is None or resume or overwrite:
        return
    existing = [path for path in [out_dir / LOCKSTEP_STATE,
                                  *(out_dir / f"fold{k}" / MODEL_CARD for k in folds)]
                if path.exists()]
    if existing:
        raise DlrnError(f"{out_dir} already holds cross-fitted CNNs ({existing[0].name}); "
                        f"pass --resume to continue them or --overwrite to replace them")


def _save_state(engines: dict[int, EpochEngine], rows: list[dict], path: Path) -> None:
    """All fold CNNs' states in one file, replaced whole (a crash leaves the last epoch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save({"folds": [engine.state() for engine in engines.values()], "rows": rows},
               partial)
    partial.replace(path)


def _restore(engines: dict[int, EpochEngine], path: Path) -> list[dict]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if len(state["folds"]) != len(engines):
        raise DlrnError(f"cannot resume from {path}: it holds {len(state['folds'])} fold CNNs, "
                        f"this run has {len(engines)} folds")
    for engine, fold_state in zip(engines.values(), state["folds"], strict=True):
        engine.restore(fold_state, path)
    return state["rows"]


def _share_crops(engine: EpochEngine, first: EpochEngine) -> None:
    """Under CUDA, one copy of the crops on the GPU for all fold CNNs (each engine's
    :class:`dlrn.deep.data.DeviceCrops` made its own; its rows differ, not its crops)."""
    loader, first_loader = engine.task.loader, first.task.loader
    if isinstance(loader, DeviceCrops) and isinstance(first_loader, DeviceCrops):
        loader.crops = first_loader.crops


def _held_out_logits(engine: EpochEngine, positions: np.ndarray) -> np.ndarray:
    """A fold CNN's logits of its held-out fold, under its own random state."""
    return engine.apply(lambda model: engine.task.logits(model, positions))


def _lockstep_epoch(engines: dict[int, EpochEngine], held_out: dict[int, np.ndarray],
                    labels: dict[int, np.ndarray]) -> dict:
    """One epoch of every fold CNN, each followed by the prediction of its held-out fold."""
    started = time.perf_counter()
    probabilities = {}
    for fold, engine in engines.items():
        fold_started = time.perf_counter()
        step = engine.run_epoch()
        logits = _held_out_logits(engine, held_out[fold])
        probabilities[fold] = _probabilities(logits)
        loss, auc = held_out_loss_auc(logits, labels[fold])
        engine.record(step, fold_started, held_out_loss=loss, held_out_auc=auc)
    pooled = np.concatenate(list(probabilities.values())).astype(np.float64)
    every_label = np.concatenate(list(labels.values()))
    loss = float(torch.nn.functional.binary_cross_entropy(
        torch.from_numpy(pooled).clamp(1e-7, 1 - 1e-7),
        torch.from_numpy(every_label.astype(np.float64))))
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(every_label, pooled))
    epoch = next(iter(engines.values())).epoch
    for engine in engines.values():
        engine.history[-1]["pooled_oof_auc"] = auc
    return {"epoch": epoch, "pooled_oof_auc": auc, "pooled_oof_loss": loss,
            "seconds": time.perf_counter() - started}


def train_folds_lockstep(
    backbone: str,
    cache: CropCache,
    training: pd.DataFrame,
    folds: pd.Series,
    settings: TrainSettings,
    *,
    weights: str | Path | None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> LockstepResult:
    """Train one CNN per fold on the other folds' cases in lockstep; keep the epoch with
    the best pooled out-of-fold AUC (see the module's notes).

    ``training``: the training cases (``label``) indexed by string case id; ``folds``:
    fold per training case (checked by the caller). With ``out_dir`` every fold CNN is
    saved at E* in ``fold<k>/`` (model card, ``best.safetensors``, ``history.csv``)
    and the state of all of them after every epoch in ``lockstep.pt``
    (``resume=True`` continues from it).
    """
    out_dir = None if out_dir is None else Path(out_dir)
    numbers = [int(k) for k in sorted(folds.unique())]
    _check_output(out_dir, numbers, resume, overwrite)
    device = select_device(settings.device)
    fit = {k: list(folds.index[folds != k]) for k in numbers}
    held_ids = {k: list(folds.index[folds == k]) for k in numbers}
    labels = {k: training.loc[held_ids[k], "label"].astype(int).to_numpy() for k in numbers}
    with torch_runtime(settings, device):
        memory = PeakMemory.start(device)
        engines: dict[int, EpochEngine] = {}
        for k in numbers:
            engines[k] = classifier_engine(backbone, cache, training, fit[k], settings,
                                           weights=weights, device=device, memory=memory)
            _share_crops(engines[k], engines[numbers[0]])
        state_path = None if out_dir is None else out_dir / LOCKSTEP_STATE
        rows = (_restore(engines, state_path)
                if resume and state_path is not None and state_path.exists() else [])
        held_out = {k: cache.positions(held_ids[k]) for k in numbers}
        lead = engines[numbers[0]]
        _epochs(engines, lead, held_out, labels, rows, state_path, backbone)
        models = {k: engine.load_best() for k, engine in engines.items()}
    results = {k: TrainResult(backbone, models[k], pd.DataFrame(engines[k].history),
                              lead.best_epoch, math.nan, fit[k], [], lead.task.normalization,
                              device, None if out_dir is None else out_dir / f"fold{k}",
                              precision_name(lead.dtype)) for k in numbers}
    for result in results.values():
        if result.out_dir is not None:
            save_checkpoint(result.model, result.out_dir / "best.safetensors")
            write_model_card(result, cache, settings, weights)
    return LockstepResult(results, pd.DataFrame(rows), lead.best_epoch)


def _epochs(engines: dict[int, EpochEngine], lead: EpochEngine,
            held_out: dict[int, np.ndarray], labels: dict[int, np.ndarray], rows: list[dict],
            state_path: Path | None, backbone: str) -> None:
    """Lockstep epochs from where the engines stand, with early stopping on the pooled AUC."""
    from tqdm.auto import tqdm

    settings = lead.settings
    bar = tqdm(range(lead.epoch, settings.epochs), desc=f"{backbone} x{len(engines)} folds",
               disable=not settings.progress, initial=lead.epoch, total=settings.epochs,
               leave=False)
    clock, written = CheckpointClock(settings.checkpoint_every_s), lead.epoch
    for _ in bar:
        if settings.patience is not None and lead.stale >= settings.patience:
            break
        row = _lockstep_epoch(engines, held_out, labels)
        rows.append(row)
        bar.set_postfix(pooled_oof_auc=f"{row['pooled_oof_auc']:.3f}")
        auc, loss = row["pooled_oof_auc"], row["pooled_oof_loss"]
        better = (auc, -loss) > lead.best_score  # AUC, then lower loss
        for engine in engines.values():
            if better:
                engine.keep((auc, -loss))
            else:
                engine.stale += 1
        if state_path is not None and clock.due():
            _save_state(engines, rows, state_path)
            written = lead.epoch
    if state_path is not None and written != lead.epoch:
        _save_state(engines, rows, state_path)
