"""Load the R reference values vendored in tests/data/stats-refs (origin ../shared/stats-refs).

A missing file fails the test: the R parity is the point of these tests.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

STATS_REFS = Path(__file__).resolve().parent / "data" / "stats-refs"

CLOSED_FORM = 1e-12  # README: AUC, DeLong, counts, NB, chi-square, MWU
ITERATIVE = 1e-6  # README: anything from an iterative logistic fit; Shapiro-Wilk p

_NON_FINITE = {"Inf": math.inf, "-Inf": -math.inf, "NA": math.nan}


def _decode(value: object) -> object:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


@cache
def expected(name: str) -> dict:
    path = STATS_REFS / "expected" / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"R reference values not found at {path} (see tests/data/README.md)")
    return _decode(json.loads(path.read_text()))


def data(name: str) -> pd.DataFrame:
    path = STATS_REFS / "data" / f"{name}.csv"
    if not path.is_file():
        pytest.fail(f"R reference data not found at {path} (see tests/data/README.md)")
    return pd.read_csv(path)


def assert_close(actual: object, reference: object, rel: float = CLOSED_FORM,
                 what: str = "") -> None:
    """Relative tolerance (JSON has 15 significant digits), absolute near zero."""
    actual_values = np.asarray(actual, dtype=float)
    reference_values = np.asarray(reference, dtype=float)
    np.testing.assert_allclose(actual_values, reference_values, rtol=rel, atol=rel, err_msg=what)
