"""Table 7 style metrics: AUC with CI and the cut-off metrics of every model on every set.

Each model's cut-off is chosen once, on training data only, and applied unchanged
to every set: by default the Youden cut-off of its training rows (out-of-fold
ones when ``oof`` is given, see :mod:`dlrn.evaluation.sets`), or a cut-off chosen
elsewhere and passed in ``cutoffs``. ``cutoff_source`` says, per row, which.
With patient ids (``groups``) and several images for some patient, the CIs are
cluster-aware (:mod:`dlrn.evaluation.clustered`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dlrn.errors import DlrnError
from dlrn.evaluation.clustered import (
    TooFewPatients,
    clustered_auc_ci,
    clustered_auc_method,
    clustered_cutoff_metrics,
    describe_auc_method,
    describe_proportion_ci,
)
from dlrn.evaluation.patients import patient_ids, several_images
from dlrn.evaluation.roc import auc_ci
from dlrn.evaluation.sets import (
    APPARENT_NOTE,
    EvaluationSet,
    check_predictions,
    evaluation_sets,
    one_class_note,
)
from dlrn.evaluation.threshold import (
    cutoff_metrics,
    infinite_cutoff_note,
    undefined_metrics,
    youden_threshold,
)
from dlrn.notes import Note, about

__all__ = ["Cutoff", "MetricOptions", "choose_cutoffs", "metrics_for_sets", "metrics_table"]

CONSTANT_SCORES_NOTE = ("all scores equal: the model does not rank cases; AUC 0.5 by convention, "
                        "CI degenerate")
_UNCLUSTERED = {"obuchowski": "delong", "cluster-bootstrap": "bootstrap"}


@dataclass(frozen=True)
class MetricOptions:
    """How AUC CIs, cut-offs and proportion CIs are computed (see :func:`metrics_table`)."""

    auc_method: str | None = None
    n_bootstrap: int = 2000
    seed: int = 0
    thresholds: str = "midpoint"
    ci_method: str = "wilson"
    conf_level: float = 0.95


@dataclass(frozen=True)
class Cutoff:
    """A model's cut-off, the set or source it came from and the rule that chose it."""

    threshold: float
    source: str
    rule: str

    @property
    def description(self) -> str:
        return f"{self.rule} on {self.source}" if self.rule != "given" else (
            f"given: {self.source}")


def choose_cutoffs(
    sets: list[EvaluationSet],
    scores: list[str],
    *,
    label: str,
    thresholds: str = "midpoint",
    given: Mapping[str, float] | None = None,
    given_source: str | Mapping[str, str] = "given",
) -> dict[str, Cutoff]:
    """Each model's cut-off: the given one, else the Youden cut-off of its training set.

    A model's training set is the first set that evaluates it (training rows come
    first, out-of-fold ones where the model has them).
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(scores))
    if unknown:
        raise DlrnError(f"cut-offs given for {unknown}, which are not among the scores {scores}")
    not_numbers = [m for m, value in given.items() if np.isnan(float(value))]
    if not_numbers:
        raise DlrnError(f"the cut-off given for {not_numbers} is NaN; give a number")
    chosen = {}
    for model in scores:
        if model in given:
            source = given_source if isinstance(given_source, str) else given_source.get(
                model, "given")
            chosen[model] = Cutoff(float(given[model]), source, "given")
            continue
        training = next(s for s in sets if model in s.models)
        one_class = one_class_note(training.rows[label].astype(int))
        if one_class:
            raise DlrnError(f"set {training.name!r} has {one_class}; the Youden cut-off of "
                            f"{model!r} is chosen on it and needs both classes")
        with about(model, training.name):
            threshold = youden_threshold(training.rows[label].astype(int),
                                         training.rows[model], thresholds=thresholds)
        chosen[model] = Cutoff(threshold, training.name, f"youden ({thresholds})")
    return chosen


def _auc_fields(y: pd.Series, score: pd.Series, patients: pd.Series | None,
                options: MetricOptions) -> tuple[dict[str, object], list[str]]:
    """AUC columns of one metrics row, and the notes on what is undefined."""
    if patients is None:  # one image per patient: the clustered methods reduce to these
        method = _UNCLUSTERED.get(options.auc_method, options.auc_method) or "delong"
        described = method + (f" ({options.n_bootstrap} resamples, seed {options.seed})"
                              if method == "bootstrap" else "")
    else:
        method = clustered_auc_method(options.auc_method)
        described = describe_auc_method(method, options.n_bootstrap, options.seed)
    one_class = one_class_note(y)
    if one_class:
        fields = {"auc": np.nan, "auc_ci_low": np.nan, "auc_ci_high": np.nan}
        return {**fields, "auc_ci_method": described}, [f"AUC and its CI undefined: {one_class}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant scores: the note says it, once per row
        if patients is None:
            auc = auc_ci(y, score, method=method, conf_level=options.conf_level,
                         n_bootstrap=options.n_bootstrap, seed=options.seed)
        else:
            try:
                auc = clustered_auc_ci(y, score, patients, method=method,
                                                 conf_level=options.conf_level,
                                                 n_bootstrap=options.n_bootstrap,
                                                 seed=options.seed)
            except TooFewPatients as error:
                fields = {"auc": auc_ci(y, score).auc, "auc_ci_low": np.nan,
                          "auc_ci_high": np.nan}
                return {**fields, "auc_ci_method": described}, [f"AUC CI undefined: {error}"]
    fields = {"auc": auc.auc, "auc_ci_low": auc.ci_low, "auc_ci_high": auc.ci_high}
    notes = [CONSTANT_SCORES_NOTE] if np.ptp(score.to_numpy(dtype=float)) == 0 else []
    return {**fields, "auc_ci_method": described}, notes


def _cutoff_fields(cutoff: Cutoff, y: pd.Series, score: pd.Series, patients: pd.Series | None,
                   options: MetricOptions) -> tuple[dict[str, float], list[str]]:
    """Cut-off metrics of one set; an infinite cut-off and undefined metrics become notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes say it, once per row
        if patients is None:
            metrics = cutoff_metrics(y, score, cutoff.threshold, ci_method=options.ci_method,
                                     conf_level=options.conf_level)
        else:
            metrics = clustered_cutoff_metrics(
                y, score, cutoff.threshold, patients, ci_method=options.ci_method,
                conf_level=options.conf_level)
    infinite = infinite_cutoff_note(cutoff.threshold) if cutoff.rule != "given" else ""
    return metrics, ([infinite] if infinite else []) + undefined_metrics(metrics)


def metrics_for_sets(
    sets: list[EvaluationSet],
    cutoffs: Mapping[str, Cutoff],
    *,
    label: str,
    options: MetricOptions,
) -> pd.DataFrame:
    """One metrics row per (model, set) over the given sets, with the given cut-offs."""
    clustered_table = any(s.patients is not None for s in sets)
    proportion_ci = (describe_proportion_ci(options.ci_method) if clustered_table
                     else options.ci_method)
    rows_out = []
    for model in cutoffs:
        cutoff = cutoffs[model]
        # the notes that change what a row's numbers mean: optimistic, or no ranking (a
        # cut-off that separates nothing is the training set's caution, youden_threshold's)
        cautions = {APPARENT_NOTE, CONSTANT_SCORES_NOTE}
        for evaluated in (s for s in sets if model in s.models):
            rows, patients = evaluated.rows, evaluated.patients
            y = rows[label].astype(int)
            auc, auc_notes = _auc_fields(y, rows[model], patients, options)
            metrics, cutoff_notes = _cutoff_fields(cutoff, y, rows[model], patients, options)
            notes = ([evaluated.note] if evaluated.note else []) + auc_notes + cutoff_notes
            for text in notes:
                warnings.warn(Note(text, model=model, on_set=evaluated.name,
                                   caution=text in cautions), stacklevel=3)
            note = "; ".join(notes)
            counts = {"n_patients": patients.nunique()} if clustered_table else {}
            rows_out.append({"model": model, "set": evaluated.name, **counts,
                             "n_positive": int(y.sum()), **auc,
                             "threshold_set": cutoff.source, "threshold_rule": cutoff.rule,
                             "cutoff_source": cutoff.description, **metrics,
                             "proportion_ci_method": proportion_ci, "note": note})
    table = pd.DataFrame(rows_out)
    first = ["model", "set", "n", *(["n_patients"] if clustered_table else []), "n_positive",
             "auc", "auc_ci_low", "auc_ci_high", "threshold"]
    ordered = first + [c for c in table.columns if c not in first and c != "note"]
    return table[[*ordered, "note"]]


def metrics_table(
    predictions: pd.DataFrame,
    scores: list[str],
    *,
    label: str = "label",
    set_column: str | None = "set",
    train_set: str = "train",
    oof: pd.DataFrame | None = None,
    cutoffs: Mapping[str, float] | None = None,
    cutoff_source: str | Mapping[str, str] = "given",
    groups: object = None,
    auc_method: str | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    thresholds: str = "midpoint",
    ci_method: str = "wilson",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """One row per (model, set): n, AUC with CI, the cut-off, where it came from, its metrics.

    ``oof``: out-of-fold predictions of the training cases (indexed by case id, one
    column per model that has them): those models' training rows and Youden
    cut-offs come from them, in set ``"train (out-of-fold)"``; models without them
    keep their training predictions in set ``"train (apparent)"``, noted as optimistic.
    ``cutoffs``: model -> cut-off chosen elsewhere (e.g. by the model's own stage),
    used instead of the Youden cut-off; ``cutoff_source`` says where it came from
    (one text, or one per model). ``groups``: patient id of every case (a column
    name, or values aligned with the rows): with several images for some patient,
    AUC and proportion CIs account for the clustering (``n_patients`` column).

    ``auc_method``: ``"delong"`` (default) or ``"bootstrap"`` (stratified, pROC); with
    clusters, ``"cluster-bootstrap"`` (default; ``"bootstrap"`` means it too) or
    ``"obuchowski"`` (``"delong"`` means it too: Obuchowski's variance equals
    DeLong's when every patient has one image).

    A set other than the training set may hold one class only: its AUC is NaN, the
    defined cut-off metrics are reported and ``note`` says what is undefined and why
    (with a warning); so are constant scores and an infinite Youden cut-off.
    """
    check_predictions(predictions, scores, label=label, set_column=set_column)
    patients = patient_ids(predictions, groups, set_column)
    patients = patients if several_images(patients) else None
    sets = evaluation_sets(predictions, scores, label=label, set_column=set_column,
                           train_set=train_set, oof=oof, patients=patients)
    chosen = choose_cutoffs(sets, scores, label=label, thresholds=thresholds, given=cutoffs,
                            given_source=cutoff_source)
    options = MetricOptions(auc_method, n_bootstrap, seed, thresholds, ci_method, conf_level)
    return metrics_for_sets(sets, chosen, label=label, options=options)
