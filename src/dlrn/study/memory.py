"""Peak memory of a stage: this process plus its live worker processes."""

from __future__ import annotations

import threading


class MemoryPeak:
    """Peak resident memory of this process plus its live worker processes, during a block.

    Sampled every ``interval`` seconds in a thread (a spike shorter than that can be
    missed), because ``getrusage`` only gives the peak since the process started and
    the largest single worker, not what the stage held with all workers at once.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # a worker that just finished
                continue
        self.peak_mb = max(self.peak_mb, total / 2**20)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemoryPeak:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
