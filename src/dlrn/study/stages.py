"""The study's stages, in the paper's order, and how each reads and writes its folder.

Every stage reads earlier stages only through their files (``stages/<name>/``),
so a re-run can reuse any stage that is still valid without keeping objects alive.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from dlrn.errors import DlrnError
from dlrn.study.config import StudyConfig
from dlrn.study.pipeline import Stage, StudyContext
from dlrn.tables import write_tables

log = logging.getLogger(__name__)

CASES_FILE = "cases.csv"
CASE_EXCLUDED = "case excluded"  # dlrn.cohort's action; the other is "repeat mask ignored"
IGNORED_REPEATS = "repeat masks ignored (case kept, left out of the ICC subset)"
PREDICTIONS_FILE = "predictions.csv"
#: Out-of-fold training predictions of a stage's models, where its cut-offs are chosen.
OOF_FILE = "oof.csv"


# ---------------------------------------------------------------- shared helpers

def cohort_columns(config: StudyConfig, *, with_label: bool = True,
                   with_split: bool = True) -> Any:
    """The study file's cohort section as dlrn.cohort.CohortColumns."""
    from dlrn.cohort import CohortColumns

    c = config.cohort
    return CohortColumns(
        case_id=c.case_id, image=c.image, mask=c.mask,
        label=c.label if with_label else None, patient=c.patient,
        repeat_masks=tuple(c.repeat_masks), clinical=tuple(c.clinical),
        split=config.split.column if with_split else None, positive_label=c.positive_label)


def image_options(config: StudyConfig) -> dict[str, Any]:
    """How every image and mask of the study is read (cohort check, PyRadiomics, CNN crops)."""
    return {"mask_label": config.cohort.mask_label, "frame": config.cohort.frame}


def read_cases(context: StudyContext) -> pd.DataFrame:
    """The validated cohort (all sets) with its ``set`` column, indexed by case id."""
    path = context.stage_dir("cohort") / CASES_FILE
    cases = pd.read_csv(path, index_col="case_id", dtype={"case_id": str, "patient_id": str})
    cases.index = cases.index.astype(str)
    return cases


def read_predictions(context: StudyContext, stage: str, file: str = PREDICTIONS_FILE
                     ) -> pd.DataFrame:
    predictions = pd.read_csv(context.stage_dir(stage) / file, index_col="case_id",
                              dtype={"case_id": str})
    predictions.index = predictions.index.astype(str)
    return predictions


def read_out_of_fold(context: StudyContext, stage: str) -> pd.DataFrame | None:
    """The stage's out-of-fold training predictions, or None where it has none (the CNN)."""
    if not (context.stage_dir(stage) / OOF_FILE).exists():
        return None
    return read_predictions(context, stage, OOF_FILE)


def save_tables(context: StudyContext, stage: str, tables: dict[str, pd.DataFrame]) -> None:
    """A stage's report tables as CSV in ``<stage>/tables/`` (the report's workbook has all)."""
    write_tables(tables, context.stage_dir(stage) / "tables", workbook=None)


def train_ids(cases: pd.DataFrame) -> list[str]:
    return list(cases.index[cases["set"] == "train"])


def _figure_dir(context: StudyContext, stage: str) -> Path:
    folder = context.stage_dir(stage) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save_figure(figure: Any, stem: Path) -> None:
    from dlrn.evaluation.figures import save_figure

    save_figure(figure, stem)


def _counts(cases: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, rows_in_set in cases.groupby("set", sort=False):
        rows.append({"set": name, "cases": len(rows_in_set),
                     "patients": rows_in_set["patient_id"].nunique(),
                     "positive": int(rows_in_set["label"].sum()),
                     "negative": int((rows_in_set["label"] == 0).sum())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- cohort

def run_cohort(context: StudyContext) -> dict[str, Any]:
    from dlrn.cohort import read_cohort, split_cohort

    config = context.config
    options = {"min_roi_pixels": config.cohort.min_roi_pixels,
               "min_roi_mm": config.cohort.min_roi_mm, **image_options(config),
               "on_error": config.cohort.on_error, "progress": context.progress}
    cohort = read_cohort(config.resolve(config.cohort.table), cohort_columns(config), **options)
    if config.split.column:
        split = cohort.given_split.astype(str).str.strip().str.lower()
    else:
        split = split_cohort(cohort.cases, test_size=config.split.test_size,
                             seed=config.split_seed)
    sets = [cohort.cases.assign(set=split)]
    exclusions = [cohort.exclusions.assign(cohort="main")]
    notes = list(cohort.notes)
    for external in config.cohort.external:
        other = read_cohort(config.resolve(external.table),
                            cohort_columns(config, with_split=False), **options)
        sets.append(other.cases.assign(set=external.name))
        exclusions.append(other.exclusions.assign(cohort=external.name))
        notes += [f"{external.name}: {note}" for note in other.notes]
    cases = pd.concat(sets)
    duplicated = cases.index[cases.index.duplicated()]
    if len(duplicated):
        raise DlrnError(f"case ids occur in more than one cohort: "
                        f"{', '.join(map(str, duplicated[:5]))}; case ids must be unique")
    folder = context.stage_dir("cohort")
    cases.to_csv(folder / CASES_FILE)
    (folder / "split.json").write_text(json.dumps(
        {name: list(map(str, group.index)) for name, group in cases.groupby("set")}, indent=1))
    problems = pd.concat(exclusions, ignore_index=True)
    excluded = problems[problems["action"] == CASE_EXCLUDED]
    ignored = problems[problems["action"] != CASE_EXCLUDED]
    save_tables(context, "cohort", {"cohort_counts": _counts(cases),
                                    "excluded_cases": excluded,
                                    "ignored_repeat_masks": ignored})
    return {
        "tables": {"tables/cohort_counts": "Cases per set (Figure 1)",
                   "tables/excluded_cases": "Excluded cases with reasons",
                   "tables/ignored_repeat_masks": "Repeat masks left out of the ICC analysis "
                                                  "(their cases are kept)"},
        "facts": {"cases analysed": len(cases),
                  # one row per problem: a case with two problems is one excluded case
                  "cases excluded": len(excluded.drop_duplicates(["cohort", "row"])),
                  IGNORED_REPEATS: len(ignored.drop_duplicates(["cohort", "row", "column"])),
                  "split": (f"given by column {config.split.column}" if config.split.column
                            else f"random {1 - config.split.test_size:.0%} / "
                                 f"{config.split.test_size:.0%} by patient, stratified by "
                                 f"label, seed {config.split_seed}")},
        "notes": notes,
    }


# ---------------------------------------------------------------- clinical statistics

def _categorical(config: StudyConfig) -> list[str]:
    return [name for name, kind in config.cohort.clinical.items() if kind == "categorical"]


def baseline_tables(cases: pd.DataFrame, variables: list[str], categorical: list[str],
                    external: list[str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Training vs test (Table 2), then training vs each external set, with notes.

    The training set comes first in every table. An external set whose variables
    cannot be compared (e.g. one missing for all its cases) gets a note instead of
    a table: the external evaluation does not depend on it.
    """
    from dlrn.clinical import baseline_table

    def compare(other: str) -> pd.DataFrame:
        table = baseline_table(cases[cases["set"].isin(["train", other])], "set", variables,
                               categorical=categorical, group_order=["train", other])
        return table.rename(columns={"shapiro_p_1": "train Shapiro-Wilk p",
                                     "shapiro_p_2": f"{other} Shapiro-Wilk p"})

    tables, notes = {"baseline": compare("test")}, []
    for name in external:
        try:
            tables[f"baseline_{name}"] = compare(name)
        except DlrnError as error:
            notes.append(f"no baseline table of the training vs the {name} set: {error}")
    return tables, notes


def clinical_choice(univariate: list[str], independent: list[str], *, fallback: str,
                    p_threshold: float) -> tuple[list[str], str, str | None]:
    """The clinical features the models and the nomogram use, on what basis, and a note.

    The reference study uses the independent predictors (multivariate p below the
    threshold). Small cohorts often have none; then, with ``fallback="univariate"``,
    the univariately significant features are used and the note says so; otherwise
    (or with none of those either) no clinical model is built and the nomogram has
    the DLR score alone.
    """
    if independent:
        return independent, "multivariate", None
    if fallback == "univariate" and univariate:
        return univariate, "univariate", (
            f"No clinical feature was significant in the multivariate analysis (p < "
            f"{p_threshold}); the clinical models and the nomogram use the features "
            f"significant in the univariate analysis instead ({', '.join(univariate)}), as "
            "evaluation.clinical_fallback is univariate.")
    where = ("in the univariate analysis" if not univariate else
             "in the multivariate analysis and evaluation.clinical_fallback is none")
    return [], "none", (f"No clinical feature was significant {where} (p < {p_threshold}): "
                        "no clinical model is built and the nomogram uses the DLR score alone.")


def run_clinical(context: StudyContext) -> dict[str, Any]:
    from dlrn.clinical import logistic_analysis

    config = context.config
    cases = read_cases(context)
    variables = list(config.cohort.clinical)
    categorical = _categorical(config)
    p_threshold = config.evaluation.clinical_p_threshold
    tables, notes = baseline_tables(cases, variables, categorical,
                                    [e.name for e in config.cohort.external])
    training = cases.loc[train_ids(cases)]
    analysis = logistic_analysis(training, "label", variables, categorical=categorical,
                                 p_threshold=p_threshold)
    independent = independent_predictors(analysis.multivariate, variables, p_threshold)
    selected, basis, note = clinical_choice(list(analysis.selected), independent,
                                            fallback=config.evaluation.clinical_fallback,
                                            p_threshold=p_threshold)
    # Levels seen in training; a level met only later is an error naming the case.
    levels = {name: sorted(map(str, pd.unique(training[name].astype(str))))
              for name in categorical}
    (context.stage_dir("clinical") / "selected.json").write_text(json.dumps(
        {"univariate": list(analysis.selected), "independent": independent,
         "selected": selected, "basis": basis, "note": note, "levels": levels}))
    save_tables(context, "clinical", {**tables, "univariate": analysis.univariate,
                                      "multivariate": analysis.multivariate})
    captions = {"tables/baseline": "Baseline characteristics, training vs test set (Table 2)"}
    captions.update({f"tables/{key}": f"Baseline characteristics, training vs "
                                      f"{key.removeprefix('baseline_')} set (external)"
                     for key in tables if key != "baseline"})
    return {
        "tables": {**captions,
                   "tables/univariate": "Univariate logistic regression, training set "
                                        "(Supplementary Table 1)",
                   "tables/multivariate": "Multivariate logistic regression of the "
                                          "univariately significant features, training set "
                                          "(Supplementary Table 1)"},
        "facts": {"clinical features": ", ".join(variables),
                  f"significant in univariate analysis (p < {p_threshold})":
                      ", ".join(analysis.selected) or "none",
                  f"independent predictors (multivariate p < {p_threshold})":
                      ", ".join(independent) or "none",
                  "used by the clinical models and the nomogram": _clinical_use(selected,
                                                                                basis)},
        "notes": notes + ([note] if note else []),
    }


def _clinical_use(selected: list[str], basis: str) -> str:
    if not selected:
        return "none (no clinical model; nomogram of the DLR score alone)"
    return f"{', '.join(selected)} ({basis}ly significant)"


def independent_predictors(multivariate: pd.DataFrame, variables: list[str],
                           p_threshold: float) -> list[str]:
    """Variables with a multivariate term (``name`` or ``name[level]``) below the threshold."""
    if multivariate.empty:
        return []
    significant = multivariate.loc[multivariate["p_value"] < p_threshold, "term"]
    return [v for v in variables
            if any(t == v or t.startswith(f"{v}[") for t in significant)]


def clinical_record(context: StudyContext) -> dict[str, Any]:
    return json.loads((context.stage_dir("clinical") / "selected.json").read_text())


def encode_clinical(cases: pd.DataFrame, columns: list[str],
                    levels: dict[str, list[str]]) -> pd.DataFrame:
    """Clinical features as numbers.

    A categorical column becomes one 0/1 column ``<column>_<level>`` per level after the
    first (the reference, as in the logistic analysis). Unknown levels and missing values
    are errors naming the case and column.
    """
    encoded = {}
    for column in columns:
        values = cases[column]
        missing = cases.index[values.isna()]
        if len(missing):
            raise DlrnError(f"clinical column {column!r} is missing for case(s) "
                            f"{', '.join(map(str, missing[:10]))}")
        if column not in levels:
            encoded[column] = pd.to_numeric(values, errors="raise").astype(float)
            continue
        text = values.astype(str)
        unknown = cases.index[~text.isin(levels[column])]
        if len(unknown):
            raise DlrnError(f"clinical column {column!r} has a value the study never saw for "
                            f"case(s) {', '.join(map(str, unknown[:10]))} (known: "
                            f"{', '.join(levels[column])})")
        for level in levels[column][1:]:
            encoded[f"{column}_{level}"] = (text == level).astype(float)
    return pd.DataFrame(encoded, index=cases.index)


# ---------------------------------------------------------------- models of one feature set

def fit_models(context: StudyContext, stage: str, name: str, features: pd.DataFrame, *,
               selection: Any) -> dict[str, Any]:
    """Selection + the configured classifiers on one feature set; save everything to disk."""
    from dlrn.modeling import fit_feature_set, write_feature_set_result
    from dlrn.study.bundle import dump_estimator

    config = context.config
    cases = read_cases(context).loc[features.index]
    result = fit_feature_set(
        name, features, cases["label"].astype(int), cases["set"],
        groups=cases["patient_id"], selection=selection,
        classifiers=config.classifiers.models, grids=config.classifiers.grids or None,
        cv_folds=config.classifiers.cv_folds, class_weight=config.classifiers.class_weight,
        seed=config.seed, progress=context.progress)
    folder = context.stage_dir(stage)
    (folder / "models").mkdir()
    for classifier, model in result.models.items():
        dump_estimator(model, folder / "models" / f"{name}-{classifier}.skops")
    result.predictions.to_csv(folder / PREDICTIONS_FILE)
    result.oof_predictions.to_csv(folder / OOF_FILE)
    features.iloc[:0].to_csv(folder / "feature_names.csv")
    best = f"{name}-{result.best_model}"
    (folder / "best.json").write_text(json.dumps({"best": best, "rule": BEST_RULE}))
    write_feature_set_result(result, folder / "result")
    figures = {f"result/figures/{stem}": caption for stem, caption in (
        ("lasso_path", f"{name}: LASSO coefficient paths"),
        ("lasso_cv_error", f"{name}: LASSO cross-validation error; the chosen λ is marked"),
        ("lasso_coefficients", f"{name}: coefficients of the selected features"),
        ("importance", f"{name}: permutation importance of the best model's features"),
    ) if (folder / "result" / "figures" / f"{stem}.png").exists()}
    return {
        "tables": {"result/metrics": f"Performance of the {name} models (train, test and "
                                     "external sets)",
                   "result/metrics_cv": f"{name} models: cross-validated (out-of-fold) "
                                        "performance on the training set",
                   "result/best_params": f"{name} models: tuned hyper-parameters and CV AUC",
                   "result/selection_funnel": f"{name} feature-selection funnel",
                   "result/selected_features": f"{name}: selected features"},
        "figures": figures,
        "facts": {"features in": features.shape[1],
                  "features selected": len(result.selected_features),
                  "best model (highest median CV AUC on the training set)": best},
    }


BEST_RULE = ("highest median cross-validated AUC on the training set; the test set plays "
             "no part in the choice")


def best_model(context: StudyContext, stage: str) -> str:
    return json.loads((context.stage_dir(stage) / "best.json").read_text())["best"]


def run_clinical_models(context: StudyContext) -> dict[str, Any]:
    cases = read_cases(context)
    record = clinical_record(context)
    features = encode_clinical(cases, record["selected"], record["levels"])
    summary = fit_models(context, "clinical_models", "Clinical", features, selection=None)
    summary["facts"] = {"clinical features used": _clinical_use(record["selected"],
                                                                record["basis"]),
                        **summary["facts"]}
    summary["notes"] = [record["note"]] if record.get("note") else []
    return summary


def skip_clinical_models(context: StudyContext) -> str | None:
    """Why no clinical model is built (the clinical stage's note), or None."""
    record = clinical_record(context)
    return None if record["selected"] else record["note"]


# ---------------------------------------------------------------- handcrafted radiomics

def _extract(context: StudyContext, cases: pd.DataFrame, mask_column: str,
             facts: dict[str, Any]) -> pd.DataFrame:
    """Features of every case with ``mask_column``; records how many came from the cache."""
    from dlrn.radiomics import extract_features

    config = context.config
    result = extract_features(cases, config.resolve_preset(), mask_column=mask_column,
                              **image_options(config), jobs=config.radiomics.jobs,
                              cache_dir=config.radiomics_cache_dir, progress=context.progress)
    facts[f"cases read from the feature cache ({mask_column})"] = len(result.from_cache)
    if len(result.failures):
        listing = "\n  ".join(f"{row.case_id}: {row.error}" for row in
                              result.failures.itertuples())
        raise DlrnError(f"feature extraction failed for {len(result.failures)} case(s) "
                        f"({mask_column}); fix or exclude them:\n  {listing}")
    return result.features


def run_radiomics(context: StudyContext) -> dict[str, Any]:
    from dlrn.radiomics import load_params
    from dlrn.selection import repeat_icc

    config = context.config
    cases = read_cases(context)
    folder = context.stage_dir("radiomics")
    facts: dict[str, Any] = {"PyRadiomics settings": config.radiomics.preset,
                             "feature cache": str(config.radiomics_cache_dir)}
    features = _extract(context, cases, "mask", facts)
    features.to_csv(folder / "features.csv")
    (folder / "params.json").write_text(json.dumps(load_params(config.resolve_preset()),
                                                   indent=1, default=str))
    facts["features extracted"] = features.shape[1]
    summary: dict[str, Any] = {"facts": facts, "tables": {}}
    repeats = {}
    training = cases.loc[train_ids(cases)]
    for column in config.cohort.repeat_masks:
        rated = training[training[column].notna()]
        repeats[column] = _extract(context, rated, column, facts)
    if repeats:
        icc = repeat_icc(features.loc[repeats[next(iter(repeats))].index], repeats)
        icc.to_csv(folder / "icc.csv")
        threshold = config.selection.icc_threshold
        facts["ICC cases (training, with repeat masks)"] = len(next(iter(repeats.values())))
        facts[f"features with ICC >= {threshold}"] = int((icc >= threshold).all(axis=1).sum())
    return summary


def read_icc(context: StudyContext) -> pd.DataFrame | None:
    path = context.stage_dir("radiomics") / "icc.csv"
    return pd.read_csv(path, index_col="feature") if path.exists() else None


def read_features(context: StudyContext, stage: str, name: str) -> pd.DataFrame:
    table = pd.read_csv(context.stage_dir(stage) / name, index_col="case_id",
                        dtype={"case_id": str})
    table.index = table.index.astype(str)
    return table


def selection_pipeline(context: StudyContext, icc: pd.DataFrame | None) -> Any:
    from dlrn.selection import make_selection_pipeline

    s = context.config.selection
    return make_selection_pipeline(
        icc=icc, icc_threshold=s.icc_threshold, p_threshold=s.p_threshold,
        correlation_threshold=s.correlation_threshold,
        greedy_threshold=s.correlation_threshold, lasso_folds=s.lasso_folds,
        seed=context.config.seed)


def run_hcr_models(context: StudyContext) -> dict[str, Any]:
    features = read_features(context, "radiomics", "features.csv")
    return fit_models(context, "hcr_models", "HCR", features,
                      selection=selection_pipeline(context, read_icc(context)))


# ---------------------------------------------------------------- deep learning

def _weights(config: StudyConfig) -> str | None:
    """imagenet, none, or a weight file made absolute against the study file's folder."""
    weights = config.dl.weights
    return weights if weights in (None, "none", "imagenet") else str(config.resolve(weights))


def _weights_file(config: StudyConfig) -> list[Path]:
    weights = _weights(config)
    return [] if weights in (None, "none", "imagenet") else [Path(weights)]


def deep_settings(config: StudyConfig, progress: bool) -> Any:
    from dlrn.deep.data import CropSettings
    from dlrn.deep.train import TrainSettings
    from dlrn.deep.workflow import DeepStageSettings

    dl = config.dl
    return DeepStageSettings(
        backbones=tuple(dl.backbones), weights=_weights(config),
        crop=CropSettings(image_size=dl.image_size, margin=dl.crop_margin,
                          **image_options(config)),
        train=TrainSettings(epochs=dl.epochs, batch_size=dl.batch_size,
                            learning_rate=dl.learning_rate, seed=config.seed,
                            device=dl.device, progress=progress),
        pca_components=dl.pca_components)


def run_deep(context: StudyContext) -> dict[str, Any]:
    from dlrn.deep.workflow import SELECTION_RULE, run_deep_stage

    config = context.config
    cases = read_cases(context)
    folder = context.stage_dir("deep")
    result = run_deep_stage(cases, cases["set"], folder / "run",
                            deep_settings(config, context.progress),
                            source=config.resolve(config.cohort.table))
    # as float64, the CSV keeps each float32 probability exactly: a cut-off chosen on it
    # later (Table 7) is dlrn.deep's to the last digit
    scores = [column for column in result.predictions if column.startswith("DL-")]
    result.predictions.astype(dict.fromkeys(scores, "float64")).to_csv(folder / PREDICTIONS_FILE)
    result.features_pca.to_csv(folder / "features.csv")
    (folder / "best.json").write_text(json.dumps({"best": f"DL-{result.chosen}",
                                                  "rule": SELECTION_RULE}))
    save_tables(context, "deep", {"deep_metrics": result.metrics,
                                  "deep_backbones": result.comparison})
    figures = {}
    for row in result.gradcam.dropna(subset=["path"]).itertuples():
        target = _figure_dir(context, "deep") / f"gradcam_{row.category}.png"
        Path(row.path).replace(target)
        figures[f"figures/gradcam_{row.category}"] = (
            f"Grad-CAM of {result.chosen}, {row.category} test case {row.case_id} "
            f"(label {row.label}, p = {row.probability:.2f})")
    return {
        "tables": {"tables/deep_backbones": "Backbones compared (chosen on the validation "
                                            "AUC within the training set). AUC per set and "
                                            "training cost: time of all epochs (s), "
                                            "throughput (images/s), peak memory added by "
                                            "training (MiB; blank where not measurable) and "
                                            "the device",
                   "tables/deep_metrics": "Performance of the DL models (Table 5)"},
        "figures": figures,
        "facts": {"chosen backbone": result.chosen, "deep features": result.features.shape[1],
                  "principal components kept (fitted on training cases)":
                      result.features_pca.shape[1]},
    }


def run_dlr_models(context: StudyContext) -> dict[str, Any]:
    hcr = read_features(context, "radiomics", "features.csv")
    deep = read_features(context, "deep", "features.csv")
    fused = hcr.join(deep, how="inner")
    icc = read_icc(context)
    if icc is not None:  # deep features have no repeat reading: they pass the ICC step
        icc = pd.concat([icc, pd.DataFrame(1.0, index=deep.columns, columns=icc.columns)])
    return fit_models(context, "dlr_models", "DLR", fused,
                      selection=selection_pipeline(context, icc))


# ---------------------------------------------------------------- DLRN nomogram

DLR_SCORE = "DLR_score"
NO_CLINICAL = {"selected": [], "basis": "none", "note": None, "levels": {}}
#: How the DLRN gets out-of-fold training probabilities (for its cut-off, as the other models).
DLRN_OOF_RULE = ("its logistic regression cross-validated on the training set with the DLR "
                 "models' folds")


def best_scores(context: StudyContext, stage: str, *, out_of_fold: bool) -> pd.Series:
    """The best model's probability per case; training cases out-of-fold when asked."""
    best = best_model(context, stage)
    scores = read_predictions(context, stage)[best]
    if out_of_fold:
        oof = read_out_of_fold(context, stage)[best]
        scores.loc[oof.index] = oof.to_numpy()
    return scores


def nomogram_inputs(cases: pd.DataFrame, score: pd.Series, clinical: list[str],
                    levels: dict[str, list[str]]) -> pd.DataFrame:
    """The DLRN predictors: the DLR score beside the significant clinical features."""
    encode_clinical(cases, clinical, levels)  # names the case and column of bad values
    X = cases[clinical].copy()
    for column in clinical:
        if column in levels:
            X[column] = X[column].astype(str)
    X.insert(0, DLR_SCORE, score.loc[cases.index].astype(float))
    return X


def read_folds(context: StudyContext, stage: str) -> pd.Series:
    """The CV fold (1..K) of each training case in a feature-set stage."""
    return read_predictions(context, stage, "result/cv_folds.csv")["fold"]


def nomogram_out_of_fold(X: pd.DataFrame, y: pd.Series, folds: pd.Series,
                         categorical: list[str]) -> pd.Series:
    """Each training case's DLRN probability from the nomogram fitted without its fold.

    With the DLR models' folds, a case's DLR score and DLRN probability both come from
    models that never saw it. (The fitting cases' DLR scores come from fold models that
    did see the held-out fold, as in any stacking of out-of-fold predictions.)
    """
    from dlrn.nomogram import Nomogram

    probability = pd.Series(float("nan"), index=X.index, name="DLRN")
    for fold in sorted(folds.unique()):
        held_out = (folds.loc[X.index] == fold).to_numpy()
        nomogram = Nomogram(categorical=categorical).fit(X[~held_out], y[~held_out])
        probability[held_out] = nomogram.points(X[held_out])["probability"].to_numpy()
    return probability


def run_dlrn(context: StudyContext) -> dict[str, Any]:
    from dlrn.nomogram import Nomogram

    cases = read_cases(context)
    record = clinical_record(context) if context.done("clinical") else NO_CLINICAL
    clinical = record["selected"]
    # Out-of-fold scores on training cases, so the nomogram does not learn the DLR
    # model's in-sample optimism; test and external cases get the frozen model's scores.
    X = nomogram_inputs(cases, best_scores(context, "dlr_models", out_of_fold=True),
                        clinical, record["levels"])
    training = train_ids(cases)
    y = cases.loc[training, "label"].astype(int)
    nomogram = Nomogram(categorical=list(record["levels"])).fit(X.loc[training], y)
    folder = context.stage_dir("dlrn")
    (folder / "nomogram.json").write_text(json.dumps(nomogram.to_dict(), indent=1))
    points = nomogram.points(X)
    predictions = cases[["label", "set"]].assign(DLRN=points["probability"])
    predictions.to_csv(folder / PREDICTIONS_FILE)
    notes = [record["note"]] if record.get("note") else []
    try:
        oof = nomogram_out_of_fold(X.loc[training], y, read_folds(context, "dlr_models"),
                                   list(record["levels"]))
    except DlrnError as error:  # e.g. a rare clinical level seen in one fold only
        notes.append(f"The DLRN's cut-off is chosen on its in-sample training predictions: "
                     f"{DLRN_OOF_RULE} failed ({error}).")
    else:
        predictions.loc[training, ["label", "set"]].assign(DLRN=oof).to_csv(folder / OOF_FILE)
    nomogram.plot(_figure_dir(context, "dlrn") / "nomogram")
    save_tables(context, "dlrn", {"dlrn_points": points.reset_index()})
    return {
        "figures": {"figures/nomogram": "The DLR nomogram (Figure 6): points per predictor, "
                                        "total points and predicted probability"},
        "tables": {"tables/dlrn_points": "Nomogram points of every case"},
        "facts": {"DLR model": best_model(context, "dlr_models"),
                  "clinical predictors": (_clinical_use(clinical, record["basis"])
                                          if clinical else "none (DLR score only)")},
        "notes": notes,
    }


# ---------------------------------------------------------------- comparison (Table 7)

MODEL_STAGES = ("clinical_models", "hcr_models", "deep", "dlr_models", "dlrn")
COMPARISON_CUTOFFS = ("each model's own stage's: on out-of-fold training predictions where it "
                      "has them, else on training-set predictions")


def comparison_predictions(context: StudyContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The best model of each kind side by side (wide predictions shape), and the
    out-of-fold training predictions of those whose stage has them."""
    cases = read_cases(context)
    predictions = cases[["label", "set"]].copy()
    out_of_fold = cases.loc[train_ids(cases), ["label"]]
    for stage in MODEL_STAGES:
        if not context.done(stage):
            continue
        column = "DLRN" if stage == "dlrn" else best_model(context, stage)
        predictions[column] = read_predictions(context, stage)[column]
        stage_oof = read_out_of_fold(context, stage)
        if stage_oof is not None:
            out_of_fold[column] = stage_oof[column]
    return predictions, out_of_fold


def comparison_metrics(predictions: pd.DataFrame, out_of_fold: pd.DataFrame,
                       scores: list[str]) -> pd.DataFrame:
    """Table 7, each model's Youden cut-off chosen where its own stage chose it.

    On its out-of-fold training predictions where it has them, as dlrn.modeling does
    (so the cut-offs and metrics equal the clinical, HCR and DLR tables'); else on its
    training-set predictions, as dlrn.deep does for the CNN. ``threshold_set`` says which.
    """
    from dlrn.evaluation.summary import metrics_table
    from dlrn.modeling import CV_SET, TRAIN

    training_first = predictions.sort_values("set", key=lambda sets: sets != TRAIN,
                                             kind="stable")
    with_oof = [score for score in scores if score in out_of_fold.columns]
    in_sample = [score for score in scores if score not in with_oof]
    tables = []
    if with_oof:
        combined = pd.concat([out_of_fold.assign(set=CV_SET), training_first],
                             ignore_index=True)
        table = metrics_table(combined, with_oof, train_set=CV_SET)
        tables.append(table[table["set"] != CV_SET])
    if in_sample:
        tables.append(metrics_table(training_first, in_sample, train_set=TRAIN))
    return pd.concat(tables, ignore_index=True).sort_values(
        "model", key=lambda models: models.map(scores.index), kind="stable", ignore_index=True)


def cutoff_rule(scores: list[str], out_of_fold: list[str]) -> str:
    """The caption's sentences on where each model's cut-off was chosen."""
    oof = [score for score in scores if score in out_of_fold]
    in_sample = [score for score in scores if score not in oof]
    where = ([f"on the out-of-fold training predictions for {', '.join(oof)}"] if oof else [])
    where += ([f"on the training-set predictions for {', '.join(in_sample)}"]
              if in_sample else [])
    text = ("Each model's Youden cut-off is the one its own stage chose, on training data "
            "only, applied unchanged to every set: " + "; ".join(where) + ", so a model "
            "shows the same cut-off and sensitivity here as in its own table.")
    if "DLRN" in oof:
        text += f" The DLRN's out-of-fold probabilities come from {DLRN_OOF_RULE}."
    elif "DLRN" in in_sample:
        text += (f" The DLRN's cut-off is on its in-sample training predictions because "
                 f"{DLRN_OOF_RULE} failed (see the DLRN section).")
    if any(score.startswith("DL-") for score in in_sample):
        text += (" A CNN has no out-of-fold predictions: its cut-off is the one the deep "
                 "learning stage chose on its training predictions (also used for Grad-CAM).")
    return text


def run_comparison(context: StudyContext) -> dict[str, Any]:
    from dlrn.evaluation.summary import write_evaluation

    predictions, out_of_fold = comparison_predictions(context)
    scores = [c for c in predictions.columns if c not in ("label", "set")]
    if not scores:
        raise DlrnError("no model was built, so there is nothing to compare")
    folder = context.stage_dir("comparison")
    predictions.to_csv(folder / PREDICTIONS_FILE)
    out_of_fold.to_csv(folder / OOF_FILE)
    write_evaluation(predictions, scores, folder / "evaluation", overwrite=True,
                     groups=context.config.evaluation.calibration_bins,
                     metrics=comparison_metrics(predictions, out_of_fold, scores))
    sets = list(dict.fromkeys(predictions["set"]))
    figures = {}
    for kind, caption in (("roc", "ROC curves (Figure 7)"),
                          ("delong", "DeLong test p-values (Supplementary Figure 7)"),
                          ("calibration", "Calibration curves (Supplementary Figure 8)"),
                          ("decision_curve", "Decision curves (Figure 8)")):
        for name in sets:
            stem = f"evaluation/figures/{kind}_{name}"
            if (folder / f"{stem}.png").exists():
                figures[stem] = f"{caption}, {name} set"
    return {
        "tables": {"evaluation/metrics": "Performance of the best model of each kind "
                                         "(Table 7). " + cutoff_rule(scores,
                                                                     list(out_of_fold)),
                   "evaluation/hosmer_lemeshow": "Calibration: Hosmer-Lemeshow test, "
                                                 "intercept and slope",
                   "evaluation/delong": "DeLong tests between models"},
        "figures": figures,
        "facts": {"models compared": ", ".join(scores)},
    }


# ---------------------------------------------------------------- the study

def _no_clinical(context: StudyContext) -> str | None:
    return None if context.config.cohort.clinical else "no clinical columns in cohort.clinical"


def _dl_off(context: StudyContext) -> str | None:
    return None if context.config.dl.enabled else "dl.enabled is false in the study file"


def _cohort_inputs(config: StudyConfig) -> list[Path]:
    return [config.resolve(config.cohort.table),
            *(config.resolve(e.table) for e in config.cohort.external)]


def _cohort_settings(config: StudyConfig) -> dict[str, Any]:
    return {"cohort": config.to_dict()["cohort"], "split": config.to_dict()["split"],
            "seed": config.split_seed}


def _radiomics_settings(config: StudyConfig) -> dict[str, Any]:
    """What changes the features (not jobs or the cache folder, which only change speed)."""
    return {"preset": str(config.resolve_preset()), "icc": config.selection.icc_threshold}


def _preset_file(config: StudyConfig) -> list[Path]:
    preset = config.resolve_preset()
    return [preset] if isinstance(preset, Path) else []


def _models_settings(config: StudyConfig, *extra: str) -> dict[str, Any]:
    data = config.to_dict()
    return {"classifiers": data["classifiers"], "seed": config.seed,
            **{name: data[name] for name in extra}}


STAGES: list[Stage] = [
    Stage("cohort", "Patients and split", (), _cohort_settings, run_cohort,
          inputs=_cohort_inputs),
    Stage("clinical", "Clinical characteristics", ("cohort",),
          lambda c: {"clinical": c.cohort.clinical,
                     "p": c.evaluation.clinical_p_threshold,
                     "fallback": c.evaluation.clinical_fallback},
          run_clinical, skip=_no_clinical),
    Stage("clinical_models", "Clinical models", ("clinical",),
          lambda c: _models_settings(c), run_clinical_models, skip=skip_clinical_models),
    Stage("radiomics", "Handcrafted radiomics features", ("cohort",),
          _radiomics_settings, run_radiomics, inputs=_preset_file),
    Stage("hcr_models", "Radiomics models", ("radiomics",),
          lambda c: _models_settings(c, "selection"), run_hcr_models),
    Stage("deep", "Deep learning models", ("cohort",),
          lambda c: {"dl": c.to_dict()["dl"], "seed": c.seed}, run_deep, skip=_dl_off,
          inputs=_weights_file),
    Stage("dlr_models", "Deep learning radiomics (DLR) models", ("radiomics", "deep"),
          lambda c: _models_settings(c, "selection"), run_dlr_models),
    # the cut-off rules are settings too: outputs made under an older rule are recomputed
    Stage("dlrn", "DLR nomogram (DLRN)", ("dlr_models", "clinical"),
          lambda c: {"out-of-fold": DLRN_OOF_RULE}, run_dlrn, optional=("clinical",)),
    Stage("comparison", "Comparison of all models", MODEL_STAGES,
          lambda c: {"bins": c.evaluation.calibration_bins,
                     "cut-offs": COMPARISON_CUTOFFS}, run_comparison,
          optional=MODEL_STAGES),
]
