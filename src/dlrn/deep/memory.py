"""Peak memory of a training run: what fine-tuning one backbone needs, for the comparison table."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

_PROC_SELF = Path("/proc/self")


def _proc_status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in KiB."""
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", (_PROC_SELF / "status").read_text(), re.M)
    if match is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def _release_free_heap() -> None:
    """Hand memory freed by earlier work back to the system (glibc), so it is not reused unseen."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_resident_peak() -> int | None:
    """Reset the resident-memory high-water mark (Linux >= 4.0); the resident KiB now, or None."""
    _release_free_heap()
    try:
        (_PROC_SELF / "clear_refs").write_text("5")
        return _proc_status_kib("VmRSS")
    except OSError:
        return None


@dataclass
class PeakMemory:
    """Memory a piece of work added at its peak, above what the process held when it began.

    CUDA: torch's allocator peak above the memory allocated at the start (exact; the
    models of earlier backbones still on the GPU are not counted). CPU on Linux: the
    resident-memory high-water mark (VmHWM, reset at the start) above the resident
    memory at the start (freed heap is handed back to the system first so that its reuse
    shows; what cannot be handed back can make a figure read slightly low). Elsewhere
    (MPS, CPU on macOS or Windows): not measured (NaN). Whole-process figures for one
    backbone in a fresh process: ``benchmarks/bench_deep.py``.
    """

    device: torch.device
    baseline: int | None

    @classmethod
    def start(cls, device: torch.device) -> PeakMemory:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            return cls(device, torch.cuda.memory_allocated(device))
        return cls(device, _reset_resident_peak() if device.type == "cpu" else None)

    def peak_mib(self) -> float:
        """MiB added at the peak since :meth:`start` (NaN where not measured)."""
        if self.baseline is None:
            return math.nan
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self.baseline) / 2**20
        try:
            return (_proc_status_kib("VmHWM") - self.baseline) / 1024
        except OSError:
            return math.nan
