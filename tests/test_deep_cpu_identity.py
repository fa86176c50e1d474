"""The CPU training path gives bit-identical losses and weights to the code before the GPU work.

The reference values in ``data/deep_train_cpu_reference.json`` were written by running
this file as a script (``python tests/test_deep_cpu_identity.py``) on the commit named
in the file, before mixed precision, channels-last, device-held crops and GPU-side
augmentation were added; nothing in it is typed in by hand. Bits depend on the torch
build and the CPU (its vector instructions, and its maker: the same torch gives other
bits on an AMD EPYC than on the machine of the first reference), so the file holds one
reference per environment, and elsewhere the test is skipped, naming how to add one
(check out that commit, run the script with ``--add``, come back).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE = Path(__file__).parent / "data" / "deep_train_cpu_reference.json"


def _state_digest(model: torch.nn.Module) -> str:
    """SHA-256 over every tensor of the state dict, in key order (exact bits)."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform says."""
    import platform

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def environment() -> dict:
    """What the exact bits depend on besides the code."""
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
            "cpu_model": cpu_model()}


def reference_for(here: dict) -> dict | None:
    """The reference written in this environment: same CPU model, else one written before
    CPU models were recorded with the same torch and vector instructions."""
    references = json.loads(REFERENCE.read_text())["references"]
    same = [r for r in references if r["environment"] == here]
    legacy = [r for r in references if "cpu_model" not in r["environment"]
              and r["environment"] == {k: here[k] for k in ("torch", "cpu")}]
    return (same or legacy or [None])[0]


def cpu_training_run() -> dict:
    """Two optimiser steps of a ResNet18 on 12 planted 32 px crops, with augmentation."""
    sys.path.insert(0, str(Path(__file__).parent))
    from deep_cohort import planted_crops

    from dlrn.deep.classifier.settings import TrainSettings
    from dlrn.deep.classifier.train import train_backbone

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cache, cases, _ = planted_crops(n_cases=12, size=32, seed=3)
        settings = TrainSettings(epochs=1, batch_size=4, val_fraction=0.25, threads=1,
                                 progress=False, device="cpu", seed=5)
        result = train_backbone("resnet18", cache, cases, list(cases.index), weights=None,
                                settings=settings)
    finally:
        torch.set_num_threads(threads)
    history = result.history
    return {"train_loss": history["train_loss"].tolist(),
            "val_loss": history["val_loss"].tolist(),
            "val_auc": history["val_auc"].tolist(),
            "train_images": history["train_images"].tolist(),
            "weights_sha256": _state_digest(result.model),
            "weights_sum": float(sum(v.double().sum() for v in
                                     result.model.state_dict().values()))}


def test_cpu_training_is_unchanged_bit_for_bit():
    reference = reference_for(environment())
    if reference is None:
        written = [r["environment"] for r in json.loads(REFERENCE.read_text())["references"]]
        pytest.skip(f"references written with {written}, here {environment()}; add one: check "
                    "out commit c56b411 (before the GPU changes) and run "
                    "'PYTHONPATH=<checkout>/src python tests/test_deep_cpu_identity.py --add'")
    now = cpu_training_run()
    assert now["train_images"] == reference["train_images"]
    assert now["train_loss"] == reference["train_loss"]  # exact floats, not approx
    assert now["val_loss"] == reference["val_loss"]
    assert np.array_equal(now["val_auc"], reference["val_auc"])
    assert now["weights_sum"] == reference["weights_sum"]
    assert now["weights_sha256"] == reference["weights_sha256"]


if __name__ == "__main__":
    import dlrn

    source = Path(dlrn.__file__).parent  # the code measured (PYTHONPATH), not this file's
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=source).stdout.strip()
    values = cpu_training_run()
    values["environment"] = environment()
    values["provenance"] = (f"written by 'PYTHONPATH=<checkout>/src python "
                            f"tests/test_deep_cpu_identity.py --add' with the code of commit "
                            f"{commit} (before the GPU changes)")
    kept = ([r for r in json.loads(REFERENCE.read_text())["references"]
             if r["environment"] != values["environment"]]
            if "--add" in sys.argv and REFERENCE.exists() else [])
    REFERENCE.write_text(json.dumps({"references": [*kept, values]}, indent=1) + "\n")
    print(json.dumps(values, indent=1))
