"""Shared fixtures: a small synthetic cohort (made once per session) and the BUS-BRA data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests draw figures to files, as the CLI does (the library never picks a backend).
os.environ.setdefault("MPLBACKEND", "Agg")

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
BUSBRA_DIR = SHARED_DIR / "data" / "busbra"


@pytest.fixture(scope="session")
def synthetic_cohort_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cohort.csv of 60 synthetic 128x128 cases (read-only: copy it before changing files)."""
    from dlrn.synthetic import make_synthetic_cohort

    folder = tmp_path_factory.mktemp("synthetic_cohort")
    return make_synthetic_cohort(folder, n_cases=60, seed=0, image_size=(128, 128))


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a small `dlrn demo` (cohorts, study.yaml, study/), run once per session
    for the end-to-end and the reproducibility tests; a test that changes its study puts
    it back. 80 cases, the fewest for which the demo's clinical columns keep
    cohort.min_level_count cases of every value (fewer stop the clinical stage), plus a
    30-case second centre as external set; DL on."""
    from dlrn.cli import main

    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--cases", "80", "--external-cases", "30",
                 "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def busbra_dir() -> Path:
    """The BUS-BRA folder (cases.csv, images/, masks/) from ../shared beside the clone."""
    if not (BUSBRA_DIR / "cases.csv").is_file():
        pytest.skip(f"BUS-BRA data not found at {BUSBRA_DIR} (CI keeps ../shared beside the clone)")
    return BUSBRA_DIR
