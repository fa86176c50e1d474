"""Training speed of dlrn's loop vs the raw framework, and peak memory per backbone.

Raw: synthetic float tensors, forward + backward + AdamW step, nothing else.
dlrn: ``train_backbone`` on cached uint8 crops (augmentation, normalisation,
DataLoader, scheduler), timed on its training part only (``train_seconds``).
The two are measured alternately in one process so that load from other users
of a shared machine hits both alike; the ratio is what matters.

    nice -n 10 .venv/bin/python benchmarks/bench_deep.py [--backbones densenet121,resnet50,vgg19]
        [--images 48] [--rounds 2] [--threads 2] [--size 224] [--batch-size 16]

GPU: ``benchmarks/bench_gpu.py`` (bf16, channels-last, device-held crops), not this script.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def raw_rate(name: str, images: int, batch_size: int, size: int, device: torch.device,
             amp: bool) -> float:
    """Images/s of a bare fine-tuning loop on random tensors."""
    from dlrn.deep.networks import build_model

    model = build_model(name, weights=None).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_function = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(batch_size, 3, size, size, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device).float()
    steps = max(1, images // batch_size)
    started = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device.type, enabled=amp):
            loss = loss_function(model(x).squeeze(1).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def dlrn_rate(name: str, images: int, batch_size: int, size: int, device: str, amp: bool,
              threads: int) -> float:
    """Images/s of dlrn's training loop (one epoch on ``images`` cached crops)."""
    from dlrn.deep.classifier.settings import TrainSettings
    from dlrn.deep.classifier.train import train_backbone
    from dlrn.deep.data import CropCache, CropSettings

    n_cases = round(images / 0.8)  # 20 % go to the validation split
    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(n_cases)]
    cache = CropCache(rng.integers(0, 256, (n_cases, 1, size, size), dtype=np.uint8), ids,
                      CropSettings(image_size=size))
    cases = pd.DataFrame({"label": np.arange(n_cases) % 2, "patient_id": ids},
                         index=pd.Index(ids, name="case_id"))
    settings = TrainSettings(epochs=1, batch_size=batch_size, threads=threads, device=device,
                             amp=amp, progress=False, val_fraction=0.2)
    result = train_backbone(name, cache, cases, ids, weights=None, settings=settings)
    return result.images_per_s


def peak_memory(name: str, batch_size: int, size: int, threads: int) -> float:
    """Peak resident memory (MiB) of a process doing two training steps, via a subprocess."""
    output = subprocess.run(
        [sys.executable, __file__, "--memory-probe", name, "--batch-size", str(batch_size),
         "--size", str(size), "--threads", str(threads)],
        check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_mib"]


def _memory_probe(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    raw_rate(args.memory_probe, 2 * args.batch_size, args.batch_size, args.size,
             torch.device("cpu"), False)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork/exec
    status = Path("/proc/self/status").read_text()
    high_water = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    peak_kib = int(high_water.split()[1])
    print(json.dumps({"peak_mib": peak_kib / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="densenet121,resnet50,vgg19")
    parser.add_argument("--images", type=int, default=48, help="training images per timing")
    parser.add_argument("--rounds", type=int, default=2, help="alternating raw/dlrn rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        _memory_probe(args)
        return
    torch.set_num_threads(args.threads)
    device, amp = torch.device(args.device), args.device == "cuda" and not args.no_amp
    print(f"torch {torch.__version__}, {args.threads} threads, device {device}, "
          f"batch {args.batch_size}, {args.size} px, random init, AMP {amp}")
    if device.type == "cpu":
        print("GPU (AMP on/off, channels_last): not measured here (no GPU in this session)")
    rows = []
    for name in args.backbones.split(","):
        raw, ours = [], []
        for _ in range(args.rounds):
            raw.append(raw_rate(name, args.images, args.batch_size, args.size, device, amp))
            ours.append(dlrn_rate(name, args.images, args.batch_size, args.size, args.device,
                                  amp, args.threads))
        row = {"backbone": name, "raw_img_s": np.median(raw), "dlrn_img_s": np.median(ours),
               "ratio": np.median(np.array(ours) / np.array(raw))}
        if not args.no_memory:
            row["peak_mib"] = peak_memory(name, args.batch_size, args.size, args.threads)
        rows.append(row)
        print(pd.DataFrame([row]).round(2).to_string(index=False), flush=True)
    print(pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
