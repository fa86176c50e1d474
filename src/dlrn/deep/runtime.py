"""Where and how a training run computes: device, threads, determinism, autocast precision.

Kept apart from the training loop so that inference and benchmarks choose devices and
precisions by the same rules.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from dlrn.deep.settings import LoopSettings
from dlrn.errors import DlrnError


def select_device(spec: str = "auto") -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU; an explicit device must exist."""
    has_mps = torch.backends.mps.is_available()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": has_mps}
    if not available.get(spec.split(":")[0], False):
        usable = ", ".join(name for name, ok in available.items() if ok)
        raise DlrnError(f"device {spec!r} is not available here; usable: auto, {usable}")
    return torch.device(spec)


def default_threads() -> int:
    """CPU threads this process may use (respects taskset / container CPU limits)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def autocast_dtype(settings: LoopSettings, device: torch.device) -> torch.dtype | None:
    """The autocast type of a run: None (fp32) off CUDA, with ``amp=False`` or ``fp32``."""
    if device.type != "cuda" or not settings.amp or settings.precision == "fp32":
        return None
    bf16 = torch.cuda.get_device_capability(device)[0] >= 8  # Ampere and later, natively
    if settings.precision == "bf16" and not bf16:
        raise DlrnError(f"{torch.cuda.get_device_name(device)} has no bfloat16; "
                        f"use precision fp16 or auto")
    if settings.precision == "fp16" or not bf16:
        return torch.float16
    return torch.bfloat16


def precision_name(dtype: torch.dtype | None) -> str:
    """How the model card and benchmarks name an autocast type."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def is_deterministic(settings: LoopSettings, device: torch.device) -> bool:
    """``deterministic=None`` resolved: True except on CUDA (see
    :class:`dlrn.deep.settings.LoopSettings`)."""
    return device.type != "cuda" if settings.deterministic is None else settings.deterministic


def resolved_threads(settings: LoopSettings) -> int:
    """The CPU threads a run uses: ``settings.threads``, else all this process may use."""
    return settings.threads or default_threads()


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """torch's CPU threads set to ``count`` for a block, restored afterwards.

    A CNN's numbers on the CPU depend on this count (oneDNN and other kernels split their
    sums by thread: the demo's CNN reached a test AUC of 0.677 with 2 threads, 0.684
    with 1), so a whole deep stage, inference included, runs with one recorded count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def repeatability(settings: LoopSettings, device: torch.device) -> str:
    """Whether a training run on ``device`` repeats to the last digit, in words (the
    report's methods): on the CPU with the same number of threads (recorded); on CUDA
    where torch has deterministic algorithms for every op, when ``settings`` ask for
    them."""
    if device.type == "cpu":
        return (f"deterministic on the CPU with {resolved_threads(settings)} thread(s): the "
                "same count repeats the training to the last digit, another one changes the "
                "last digits (dl.threads fixes it; dlrn reproduce uses the recorded count)")
    if device.type != "cuda":
        return f"not guaranteed to repeat on {device.type}"
    if is_deterministic(settings, device):
        return ("deterministic where torch allows it (torch.use_deterministic_algorithms, "
                "cuDNN's deterministic kernels, no autotuning); an op with no deterministic "
                "CUDA version still varies in the last digits, and torch warns of it")
    return ("not deterministic: cuDNN chose its fastest kernels (dl.deterministic: false); "
            "runs differ in the last digits")


@contextlib.contextmanager
def torch_runtime(settings: LoopSettings, device: torch.device) -> Iterator[None]:
    """Threads, determinism and cuDNN autotuning for one training run, restored afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    repeatable = is_deterministic(settings, device)
    torch.set_num_threads(resolved_threads(settings))
    if repeatable and device.type == "cuda":  # cuBLAS is repeatable only with this workspace
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(repeatable, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not repeatable
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark


def cuda_oom_error(name: str, batch_size: int, device: torch.device) -> DlrnError:
    """The message for a GPU that ran out of memory with ``name`` (a backbone, the U-Net):
    what to change."""
    return DlrnError(
        f"{device} ran out of memory with {name} at batch size {batch_size}; "
        f"try --batch-size {max(1, batch_size // 2)} (or a smaller --image-size)"
    )


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` on the device; a no-op context for fp32 (``dtype=None``)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
