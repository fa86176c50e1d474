"""Write the evaluation of a wide predictions table: CSVs, a workbook, figures, provenance.

The tables come from :func:`~dlrn.evaluation.analysis.evaluate_predictions`;
``metrics_table`` and ``evaluate_predictions`` are importable from here too.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from dlrn.evaluation.analysis import _hl_group_count, evaluate_predictions, is_probability
from dlrn.evaluation.metrics import metrics_table
from dlrn.evaluation.patients import (
    patient_ids,
    patient_level_possible,
    patient_oof_predictions,
    patient_predictions,
)
from dlrn.evaluation.roc import AucResult, delong_matrix
from dlrn.evaluation.sets import (
    ALL_CASES,
    TRAIN_APPARENT,
    TRAIN_OOF,
    EvaluationSet,
    check_predictions,
    evaluation_sets,
    one_class_note,
)
from dlrn.io import check_output_folder
from dlrn.notes import Note

__all__ = ["ALL_CASES", "check_predictions", "evaluate_predictions", "file_stem",
           "metrics_table", "write_evaluation"]

log = logging.getLogger(__name__)

_STEMS = {TRAIN_OOF: "train_oof", TRAIN_APPARENT: "train_apparent"}


def file_stem(set_name: str) -> str:
    """File-name part of a set: the honest training-set labels get short names."""
    return _STEMS.get(set_name, set_name)


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    check_output_folder(out_dir, overwrite=overwrite, remedy="choose another or allow overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)


def _has_calibration(tests: pd.DataFrame, model: str, set_name: str) -> bool:
    """True when the HL test (and so the binned curve) could be computed."""
    row = tests[(tests["model"] == model) & (tests["set"] == set_name)]
    return bool(len(row)) and bool(row["p_value"].notna().iloc[0])


def _set_figures(evaluated: EvaluationSet, tables: Mapping[str, pd.DataFrame], folder: Path,
                 prefix: str, *,
                 label: str, hl_groups: int, grouping: str, smooth: bool) -> list[Path]:
    """ROC, calibration, decision-curve and DeLong-matrix figures of one set."""
    from dlrn.evaluation.figures import (
        plot_calibration,
        plot_decision_curves,
        plot_delong_matrix,
        plot_roc,
        save_figure,
    )

    y = evaluated.rows[label].astype(int)
    frame = evaluated.rows[list(evaluated.models)].astype(float)
    in_set = tables["metrics"][tables["metrics"]["set"] == evaluated.name].set_index("model")
    aucs = {m: AucResult(r.auc, np.nan, np.nan, r.auc_ci_low, r.auc_ci_high)
            for m, r in in_set.iterrows()}
    title = f"{evaluated.name} set (n = {len(frame)})"
    name = file_stem(evaluated.name)
    written: list[Path] = []
    has_roc = not one_class_note(y)
    if has_roc:
        written += save_figure(plot_roc(y, frame, title=title, auc_results=aucs),
                                       folder / f"{prefix}roc_{name}")
    usable = [m for m in frame if _has_calibration(tables["hosmer_lemeshow"], m, evaluated.name)]
    if usable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Note)  # the HL table noted the same groups
            figure = plot_calibration(y, frame[usable], groups=hl_groups, grouping=grouping,
                                      smooth=smooth, title=title)
        written += save_figure(figure, folder / f"{prefix}calibration_{name}")
    probabilistic = [m for m in frame if is_probability(frame[m])]
    if probabilistic:
        written += save_figure(
            plot_decision_curves(y, frame[probabilistic], title=title),
            folder / f"{prefix}decision_curve_{name}")
    if has_roc and frame.shape[1] > 1:
        p_values = (delong_matrix(y, frame) if evaluated.patients is None
                    else _matrix_of(tables["delong"], evaluated.name, list(frame)))
        written += save_figure(plot_delong_matrix(p_values, title=title),
                                       folder / f"{prefix}delong_{name}")
    return written


def _matrix_of(delong: pd.DataFrame, set_name: str, names: list[str]) -> pd.DataFrame:
    """Square p-value matrix of one set's rows of a paired-test table (diagonal 1)."""
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for row in delong[delong["set"] == set_name].itertuples():
        matrix.loc[row.model_1, row.model_2] = matrix.loc[row.model_2, row.model_1] = row.p_value
    return matrix


def write_evaluation(
    predictions: pd.DataFrame,
    scores: list[str],
    out_dir: str | Path,
    *,
    label: str = "label",
    set_column: str | None = "set",
    train_set: str = "train",
    oof: pd.DataFrame | None = None,
    groups: object = None,
    patient_aggregation: str = "mean",
    hl_groups: int = 10,
    grouping: str = "quantile_cut",
    overwrite: bool = False,
    figures: bool = True,
    smooth_calibration: bool = True,
    source: str | Path | None = None,
    metrics: pd.DataFrame | None = None,
    cutoffs: Mapping[str, float] | None = None,
    cutoff_source: str | Mapping[str, str] = "given",
    comparison_method: str = "obuchowski",
    **metric_options: object,
) -> dict[str, Path]:
    """Write the evaluation tables (CSV + ``evaluation.xlsx``), figures (PNG + SVG), provenance.

    Arguments as :func:`~dlrn.evaluation.analysis.evaluate_predictions`. With several
    images per patient, ``patient_predictions.csv`` holds the patient-level table and
    its figures are prefixed ``patient_``. Calibration figures show the lowess curve
    unless ``smooth_calibration=False``. Refuses a non-empty ``out_dir`` unless
    ``overwrite``. Returns the paths written.
    """
    from dlrn.provenance import file_sha256, write_provenance
    from dlrn.tables import write_tables

    groups, hl_groups = _hl_group_count(groups, hl_groups)
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    tables = evaluate_predictions(
        predictions, scores, label=label, set_column=set_column, train_set=train_set, oof=oof,
        groups=groups, patient_aggregation=patient_aggregation, hl_groups=hl_groups,
        grouping=grouping, metrics=metrics, cutoffs=cutoffs, cutoff_source=cutoff_source,
        comparison_method=comparison_method, **metric_options)
    written = write_tables(tables, out, workbook="evaluation.xlsx")
    patients = patient_ids(predictions, groups, set_column)
    per_patient = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evaluate_predictions warned already
        patient_level = patient_level_possible(predictions, patients, label)
    if patient_level:
        per_patient = patient_predictions(predictions, scores, patients, label=label,
                                          set_column=set_column, how=patient_aggregation)
        per_patient.to_csv(out / "patient_predictions.csv")
        written["patient_predictions"] = out / "patient_predictions.csv"
    if figures:
        options = {"label": label, "hl_groups": hl_groups, "grouping": grouping,
                   "smooth": smooth_calibration}
        sets = evaluation_sets(predictions, scores, label=label, set_column=set_column,
                               train_set=train_set, oof=oof,
                               patients=patients if per_patient is not None else None)
        paths = [p for s in sets for p in _set_figures(s, tables, out / "figures", "", **options)]
        if per_patient is not None:
            patient_tables = {name.removeprefix("patient_"): table
                              for name, table in tables.items() if name.startswith("patient_")}
            patient_oof = patient_oof_predictions(predictions, oof, scores, patients,
                                                  label=label, how=patient_aggregation)
            for evaluated in evaluation_sets(per_patient, scores, label=label,
                                             set_column=set_column, train_set=train_set,
                                             oof=patient_oof):
                paths += _set_figures(evaluated, patient_tables, out / "figures", "patient_",
                                      **options)
        written.update({f"figure:{path.name}": path for path in paths})
    details = {
        "parameters": {
            "scores": scores, "label": label, "set_column": set_column, "train_set": train_set,
            "out_of_fold": sorted(c for c in scores if oof is not None and c in oof.columns),
            "patients": None if patients is None else int(patients.nunique()),
            "patient_aggregation": patient_aggregation, "hl_groups": hl_groups,
            "grouping": grouping, "smooth_calibration": smooth_calibration,
            "metrics": "given" if metrics is not None else "computed",
            "cutoffs": dict(cutoffs or {}), "comparison_method": comparison_method,
            **metric_options,
        }
    }
    if source is not None:
        details["input"] = {"path": str(source), "sha256": file_sha256(source)}
    written["provenance"] = write_provenance(out / "provenance.json", **details)
    log.info("evaluation of %d model(s) written to %s", len(scores), out)
    return written
