"""The GPU training path: batched augmentation, device-held crops, precision settings.

The resampling and batching are checked on CPU tensors (the same code runs on the
GPU); the tests marked for CUDA run only where a GPU is present.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from deep_cohort import one_torch_thread, planted_crops  # noqa: F401 (autouse fixture)

from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.train import train_backbone
from dlrn.deep.data import (
    Augmentation,
    DeviceCrops,
    _draw_boxes,
    _random_box,
    augment_batch,
    resample_boxes,
)
from dlrn.deep.runtime import (
    autocast_dtype,
    is_deterministic,
    precision_name,
    repeatability,
)
from dlrn.errors import DlrnError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def one_box_like_augment(image: torch.Tensor, box: tuple[int, int, int, int],
                         flips: tuple[bool, bool]) -> torch.Tensor:
    """What :func:`dlrn.deep.data.augment` does to one 1 x 1 x S x S image for a given box."""
    top, left, height, width = box
    size = image.shape[-1]
    patch = image[..., top : top + height, left : left + width].float()
    out = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False)
    out = out.round().clamp(0, 255)
    if flips[0]:
        out = out.flip(-1)
    if flips[1]:
        out = out.flip(-2)
    return out


def test_batched_resampling_matches_interpolating_each_box():
    generator = torch.Generator().manual_seed(0)
    size = 40
    batch = torch.randint(0, 256, (12, 1, size, size), dtype=torch.uint8, generator=generator)
    boxes = [(0, 0, size, size), (3, 5, 30, 34), (0, 9, 17, 31), (10, 0, 30, 22),
             (23, 23, 17, 17), (1, 2, 38, 20), (5, 0, 1, 40), (0, 0, 40, 1),
             (7, 11, 25, 25), (2, 3, 35, 36), (14, 0, 26, 40), (0, 14, 40, 26)]
    flips = [(i % 2 == 1, i % 3 == 1) for i in range(len(boxes))]
    together = resample_boxes(batch, torch.tensor(boxes, dtype=torch.float64),
                              torch.tensor(flips))
    one_by_one = torch.cat([one_box_like_augment(batch[i : i + 1], box, flip)
                            for i, (box, flip) in enumerate(zip(boxes, flips, strict=True))])
    difference = (together - one_by_one).abs()
    # grid_sample and interpolate compute the same weights in a different order: a value
    # that lands on .5 in one can round the other way in the other, never by more than 1
    assert difference.max() <= 1
    assert (difference > 0).float().mean() < 0.02


def test_drawn_boxes_follow_the_random_resized_crop_rule():
    augmentation = Augmentation()
    size = 224
    boxes = _draw_boxes(4000, size, augmentation, torch.Generator().manual_seed(1))
    top, left, height, width = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= size).all() and (left + width <= size).all()
    area = height * width / size**2
    low, high = augmentation.crop_scale
    slack = 2 * size / size**2 + 1 / size**2  # rounding each side to whole pixels
    assert area.min() >= low - slack and area.max() <= high + slack
    ratio = width / height
    assert ratio.min() >= 3 / 4 - 0.02 and ratio.max() <= 4 / 3 + 0.02
    # the same distribution as the per-image CPU rule (large boxes of extreme shape do
    # not fit and are redrawn, so the accepted area is not uniform on the scale range)
    one_by_one = torch.tensor([_random_box(size, augmentation, generator)
                               for generator in [torch.Generator().manual_seed(2)]
                               for _ in range(4000)], dtype=torch.float64)
    for column in range(4):
        assert abs(boxes[:, column].mean() - one_by_one[:, column].mean()) < 1.0  # pixels
        assert abs(boxes[:, column].std() - one_by_one[:, column].std()) < 1.0
    cpu_area = one_by_one[:, 2] * one_by_one[:, 3] / size**2
    assert abs(area.mean() - cpu_area.mean()) < 0.005


def test_batched_augmentation_is_seeded_varied_and_none_is_identity():
    batch = torch.randint(0, 256, (6, 1, 32, 32), dtype=torch.uint8)
    first = augment_batch(batch, Augmentation(), torch.Generator().manual_seed(2))
    second = augment_batch(batch, Augmentation(), torch.Generator().manual_seed(2))
    other = augment_batch(batch, Augmentation(), torch.Generator().manual_seed(3))
    assert torch.equal(first, second) and not torch.equal(first, other)
    assert first.dtype == torch.float32 and torch.equal(first, first.round())
    none = augment_batch(batch, Augmentation.none(), torch.Generator())
    assert torch.equal(none, batch.float())


def test_flips_only_move_pixels():
    batch = torch.randint(0, 256, (64, 1, 16, 16), dtype=torch.uint8)
    flips_only = Augmentation(random_crop=False)
    flipped = augment_batch(batch, flips_only, torch.Generator().manual_seed(4))
    candidates = [batch.float(), batch.float().flip(-1), batch.float().flip(-2),
                  batch.float().flip(-1).flip(-2)]
    matches = torch.stack([(flipped == c).flatten(1).all(1) for c in candidates])
    assert matches.any(0).all()  # every image is one of its four flips, exactly
    assert (matches.sum(1) > 5).all()  # and each of the four happens


def test_device_batches_cover_each_case_once_per_epoch_in_seeded_order():
    crops = np.arange(10 * 4, dtype=np.uint8).reshape(10, 1, 2, 2)
    positions = np.array([9, 7, 5, 3, 1, 0, 2])
    batches = DeviceCrops(crops, positions, 3, device=torch.device("cpu"),
                          generator=torch.Generator().manual_seed(0), drop_last=False)
    assert len(batches) == 3
    epoch = list(batches)
    rows = torch.cat([row for _, row in epoch])
    assert sorted(rows.tolist()) == sorted(positions.tolist())
    for images, row in epoch:
        assert torch.equal(images, torch.from_numpy(crops)[row])
    again = DeviceCrops(crops, positions, 3, device=torch.device("cpu"),
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([row for _, row in again]), rows)
    assert len(DeviceCrops(crops, positions, 3, device=torch.device("cpu"),
                           generator=torch.Generator(), drop_last=True)) == 2


def test_precision_setting_is_checked_and_cpu_stays_fp32():
    with pytest.raises(DlrnError, match="precision 'half' is not one of auto, fp32"):
        TrainSettings(precision="half")
    cpu = torch.device("cpu")
    for precision in ("auto", "fp32", "bf16", "fp16"):
        assert autocast_dtype(TrainSettings(precision=precision), cpu) is None
    assert is_deterministic(TrainSettings(), cpu)
    assert not is_deterministic(TrainSettings(deterministic=False), cpu)


def test_the_study_asks_for_deterministic_training_and_the_report_says_how_it_ran():
    from dlrn.study.config import DeepSettings
    from dlrn.study.stages.deep import deep_stage_settings

    study_default = deep_stage_settings(DeepSettings(), seed=0, weights=None).train
    turned_off = deep_stage_settings(DeepSettings(deterministic=False), seed=0,
                                     weights=None).train
    gpu = torch.device("cuda")  # a device name: no GPU is needed to say how it would run
    assert is_deterministic(study_default, gpu) and not is_deterministic(turned_off, gpu)
    two_threads = deep_stage_settings(DeepSettings(threads=2), seed=0, weights=None).train
    assert repeatability(two_threads, torch.device("cpu")).startswith(
        "deterministic on the CPU with 2 thread(s): the same count repeats")
    assert repeatability(study_default, gpu).startswith("deterministic where torch allows it")
    assert repeatability(turned_off, gpu).startswith("not deterministic: cuDNN chose")


@cuda
def test_cuda_precision_choices():
    gpu = torch.device("cuda")
    bf16 = torch.cuda.get_device_capability()[0] >= 8
    assert autocast_dtype(TrainSettings(), gpu) == (torch.bfloat16 if bf16 else torch.float16)
    assert autocast_dtype(TrainSettings(precision="fp16"), gpu) == torch.float16
    assert autocast_dtype(TrainSettings(amp=False), gpu) is None
    assert not is_deterministic(TrainSettings(), gpu)


@cuda
def test_batched_augmentation_on_the_gpu_equals_the_cpu_one():
    batch = torch.randint(0, 256, (8, 1, 48, 48), dtype=torch.uint8)
    on_cpu = augment_batch(batch, Augmentation(), torch.Generator().manual_seed(5))
    on_gpu = augment_batch(batch.cuda(), Augmentation(), torch.Generator().manual_seed(5))
    assert (on_gpu.cpu() - on_cpu).abs().max() <= 1


@cuda
@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_gpu_training_learns_the_planted_signal(precision):
    cache, cases, _ = planted_crops(n_cases=64, size=96)
    settings = TrainSettings(epochs=5, batch_size=8, val_fraction=0.25, progress=False,
                             patience=None, device="cuda", precision=precision)
    result = train_backbone("resnet18", cache, cases, list(cases.index), weights=None,
                            settings=settings)
    history = result.history
    assert result.precision == precision_name(autocast_dtype(settings, torch.device("cuda")))
    assert (result.precision == "fp32") == (precision == "fp32")
    assert all(math.isfinite(value) for value in history["train_loss"])
    assert history["train_loss"].iloc[-1] < 0.5 * history["train_loss"].iloc[0]
    assert result.best_val_auc >= 0.9
