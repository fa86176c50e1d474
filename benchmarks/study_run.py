"""Wall time and peak memory of `dlrn run`, stage by stage, as a Markdown table.

Usage: nice -n 10 .venv/bin/python benchmarks/study_run.py STUDY.yaml [--force STAGE ...]

Each stage's seconds and peak memory come from its record (``stage.json``): resident
memory of this process plus its live worker processes, sampled every 0.2 s while the
stage ran. The last rows are the report + bundle (the rest of the wall time) and the
whole command. The output pastes into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime

from dlrn.study.config import load_study
from dlrn.study.memory import MemoryPeak
from dlrn.study.pipeline import run_study


def _machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load:.1f} at start, {datetime.now():%Y-%m-%d %H:%M}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--force", action="append", default=[])
    args = parser.parse_args()
    config = load_study(args.study)
    machine = _machine()
    started = time.perf_counter()
    with MemoryPeak() as memory:
        result = run_study(config, force=args.force, progress=False)
    total = time.perf_counter() - started

    records = result.records.values()
    cohort = result.records["cohort"].summary
    print(f"`dlrn run {args.study}`: {getattr(cohort, 'cases_analysed', '?')} cases; "
          f"{machine}\n")
    print("| stage | status | seconds | peak MB |")
    print("|---|---|---|---|")
    for record in records:
        if record.reused:
            print(f"| {record.name} | reused (first run: {record.seconds:.1f} s) | 0 | |")
        else:
            print(f"| {record.name} | {record.status} | {record.seconds:.1f} | "
                  f"{record.peak_memory_mb:.0f} |")
    stages = sum(record.seconds for record in records if not record.reused)
    print(f"| report + bundle | done | {total - stages:.1f} | |")
    print(f"| **whole command** | | **{total:.1f}** | **{memory.peak_mb:.0f}** |")


if __name__ == "__main__":
    main()
