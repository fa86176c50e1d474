"""Evaluate a wide predictions table: metrics, DeLong tests, calibration, decision curves.

A predictions table is indexed by case id with a 0/1 label column, an optional
set column ("train", "test", ...) and one score column per model. Cut-offs are
chosen on the training set only and applied unchanged to every set.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError, shown_items
from dlrn.evaluation.calibration import (
    brier_score,
    calibration_bins,
    calibration_intercept_slope,
    hosmer_lemeshow,
)
from dlrn.evaluation.decision_curve import decision_curve
from dlrn.evaluation.roc import auc_ci, delong_matrix, delong_pairwise
from dlrn.evaluation.threshold import YoudenThreshold, infinite_cutoff_note, undefined_metrics

__all__ = ["evaluate_predictions", "metrics_table", "write_evaluation"]

log = logging.getLogger(__name__)

ALL_CASES = "all"
CONSTANT_SCORES_NOTE = ("all scores equal: the model does not rank cases; AUC 0.5 by convention, "
                        "CI degenerate")
TABLE_NAMES = ("metrics", "delong", "calibration", "hosmer_lemeshow", "dca")


def check_predictions(
    predictions: pd.DataFrame,
    scores: list[str],
    *,
    label: str = "label",
    set_column: str | None = "set",
) -> None:
    """Raise one DlrnError naming the columns and case ids of bad input (labels, scores, sets)."""
    wanted = [label, *scores] + ([set_column] if set_column else [])
    missing = [c for c in wanted if c not in predictions.columns]
    if missing:
        raise DlrnError(
            f"predictions lack column(s) {missing}; present: {list(predictions.columns)}"
        )
    if not scores:
        raise DlrnError("no score columns given")
    labels = pd.to_numeric(predictions[label], errors="coerce")
    bad = predictions.index[~labels.isin([0, 1])]
    if len(bad):
        raise DlrnError(f"label column {label!r} is not 0/1 for case(s) {shown_items(bad)}")
    for column in scores:
        values = pd.to_numeric(predictions[column], errors="coerce").to_numpy(dtype=float)
        bad = predictions.index[~np.isfinite(values)]
        if len(bad):
            raise DlrnError(
                f"score column {column!r} is missing, NaN or infinite "
                f"for case(s) {shown_items(bad)}"
            )
    if set_column and predictions[set_column].isna().any():
        bad = predictions.index[predictions[set_column].isna()]
        raise DlrnError(f"set column {set_column!r} is empty for case(s) {shown_items(bad)}")


def _sets(
    predictions: pd.DataFrame, set_column: str | None, train_set: str
) -> dict[str, pd.DataFrame]:
    """Rows of each set, training set first; one set "all" when there is no set column."""
    if set_column is None:
        return {ALL_CASES: predictions}
    names = list(pd.unique(predictions[set_column].astype(str)))
    if train_set not in names:
        raise DlrnError(
            f"training set {train_set!r} not found in column {set_column!r} (sets: {names}); "
            "the cut-off must be chosen on the training set"
        )
    ordered = [train_set] + [n for n in names if n != train_set]
    labels = predictions[set_column].astype(str)
    return {name: predictions[labels == name] for name in ordered}


def _one_class_note(y: pd.Series) -> str:
    """'only negatives (0) among n cases' for a set without both classes, else ''."""
    n_positive = int(y.sum())
    if 0 < n_positive < len(y):
        return ""
    return f"only {'positives (1)' if n_positive else 'negatives (0)'} among {len(y)} cases"


def _auc_fields(y: pd.Series, score: pd.Series, *, method: str, conf_level: float,
                n_bootstrap: int, seed: int) -> tuple[dict[str, object], list[str]]:
    """AUC columns of one metrics row, and the notes on what is undefined."""
    described = method + (f" ({n_bootstrap} resamples, seed {seed})" if method == "bootstrap"
                          else "")
    one_class = _one_class_note(y)
    if one_class:
        fields = {"auc": np.nan, "auc_ci_low": np.nan, "auc_ci_high": np.nan}
        return {**fields, "auc_ci_method": described}, [f"AUC and its CI undefined: {one_class}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant scores: the note says it, once per row
        auc = auc_ci(y, score, method=method, conf_level=conf_level, n_bootstrap=n_bootstrap,
                     seed=seed)
    fields = {"auc": auc.auc, "auc_ci_low": auc.ci_low, "auc_ci_high": auc.ci_high}
    notes = [CONSTANT_SCORES_NOTE] if np.ptp(score.to_numpy(dtype=float)) == 0 else []
    return {**fields, "auc_ci_method": described}, notes


def _cutoff_fields(cutoff: YoudenThreshold, y: pd.Series,
                   score: pd.Series) -> tuple[dict[str, float], list[str]]:
    """Cut-off metrics of one set; an infinite cut-off and undefined metrics become notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes say it, once per row
        metrics = cutoff.metrics(score, y)
    infinite = infinite_cutoff_note(cutoff.threshold_)
    return metrics, ([infinite] if infinite else []) + undefined_metrics(metrics)


def metrics_table(
    predictions: pd.DataFrame,
    scores: list[str],
    *,
    label: str = "label",
    set_column: str | None = "set",
    train_set: str = "train",
    auc_method: str = "delong",
    n_bootstrap: int = 2000,
    seed: int = 0,
    thresholds: str = "midpoint",
    ci_method: str = "wilson",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """One row per (model, set): n, AUC with CI, training-set Youden threshold, cut-off metrics.

    A set other than the training set may hold one class only (small external
    cohorts): its AUC and CI are NaN, the cut-off metrics that remain defined
    (e.g. specificity without positives) are reported, and the ``note`` column
    says what is undefined and why (with a warning). The training set needs both
    classes, since the cut-off is chosen there. Degenerate but defined results
    are noted and warned too: constant scores (AUC 0.5, zero-width CI) and an
    infinite Youden cut-off (no threshold beats calling every case positive).
    """
    check_predictions(predictions, scores, label=label, set_column=set_column)
    sets = _sets(predictions, set_column, train_set)
    threshold_set = next(iter(sets))
    training = sets[threshold_set]
    one_class = _one_class_note(training[label].astype(int))
    if one_class:
        raise DlrnError(
            f"set {threshold_set!r} has {one_class}; the Youden cut-off is chosen on it and "
            "needs both classes"
        )
    rows_out = []
    for model in scores:
        cutoff = YoudenThreshold(thresholds, ci_method, conf_level).fit(
            training[model], training[label]
        )
        for name, rows in sets.items():
            y = rows[label].astype(int)
            auc, auc_notes = _auc_fields(y, rows[model], method=auc_method,
                                         conf_level=conf_level, n_bootstrap=n_bootstrap, seed=seed)
            cutoffs, cutoff_notes = _cutoff_fields(cutoff, y, rows[model])
            note = "; ".join(auc_notes + cutoff_notes)
            if note:
                warnings.warn(f"{model} on set {name!r}: {note}", stacklevel=2)
            rows_out.append(
                {
                    "model": model,
                    "set": name,
                    "n_positive": int(y.sum()),
                    **auc,
                    "threshold_set": threshold_set,
                    "threshold_rule": f"youden ({thresholds})",
                    **cutoffs,
                    "proportion_ci_method": ci_method,
                    "note": note,
                }
            )
    table = pd.DataFrame(rows_out)
    first = ["model", "set", "n", "n_positive", "auc", "auc_ci_low", "auc_ci_high", "threshold"]
    return _back(table[first + [c for c in table.columns if c not in first]], "note")


def _is_probability(values: pd.Series) -> bool:
    return bool(((values >= 0) & (values <= 1)).all())


HL_COLUMNS = ("model", "set", "n", "grouping", "brier", "groups", "hl_statistic", "df", "p_value",
              "calibration_intercept", "calibration_slope", "calibration_in_the_large", "note")
DELONG_COLUMNS = ("set", "model_1", "model_2", "auc_1", "auc_2", "auc_diff", "se_diff", "z",
                  "p_value", "note")


def _calibration_rows(
    y: pd.Series, p: pd.Series, *, groups: int, grouping: str
) -> tuple[dict, pd.DataFrame]:
    """HL summary row and bins of one model on one set; what cannot be computed gets a note."""
    summary: dict[str, object] = {"grouping": grouping, "brier": np.nan}
    if not _is_probability(p):
        summary["note"] = "scores are not probabilities in [0, 1]: calibration not assessed"
        return summary, pd.DataFrame()
    summary["brier"] = brier_score(y, p)
    notes, bins = [], pd.DataFrame()
    try:
        test = hosmer_lemeshow(y, p, groups=groups, grouping=grouping)
        summary.update(
            groups=len(test.table), hl_statistic=test.statistic, df=test.df, p_value=test.p_value
        )
        bins = calibration_bins(y, p, groups=groups, grouping=grouping)
    except DlrnError as error:
        notes.append(f"Hosmer-Lemeshow not computed: {error}")
    try:
        summary.update(calibration_intercept_slope(y, p))
    except DlrnError as error:
        notes.append(f"calibration intercept and slope not computed: {error}")
    summary["note"] = "; ".join(notes)
    return summary, bins


def _delong_rows(y: pd.Series, scores: pd.DataFrame, set_name: str) -> pd.DataFrame:
    """Paired DeLong tests of one set; a one-class set gets its pairs listed as skipped."""
    one_class = _one_class_note(y)
    if one_class:
        names = list(scores.columns)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        note = f"DeLong test skipped: {one_class} (AUC undefined)"
        if pairs:
            warnings.warn(f"set {set_name!r}: {note}", stacklevel=3)
        table = pd.DataFrame(pairs, columns=["model_1", "model_2"]).assign(note=note)
    else:
        table = delong_pairwise(y, scores)
        zero = table["se_diff"] == 0
        table["note"] = np.where(zero, "zero variance of the AUC difference (identical or "
                                 "perfectly separating curves): z = 0 and p = 1 by convention", "")
    return table.assign(set=set_name).reindex(columns=list(DELONG_COLUMNS))


def evaluate_predictions(
    predictions: pd.DataFrame,
    scores: list[str],
    *,
    label: str = "label",
    set_column: str | None = "set",
    train_set: str = "train",
    groups: int = 10,
    grouping: str = "quantile_cut",
    dca_thresholds: object = None,
    metrics: pd.DataFrame | None = None,
    **metric_options: object,
) -> dict[str, pd.DataFrame]:
    """All evaluation tables: metrics, delong, calibration, hosmer_lemeshow, dca.

    Nothing is left undefined without a reason: a set with one class gets NaN
    AUCs and skipped DeLong tests, a score column outside [0, 1] no calibration
    or decision curve, a set too small for the HL groups no HL test; each such
    row has a ``note`` saying why, and a warning is issued.

    ``metrics``: a table made beforehand by :func:`metrics_table`, used as given, for
    cut-offs chosen elsewhere than on ``train_set`` (e.g. each model on its own
    out-of-fold training predictions); it must cover exactly ``scores``.
    """
    if metrics is None:
        metrics = metrics_table(
            predictions,
            scores,
            label=label,
            set_column=set_column,
            train_set=train_set,
            **metric_options,
        )
    elif set(metrics["model"]) != set(scores):
        raise DlrnError(
            f"the metrics table given covers models {sorted(set(metrics['model']))}, "
            f"the scores are {sorted(scores)}"
        )
    delong, bins, tests, curves = [], [], [], []
    for name, rows in _sets(predictions, set_column, train_set).items():
        y = rows[label].astype(int)
        delong.append(_delong_rows(y, rows[scores].astype(float), name))
        for model in scores:
            p = rows[model].astype(float)
            summary, model_bins = _calibration_rows(y, p, groups=groups, grouping=grouping)
            if summary["note"]:
                warnings.warn(f"{model} on set {name!r}: {summary['note']}", stacklevel=2)
            tests.append({"model": model, "set": name, "n": len(rows), **summary})
            if not model_bins.empty:
                bins.append(model_bins.assign(model=model, set=name))
            if _is_probability(p):
                curves.append(decision_curve(y, p, dca_thresholds).assign(model=model, set=name))
    return {
        "metrics": metrics,
        "delong": pd.concat(delong, ignore_index=True),
        "calibration": _front(_concat(bins), ["model", "set"]),
        "hosmer_lemeshow": pd.DataFrame(tests, columns=list(HL_COLUMNS)),
        "dca": _front(_concat(curves), ["model", "set"]),
    }


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _front(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if table.empty:
        return table
    return table[columns + [c for c in table.columns if c not in columns]]


def _back(table: pd.DataFrame, column: str) -> pd.DataFrame:
    return table[[c for c in table.columns if c != column] + [column]]


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise DlrnError(f"output folder {out_dir} is not empty; choose another or allow overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)


def _write_figures(
    predictions: pd.DataFrame,
    scores: list[str],
    tables: dict[str, pd.DataFrame],
    figure_dir: Path,
    *,
    label: str,
    set_column: str | None,
    train_set: str,
    groups: int,
    grouping: str,
    smooth_calibration: bool,
) -> list[Path]:
    from dlrn.evaluation import figures
    from dlrn.evaluation.roc import AucResult

    written: list[Path] = []
    metrics = tables["metrics"]
    for name, rows in _sets(predictions, set_column, train_set).items():
        y, frame = rows[label].astype(int), rows[scores].astype(float)
        in_set = metrics[metrics["set"] == name].set_index("model")
        aucs = {
            m: AucResult(r.auc, np.nan, np.nan, r.auc_ci_low, r.auc_ci_high)
            for m, r in in_set.iterrows()
        }
        title = f"{name} set (n = {len(rows)})"
        has_roc = not _one_class_note(y)
        if has_roc:
            written += figures.save_figure(
                figures.plot_roc(y, frame, title=title, auc_results=aucs),
                figure_dir / f"roc_{name}",
            )
        usable = [m for m in scores if _has_calibration(tables["hosmer_lemeshow"], m, name)]
        if usable:
            written += figures.save_figure(
                figures.plot_calibration(
                    y,
                    frame[usable],
                    groups=groups,
                    grouping=grouping,
                    smooth=smooth_calibration,
                    title=title,
                ),
                figure_dir / f"calibration_{name}",
            )
        probabilistic = [m for m in scores if _is_probability(frame[m])]
        if probabilistic:
            written += figures.save_figure(
                figures.plot_decision_curves(y, frame[probabilistic], title=title),
                figure_dir / f"decision_curve_{name}",
            )
        if has_roc and len(scores) > 1:
            written += figures.save_figure(
                figures.plot_delong_matrix(delong_matrix(y, frame), title=title),
                figure_dir / f"delong_{name}",
            )
    return written


def _has_calibration(tests: pd.DataFrame, model: str, set_name: str) -> bool:
    """True when the HL test (and so the binned curve) could be computed."""
    row = tests[(tests["model"] == model) & (tests["set"] == set_name)]
    return bool(len(row)) and bool(row["p_value"].notna().iloc[0])


def write_evaluation(
    predictions: pd.DataFrame,
    scores: list[str],
    out_dir: str | Path,
    *,
    label: str = "label",
    set_column: str | None = "set",
    train_set: str = "train",
    groups: int = 10,
    grouping: str = "quantile_cut",
    overwrite: bool = False,
    figures: bool = True,
    smooth_calibration: bool = True,
    source: str | Path | None = None,
    metrics: pd.DataFrame | None = None,
    **metric_options: object,
) -> dict[str, Path]:
    """Write the evaluation tables (CSV + ``evaluation.xlsx``), figures (PNG + SVG) and provenance.

    Calibration figures show the lowess curve unless ``smooth_calibration=False``;
    ``metrics`` as in :func:`evaluate_predictions`.
    Refuses a non-empty ``out_dir`` unless ``overwrite``. Returns the paths written.
    """
    from dlrn.provenance import file_sha256, write_provenance
    from dlrn.tables import write_tables

    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    tables = evaluate_predictions(
        predictions,
        scores,
        label=label,
        set_column=set_column,
        train_set=train_set,
        groups=groups,
        grouping=grouping,
        metrics=metrics,
        **metric_options,
    )
    written = write_tables(tables, out, workbook="evaluation.xlsx")
    if figures:
        for path in _write_figures(
            predictions,
            scores,
            tables,
            out / "figures",
            label=label,
            set_column=set_column,
            train_set=train_set,
            groups=groups,
            grouping=grouping,
            smooth_calibration=smooth_calibration,
        ):
            written[f"figure:{path.name}"] = path
    details = {
        "parameters": {
            "scores": scores,
            "label": label,
            "set_column": set_column,
            "train_set": train_set,
            "groups": groups,
            "grouping": grouping,
            "smooth_calibration": smooth_calibration,
            "metrics": "given" if metrics is not None else "computed",
            **metric_options,
        }
    }
    if source is not None:
        details["input"] = {"path": str(source), "sha256": file_sha256(source)}
    written["provenance"] = write_provenance(out / "provenance.json", **details)
    log.info("evaluation of %d model(s) written to %s", len(scores), out)
    return written
