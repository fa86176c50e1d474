"""The study file: one YAML document that says everything a study needs.

Every setting is a dataclass field whose metadata carries its one-line help and,
where it matters, the allowed values. The same metadata drives validation (all
problems reported at once, each naming its path in the file, with a difflib
suggestion for misspelt keys) and the commented template written by
``dlrn init`` (:mod:`dlrn.study.template`), so the two can never disagree.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dlrn.applicability import ApplicabilitySettings
from dlrn.display_labels import label_problems
from dlrn.errors import ConfigError, DlrnError
from dlrn.io import DEFAULT_NA_VALUES
from dlrn.study.validation import Validator, suggest

CLASSIFIER_NAMES = ("LR", "SVM", "RandomForest", "ExtraTrees", "XGBoost", "LightGBM", "MLP")
ColumnType = Literal["continuous", "categorical", "ordinal", "multilabel"]
#: A clinical column: its type, or {type, missing, order, separator, reference, na_values}.
ClinicalColumn = str | dict[str, Any]


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
    clinical: dict[str, ClinicalColumn] = field(default_factory=dict, metadata=_doc(
        "clinical and imaging-report columns with their type (continuous, categorical, "
        "ordinal, multilabel) or {type, missing, order, separator, reference, na_values} "
        "(docs/clinical-data.md); {} = no clinical model and no nomogram covariates",
        example="{age: continuous, shape: categorical, birads: {type: ordinal, order: "
                "[2, 3, 4a, 4b, 4c, 5]}, margin: {type: multilabel, separator: '&'}}"))
    missing: Literal["impute", "exclude", "stop"] = field(default="impute", metadata=_doc(
        "blank clinical values: impute = training median / most frequent level plus a "
        "missing-indicator term; exclude = complete cases only (listed with reasons); stop = "
        "an error"))
    na_values: list[str] = field(default_factory=lambda: list(DEFAULT_NA_VALUES), metadata=_doc(
        "clinical cell texts read as blank (any case); a column may set its own na_values"))
    min_level_count: int = field(default=5, metadata=_doc(
        "levels and tokens held by fewer training cases merge into 'other'", minimum=1))
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
    scheduler: str | None = field(default=None, metadata=_doc(
        "address of an existing Dask scheduler (tcp://host:8786) to extract on; null = "
        "local processes"))


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
        "the LASSO path stops before more than this many non-zero coefficients (glmnet's "
        "dfmax); null = no cap", minimum=1))
    univariate_test: Literal["t", "mannwhitney", "auto"] = field(default="t", metadata=_doc(
        "t = Student t-test; mannwhitney = Mann-Whitney U; auto = Shapiro-Wilk in both "
        "classes picks the t-test, else Mann-Whitney"))
    lasso_lambda: Literal["min", "1se"] = field(default="1se", metadata=_doc(
        "1se = largest lambda within one SE of the lowest mean CV error (glmnet's "
        "lambda.1se, what coef() of a cv.glmnet fit uses; fewer false features); min = the "
        "lambda with the lowest mean CV error (the reference study's 'optimal lambda')"))
    nested: bool = field(default=True, metadata=_doc(
        "refit the steps before the LASSO inside each LASSO CV fold, so lambda is chosen on "
        "features the fold's labels did not pick; false = the published tool's order "
        "(optimistic)"))


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
    optimizer: Literal["adamw", "sgd"] = field(default="adamw", metadata=_doc(
        "optimiser of the fine-tuning"))
    warmup_epochs: float = field(default=1.0, metadata=_doc(
        "epochs of linear learning-rate warm-up before the cosine decay", minimum=0.0))
    patience: int | None = field(default=10, metadata=_doc(
        "stop after this many epochs without a better validation AUC; null = never",
        minimum=1))
    val_fraction: float = field(default=0.2, metadata=_doc(
        "part of the training patients held out to choose the best epoch and backbone",
        minimum=0.01, maximum=0.99))
    class_weighted: bool = field(default=False, metadata=_doc(
        "weight the loss by the class ratio (pos_weight)"))
    augment: bool = field(default=True, metadata=_doc(
        "random crop and flips of the training images"))
    normalization: Literal["zscore", "imagenet"] | None = field(default=None, metadata=_doc(
        "image normalisation; null = imagenet with pretrained weights, zscore without"))
    image_size: int = field(default=224, metadata=_doc(
        "side (pixels) of the square ROI crop fed to the CNN", minimum=16))
    crop_margin: int | str = field(default=0, metadata=_doc(
        "added around the ROI bounding box: pixels (10) or percent of each side ('10%')"))
    keep_aspect: bool = field(default=False, metadata=_doc(
        "letterbox crops instead of stretching them to a square"))
    feature_mode: Literal["pooled", "map"] = field(default="pooled", metadata=_doc(
        "deep features: the pooled last feature map or the flattened map"))
    pca_components: int = field(default=512, metadata=_doc(
        "principal components kept of the deep features (fitted on training cases only; "
        "capped by their number); 0 = no PCA", minimum=0))
    gradcam_cases: list[str] | None = field(default=None, metadata=_doc(
        "case ids for Grad-CAM overlays; null = the most confident test TP, TN, FP, FN"))
    fusion_features: Literal["crossfit", "in_sample"] = field(default="crossfit", metadata=_doc(
        "training cases' deep features and CNN scores: crossfit = from CNNs that did not "
        "train on them (one per classifiers.cv_folds fold; the DLR's test rows are those "
        "fold CNNs' mean features), costing K more trainings of the chosen backbone (5 "
        "folds: 5.2-6.6x the time of the final CNN alone); in_sample = the final CNN's own "
        "training cases, which carry their labels: the DLR's CV results, its choice and "
        "the DLRN are then reported as optimistic"))
    select_on: Literal["validation", "crossfit"] = field(default="validation", metadata=_doc(
        "what chooses the backbone and its epoch: validation = each final CNN's "
        "validation split (best epoch, then highest AUC), then only the chosen backbone "
        "is cross-fitted (B + K trainings for B backbones: 8 for 3 backbones and 5 "
        "folds); crossfit = every backbone's K fold CNNs trained in lockstep without an "
        "inner split, the epoch and then the backbone with the highest pooled out-of-fold "
        "AUC win and each final CNN trains on all training cases up to its epoch, a "
        "steadier yardstick at B x (K+1) trainings (18; about 2.2x the default's time). "
        "Needs fusion_features: crossfit"))
    device: str = field(default="auto", metadata=_doc("auto, cpu, cuda or mps"))
    amp: bool = field(default=True, metadata=_doc("mixed precision on CUDA"))
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(default="auto", metadata=_doc(
        "CUDA autocast precision: auto = bf16 where the GPU has it, else fp16 (CPU always "
        "trains in fp32)"))
    deterministic: bool = field(default=True, metadata=_doc(
        "repeatable training: torch's deterministic algorithms and cuDNN's deterministic "
        "kernels on a GPU too (an op without one still varies; the CPU always repeats); "
        "false = cuDNN autotunes on a GPU, faster, runs differ in the last digits"))
    threads: int | None = field(default=None, metadata=_doc(
        "CPU threads of torch; null = all allowed", minimum=1))
    workers: int = field(default=0, metadata=_doc("DataLoader worker processes", minimum=0))


@dataclass
class SegmentationConfig:
    """The lesion segmentation (a 2D U-Net): off unless asked for; its device, threads,
    precision and determinism are the ``dl`` section's."""

    enabled: bool = field(default=False, metadata=_doc(
        "train a U-Net on the training cases' masks and report Dice, IoU and HD95 on the "
        "test and external cases; the bundle then proposes the ROI of new images"))
    image_size: int = field(default=128, metadata=_doc(
        "side (pixels) of the square the whole image is resized to for the U-Net; the mask "
        "is resized back to the image's own grid", minimum=16))
    epochs: int = field(default=40, metadata=_doc("training epochs (cosine learning-rate "
                                                  "decay)", minimum=1))
    batch_size: int = field(default=16, metadata=_doc("images per training step", minimum=2))
    learning_rate: float = field(default=1e-3, metadata=_doc("initial learning rate (AdamW)",
                                                             minimum=0.0))
    patience: int | None = field(default=10, metadata=_doc(
        "stop after this many epochs without a better validation Dice; null = never",
        minimum=1))
    val_fraction: float = field(default=0.15, metadata=_doc(
        "part of the training patients held out to choose the best epoch (validation Dice)",
        minimum=0.01, maximum=0.99))
    automatic_masks: bool = field(default=True, metadata=_doc(
        "also predict the test and external cases from the U-Net's masks (radiomics, CNN "
        "crops, every model and the nomogram) and report their AUCs beside the expert "
        "masks' (DeLong): what a fully automatic pipeline reaches. Training stays on the "
        "expert masks"))


@dataclass
class EvaluationSettings:
    clinical_p_threshold: float = field(default=0.05, metadata=_doc(
        "p-value selecting clinical features (univariate, then multivariate logistic "
        "regression)", minimum=0.0, maximum=1.0))
    clinical_selection: Literal["backward", "enter", "none"] = field(default="backward",
        metadata=_doc("multivariate step: backward = drop the least significant feature "
                      "(drop-one LR test of all its terms), refit, until all p < threshold "
                      "(R's drop1 loop); enter = one model, keep p < threshold; none = all"))
    clinical_fallback: Literal["univariate", "none"] = field(default="univariate", metadata=_doc(
        "if no clinical feature is multivariately significant: univariate = use the "
        "univariately significant ones (the report says so); none = no clinical model, "
        "a nomogram of the DLR score alone"))
    clinical_regression: Literal["auto", "standard", "firth"] = field(default="auto", metadata=_doc(
        "logistic regression of the clinical analysis, clinical LR and nomogram: auto = R glm, "
        "or Firth (R logistf) where the glm separates; standard = glm; firth = Firth"))
    nomogram_bootstrap: int = field(default=200, metadata=_doc(
        "bootstrap samples validating the nomogram as rms validate/calibrate (optimism-"
        "corrected C, calibration slope and curve), its clinical selection repeated in each; "
        "papers often quote 1000; 0 = none", minimum=0))
    calibration_bins: int = field(default=10, metadata=_doc(
        "groups of the calibration curve and the Hosmer-Lemeshow test", minimum=3))
    patient_aggregation: Literal["mean", "max"] = field(default="mean", metadata=_doc(
        "patient-level tables (when a patient has several images): each patient's score is "
        "the mean, or the max, of its images' scores"))
    auc_ci: Literal["delong", "bootstrap", "cluster-bootstrap", "obuchowski"] | None = field(
        default=None, metadata=_doc(
            "AUC confidence interval; null = cluster bootstrap over patients when a patient "
            "has several images, DeLong otherwise (delong means obuchowski and bootstrap "
            "means cluster-bootstrap on clustered data)"))
    comparison: Literal["obuchowski", "cluster-bootstrap"] = field(
        default="obuchowski", metadata=_doc(
            "paired AUC tests when a patient has several images: obuchowski (clustered "
            "DeLong, equal to DeLong with one image per patient) or cluster-bootstrap"))


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
    segmentation: SegmentationConfig = field(
        default_factory=SegmentationConfig,
        metadata=_doc("automatic lesion segmentation (U-Net)"))
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings,
                                           metadata=_doc("statistics and figures"))
    applicability: ApplicabilitySettings = field(default_factory=ApplicabilitySettings,
                                                 metadata=_doc("is a case like the study's?"))
    labels: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=_doc(
        "names for people (report, nomogram figure, calculator): {column or DLR_score: {name, "
        "unit, levels: {level: wording}}}", example="{size_mm: {name: Size, unit: mm}}"))
    out_of_range: Literal["caution", "refuse"] = field(default="caution", metadata=_doc(
        "calculator value outside its nomogram axis (training range): caution = predicted, "
        "saying the nomogram extrapolates; refuse = not predicted"))
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
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "base_dir"}


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
    _check_clinical_columns(cohort, fail)
    for path, names in (("models", config.classifiers.models),
                        ("grids", config.classifiers.grids)):
        for name in (n for n in names if n not in CLASSIFIER_NAMES):
            _unknown_choice(fail, f"classifiers.{path}", name, CLASSIFIER_NAMES)
    if not config.classifiers.models:
        fail("classifiers.models", "at least one classifier is needed")
    if config.dl.enabled and not config.dl.backbones:
        fail("dl.backbones", "at least one backbone is needed when dl.enabled is true")
    if config.dl.select_on == "crossfit" and config.dl.fusion_features == "in_sample":
        fail("dl.select_on", "crossfit cross-fits every backbone: use it with "
                             "dl.fusion_features: crossfit")
    for where, problem in label_problems(config.labels):
        fail(f"labels.{where}".rstrip("."), problem)
    names = [e.name for e in cohort.external]
    for i, name in enumerate(names):
        if name in ("train", "test") or names.count(name) > 1:
            fail(f"cohort.external[{i}].name", f"{name!r} must be unique and not train/test")


def _check_clinical_columns(cohort: CohortSettings,
                            fail: typing.Callable[[str, str], None]) -> None:
    """Each clinical column's declaration (type, missing, order, ...), as the encoder reads it."""
    from dlrn.clinical.spec import column_specs

    for name, declared in cohort.clinical.items():
        try:
            column_specs({name: declared}, missing=cohort.missing, separator="&")
        except DlrnError as error:
            fail(f"cohort.clinical.{name}", str(error).removeprefix(
                f"cohort.clinical.{name}: "))


def _unknown_choice(fail: typing.Callable[[str, str], None], path: str, value: str,
                    allowed: tuple[str, ...]) -> None:
    fail(path, f"unknown value {value!r}; {suggest(value, list(allowed))}allowed: "
               f"{', '.join(allowed)}")


def study_from_dict(data: Any, *, base_dir: str | Path = ".", source: str = "study") -> StudyConfig:
    """Validate parsed YAML; raise one ConfigError listing every problem."""
    validator = Validator()
    if data is None:
        data = {}
    config = validator.dataclass(StudyConfig, data, "")
    if not validator.problems:
        _check_semantics(config, validator.fail)
    validator.raise_problems(source)
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
