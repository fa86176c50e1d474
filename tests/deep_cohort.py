"""Tiny planted-signal data for the deep tests: a bright square in one quadrant = positive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlrn.deep.data import CropCache, CropSettings


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a test module (import this fixture to use it).

    On a loaded 2-core machine two torch threads wait on each other and ran 10-50x
    slower than one (measured: a ResNet18 step on 8 crops of 32 px, 0.07 s with one
    thread, 0.15-4 s with two); the tests check behaviour, not threading.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted_crops(n_cases: int = 64, size: int = 64, seed: int = 0) -> tuple[CropCache,
                                                                            pd.DataFrame,
                                                                            np.ndarray]:
    """Crops (uint8), the cohort table and each case's lesion box (top, bottom, left, right).

    Every crop has a square "lesion" (1/4 of the side) in a random quadrant on
    speckle-like noise, of black and white pixels: in stripes for positives, at
    random for negatives. Both have the same grey-level histogram, so only the
    lesion itself (not a whole-image statistic) tells the classes apart.
    """
    rng = np.random.default_rng(seed)
    crops = rng.normal(90, 25, size=(n_cases, 1, size, size)).clip(0, 255)
    boxes = np.zeros((n_cases, 4), dtype=int)
    labels = np.arange(n_cases) % 2
    side = size // 4
    stripes = np.repeat(np.arange(side) // 2 % 2, side).reshape(side, side)
    for i, label in enumerate(labels):
        top = rng.integers(0, 2) * size // 2 + rng.integers(2, size // 2 - side - 1)
        left = rng.integers(0, 2) * size // 2 + rng.integers(2, size // 2 - side - 1)
        pattern = stripes if label else rng.permutation(stripes.ravel()).reshape(side, side)
        crops[i, 0, top : top + side, left : left + side] = 30 + 190 * pattern
        boxes[i] = (top, top + side, left, left + side)
    ids = [f"case{i:03d}" for i in range(n_cases)]
    cases = pd.DataFrame({"label": labels, "patient_id": ids},
                         index=pd.Index(ids, name="case_id"))
    cache = CropCache(crops.clip(0, 255).astype(np.uint8), ids, CropSettings(image_size=size))
    return cache, cases, boxes


def write_png_cohort(folder: Path, n_cases: int = 24, size: int = 48, seed: int = 0) -> Path:
    """PNG images + masks and a cohort CSV: bright lesion = malignant, dark = benign."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = []
    for i in range(n_cases):
        label = (i // 2) % 2
        image = rng.normal(100, 20, (size, size + 8))
        mask = np.zeros(image.shape, dtype=np.uint8)
        top, left = rng.integers(2, size // 2, 2)
        height, width = rng.integers(10, size // 2, 2)
        mask[top : top + height, left : left + width] = 255
        image[mask > 0] = rng.normal(200 if label else 30, 15, int((mask > 0).sum()))
        case_id = f"p{i // 2:02d}-{'ab'[i % 2]}"
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"images/{case_id}.png")
        Image.fromarray(mask).save(folder / f"masks/{case_id}.png")
        rows.append({"case_id": case_id, "patient": f"p{i // 2:02d}",
                     "image": f"images/{case_id}.png", "mask": f"masks/{case_id}.png",
                     "malignant": label})
    path = folder / "cases.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def two_views_planted_crops() -> tuple[CropCache, pd.DataFrame]:
    """36 planted 32 px crops, two images per patient (for the cross-fitting tests)."""
    cache, cases, _ = planted_crops(n_cases=36, size=32)
    cases["patient_id"] = [f"p{i // 2:02d}" for i in range(len(cases))]
    return cache, cases
