"""Handcrafted radiomics (HCR) features with PyRadiomics 3.0.1, in parallel and cached.

Presets are PyRadiomics parameter files shipped in ``dlrn/presets`` (``seed``:
the study's 1497 features; ``fast``: the original image only, 102 features); a
user's own PyRadiomics YAML works too. Images are read by :mod:`dlrn.imaging`
as true 2D SimpleITK images, cast to double precision (see :func:`as_float64`:
PyRadiomics 3.0.1 mis-bins 8-bit images with bright ROIs) and handed to
``RadiomicsFeatureExtractor.execute``, so values equal a direct PyRadiomics
call on the same images.

* One table out: one row per case (index ``case_id``), one column per feature
  with PyRadiomics' names; ``diagnostics_*`` are dropped (the CLI writes the
  parameters and package versions beside the table instead).
* Cases run in parallel through :func:`dlrn.parallel.map_cases`; each worker
  reads its own files, so memory is bounded per worker.
* Cache: one JSON file per case, keyed by the SHA-256 of the image bytes, mask
  bytes, canonical parameters, ROI label and PyRadiomics version. A re-run
  only hashes files; a changed file or setting is extracted again.
* A case PyRadiomics rejects, or for which it silently skipped a filter or a
  feature class, is reported in ``failures`` with the reason; the others finish.

Masks: every non-zero pixel is the ROI. A parameter file that sets
``setting: label: k`` selects pixels equal to ``k`` instead (label maps).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk
import yaml

from dlrn.errors import ConfigError, DlrnError, shown_items
from dlrn.parallel import map_cases
from dlrn.provenance import file_sha256

log = logging.getLogger(__name__)

PRESETS = ("seed", "fast")
CACHE_FORMAT = "dlrn-radiomics-cache-v1"
DIAGNOSTICS_PREFIX = "diagnostics_"

_SIMPLE_IMAGE_TYPE_NAMES = {
    "Original": "original",
    "Square": "square",
    "SquareRoot": "squareroot",
    "Logarithm": "logarithm",
    "Exponential": "exponential",
    "Gradient": "gradient",
    "LBP2D": "lbp-2D",
}
_WAVELET_2D_DETAILS = ("LH", "HL", "HH")


class FeatureExtractionError(DlrnError):
    """PyRadiomics could not produce the full feature set for one case."""


@dataclass
class ExtractionResult:
    """Features of the cases that succeeded, the failures with reasons, and the parameters."""

    features: pd.DataFrame
    failures: pd.DataFrame
    params: dict[str, Any]
    from_cache: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CaseTask:
    """What a worker needs for one case: file paths and settings, never pixels."""

    case_id: str
    image: str
    mask: str
    params: dict[str, Any]
    mask_label: int | None = None
    frame: int = 0


# ---------------------------------------------------------------- parameters


def preset_path(name: str) -> Path:
    """Path of a shipped preset's PyRadiomics parameter file."""
    if name not in PRESETS:
        raise ConfigError(f"unknown radiomics preset {name!r}; choose one of {', '.join(PRESETS)}")
    return Path(str(resources.files("dlrn") / "presets" / f"{name}.yaml"))


def load_params(preset_or_path: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Parameters as a dict from a preset name, a PyRadiomics YAML file, or a dict.

    The parameters are validated by PyRadiomics itself, and settings that cannot
    work on true 2D images (3D ``shape``, ``LBP3D``, ``force2D``) are refused.
    """
    if isinstance(preset_or_path, dict):
        params, source = preset_or_path, "the given parameters"
    else:
        is_preset = str(preset_or_path) in PRESETS
        path = preset_path(str(preset_or_path)) if is_preset else Path(preset_or_path)
        source = f"parameter file {path}"
        if not path.is_file():
            raise ConfigError(
                f"radiomics parameters {preset_or_path!r} are neither a preset "
                f"({', '.join(PRESETS)}) nor an existing file"
            )
        try:
            params = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{source} is not valid YAML: {error}") from error
    if not isinstance(params, dict):
        raise ConfigError(f"{source} must be a mapping with imageType/featureClass/setting")
    _check_2d_compatible(params, source)
    extractor_for(params, source)  # PyRadiomics' own schema validation
    return params


def _check_2d_compatible(params: dict[str, Any], source: str) -> None:
    settings = params.get("setting") or {}
    if settings.get("force2D"):
        raise ConfigError(
            f"{source} sets force2D: true; dlrn extracts from true 2D images, where force2D "
            "makes the wavelet filter one axis only. Remove force2D."
        )
    if "shape" in (params.get("featureClass") or {}):
        raise ConfigError(
            f"{source} enables featureClass 'shape', which needs 3D images; use 'shape2D'"
        )
    if "LBP3D" in (params.get("imageType") or {}):
        raise ConfigError(f"{source} enables imageType 'LBP3D', which needs 3D images; use LBP2D")


def canonical_json(params: dict[str, Any]) -> str:
    """One text per parameter set (sorted keys), for cache keys and worker-side reuse."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def extractor_for(params: dict[str, Any], source: str = "the parameters"):
    """The configured ``RadiomicsFeatureExtractor``, built once per process and parameter set."""
    # Key in file order, not sorted: PyRadiomics orders its output by the file's image types.
    return _extractor(json.dumps(params, default=str), source)


@lru_cache(maxsize=4)
def _extractor(params_json: str, source: str):
    from radiomics import featureextractor

    params = json.loads(params_json)
    settings = dict(params.get("setting") or {})
    settings["label"] = 1  # dlrn's masks are 0/1; the file's label chose the ROI when reading
    try:
        with _quiet_pyradiomics():
            return featureextractor.RadiomicsFeatureExtractor({**params, "setting": settings})
    except Exception as error:  # pykwalify schema errors and PyRadiomics' ValueErrors
        raise ConfigError(f"{source} is not a valid PyRadiomics parameter set: {error}") from error


def expected_image_types(params: dict[str, Any]) -> list[str]:
    """Names PyRadiomics gives the (filtered) images these parameters ask for."""
    extractor = extractor_for(params)
    names = []
    for image_type, custom in extractor.enabledImagetypes.items():
        settings = {**extractor.settings, **(custom or {})}
        if image_type in _SIMPLE_IMAGE_TYPE_NAMES:
            names.append(_SIMPLE_IMAGE_TYPE_NAMES[image_type])
        elif image_type == "LoG":
            names += [f"log-sigma-{str(s).replace('.', '-')}-mm-3D" for s in settings["sigma"]]
        elif image_type == "Wavelet":
            names += _wavelet_names(int(settings.get("level", 1)))
    return names


def _wavelet_names(levels: int) -> list[str]:
    def prefix(level: int) -> str:
        return "wavelet" if level == 1 else f"wavelet{level}"

    levels_range = range(1, levels + 1)
    details = [f"{prefix(level)}-{d}" for level in levels_range for d in _WAVELET_2D_DETAILS]
    return [*details, f"{prefix(levels)}-LL"]


def expected_families(params: dict[str, Any]) -> set[str]:
    """Every ``<image type>_<feature class>`` pair these parameters should produce on 2D input."""
    extractor = extractor_for(params)
    classes = [name for name in extractor.enabledFeatures if not name.startswith("shape")]
    families = {f"{image}_{cls}" for image in expected_image_types(params) for cls in classes}
    if "shape2D" in extractor.enabledFeatures:
        families.add("original_shape2D")
    return families


# ---------------------------------------------------------------- one case


@contextmanager
def _quiet_pyradiomics() -> Iterator[None]:
    """PyRadiomics' log lines off while it extracts (skipped filters are detected and
    reported per case instead); the user's logging settings are restored afterwards."""
    loggers = [logging.getLogger("radiomics"), logging.getLogger("pykwalify")]
    levels = [logger.level for logger in loggers]
    loggers[0].setLevel(logging.ERROR)
    loggers[1].setLevel(max(levels[1], logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def extract_case(task: CaseTask) -> dict[str, float]:
    """Features of one case, read from its files; raises if PyRadiomics fails or skips anything.

    Runs in worker processes: reads its own files, returns only the numbers.
    """
    from dlrn.imaging import read_image_and_mask

    image, mask = read_image_and_mask(
        task.image, task.mask, label=task.mask_label, frame=task.frame
    )
    image, mask = with_background(as_float64(image), mask)
    extractor = extractor_for(task.params)
    with warnings.catch_warnings(), _quiet_pyradiomics():
        # LBP2D on float32 images: skimage's advice does not apply (same values as PyRadiomics').
        warnings.filterwarnings("ignore", message="Applying `local_binary_pattern`")
        result = extractor.execute(image, mask)
    features = {
        name: float(value)
        for name, value in result.items()
        if not name.startswith(DIAGNOSTICS_PREFIX)
    }
    _check_complete(features, task)
    return features


def with_background(image: sitk.Image, mask: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """A mask marking every pixel (PyRadiomics: "nothing is segmented") gets a one-pixel
    background border, the image its edge pixels: the ROI's pixels and outline are kept."""
    if sitk.GetArrayViewFromImage(mask).all():
        return (sitk.ZeroFluxNeumannPad(image, [1, 1], [1, 1]),
                sitk.ConstantPad(mask, [1, 1], [1, 1], 0))
    return image, mask


def as_float64(image: sitk.Image) -> sitk.Image:
    """The image in double precision, the type dlrn hands to PyRadiomics.

    PyRadiomics 3.0.1 computes bin edges in the image's own pixel type: on 8-bit
    images whose ROI spans almost the whole 0-255 range (max + 2 x binWidth -
    lower edge >= 256) the edges overflow and 77 of the 102 ``fast`` features
    are wrong (12 of 1875 BUS-BRA cases at binWidth 5; GLCM joint entropy 0.005
    instead of 6.5 on busbra_0103-s). PyWavelets keeps float32 precision for
    float32 input (wavelet features off by up to 3% near zero). Doubles avoid both.
    """
    return sitk.Cast(image, sitk.sitkFloat64)


def _check_complete(features: dict[str, float], task: CaseTask) -> None:
    """PyRadiomics skips filters (e.g. a LoG sigma wider than the image) with only a log line."""
    produced = {name.rsplit("_", 1)[0] for name in features}
    missing = sorted(expected_families(task.params) - produced)
    if missing:
        raise FeatureExtractionError(
            f"PyRadiomics produced no features for {shown_items(missing, 5)} (image {task.image}); "
            "a filter was skipped, e.g. a LoG sigma larger than the image"
        )


# ---------------------------------------------------------------- cache


class FeatureCache:
    """One JSON file per case under ``directory``, named by the content hash."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def key(self, task: CaseTask) -> str:
        from radiomics import __version__ as pyradiomics_version

        digest = hashlib.sha256()
        for part in (
            CACHE_FORMAT,
            file_sha256(task.image),
            file_sha256(task.mask),
            canonical_json(task.params),
            f"mask_label={task.mask_label},frame={task.frame}",
            pyradiomics_version,
        ):
            digest.update(part.encode() + b"\0")
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def load(self, key: str) -> dict[str, float] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())["features"]
        except (OSError, ValueError, KeyError) as error:
            log.warning("ignoring unreadable cache file %s (%s); extracting again", path, error)
            return None

    def save(self, key: str, task: CaseTask, features: dict[str, float]) -> None:
        """Atomic write (temporary file + rename), so an interrupted run leaves no half file."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"case_id": task.case_id, "image": task.image, "mask": task.mask,
                  "features": features}
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, path)


# ---------------------------------------------------------------- cohort


def extract_features(
    cases: pd.DataFrame,
    params: str | Path | dict[str, Any] = "seed",
    *,
    mask_column: str = "mask",
    mask_label: int | None = None,
    frame: int = 0,
    jobs: int | None = None,
    cache_dir: str | Path | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    update_cache: bool = True,
) -> ExtractionResult:
    """Extract features for every case of a cohort table (``Cohort.cases``).

    ``mask_column`` picks the segmentation (``"mask"``, or a repeat-mask column
    for the ICC step: only the cases that have that mask). ``mask_label`` and
    ``frame`` are read as in :func:`dlrn.imaging.read_mask`; a parameter file's
    ``label`` setting is used when ``mask_label`` is not given. Failed cases are
    listed in ``failures`` and missing from ``features``. ``update_cache=False`` reads
    ``cache_dir`` without adding to it (a finished study's, which ``dlrn predict`` leaves
    as it was).
    """
    params = load_params(params)
    mask_label = _mask_label(params, mask_label)
    tasks = _case_tasks(cases, mask_column, params, mask_label, frame)
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    keys = {task.case_id: cache.key(task) for task in tasks} if cache else {}
    results: dict[str, dict[str, float]] = {}
    for task in tasks:
        cached = cache.load(keys[task.case_id]) if cache else None
        if cached is not None:
            results[task.case_id] = cached
    from_cache = list(results)
    to_run = [(task.case_id, task) for task in tasks if task.case_id not in results]
    log.info("radiomics: %d cases from cache, %d to extract", len(from_cache), len(to_run))
    errors: dict[str, str] = {}
    by_id = dict(to_run)
    outcomes = map_cases(extract_case, to_run, jobs=jobs, scheduler=scheduler,
                         desc="radiomics", progress=progress)
    for case_id, outcome in outcomes:
        if isinstance(outcome, BaseException):
            errors[case_id] = f"{type(outcome).__name__}: {outcome}"
            log.error("radiomics failed for case %s: %s", case_id, errors[case_id])
            continue
        results[case_id] = outcome
        if cache and update_cache:
            cache.save(keys[case_id], by_id[case_id], outcome)
    return ExtractionResult(
        features=_feature_table(tasks, results),
        failures=_failure_table(tasks, errors),
        params=params,
        from_cache=from_cache,
    )


def _mask_label(params: dict[str, Any], mask_label: int | None) -> int | None:
    """The ROI value: the argument, else the parameter file's ``label``, else any non-zero."""
    file_label = (params.get("setting") or {}).get("label")
    if mask_label is not None and file_label is not None and file_label != mask_label:
        raise ConfigError(
            f"mask label {mask_label} disagrees with the parameter file's label: {file_label}"
        )
    return mask_label if mask_label is not None else file_label


def _case_tasks(
    cases: pd.DataFrame,
    mask_column: str,
    params: dict[str, Any],
    mask_label: int | None,
    frame: int,
) -> list[CaseTask]:
    for column in ("image", mask_column):
        if column not in cases.columns:
            raise ConfigError(
                f"the cohort table has no column {column!r}; columns: {', '.join(cases.columns)}"
            )
    if not cases.index.is_unique:
        duplicated = sorted(set(cases.index[cases.index.duplicated()].astype(str)))
        raise DlrnError(f"duplicate case ids in the cohort table: {', '.join(duplicated)}")
    tasks, without_repeat = [], []
    for case_id, row in cases.iterrows():
        if mask_column != "mask" and _is_empty(row[mask_column]):
            without_repeat.append(str(case_id))  # repeat masks cover a subset of cases
            continue
        for column in ("image", mask_column):
            if _is_empty(row[column]):
                raise DlrnError(f"case {case_id}: column {column!r} is empty")
        tasks.append(CaseTask(str(case_id), str(row["image"]), str(row[mask_column]), params,
                              mask_label, frame))
    if without_repeat:
        log.info("radiomics: %d cases have no %r mask and are not extracted with it",
                 len(without_repeat), mask_column)
    return tasks


def _is_empty(value: Any) -> bool:
    return pd.isna(value) or not str(value).strip()


def _feature_table(tasks: list[CaseTask], results: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Rows in cohort order; columns in PyRadiomics' order."""
    ordered = [task.case_id for task in tasks if task.case_id in results]
    table = pd.DataFrame([results[cid] for cid in ordered], dtype=float)
    table.index = pd.Index(ordered, name="case_id", dtype=str)
    return table


def _failure_table(tasks: list[CaseTask], errors: dict[str, str]) -> pd.DataFrame:
    rows = [
        {"case_id": t.case_id, "image": t.image, "mask": t.mask, "error": errors[t.case_id]}
        for t in tasks
        if t.case_id in errors
    ]
    return pd.DataFrame(rows, columns=["case_id", "image", "mask", "error"])
