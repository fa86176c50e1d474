"""Provenance written beside every result: software versions, settings, seeds, input hashes."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

_TRACKED_PACKAGES = (
    "dlrn", "numpy", "scipy", "pandas", "SimpleITK", "pyradiomics", "scikit-learn",
    "scikit-image", "xgboost", "lightgbm", "statsmodels", "torch", "torchvision",
    "matplotlib", "pydicom", "grad-cam", "skops", "safetensors",
)


def package_versions(packages: tuple[str, ...] = _TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages whose behaviour shapes dlrn's numbers."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def blas_threads() -> int:
    """The threads of the linear-algebra libraries (OpenBLAS, MKL) numpy and scipy call.

    A PCA or a smoothed curve differs in its last digits with another count (a study
    run on one core and re-run on two: the deep features' PCA moved by 3e-10), so a
    study records it and ``dlrn reproduce`` runs with it.
    """
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info()
                if pool["user_api"] == "blas"), default=1)


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Content hash of a file, so a result can say exactly which input it came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def write_provenance(path: str | Path, **details: Any) -> Path:
    """Write a JSON record of versions, platform and the given details (settings, seeds...).

    ``lock`` says whether the running versions are those of the lock file that ``make
    venv`` installs (:func:`dlrn.lockfile.lock_status`): a result made next month with
    other versions can then say so.
    """
    from dlrn.lockfile import lock_status

    record = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "platform": platform.platform(),
        "versions": package_versions(),
        "lock": lock_status(),
        **details,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))
    return path
