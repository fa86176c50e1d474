"""Shared fixtures: a small synthetic cohort (made once per session) and the BUS-BRA data."""

from __future__ import annotations

import os
import subprocess
import sys
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
def small_demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A small `dlrn demo` in a process of its own, as a user runs it, once per session: its
    folder (cohorts, study.yaml, study/), stdout and stderr (worker processes' output
    included). Shared by the end-to-end and the reproducibility tests; a test that changes
    its study puts it back. 80 cases, the fewest for which the demo's clinical columns
    keep cohort.min_level_count cases of every value (fewer stop the clinical stage), plus
    a 30-case second centre as external set; DL on."""
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from dlrn.cli import main; sys.exit(main())",
         "demo", "--out", str(out), "--cases", "80", "--external-cases", "30"],
        capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return out, done.stdout, done.stderr


@pytest.fixture(scope="session")
def small_demo(small_demo_run: tuple[Path, str, str]) -> Path:
    """The folder of the small demo of :func:`small_demo_run`."""
    return small_demo_run[0]


@pytest.fixture(scope="session")
def busbra_dir() -> Path:
    """The BUS-BRA folder (cases.csv, images/, masks/) from ../shared beside the clone."""
    if not (BUSBRA_DIR / "cases.csv").is_file():
        pytest.skip(f"BUS-BRA data not found at {BUSBRA_DIR} (CI keeps ../shared beside the clone)")
    return BUSBRA_DIR


# --- dlrn serve: one small study and its bundle, shared by the serve tests ------------------

SERVE_STUDY = """\
cohort:
  table: {table}
  patient: patient_id
  clinical: {{age: continuous, max_diameter_mm: continuous, sex: categorical,
             margin: categorical}}
radiomics: {{preset: fast, jobs: 1}}
selection: {{lasso_folds: 3}}
classifiers: {{models: [LR], cv_folds: 3}}
dl: {{backbones: [resnet18], weights: null, epochs: 1, batch_size: 16, image_size: 32,
     pca_components: 4}}
evaluation: {{clinical_p_threshold: 0.9, nomogram_bootstrap: 0}}
output: study
seed: 0
"""


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory, synthetic_cohort_csv) -> Path:
    """The bundle of the serve tests' study (the session's synthetic cohort, one classifier,
    a tiny CNN, a permissive clinical threshold so that the nomogram has numeric and
    categorical predictors), run once for every serve test module."""
    from dlrn.cli import main

    folder = tmp_path_factory.mktemp("serve_study")
    (folder / "study.yaml").write_text(SERVE_STUDY.format(table=synthetic_cohort_csv))
    assert main(["run", str(folder / "study.yaml"), "--quiet"]) == 0
    return folder / "study" / "bundle"


@pytest.fixture(scope="session")
def predictor(bundle_dir):
    from dlrn.serve.predictor import Predictor

    return Predictor(bundle_dir)


@pytest.fixture(scope="session")
def client(predictor):
    from fastapi.testclient import TestClient

    from dlrn.serve.app import create_app

    return TestClient(create_app(predictor))


@pytest.fixture(scope="session")
def cohort(synthetic_cohort_csv):
    """The synthetic cohort's table with absolute image and mask paths, by case id."""
    import pandas as pd

    table = pd.read_csv(synthetic_cohort_csv, dtype=str).set_index("case_id", drop=False)
    for column in ("image", "mask"):
        table[column] = [str(synthetic_cohort_csv.parent / p) for p in table[column]]
    return table


@pytest.fixture(scope="session")
def live_server(predictor):
    """The app under uvicorn on a free local port, in a thread; stopped afterwards."""
    import threading

    import uvicorn

    from dlrn.serve.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(predictor), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
