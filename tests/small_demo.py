"""The small demo study that the end-to-end and the reproducibility tests each run once.

80 cases, the fewest for which the demo's clinical columns keep cohort.min_level_count
cases of every value (fewer stop the clinical stage), plus a 30-case second centre as
external set; DL on.
"""

from __future__ import annotations

from pathlib import Path

from dlrn.cli import main


def run_small_demo(out: Path) -> Path:
    """`dlrn demo` into ``out`` (the cohorts in ``out``, the study in ``out/study``)."""
    assert main(["demo", "--out", str(out), "--cases", "80", "--external-cases", "30",
                 "--quiet"]) == 0
    return out
