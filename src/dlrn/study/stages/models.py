"""Stages ``clinical_models``, ``hcr_models``, ``dlr_models``: selection + tuned classifiers.

One function, :func:`fit_and_save`, fits a feature set's models and writes them; the
study's three model stages and ``dlrn model`` all call it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.report.summary import StageSummary
from dlrn.study.config import ClassifierSettings, SelectionSettings, StudyConfig
from dlrn.study.runner import Stage, StudyContext
from dlrn.study.stages.deep import check_crossfit_folds
from dlrn.study.stages.evaluating import (
    APPARENT_CAPTION,
    EVALUATION_DIR,
    MetricsStageSettings,
    clustering_sentence,
    metrics_settings,
    patient_groups,
    training_rows_sentence,
)
from dlrn.study.stages.files import (
    OOF_FILE,
    PREDICTIONS_FILE,
    clinical_encoder,
    clinical_record,
    read_cases,
    read_features,
    write_best,
)

VERSION = 3  # 2: nested LASSO, pooled out-of-fold choice; 3: evaluation/ (out-of-fold rows)
#: The clinical models: 4: their LR grid holds the clinical analysis' own regression
CLINICAL_VERSION = 4
BEST_FACT = "best model (highest pooled out-of-fold AUC on the training set)"


@dataclass(frozen=True)
class ModelsStageSettings:
    """The classifiers, and the selection recipe (None: z-scoring only, as for clinical)."""

    classifiers: ClassifierSettings
    selection: SelectionSettings | None
    seed: int
    evaluation: MetricsStageSettings = field(default_factory=MetricsStageSettings)
    #: the clinical models' LR: the clinical analysis' logistic regression by this rule
    #: (evaluation.clinical_regression); None: scikit-learn's L2-penalised LR
    regression: str | None = None


@dataclass
class ModelsSummary(StageSummary):
    name: str = ""
    features_in: int = 0
    features_selected: int = 0
    best: str = ""
    clinical_use: str | None = None

    def facts(self) -> dict[str, Any]:
        facts = {} if self.clinical_use is None else {"clinical features used":
                                                      self.clinical_use}
        return {**facts, "features in": self.features_in,
                "features selected": self.features_selected, BEST_FACT: self.best}


def selection_pipeline(selection: SelectionSettings | None, icc: pd.DataFrame | None,
                       seed: int) -> Any:
    """The study's selection recipe with these settings (None: z-scoring only)."""
    from dlrn.selection import make_selection_pipeline

    if selection is None:
        return None
    return make_selection_pipeline(
        icc=icc, icc_threshold=selection.icc_threshold, p_threshold=selection.p_threshold,
        correlation_threshold=selection.correlation_threshold,
        greedy_threshold=selection.correlation_threshold, lasso_folds=selection.lasso_folds,
        max_features=selection.max_features, univariate_test=selection.univariate_test,
        lasso_lambda=selection.lasso_lambda, nested=selection.nested, seed=seed)


def fit_and_save(folder: Path, name: str, features: pd.DataFrame, cases: pd.DataFrame,
                 settings: ModelsStageSettings, *, icc: pd.DataFrame | None = None,
                 result_dir: str = "result", progress: bool = True,
                 n_jobs: int | None = None) -> ModelsSummary:
    """Fit selection + classifiers on ``features`` (cases: label, set, patient_id); save all.

    Writes ``models/<name>-<clf>.skops``, predictions, out-of-fold predictions, the best
    model's name and :func:`dlrn.modeling.write_feature_set_result`'s tables and figures
    (into ``result_dir`` under ``folder``).
    """
    from dlrn.classifiers import BEST_MODEL_RULE
    from dlrn.modeling import fit_feature_set, write_feature_set_result
    from dlrn.study.bundle import dump_estimator

    classifiers = settings.classifiers
    cases = cases.loc[features.index]
    estimators, grids = clinical_lr(settings)
    result = fit_feature_set(
        name, features, cases["label"].astype(int), cases["set"],
        groups=cases["patient_id"],
        selection=selection_pipeline(settings.selection, icc, settings.seed),
        classifiers=classifiers.models, grids=grids or None,
        cv_folds=classifiers.cv_folds, class_weight=classifiers.class_weight,
        seed=settings.seed, n_jobs=n_jobs, progress=progress, estimators=estimators)
    results = folder / result_dir
    write_feature_set_result(result, results, overwrite=True)
    (folder / "models").mkdir(exist_ok=True)
    for classifier, model in result.models.items():
        dump_estimator(model, folder / "models" / f"{name}-{classifier}.skops")
    result.predictions.to_csv(folder / PREDICTIONS_FILE)
    result.oof_predictions.to_csv(folder / OOF_FILE)
    features.iloc[:0].to_csv(folder / "feature_names.csv")
    best = f"{name}-{result.best_model}"
    write_best(folder, best, BEST_MODEL_RULE)
    groups = patient_groups(cases)
    evaluate_models(folder / EVALUATION_DIR, result.predictions, result.oof_predictions,
                    groups, settings.evaluation)
    scores = [c for c in result.oof_predictions.columns if c not in ("label", "set")]
    captions = _evaluation_captions(name, scores, groups, settings.evaluation,
                                    (folder / EVALUATION_DIR / "patient_metrics.csv").exists())
    return ModelsSummary(tables={**captions,
                                 **_table_captions(name, result_dir)},
                         figures=_figure_captions(name, folder, result_dir),
                         name=name, features_in=features.shape[1],
                         features_selected=len(result.selected_features), best=best)


def clinical_lr(settings: ModelsStageSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The LR and the grids of a feature set: for the clinical models (``regression`` set)
    the LR is :class:`dlrn.clinical.LogisticModel`, whose grid adds ``C: None`` (the
    clinical analysis' own regression, Firth where it separates) to the L2 penalties."""
    from dlrn.classifiers import DEFAULT_GRIDS

    grids = dict(settings.classifiers.grids or {})
    if settings.regression is None:
        return {}, grids
    from dlrn.clinical import LogisticModel

    penalties = (grids.get("LR") or DEFAULT_GRIDS["LR"]).get("C", DEFAULT_GRIDS["LR"]["C"])
    grids["LR"] = {"C": [None, *penalties]}
    return {"LR": LogisticModel(settings.regression,
                                class_weight=settings.classifiers.class_weight)}, grids


METRIC_TABLES = ("metrics", "metrics_apparent", "patient_metrics", "patient_metrics_apparent")


def evaluate_models(out_dir: Path, predictions: pd.DataFrame, oof: pd.DataFrame,
                    groups: pd.Series | None, settings: MetricsStageSettings) -> None:
    """Every model's metrics with out-of-fold training rows, apparent ones apart,
    patient-aware; written as ``out_dir/<table>.csv``."""
    from dlrn.evaluation.analysis import evaluate_predictions
    from dlrn.tables import write_tables

    scores = [c for c in predictions.columns if c not in ("label", "set")]
    tables = evaluate_predictions(
        predictions, scores, oof=oof, patient_aggregation=settings.patient_aggregation,
        groups=None if groups is None else groups.loc[predictions.index],
        auc_method=settings.auc_ci)
    write_tables({name: table for name, table in tables.items() if name in METRIC_TABLES},
                 out_dir, workbook=None)


def _evaluation_captions(name: str, scores: list[str], groups: pd.Series | None,
                         settings: MetricsStageSettings,
                         patient_level: bool) -> dict[str, str]:
    """Captions of the evaluation tables: out-of-fold training rows, apparent apart."""
    rows = training_rows_sentence(scores, [])
    tables = {f"{EVALUATION_DIR}/metrics": (
        f"Performance of the {name} models (training, test and external sets). Each "
        "Youden cut-off is chosen on the model's out-of-fold training predictions and "
        f"applied unchanged to every set. {rows} {clustering_sentence(groups, settings)}"),
        f"{EVALUATION_DIR}/metrics_apparent": APPARENT_CAPTION}
    if patient_level:
        tables[f"{EVALUATION_DIR}/patient_metrics"] = (
            f"Performance of the {name} models per patient: each patient scored by the "
            f"{settings.patient_aggregation} of its images' scores; training rows "
            "out-of-fold")
    return tables


def _table_captions(name: str, result_dir: str) -> dict[str, str]:
    return {f"{result_dir}/best_params": f"{name} models: tuned hyper-parameters and CV AUC",
            f"{result_dir}/selection_funnel": f"{name} feature-selection funnel",
            f"{result_dir}/selected_features": f"{name}: selected features"}


def _figure_captions(name: str, folder: Path, result_dir: str) -> dict[str, str]:
    return {f"{result_dir}/figures/{stem}": caption for stem, caption in (
        ("lasso_path", f"{name}: LASSO coefficient paths"),
        ("lasso_cv_error", f"{name}: LASSO cross-validation error; the chosen λ is marked"),
        ("lasso_coefficients", f"{name}: coefficients of the selected features"),
        ("importance", f"{name}: permutation importance of the best model's features"),
    ) if (folder / result_dir / "figures" / f"{stem}.png").exists()}


def settings(config: StudyConfig, *, selection: bool = True) -> ModelsStageSettings:
    return ModelsStageSettings(config.classifiers, config.selection if selection else None,
                               config.seed, metrics_settings(config))


def clinical_settings(config: StudyConfig) -> ModelsStageSettings:
    """The clinical models: z-scoring only, and the clinical analysis' logistic regression."""
    return dataclasses.replace(settings(config, selection=False),
                               regression=config.evaluation.clinical_regression)


def fit_models(context: StudyContext, stage: str, name: str, features: pd.DataFrame, *,
               icc: pd.DataFrame | None = None, selection: bool = True,
               stage_settings: ModelsStageSettings | None = None) -> ModelsSummary:
    """A model stage of the study: :func:`fit_and_save` into the stage's folder."""
    return fit_and_save(context.stage_dir(stage), name, features, read_cases(context),
                        stage_settings or settings(context.config, selection=selection),
                        icc=icc, progress=context.progress)


def read_icc(context: StudyContext) -> pd.DataFrame | None:
    path = context.stage_dir("radiomics") / "icc.csv"
    return pd.read_csv(path, index_col="feature") if path.exists() else None


def run_clinical_models(context: StudyContext) -> ModelsSummary:
    from dlrn.clinical_predictors import clinical_features

    choice = clinical_record(context)
    features = clinical_features(clinical_encoder(context), choice.selected,
                                 read_cases(context))
    summary = fit_models(context, "clinical_models", "Clinical", features,
                         stage_settings=clinical_settings(context.config))
    summary.clinical_use = choice.use()
    summary.notes = ([choice.note] if choice.note else []) + _logistic_model_notes(context)
    return summary


def _logistic_model_notes(context: StudyContext) -> list[str]:
    """What the Clinical-LR's fit needed where the grid chose the unpenalised logistic
    regression (C null in its parameters): Firth, aliased terms."""
    from dlrn.study.bundle import load_trusted_estimator

    path = context.stage_dir("clinical_models") / "models" / "Clinical-LR.skops"
    if not path.exists():  # LR not among classifiers.models
        return []
    model = load_trusted_estimator(path)["classifier"]
    notes = []
    if model.separated_:
        fitted = ("so it is fitted by Firth's penalised regression" if model.method_ == "Firth"
                  else "so its coefficients diverge (evaluation.clinical_regression: standard)")
        notes.append(f"Clinical-LR: its maximum-likelihood fit on the training cases shows "
                     f"(quasi-)complete separation ({', '.join(model.separated_)}), {fitted}")
    if model.aliased_:
        notes.append(f"Clinical-LR: {', '.join(model.aliased_)} aliased (a combination of the "
                     "other features): no coefficient of its own, as in R's glm")
    return notes


def skip_clinical_models(context: StudyContext) -> str | None:
    """Why no clinical model is built (the clinical stage's note), or None."""
    choice = clinical_record(context)
    return None if choice.selected else choice.note


def run_hcr_models(context: StudyContext) -> ModelsSummary:
    return fit_models(context, "hcr_models", "HCR", read_features(context, "radiomics"),
                      icc=read_icc(context))


def run_dlr_models(context: StudyContext) -> ModelsSummary:
    hcr = read_features(context, "radiomics")
    deep = read_features(context, "deep")
    icc = read_icc(context)
    if icc is not None:  # deep features have no repeat reading: they pass the ICC step
        icc = pd.concat([icc, pd.DataFrame(1.0, index=deep.columns, columns=icc.columns)])
    # cohort order: the CV folds depend on it and must be the deep stage's cross-fitting folds
    fused = hcr.join(deep, how="inner")
    fused = fused.loc[read_cases(context).index.intersection(fused.index, sort=False)]
    summary = fit_models(context, "dlr_models", "DLR", fused, icc=icc)
    check_crossfit_folds(context)
    return summary


CLINICAL_MODELS = Stage("clinical_models", "Clinical models", ("clinical",),
                        clinical_settings, run_clinical_models,
                        skip=skip_clinical_models, version=CLINICAL_VERSION,
                        summary_type=ModelsSummary)
HCR_MODELS = Stage("hcr_models", "Radiomics models", ("radiomics",), settings, run_hcr_models,
                   version=VERSION, summary_type=ModelsSummary)
DLR_MODELS = Stage("dlr_models", "Deep learning radiomics (DLR) models", ("radiomics", "deep"),
                   settings, run_dlr_models, version=VERSION, summary_type=ModelsSummary)
