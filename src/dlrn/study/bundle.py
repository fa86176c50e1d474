"""The model bundle: everything needed to predict a new case, in one folder, without pickle.

Layout: JSON for settings and the nomogram, skops for scikit-learn-compatible
estimators (loaded against an explicit list of trusted types), safetensors for
arrays (deep-feature PCA, CNN weights). ``bundle.json`` holds the format
version and a sha256 manifest of every other file; loading checks both first,
so a tampered or incompatible bundle fails before any of it is used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dlrn import __version__
from dlrn.errors import DlrnError
from dlrn.provenance import file_sha256, package_versions

BUNDLE_FORMAT = "dlrn-bundle"
BUNDLE_VERSION = 1
MANIFEST_NAME = "bundle.json"

# Types a bundle's skops files may contain beyond skops' own defaults. Listed one
# by one: loading a file that needs anything else is refused.
TRUSTED_TYPES: tuple[str, ...] = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
)
# dlrn's own estimators (selection steps, deep-feature PCA) are trusted by module.
TRUSTED_MODULES: tuple[str, ...] = ("dlrn.",)


#: the bundle's U-Net (when the study trained one): its weights and its card
SEGMENTATION_WEIGHTS = "segmentation/unet"
SEGMENTATION_CARD = "segmentation/model"


class BundleError(DlrnError):
    """A bundle is missing, tampered with, or from an incompatible dlrn version."""


def _relative(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()


class BundleWriter:
    """Collects a bundle's files, then writes the manifest that seals them."""

    def __init__(self, folder: str | Path, *, overwrite: bool = False) -> None:
        self.folder = Path(folder)
        if (self.folder / MANIFEST_NAME).exists() and not overwrite:
            raise BundleError(f"{self.folder} already holds a bundle; remove it or allow "
                              "overwriting")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []

    def _target(self, name: str, suffix: str) -> Path:
        path = self.folder / f"{name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(path)
        return path

    def add_json(self, name: str, data: Any) -> Path:
        path = self._target(name, ".json")
        path.write_text(json.dumps(data, indent=2, default=_json_default))
        return path

    def add_estimator(self, name: str, estimator: Any) -> Path:
        import skops.io

        path = self._target(name, ".skops")
        dump_estimator(estimator, path)
        untrusted = [t for t in skops.io.get_untrusted_types(file=path) if not _is_trusted(t)]
        if untrusted:
            raise BundleError(f"cannot bundle {name}: it contains types a bundle may not load "
                              f"({', '.join(untrusted)}); add them to TRUSTED_TYPES if safe")
        return path

    def add_arrays(self, name: str, arrays: Mapping[str, Any]) -> Path:
        """Arrays or torch tensors (e.g. a state dict) as one safetensors file."""
        from safetensors.numpy import save_file

        path = self._target(name, ".safetensors")
        save_file({key: np.array(_to_numpy(value), order="C") for key, value in arrays.items()},
                  str(path))
        return path

    def finish(self, **details: Any) -> Path:
        """Write bundle.json: format, version, provenance and the sha256 of every file."""
        manifest = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "dlrn_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "files": {_relative(self.folder, p): file_sha256(p) for p in sorted(self.files)},
            **details,
        }
        path = self.folder / MANIFEST_NAME
        path.write_text(json.dumps(manifest, indent=2, default=_json_default))
        return path


class Bundle:
    """A verified bundle: every file's checksum matched its manifest when it was opened."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self._cnns: dict[tuple[str, str], Any] = {}
        self._segmentation: Any = None

    @classmethod
    def open(cls, folder: str | Path) -> Bundle:
        folder = Path(folder)
        manifest_path = folder / MANIFEST_NAME
        if not manifest_path.is_file():
            raise BundleError(f"{folder} is not a dlrn bundle (no {MANIFEST_NAME})")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise BundleError(f"{manifest_path} is not valid JSON: {error}") from error
        _check_version(manifest_path, manifest)
        _check_files(folder, manifest["files"])
        return cls(folder, manifest)

    def _path(self, name: str, suffix: str) -> Path:
        relative = f"{name}{suffix}"
        if relative not in self.manifest["files"]:
            raise BundleError(f"bundle {self.folder} has no {relative}")
        return self.folder / relative

    def has(self, name: str, suffix: str) -> bool:
        return f"{name}{suffix}" in self.manifest["files"]

    def json(self, name: str) -> Any:
        return json.loads(self._path(name, ".json").read_text())

    def estimator(self, name: str) -> Any:
        return load_trusted_estimator(self._path(name, ".skops"))

    def cnn(self, backbone: str, name: str = "deep/cnn") -> Any:
        """The CNN of weights ``name`` in eval mode, built once per bundle object.

        Its file's checksum is checked again as it is read (so the weights used are
        the ones the manifest seals); a long-lived bundle (``dlrn serve``) keeps it.
        """
        key = (backbone, name)
        if key not in self._cnns:
            from dlrn.deep.networks import build_model

            path = self._path(name, ".safetensors")
            _check_files(self.folder, {f"{name}.safetensors":
                                       self.manifest["files"][f"{name}.safetensors"]})
            self._cnns[key] = build_model(backbone, weights=path).eval()
        return self._cnns[key]

    def segmentation(self) -> Any:
        """The study's U-Net (:class:`dlrn.segmentation.SegmentationModel`), built once per
        bundle object, or None where the study trained none."""
        if not self.has(SEGMENTATION_CARD, ".json"):
            return None
        if self._segmentation is None:
            from dlrn.segmentation import SegmentationModel

            weights = f"{SEGMENTATION_WEIGHTS}.safetensors"  # checked again as it is read
            _check_files(self.folder, {weights: self.manifest["files"][weights]})
            self._segmentation = SegmentationModel.from_parts(
                self.json(SEGMENTATION_CARD), self.arrays(SEGMENTATION_WEIGHTS))
        return self._segmentation

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        return load_file(str(self._path(name, ".safetensors")))


def load_trusted_estimator(path: Path) -> Any:
    """Load a skops file, refusing any type outside the trusted list."""
    import skops.io

    needed = skops.io.get_untrusted_types(file=path)
    refused = [t for t in needed if not _is_trusted(t)]
    if refused:
        raise BundleError(f"{path} asks to load types that are not trusted: "
                          f"{', '.join(refused)}")
    return _convert_pandas(skops.io.load(path, trusted=needed), _from_plain)


def dump_estimator(estimator: Any, path: Path) -> None:
    """skops dump; pandas attributes (which skops cannot store) travel as plain dicts."""
    import copy

    import skops.io

    skops.io.dump(_convert_pandas(copy.deepcopy(estimator), _to_plain), path)


_PANDAS_KEY = "__dlrn_pandas__"


def _to_plain(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return {_PANDAS_KEY: "frame", "index": _plain_list(value.index),
                "index_name": value.index.name,
                "columns": {str(c): _plain_list(value[c]) for c in value.columns}}
    if isinstance(value, pd.Series):
        return {_PANDAS_KEY: "series", "index": _plain_list(value.index),
                "index_name": value.index.name, "name": value.name,
                "values": _plain_list(value)}
    return value


def _from_plain(value: Any) -> Any:
    import pandas as pd

    if not (isinstance(value, dict) and _PANDAS_KEY in value):
        return value
    index = pd.Index(value["index"], name=value["index_name"])
    if value[_PANDAS_KEY] == "series":
        return pd.Series(value["values"], index=index, name=value["name"])
    return pd.DataFrame(value["columns"], index=index)


def _plain_list(values: Any) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in list(values)]


def _convert_pandas(obj: Any, convert: Any) -> Any:
    """Apply ``convert`` to every attribute of the estimator tree (pipelines, steps...)."""
    converted = convert(obj)
    if converted is not obj:
        return converted
    if isinstance(obj, list):
        return [_convert_pandas(item, convert) for item in obj]
    if isinstance(obj, tuple):
        return tuple(_convert_pandas(item, convert) for item in obj)
    if isinstance(obj, dict):
        return {key: _convert_pandas(item, convert) for key, item in obj.items()}
    if hasattr(obj, "get_params") and hasattr(obj, "__dict__"):
        for key, item in vars(obj).items():
            setattr(obj, key, _convert_pandas(item, convert))
    return obj


def _is_trusted(type_name: str) -> bool:
    return type_name in TRUSTED_TYPES or type_name.startswith(TRUSTED_MODULES)


def _check_version(path: Path, manifest: dict[str, Any]) -> None:
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a dlrn bundle manifest (format "
                          f"{manifest.get('format')!r})")
    version = manifest.get("version")
    if version != BUNDLE_VERSION:
        raise BundleError(f"{path}: bundle version {version!r} (written by dlrn "
                          f"{manifest.get('dlrn_version', '?')}) cannot be read by dlrn "
                          f"{__version__}, which reads bundle version {BUNDLE_VERSION}")
    if not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path} has no file manifest")


def _check_files(folder: Path, files: dict[str, str]) -> None:
    for relative, expected in files.items():
        path = (folder / relative).resolve()
        if folder.resolve() not in path.parents:
            raise BundleError(f"bundle manifest names a file outside the bundle: {relative}")
        if not path.is_file():
            raise BundleError(f"bundle {folder} is incomplete: {relative} is missing")
        if file_sha256(path) != expected:
            raise BundleError(f"bundle file {path} does not match its checksum in "
                              f"{MANIFEST_NAME}: it was modified after the bundle was written")


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to a bundle's JSON")
