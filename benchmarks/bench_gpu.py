"""GPU training speed: dlrn's training loop against a bare torch loop, and the deep stage timed.

All in one process, on the GPU when there is one (else on CPU, with the same code):

(a) bare: a plain fine-tuning loop of the same model, batch size and precision on
    synthetic tensors already on the device (channels-last, fused AdamW, cuDNN
    autotuning: what a careful torch user writes), images/s after warm-up steps;
(b) dlrn: ``dlrn.deep.classifier.train.train_backbone`` on in-memory uint8 crops of the same
    image count (augmentation, normalisation, scheduler, loss bookkeeping included),
    images/s of its second epoch (the first one is the warm-up), and the ratio b / a;
(c) the deep stage end to end (``run_deep_stage``: crops, three backbones trained
    for every epoch, validation, predictions, deep features, PCA, Grad-CAM, tables)
    on a BUS-BRA-sized synthetic cohort written beforehand (not timed).

    python benchmarks/bench_gpu.py [--backbones densenet121,resnet50,vgg19]
        [--batch-size 16] [--size 224] [--steps 100] [--warmup 20]
        [--stage-cases 1875] [--stage-epochs 30] [--out results.json]

Tiny CPU check: ``--size 64 --batch-size 4 --steps 4 --warmup 1 --stage-cases 80
--stage-epochs 1 --backbones resnet18``. Weights are random (no internet on the GPU
machine); the speed of pretrained weights is the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_rate(name: str, batch_size: int, size: int, device: torch.device,
              dtype: torch.dtype | None, warmup: int, steps: int) -> dict:
    """Images/s and peak memory of a plain training loop on tensors already on the device."""
    from dlrn.deep.memory import PeakMemory
    from dlrn.deep.networks import build_model

    torch.backends.cudnn.benchmark = device.type == "cuda"
    memory = PeakMemory.start(device)
    model = build_model(name, weights=None).to(device).train()
    fused = {"fused": True} if device.type == "cuda" else {}
    images = torch.randn(batch_size, 3, size, size, device=device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 2, (batch_size,), device=device).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, **fused)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    loss_function = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(images).squeeze(1)
        loss = loss_function(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    seconds = time.perf_counter() - started
    return {"bare_img_s": steps * batch_size / seconds, "bare_peak_mib": memory.peak_mib()}


def dlrn_rate(name: str, batch_size: int, size: int, device: torch.device, images: int,
              seed: int = 0) -> dict:
    """Images/s of ``train_backbone``'s second epoch on ``images`` in-memory random crops."""
    from dlrn.deep.classifier.settings import TrainSettings
    from dlrn.deep.classifier.train import train_backbone
    from dlrn.deep.data import CropCache, CropSettings

    n_cases = round(images / 0.8)  # a fifth of the training cases go to validation
    rng = np.random.default_rng(seed)
    ids = [f"c{i:05d}" for i in range(n_cases)]
    crops = rng.integers(0, 256, (n_cases, 1, size, size), dtype=np.uint8)
    cache = CropCache(crops, ids, CropSettings(image_size=size))
    cases = pd.DataFrame({"label": np.arange(n_cases) % 2, "patient_id": ids},
                         index=pd.Index(ids, name="case_id"))
    settings = TrainSettings(epochs=2, batch_size=batch_size, patience=None, progress=False,
                             device=str(device), val_fraction=0.2, seed=seed)
    result = train_backbone(name, cache, cases, ids, weights=None, settings=settings)
    second = result.history.iloc[-1]
    return {"dlrn_img_s": second["train_images"] / second["train_seconds"],
            "dlrn_images": int(second["train_images"]),
            "dlrn_peak_mib": result.peak_memory_mib, "precision": result.precision}


def compare_loops(name: str, args: argparse.Namespace, device: torch.device,
                  dtype: torch.dtype | None) -> dict:
    """(a) and (b) for one backbone, dlrn first so the bare loop runs as many images."""
    ours = dlrn_rate(name, args.batch_size, args.size, device, args.steps * args.batch_size)
    steps = ours["dlrn_images"] // args.batch_size
    bare = bare_rate(name, args.batch_size, args.size, device, dtype, args.warmup, steps)
    return {"backbone": name, "batch": args.batch_size, "size": args.size, **bare, **ours,
            "ratio": ours["dlrn_img_s"] / bare["bare_img_s"]}


def _write_chunk(folder: str, n_cases: int, seed: int) -> str:
    from dlrn.synthetic import make_synthetic_cohort

    return str(make_synthetic_cohort(folder, n_cases=n_cases, seed=seed, reader2_fraction=0.0,
                                     overwrite=True))


def synthetic_cohort(folder: Path, n_cases: int, workers: int) -> pd.DataFrame:
    """A synthetic ultrasound cohort of ``n_cases`` PNG cases, written in parallel chunks."""
    chunks = max(1, min(workers, n_cases // 40))
    sizes = [len(part) for part in np.array_split(np.arange(n_cases), chunks)]
    with ProcessPoolExecutor(chunks) as pool:
        tables = list(pool.map(_write_chunk, [str(folder / f"part{k}") for k in range(chunks)],
                               sizes, range(chunks)))
    parts = []
    for k, table in enumerate(tables):
        part = pd.read_csv(table)
        for column in ("image", "mask"):
            part[column] = [str(Path(table).parent / path) for path in part[column]]
        part["case_id"] = f"k{k}_" + part["case_id"]
        part["patient_id"] = f"k{k}_" + part["patient_id"]
        parts.append(part[["case_id", "patient_id", "image", "mask", "label"]])
    return pd.concat(parts).set_index("case_id")


def _pillow_reader_if_no_simpleitk() -> str:
    """The GPU machine has no SimpleITK: then read the PNGs with Pillow (the same pixels).

    ``dlrn.imaging`` imports SimpleITK when loaded; an empty stand-in lets it load, and
    its two readers the crops use are swapped for Pillow ones.
    """
    try:
        import SimpleITK

        if hasattr(SimpleITK, "ReadImage"):  # not an empty stand-in (gpu_run.sh)
            return "SimpleITK"
    except ImportError:
        sys.modules["SimpleITK"] = types.ModuleType("SimpleITK")
    from PIL import Image

    import dlrn.imaging

    dlrn.imaging.read_image = lambda path, frame=0: np.asarray(Image.open(path).convert("L"))
    dlrn.imaging.read_mask = lambda path, label=None, frame=0: (
        np.asarray(Image.open(path)) > 0).astype(np.uint8)
    return "Pillow (no SimpleITK here)"


def deep_stage(args: argparse.Namespace, cases: pd.DataFrame, folder: Path) -> dict:
    """(c): ``run_deep_stage`` on a synthetic cohort, timed from crops to written tables."""
    from dlrn.cohort import split_cohort
    from dlrn.deep.classifier.crossfit import CrossfitSettings
    from dlrn.deep.classifier.settings import TrainSettings
    from dlrn.deep.classifier.workflow import DeepStageSettings, run_deep_stage
    from dlrn.deep.data import CropSettings

    split = split_cohort(cases, test_size=0.3, seed=0)
    settings = DeepStageSettings(
        backbones=tuple(args.stage_backbones.split(",")), weights=None,
        crop=CropSettings(image_size=args.size),
        train=TrainSettings(epochs=args.stage_epochs, batch_size=args.batch_size,
                            patience=None, progress=args.progress),
        pca_components=min(512, int((split == "train").sum()) - 1),
        crossfit=CrossfitSettings(fusion_features=args.stage_fusion))
    _synchronize(_device())
    started = time.perf_counter()
    result = run_deep_stage(cases, split, folder / "stage", settings)
    _synchronize(_device())
    seconds = time.perf_counter() - started
    training = {name: round(model.train_time_s, 1) for name, model in result.models.items()}
    crossfit = {name: round(fold.seconds, 1) for name, fold in result.crossfit.results.items()}
    return {"stage_seconds": seconds, "cases": len(cases),
            "train_cases": int((split == "train").sum()), "epochs": args.stage_epochs,
            "epochs_run": {name: len(model.history) for name, model in result.models.items()},
            "train_time_s": training,
            "train_img_s": {name: round(model.images_per_s, 1)
                            for name, model in result.models.items()},
            "fusion_features": args.stage_fusion, "chosen": result.chosen,
            "crossfit_seconds": crossfit,
            "test_auc": result.comparison.set_index("backbone")["test_auc"].round(3).to_dict(),
            }


def environment(device: torch.device, dtype: torch.dtype | None) -> dict:
    from dlrn.deep.runtime import precision_name

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
            "precision": precision_name(dtype), "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="densenet121,resnet50,vgg19")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=20, help="bare loop steps before timing")
    parser.add_argument("--stage-cases", type=int, default=1875, help="0: skip (c)")
    parser.add_argument("--stage-epochs", type=int, default=30)
    parser.add_argument("--stage-backbones", default="densenet121,resnet50,vgg19")
    parser.add_argument("--stage-fusion", choices=("crossfit", "in_sample"), default="crossfit",
                        help="(c): dl.fusion_features (crossfit adds the chosen backbone's "
                             "K = 5 fold CNNs)")
    parser.add_argument("--progress", action="store_true", help="(c): show epoch bars")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()

    reader = _pillow_reader_if_no_simpleitk()
    folder = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    started = time.perf_counter()
    # written first, in worker processes forked before CUDA is initialised
    cases = (synthetic_cohort(folder / "cohort", args.stage_cases, os.cpu_count() or 1)
             if args.stage_cases else None)
    written_s = time.perf_counter() - started
    from dlrn.deep.classifier.settings import TrainSettings
    from dlrn.deep.runtime import autocast_dtype

    device = _device()
    dtype = autocast_dtype(TrainSettings(), device)
    results: dict = {"environment": {**environment(device, dtype), "image_reader": reader},
                     "loops": []}
    print(json.dumps(results["environment"]), flush=True)

    def save() -> None:
        if args.out is not None:
            args.out.write_text(json.dumps(results, indent=1, default=str))

    for name in filter(None, args.backbones.split(",")):
        row = compare_loops(name, args, device, dtype)
        results["loops"].append(row)
        print(pd.DataFrame([row]).round(2).to_string(index=False), flush=True)
        save()
    if results["loops"]:
        print(pd.DataFrame(results["loops"]).round(2).to_string(index=False), flush=True)
    if cases is not None:
        results["stage"] = {**deep_stage(args, cases, folder), "cohort_written_s": written_s}
        print(json.dumps(results["stage"], indent=1), flush=True)
        save()
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
