"""Every evaluation table of a predictions table: metrics, DeLong, calibration, DCA.

A predictions table is indexed by case id with a 0/1 label column, an optional
set column ("train", "test", ...) and one score column per model. Cut-offs are
chosen on training data only and applied unchanged to every set. Out-of-fold
training predictions (``oof``) replace the apparent ones in every training-set
statistic (:mod:`dlrn.evaluation.sets`); patient ids (``groups``) make the
statistics patient-aware and add patient-level tables when a patient has several
images (:mod:`dlrn.evaluation.clustered`, :mod:`dlrn.evaluation.patients`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError
from dlrn.evaluation.calibration import (
    brier_score,
    calibration_bins,
    calibration_intercept_slope,
    hosmer_lemeshow,
)
from dlrn.evaluation.clustered import TooFewPatients, clustered_pairwise
from dlrn.evaluation.decision_curve import decision_curve
from dlrn.evaluation.metrics import (
    Cutoff,
    MetricOptions,
    choose_cutoffs,
    metrics_for_sets,
)
from dlrn.evaluation.patients import (
    patient_ids,
    patient_level_possible,
    patient_oof_predictions,
    patient_predictions,
    several_images,
)
from dlrn.evaluation.roc import delong_pairwise
from dlrn.evaluation.sets import (
    EvaluationSet,
    apparent_training_set,
    check_predictions,
    evaluation_sets,
    one_class_note,
)
from dlrn.notes import Note, about

__all__ = ["DELONG_COLUMNS", "HL_COLUMNS", "evaluate_predictions", "is_probability"]

HL_COLUMNS = ("model", "set", "n", "grouping", "brier", "groups", "hl_statistic", "df", "p_value",
              "calibration_intercept", "calibration_slope", "calibration_in_the_large", "note")
DELONG_COLUMNS = ("set", "model_1", "model_2", "auc_1", "auc_2", "auc_diff", "se_diff", "z",
                  "p_value", "p_value_holm", "method", "note")
ZERO_VARIANCE_NOTE = ("zero variance of the AUC difference (identical or perfectly separating "
                      "curves): z = 0 and p = 1 by convention")


def is_probability(values: pd.Series) -> bool:
    return bool(((values >= 0) & (values <= 1)).all())


def _calibration_rows(
    y: pd.Series, p: pd.Series, *, groups: int, grouping: str
) -> tuple[dict, pd.DataFrame, list[Note]]:
    """HL summary row and bins of one model on one set, and a note on what was not computed."""
    summary: dict[str, object] = {"grouping": grouping, "brier": np.nan}
    if not is_probability(p):
        return summary, pd.DataFrame(), [Note("scores are not probabilities in [0, 1]: "
                                              "calibration not assessed")]
    summary["brier"] = brier_score(y, p)
    notes, bins = [], pd.DataFrame()
    try:
        test = hosmer_lemeshow(y, p, groups=groups, grouping=grouping)
        summary.update(
            groups=len(test.table), hl_statistic=test.statistic, df=test.df, p_value=test.p_value
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Note)  # the test's own groups, noted just above
            bins = calibration_bins(y, p, groups=groups, grouping=grouping)
    except DlrnError as error:
        notes.append(Note("Hosmer-Lemeshow not computed", str(error)))
    try:
        summary.update(calibration_intercept_slope(y, p))
    except DlrnError as error:
        notes.append(Note("calibration intercept and slope not computed", str(error)))
    return summary, bins, notes


def _pairs(evaluated: EvaluationSet, label: str, comparison_method: str,
           options: MetricOptions) -> pd.DataFrame:
    """Paired tests of one set's models, image- or patient-level."""
    y, scores = evaluated.rows[label].astype(int), evaluated.rows[list(evaluated.models)]
    if evaluated.patients is None:
        return delong_pairwise(y, scores.astype(float)).assign(method="delong")
    table = clustered_pairwise(y, scores.astype(float), evaluated.patients,
                               method=comparison_method, n_bootstrap=options.n_bootstrap,
                               seed=options.seed)
    described = ("obuchowski (clustered DeLong)" if comparison_method == "obuchowski" else
                 f"cluster bootstrap over patients ({options.n_bootstrap} resamples, "
                 f"seed {options.seed})")
    return table.assign(method=described)


def _delong_rows(evaluated: EvaluationSet, label: str, comparison_method: str,
                 options: MetricOptions) -> pd.DataFrame:
    """Paired tests of one set (Holm over its pairs); a one-class set gets its pairs skipped."""
    one_class = one_class_note(evaluated.rows[label].astype(int))
    skipped = f"{one_class} (AUC undefined)" if one_class else ""
    if not skipped:
        try:
            table = _pairs(evaluated, label, comparison_method, options)
            table["note"] = np.where(table["se_diff"] == 0, ZERO_VARIANCE_NOTE, "")
        except TooFewPatients as error:
            skipped = str(error)
    if skipped:
        names = list(evaluated.models)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        note = Note("DeLong test skipped", skipped, on_set=evaluated.name)
        if pairs:
            warnings.warn(note, stacklevel=4)
        table = pd.DataFrame(pairs, columns=["model_1", "model_2"]).assign(
            note=f"{note.kind}: {skipped}")
    return table.assign(set=evaluated.name).reindex(columns=list(DELONG_COLUMNS))


def _clustered_hl_note(patients: pd.Series | None) -> str:
    if patients is None:
        return ""
    repeated = int(patients.duplicated(keep=False).groupby(patients).any().sum())
    return (f"Hosmer-Lemeshow assumes independent cases, but {repeated} patient(s) have several "
            "images here, so its p-value is too small; see the patient-level test")


def _calibration_tables(sets: list[EvaluationSet], label: str, hl_groups: int, grouping: str,
                        dca_thresholds: object) -> dict[str, pd.DataFrame]:
    tests, bins, curves = [], [], []
    for evaluated in sets:
        y = evaluated.rows[label].astype(int)
        clustered_note = _clustered_hl_note(evaluated.patients)
        for model in evaluated.models:
            p = evaluated.rows[model].astype(float)
            with about(model, evaluated.name):
                summary, model_bins, notes = _calibration_rows(y, p, groups=hl_groups,
                                                               grouping=grouping)
            for note in notes:
                warnings.warn(note.about(model, evaluated.name), stacklevel=4)
            texts = [evaluated.note, *(note.text for note in notes), clustered_note]
            tests.append({"model": model, "set": evaluated.name, "n": len(evaluated.rows),
                          **summary, "note": "; ".join(text for text in texts if text)})
            if not model_bins.empty:
                bins.append(model_bins.assign(model=model, set=evaluated.name))
            if is_probability(p):
                curves.append(decision_curve(y, p, dca_thresholds).assign(
                    model=model, set=evaluated.name))
    return {"calibration": _front(_concat(bins), ["model", "set"]),
            "hosmer_lemeshow": pd.DataFrame(tests, columns=list(HL_COLUMNS)),
            "dca": _front(_concat(curves), ["model", "set"])}


def _hl_group_count(groups: object, hl_groups: int) -> tuple[object, int]:
    """Older callers passed the HL group count as ``groups``: still accepted, with a warning."""
    if isinstance(groups, int | np.integer) and not isinstance(groups, bool):
        warnings.warn("groups=<int> as the Hosmer-Lemeshow group count is deprecated: pass "
                      "hl_groups=; groups= now takes patient ids", DeprecationWarning,
                      stacklevel=3)
        return None, int(groups)
    return groups, hl_groups


def evaluate_predictions(
    predictions: pd.DataFrame,
    scores: list[str],
    *,
    label: str = "label",
    set_column: str | None = "set",
    train_set: str = "train",
    oof: pd.DataFrame | None = None,
    groups: object = None,
    patient_aggregation: str = "mean",
    hl_groups: int = 10,
    grouping: str = "quantile_cut",
    dca_thresholds: object = None,
    metrics: pd.DataFrame | None = None,
    cutoffs: Mapping[str, float] | None = None,
    cutoff_source: str | Mapping[str, str] = "given",
    comparison_method: str = "obuchowski",
    **metric_options: object,
) -> dict[str, pd.DataFrame]:
    """All evaluation tables: metrics, delong, calibration, hosmer_lemeshow, dca.

    ``oof``, ``cutoffs``, ``cutoff_source``, ``groups`` and ``metric_options`` as in
    :func:`~dlrn.evaluation.metrics.metrics_table`. With ``oof`` the training-set
    rows of every table are out-of-fold (set ``"train (out-of-fold)"``) and the
    apparent metrics are their own table, ``metrics_apparent``. With ``groups`` and
    a patient with several images, CIs and paired tests are patient-aware
    (``comparison_method``: ``"obuchowski"`` or ``"cluster-bootstrap"``), HL rows note
    that HL assumes independence, and the same tables are added for one row per
    patient (``patient_*``; scores aggregated by ``patient_aggregation``, mean or max).
    With one image per patient the results equal those without ``groups``.

    Nothing is left undefined without a reason: a one-class set gets NaN AUCs and
    skipped DeLong tests, a score outside [0, 1] no calibration or decision curve, a
    set too small for the HL groups no HL test; each such row has a ``note``.
    ``metrics``: a table made beforehand by ``metrics_table``, used as given.
    """
    groups, hl_groups = _hl_group_count(groups, hl_groups)
    check_predictions(predictions, scores, label=label, set_column=set_column)
    patients = patient_ids(predictions, groups, set_column)
    clustered = several_images(patients)
    sets = evaluation_sets(predictions, scores, label=label, set_column=set_column,
                           train_set=train_set, oof=oof, patients=patients if clustered else None)
    options = MetricOptions(**metric_options)
    chosen = choose_cutoffs(sets, scores, label=label, thresholds=options.thresholds,
                            given=cutoffs, given_source=cutoff_source)
    if metrics is None:
        metrics = metrics_for_sets(sets, chosen, label=label, options=options)
    elif set(metrics["model"]) != set(scores):
        raise DlrnError(
            f"the metrics table given covers models {sorted(set(metrics['model']))}, "
            f"the scores are {sorted(scores)}"
        )
    tables = {"metrics": metrics,
              "delong": pd.concat([_delong_rows(s, label, comparison_method, options)
                                   for s in sets], ignore_index=True),
              **_calibration_tables(sets, label, hl_groups, grouping, dca_thresholds)}
    if oof is not None:
        apparent = apparent_training_set(predictions, scores, set_column=set_column,
                                         train_set=train_set,
                                         patients=patients if clustered else None)
        tables["metrics_apparent"] = _apparent_metrics(apparent, chosen, label, options)
    if clustered and patient_level_possible(predictions, patients, label):
        tables.update(_patient_tables(
            predictions, scores, patients, label=label, set_column=set_column,
            train_set=train_set, oof=oof, how=patient_aggregation, hl_groups=hl_groups,
            grouping=grouping, dca_thresholds=dca_thresholds, cutoffs=cutoffs,
            cutoff_source=cutoff_source, metric_options=metric_options))
    return tables


def _apparent_metrics(apparent: EvaluationSet, chosen: Mapping[str, Cutoff], label: str,
                      options: MetricOptions) -> pd.DataFrame:
    """Apparent training-set metrics at the cut-offs of the main table (optimistic by design)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate rows are noted in the table
        return metrics_for_sets([apparent], chosen, label=label, options=options)


def _patient_tables(predictions: pd.DataFrame, scores: list[str], patients: pd.Series, *,
                    label: str, set_column: str | None, train_set: str,
                    oof: pd.DataFrame | None, how: str, metric_options: dict,
                    **evaluation: object) -> dict[str, pd.DataFrame]:
    """The evaluation tables of the patient-level predictions, prefixed ``patient_``."""
    per_patient = patient_predictions(predictions, scores, patients, label=label,
                                      set_column=set_column, how=how)
    patient_oof = patient_oof_predictions(predictions, oof, scores, patients, label=label,
                                          how=how)
    tables = evaluate_predictions(per_patient, scores, label=label, set_column=set_column,
                                  train_set=train_set, oof=patient_oof, **evaluation,
                                  **metric_options)
    return {f"patient_{name}": table for name, table in tables.items()}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _front(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if table.empty:
        return table
    return table[columns + [c for c in table.columns if c not in columns]]
