"""The study file: one YAML document that says everything a study needs.

Every setting is a dataclass field whose metadata carries its one-line help and,
where it matters, the allowed values. The same metadata drives validation (all
problems reported at once, each naming its path in the file, with a difflib
suggestion for misspelt keys) and the commented template written by
``dlrn init``, so the two can never disagree.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dlrn.errors import ConfigError

CLASSIFIER_NAMES = ("LR", "SVM", "RandomForest", "ExtraTrees", "XGBoost", "LightGBM", "MLP")
ColumnType = Literal["continuous", "categorical"]


def _doc(help: str, *, example: str | None = None, minimum: float | None = None,
         maximum: float | None = None) -> dict[str, Any]:
    """Field metadata: the help line, optional bounds and the template example."""
    return {"help": help, "example": example, "minimum": minimum, "maximum": maximum}


@dataclass
class ExternalCohort:
    """Another centre's cohort (same columns), evaluated with the frozen models."""

    name: str = field(metadata=_doc("name of this validation set in tables and figures"))
    table: str = field(metadata=_doc("cohort table (CSV/TSV/XLSX) of this centre"))


@dataclass
class CohortSettings:
    table: str = field(metadata=_doc("cohort table (CSV/TSV/XLSX); relative paths are relative "
                                     "to this study file", example="cases.csv"))
    case_id: str = field(default="case_id", metadata=_doc("column with the unique case id"))
    image: str = field(default="image", metadata=_doc("column with the image path"))
    mask: str = field(default="mask", metadata=_doc("column with the ROI mask path (reader 1)"))
    label: str = field(default="label", metadata=_doc("column with the outcome (two classes)"))
    patient: str | None = field(default=None, metadata=_doc(
        "column with the patient id (the split is grouped by patient); null = one case per "
        "patient"))
    positive_label: str | int | None = field(default=None, metadata=_doc(
        "value of the label column that is the positive class; null = 1/true"))
    repeat_masks: list[str] = field(default_factory=list, metadata=_doc(
        "columns with repeat segmentations (second reader or session) for the ICC "
        "reproducibility filter; [] = no ICC step", example="[mask_reader2]"))
    clinical: dict[str, ColumnType] = field(default_factory=dict, metadata=_doc(
        "clinical and imaging-report columns with their type (continuous or categorical); "
        "{} = no clinical model and no nomogram covariates",
        example="{age: continuous, shape: categorical}"))
    on_error: Literal["stop", "exclude"] = field(default="stop", metadata=_doc(
        "invalid cases: stop with a list of all problems, or exclude them (the report lists "
        "them with reasons)"))
    min_roi_pixels: int = field(default=16, metadata=_doc(
        "smallest ROI (pixels) accepted as a case", minimum=1))
    min_roi_mm: float | None = field(default=None, metadata=_doc(
        "exclude lesions whose largest ROI diameter (mm) is below this, where the image "
        "carries its pixel spacing (the reference study: 5); null = no size criterion",
        minimum=0.0))
    mask_label: int | None = field(default=None, metadata=_doc(
        "mask value of the ROI in label-map masks; null = every non-zero pixel", minimum=0))
    frame: int = field(default=0, metadata=_doc(
        "frame of multi-frame images (cine loops, multi-page TIFF) to analyse; 0 = first",
        minimum=0))
    external: list[ExternalCohort] = field(default_factory=list, metadata=_doc(
        "external validation cohorts (other centres), each {name, table}",
        example="[{name: centre_b, table: centre_b.csv}]"))


@dataclass
class SplitSettings:
    test_size: float = field(default=0.3, metadata=_doc(
        "fraction held out as the test set (by patient, stratified by label)",
        minimum=0.05, maximum=0.95))
    column: str | None = field(default=None, metadata=_doc(
        "use a given split instead: column of the cohort table with values train/test"))
    seed: int | None = field(default=None, metadata=_doc(
        "seed of the random split; null = the study seed"))


@dataclass
class RadiomicsSettings:
    preset: str = field(default="seed", metadata=_doc(
        "PyRadiomics settings: a preset (seed, fast) or a parameter YAML file"))
    jobs: int | None = field(default=None, metadata=_doc(
        "parallel extraction processes; null = all cores", minimum=1))
    cache_dir: str | None = field(default=None, metadata=_doc(
        "feature cache folder (shared with `dlrn extract --cache`: same content-hash keys, "
        "so features extracted there are reused); null = cache/radiomics in the output "
        "folder"))


@dataclass
class SelectionSettings:
    icc_threshold: float = field(default=0.85, metadata=_doc(
        "keep features with ICC >= this between the repeat masks", minimum=0.0, maximum=1.0))
    p_threshold: float = field(default=0.05, metadata=_doc(
        "keep features whose univariate t-test p-value is below this",
        minimum=0.0, maximum=1.0))
    correlation_threshold: float = field(default=0.9, metadata=_doc(
        "of two features with |Pearson r| above this keep one", minimum=0.0, maximum=1.0))
    lasso_folds: int = field(default=10, metadata=_doc(
        "cross-validation folds choosing the LASSO penalty", minimum=2))
    max_features: int | None = field(default=None, metadata=_doc(
        "cap on the features LASSO keeps; null = no cap", minimum=1))


@dataclass
class ClassifierSettings:
    models: list[str] = field(default_factory=lambda: list(CLASSIFIER_NAMES), metadata=_doc(
        f"classifiers to tune, of {', '.join(CLASSIFIER_NAMES)}"))
    cv_folds: int = field(default=5, metadata=_doc(
        "grid-search folds on the training set (stratified, grouped by patient)", minimum=2))
    class_weight: Literal["balanced"] | None = field(default=None, metadata=_doc(
        "balanced = weight classes inversely to their frequency"))
    grids: dict[str, dict[str, list[Any]]] = field(default_factory=dict, metadata=_doc(
        "override a classifier's search grid: {name: {parameter: [values]}}",
        example="{ExtraTrees: {n_estimators: [100, 300]}}"))


@dataclass
class DeepSettings:
    enabled: bool = field(default=True, metadata=_doc(
        "train the CNNs and fuse deep features; false skips the DL and DLR stages"))
    backbones: list[str] = field(
        default_factory=lambda: ["densenet121", "vgg19", "resnet50"],
        metadata=_doc("CNN backbones compared"))
    weights: str | None = field(default="imagenet", metadata=_doc(
        "initial weights: imagenet (torchvision's, downloaded once into the torch cache), "
        "a local weight file (relative to this study file), or null for random "
        "initialisation"))
    epochs: int = field(default=30, metadata=_doc(
        "fine-tuning epochs (cosine learning-rate decay)", minimum=1))
    batch_size: int = field(default=16, metadata=_doc(
        "images per training step (at least 2: batch normalisation needs two)", minimum=2))
    learning_rate: float | None = field(default=None, metadata=_doc(
        "initial learning rate; null = chosen by the initial weights (1e-4 to fine-tune "
        "pretrained weights, 1e-3 from random initialisation)", minimum=0.0))
    image_size: int = field(default=224, metadata=_doc(
        "side (pixels) of the square ROI crop fed to the CNN", minimum=16))
    crop_margin: int = field(default=0, metadata=_doc(
        "pixels added around the ROI bounding box", minimum=0))
    pca_components: int = field(default=512, metadata=_doc(
        "principal components kept of the deep features (fitted on training cases only)",
        minimum=1))
    device: str = field(default="auto", metadata=_doc("auto, cpu, cuda or mps"))


@dataclass
class EvaluationSettings:
    clinical_p_threshold: float = field(default=0.05, metadata=_doc(
        "p-value selecting clinical features (univariate, then multivariate logistic "
        "regression)", minimum=0.0, maximum=1.0))
    clinical_fallback: Literal["univariate", "none"] = field(default="univariate", metadata=_doc(
        "if no clinical feature is multivariately significant: univariate = use the "
        "univariately significant ones (the report says so); none = no clinical model, "
        "a nomogram of the DLR score alone"))
    calibration_bins: int = field(default=10, metadata=_doc(
        "groups of the calibration curve and the Hosmer-Lemeshow test", minimum=3))


@dataclass
class StudyConfig:
    cohort: CohortSettings = field(default_factory=lambda: CohortSettings(table=""),
                                   metadata=_doc("the cohort table and its columns"))
    split: SplitSettings = field(default_factory=SplitSettings,
                                 metadata=_doc("train/test split"))
    radiomics: RadiomicsSettings = field(default_factory=RadiomicsSettings,
                                         metadata=_doc("handcrafted radiomics (PyRadiomics)"))
    selection: SelectionSettings = field(default_factory=SelectionSettings,
                                         metadata=_doc("feature selection (HCR and DLR)"))
    classifiers: ClassifierSettings = field(default_factory=ClassifierSettings,
                                            metadata=_doc("the machine-learning classifiers"))
    dl: DeepSettings = field(default_factory=DeepSettings, metadata=_doc("deep learning"))
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings,
                                           metadata=_doc("statistics and figures"))
    output: str = field(default="dlrn-study", metadata=_doc(
        "output folder (relative to this study file)"))
    seed: int = field(default=0, metadata=_doc(
        "seed of every random step (split, CV, models, CNN training)"))
    base_dir: Path = field(default=Path("."), repr=False,
                           metadata={"internal": True, "help": "folder of the study file"})

    def resolve(self, path: str | Path) -> Path:
        """A path from the study file, made absolute against the study file's folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def output_dir(self) -> Path:
        return self.resolve(self.output)

    def resolve_preset(self) -> str | Path:
        """The PyRadiomics preset name, or its parameter file made absolute."""
        from dlrn.radiomics import PRESETS

        preset = self.radiomics.preset
        return preset if preset in PRESETS else self.resolve(preset)

    @property
    def radiomics_cache_dir(self) -> Path:
        """Where PyRadiomics features are cached (shared with ``dlrn extract --cache``)."""
        cache_dir = self.radiomics.cache_dir
        return self.output_dir / "cache" / "radiomics" if cache_dir is None \
            else self.resolve(cache_dir)

    @property
    def split_seed(self) -> int:
        return self.seed if self.split.seed is None else self.split.seed

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (what the report prints and fingerprints hash)."""
        data = dataclasses.asdict(self)
        data.pop("base_dir")
        return data


# ---------------------------------------------------------------- validation

def _public_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _describe(tp: Any) -> str:
    """Human wording of an allowed type, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0])}"
    if origin is dict:
        return f"a mapping of {_describe(args[0])} to {_describe(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in _public_fields(tp))
    return {str: "text", int: "an integer", float: "a number", bool: "true or false",
            Any: "any value"}.get(tp, getattr(tp, "__name__", str(tp)))


class _Validator:
    """Converts parsed YAML into the dataclasses, collecting every problem with its path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '<top level>'}: {message}")

    def convert(self, tp: Any, value: Any, path: str) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, path)
        if origin in (typing.Union, types.UnionType):
            return self.union(tp, args, value, path)
        if origin is Literal:
            if value not in args:
                hint = _suggest(value, [str(a) for a in args])
                self.fail(path, f"{value!r} is not allowed; use {_describe(tp)}"
                                f"{f' ({hint.strip()})' if hint else ''}")
            return value
        if origin is list:
            if not isinstance(value, list):
                self.fail(path, f"expected {_describe(tp)}, got {value!r}")
                return []
            return [self.convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                self.fail(path, f"expected {_describe(tp)}, got {value!r}")
                return {}
            return {self.convert(args[0], k, f"{path}"): self.convert(args[1], v, f"{path}.{k}")
                    for k, v in value.items()}
        return self.scalar(tp, value, path)

    def union(self, tp: Any, args: tuple, value: Any, path: str) -> Any:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            trial = _Validator()
            converted = trial.convert(arg, value, path)
            if not trial.problems:
                return converted
        self.fail(path, f"expected {_describe(tp)}, got {value!r}")
        return None

    def scalar(self, tp: Any, value: Any, path: str) -> Any:
        if tp is Any:
            return value
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if tp is Path and isinstance(value, str):
            return Path(value)
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            self.fail(path, f"expected {_describe(tp)}, got {value!r}")
        return value

    def dataclass(self, cls: type, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, f"expected {_describe(cls)}, got {value!r}")
            value = {}
        fields = {f.name: f for f in _public_fields(cls)}
        hints = typing.get_type_hints(cls)
        for key in value:
            if key not in fields:
                hint = _suggest(key, list(fields))
                self.fail(_join(path, key), f"unknown setting; {hint}allowed: {', '.join(fields)}")
        kwargs = {}
        for name, spec in fields.items():
            key_path = _join(path, name)
            if name in value:
                kwargs[name] = self.convert(hints[name], value[name], key_path)
                self.bounds(spec, kwargs[name], key_path)
            elif _is_required(spec):
                self.fail(key_path, f"required setting is missing ({spec.metadata['help']})")
                kwargs[name] = None
        return cls(**kwargs)

    def bounds(self, spec: dataclasses.Field, value: Any, path: str) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        low, high = spec.metadata.get("minimum"), spec.metadata.get("maximum")
        if low is not None and value < low:
            self.fail(path, f"{value} is below the minimum {low}")
        if high is not None and value > high:
            self.fail(path, f"{value} is above the maximum {high}")


def _is_required(spec: dataclasses.Field) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def _suggest(value: Any, allowed: list[str]) -> str:
    """'did you mean ...? ' for the closest allowed names (two when they are equally close)."""
    close = difflib.get_close_matches(str(value), allowed, n=2, cutoff=0.6)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "? "


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_semantics(config: StudyConfig, fail: typing.Callable[[str, str], None]) -> None:
    """Cross-field rules that types alone cannot express."""
    cohort = config.cohort
    if not cohort.table:
        fail("cohort.table", "required setting is missing (the cohort table)")
    columns = [cohort.case_id, cohort.image, cohort.mask, cohort.label, cohort.patient,
               *cohort.repeat_masks, *cohort.clinical]
    named = [c for c in columns if c]
    for duplicate in sorted({c for c in named if named.count(c) > 1}):
        fail("cohort", f"column {duplicate!r} is used for two roles")
    for name in config.classifiers.models:
        if name not in CLASSIFIER_NAMES:
            _unknown_choice(fail, "classifiers.models", name, CLASSIFIER_NAMES)
    if not config.classifiers.models:
        fail("classifiers.models", "at least one classifier is needed")
    for name in config.classifiers.grids:
        if name not in CLASSIFIER_NAMES:
            _unknown_choice(fail, "classifiers.grids", name, CLASSIFIER_NAMES)
    if config.dl.enabled and not config.dl.backbones:
        fail("dl.backbones", "at least one backbone is needed when dl.enabled is true")
    names = [e.name for e in cohort.external]
    for i, name in enumerate(names):
        if name in ("train", "test") or names.count(name) > 1:
            fail(f"cohort.external[{i}].name", f"{name!r} must be unique and not train/test")


def _unknown_choice(fail: typing.Callable[[str, str], None], path: str, value: str,
                    allowed: tuple[str, ...]) -> None:
    hint = _suggest(value, list(allowed))
    fail(path, f"unknown value {value!r}; {hint}allowed: {', '.join(allowed)}")


def study_from_dict(data: Any, *, base_dir: str | Path = ".", source: str = "study") -> StudyConfig:
    """Validate parsed YAML; raise one ConfigError listing every problem."""
    validator = _Validator()
    if data is None:
        data = {}
    config = validator.dataclass(StudyConfig, data, "")
    if not validator.problems:
        _check_semantics(config, validator.fail)
    if validator.problems:
        listing = "\n  ".join(validator.problems)
        raise ConfigError(f"{source} has {len(validator.problems)} problem(s):\n  {listing}")
    config.base_dir = Path(base_dir).resolve()
    return config


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    return study_from_dict(data, base_dir=path.parent, source=str(path))


# ---------------------------------------------------------------- template

def _yaml_value(value: Any) -> str:
    if isinstance(value, (list, dict)) and not value:
        return "[]" if isinstance(value, list) else "{}"
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _template_lines(obj: Any, indent: str) -> list[str]:
    lines = []
    for spec in _public_fields(type(obj)):
        value = getattr(obj, spec.name)
        help_text, example = spec.metadata["help"], spec.metadata.get("example")
        if dataclasses.is_dataclass(value):
            lines += ["", f"{indent}# {help_text}", f"{indent}{spec.name}:"]
            lines += _template_lines(value, indent + "  ")
            continue
        if example and value != "":
            help_text += f"; e.g. {example}"
        lines.append(f"{indent}# {help_text}")
        rendered = example if value == "" else _yaml_value(value)
        lines.append(f"{indent}{spec.name}: {rendered}")
    return lines


def study_template() -> str:
    """A commented study file listing every setting with its default."""
    header = [
        "# dlrn study file. Every setting is shown with its default; delete what you",
        "# do not change. Only cohort.table and the four cohort columns are needed.",
    ]
    return "\n".join(header + _template_lines(StudyConfig(), "")) + "\n"
