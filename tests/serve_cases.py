"""A cohort case as the calculator's clients send it: the clinical values and the files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dlrn.serve.predictor import Predictor


def form_of(predictor: Predictor, case: pd.Series, **changes: str) -> dict[str, str]:
    """The case's value of every clinical predictor of the form, with ``changes``."""
    return {**{f.name: case[f.name] for f in predictor.fields}, **changes}


def files_of(case: pd.Series, *, image: bytes | None = None,
                 mask: bytes | None = None) -> dict:
    """The case's image and mask as multipart files; the client file names are
    deliberately misleading: the content decides."""
    return {"image": ("scan.dcm", image or Path(case["image"]).read_bytes()),
            "mask": ("../../etc/mask.txt", mask or Path(case["mask"]).read_bytes())}
