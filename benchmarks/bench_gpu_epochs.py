"""Where a GPU epoch's time goes: training vs validation and resume-state writes.

On an H100 an epoch of VGG19 took about 5 s where its training part takes under 1 s
(benchmarks/README.md, "GPU training"). This times ``train_backbone`` with an output
folder, so checkpoints are written as in a study, on random in-memory crops:
``checkpoint_every_s=0`` (the resume state written after every epoch, as before) against
the default interval, same model, data and seed, one after the other in this process.
Then a short lockstep cross-fitting run (``select_on: crossfit``) checks that path on the
device.

    python benchmarks/bench_gpu_epochs.py [--backbones vgg19,resnet50] [--epochs 4]
        [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlrn.deep.classifier.lockstep import train_folds_lockstep
from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.train import train_backbone
from dlrn.deep.data import CropCache, CropSettings


def random_cohort(n_cases: int, size: int, seed: int = 0) -> tuple[CropCache, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"c{i:05d}" for i in range(n_cases)]
    crops = rng.integers(0, 256, (n_cases, 1, size, size), dtype=np.uint8)
    cases = pd.DataFrame({"label": np.arange(n_cases) % 2, "patient_id": ids},
                         index=pd.Index(ids, name="case_id"))
    return CropCache(crops, ids, CropSettings(image_size=size)), cases


def timed_run(backbone: str, cache: CropCache, cases: pd.DataFrame, settings: TrainSettings,
              folder: Path) -> dict:
    """Wall time of the whole call (writes included) and the epochs' own parts."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = train_backbone(backbone, cache, cases, list(cases.index), weights=None,
                            settings=settings, out_dir=folder)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    later = result.history.iloc[1:]  # the first epoch carries cuDNN's autotuning
    return {"backbone": backbone, "checkpoint_every_s": settings.checkpoint_every_s,
            "wall_s": round(wall, 2), "epochs": len(result.history),
            "train_s_per_epoch": round(float(later["train_seconds"].mean()), 3),
            "epoch_s_without_writes": round(float(later["seconds"].mean()), 3),
            "resume_mb": round((folder / "resume.pt").stat().st_size / 2**20, 1)}


def lockstep_smoke(size: int, n_cases: int = 120) -> dict:
    cache, cases = random_cohort(n_cases, size, seed=1)
    folds = pd.Series(np.arange(len(cases)) % 3 + 1, index=cases.index, name="fold")
    settings = TrainSettings(epochs=3, batch_size=16, patience=None, progress=False)
    started = time.perf_counter()
    result = train_folds_lockstep("resnet18", cache, cases, folds, settings, weights=None)
    return {"lockstep_s": round(time.perf_counter() - started, 2),
            "epochs": result.epochs.to_dict(orient="records"), "chosen_epoch": result.best_epoch,
            "devices": sorted({str(r.device) for r in result.models.values()})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="vgg19,resnet50")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--cases", type=int, default=1313, help="a fifth go to validation")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cache, cases = random_cohort(args.cases, args.size)
    base = TrainSettings(epochs=args.epochs, batch_size=16, patience=None, progress=False)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for backbone in filter(None, args.backbones.split(",")):
            for every_s in (0.0, base.checkpoint_every_s):
                settings = replace(base, checkpoint_every_s=every_s)
                target = Path(folder) / f"{backbone}-{every_s:g}"
                rows.append(timed_run(backbone, cache, cases, settings, target))
                print(json.dumps(rows[-1]), flush=True)
    results = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
               "runs": rows, "lockstep": lockstep_smoke(64)}
    print(json.dumps(results["lockstep"]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
