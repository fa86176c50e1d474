"""The CPU training path gives bit-identical losses and weights to the code before the GPU work.

The reference values in ``data/deep_train_cpu_reference.json`` were written by running
this file as a script (``python tests/test_deep_cpu_identity.py``) on the commit named
in the file, before mixed precision, channels-last, device-held crops and GPU-side
augmentation were added; nothing in it is typed in by hand. Bits depend on the torch
build and the CPU's vector instructions, so elsewhere the test is skipped, naming how
to rewrite the reference there (check out that commit, run the script, come back).
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


def environment() -> dict:
    """What the exact bits depend on besides the code."""
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}


def cpu_training_run() -> dict:
    """Two optimiser steps of a ResNet18 on 12 planted 32 px crops, with augmentation."""
    sys.path.insert(0, str(Path(__file__).parent))
    from deep_cohort import planted_crops

    from dlrn.deep.train import TrainSettings, train_backbone

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
    reference = json.loads(REFERENCE.read_text())
    if reference["environment"] != environment():
        pytest.skip(f"reference written with {reference['environment']}, here {environment()}; "
                    f"{reference['provenance']}")
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
                            f"tests/test_deep_cpu_identity.py' with the code of commit {commit} "
                            f"(before the GPU changes)")
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(values, indent=1) + "\n")
    print(json.dumps(values, indent=1))
