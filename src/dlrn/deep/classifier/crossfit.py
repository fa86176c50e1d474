"""Cross-fitted deep features: each training case's CNN score and features come from a
CNN that did not train on it.

Why: a CNN fine-tuned on the training cases memorises their labels, and its pooled
features of those cases are exactly the input of its fitted head. A DLR model
selected, cross-validated and fitted on them sees the labels twice: its CV AUC, the
choice among classifiers, the DLRN's weights and every cut-off chosen on those
scores are optimistic (the test AUC stays unbiased). Cross-fitting removes that.

Design (simple, and honest where it matters):

- Folds are the DLR classifiers' CV folds (:func:`crossfit_folds` makes them as
  :func:`dlrn.classifiers.make_cv` does: stratified, grouped by patient, same seed),
  so in DLR CV fold k the held-out rows' features come from the CNN of fold k, which
  trained on exactly the other folds' cases.
- Each fold's CNN is trained by :func:`dlrn.deep.classifier.train.train_backbone`
  with the final CNN's settings: same seed (hence the same initial weights, so the
  i-th feature means nearly the same thing in every fold's CNN; ``diagnostics``
  measures it) and the same inner validation split rule for its best epoch. Its
  held-out scores therefore estimate the whole procedure, epoch choice included.
  Under ``select_on: crossfit`` the fold CNNs instead fit all cases outside their
  fold and train in lockstep, the epoch chosen on their pooled out-of-fold AUC
  (:mod:`dlrn.deep.classifier.lockstep`); the final CNN then stops at that epoch.
- Raw features, no per-fold PCA: principal axes fitted fold by fold differ in sign,
  order and rotation, so "PC3" would mean something else in every fold and the
  stacked rows would not form one feature space. The caller fits ONE PCA
  (label-free) on the cross-fitted training rows and applies it to every row
  (:func:`fusion_features` makes them).
- The DLR's test, external and ``predict`` rows are the MEAN of the K fold CNNs'
  features, not the final CNN's. A DLR model fitted on fold-CNN features must be
  applied to fold-CNN features: fine-tuning moves each network's features its own
  way (median feature-by-feature correlation of fold and final CNN 0.02-0.17 on the
  benchmark), and on ``bench_fusion_optimism.py --normalization imagenet`` the DLR
  (LR) fitted on cross-fitted rows scored test AUC 0.44 on the final CNN's test
  features, 0.72-0.76 on each fold CNN's, 0.75 on their mean, CV AUC 0.75. For a
  linear DLR the mean of the features gives the mean of the K models' logits.
  ``predict`` therefore needs the K fold CNNs (:func:`fold_mean_features`).
- The CNN as a model of its own (its test score, Table 5, Grad-CAM) stays the CNN
  trained on all training cases; its training rows and cut-off use the cross-fitted
  scores, Platt-scaled where the CNNs have validation splits (``calibration``).

Known second-order effect: a DLR CV fold's *training* rows come from CNNs that did
train on that fold's held-out cases (as in any stacking with shared folds); no
held-out row's own features saw its label.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import pandas as pd

from dlrn.deep.classifier.calibration import CALIBRATION_TEXT, NO_CALIBRATION_TEXT, platt_columns
from dlrn.deep.classifier.foldmean import mean_features
from dlrn.errors import ConfigError, DlrnError

if TYPE_CHECKING:
    from dlrn.deep.classifier.features import FeatureMode
    from dlrn.deep.classifier.settings import TrainSettings
    from dlrn.deep.classifier.train import TrainResult
    from dlrn.deep.data import CropCache, CropSettings

FusionFeatures = Literal["crossfit", "in_sample"]
SelectOn = Literal["validation", "crossfit"]
FUSION_FEATURES = ("crossfit", "in_sample")
SELECT_ON = ("validation", "crossfit")
IN_SAMPLE_NOTE = ("deep features of the training cases come from the CNN fine-tuned on "
                  "them (dl.fusion_features: in_sample): the DLR models' cross-validated "
                  "results, their choice and the DLRN built on them are optimistic")


class DeepSettingsLike(Protocol):
    """What the fold CNNs copy from the deep stage (a protocol: ``workflow`` imports us)."""

    backbones: tuple[str, ...]
    weights: str | None
    crop: CropSettings
    train: TrainSettings
    feature_mode: FeatureMode


@dataclass(frozen=True)
class CrossfitSettings:
    """How the deep stage makes the training cases' deep features and CNN scores.

    ``fusion_features``: ``crossfit`` (default) gives every training case the features
    and score of a CNN that did not train on it, and the DLR's test rows the mean of
    those fold CNNs' features. Cost: K more trainings of the chosen backbone (K =
    classifiers.cv_folds), each on (K-1)/K of the training cases; measured with 5
    folds, the K+1 trainings took 5.2-6.6x the time of the final CNN alone.
    ``in_sample``: the final CNN's features of its own training cases, which carry
    their labels; the DLR's CV results, its choice and the DLRN built on it are
    reported as optimistic (on the benchmark: DLR CV AUC 0.91-0.96 vs test 0.53-0.73).

    ``select_on``: what chooses backbone and epoch. ``validation`` (default): each final
    CNN keeps its best epoch on a validation split of the training patients, the
    highest validation AUC wins, and only that backbone is cross-fitted (each fold CNN
    with its own inner split): B + K trainings (3 backbones, 5 folds: 8).
    ``crossfit``: both on cross-fitted predictions over all training cases, a steadier
    yardstick than a split of a few dozen cases. Per backbone the K fold CNNs (no
    inner split) train in lockstep and the epoch E* with the best pooled out-of-fold
    AUC is kept (:mod:`dlrn.deep.classifier.lockstep`: ordinary CV selection of one
    hyperparameter); the final CNN fits all training cases on the same schedule and
    stops after E*; the highest pooled AUC wins. B x (K+1) trainings (18): about 2.2x
    the default's time (41 h instead of 18 h for the study's three backbones, 30
    epochs, 1310 BUS-BRA training cases, 2-core CPU; the lockstep measured 1.04-1.11x
    the sequential cross-fitting of one backbone), K models in memory at once. Not the
    default for that cost: the default spends it where honesty needs it (the chosen
    CNN's features and scores are cross-fitted either way); this buys a better
    choice, not a more honest number. Figures: benchmarks/README.md, "Fusion optimism".
    """

    fusion_features: FusionFeatures = "crossfit"
    select_on: SelectOn = "validation"

    def __post_init__(self) -> None:
        if self.fusion_features not in FUSION_FEATURES:
            raise ConfigError(f"dl.fusion_features {self.fusion_features!r}: use one of "
                              f"{', '.join(FUSION_FEATURES)}")
        if self.select_on not in SELECT_ON:
            raise ConfigError(f"dl.select_on {self.select_on!r}: use one of "
                              f"{', '.join(SELECT_ON)}")
        if self.select_on == "crossfit" and self.fusion_features == "in_sample":
            raise ConfigError("dl.select_on: crossfit cross-fits every backbone, so use "
                              "dl.fusion_features: crossfit with it (in_sample would discard "
                              "the honest features it paid for)")


def describe(settings: CrossfitSettings, n_folds: int) -> str:
    """Methods text for what the settings did (the in_sample one says it is optimistic)."""
    if settings.fusion_features == "in_sample":
        return f"The {IN_SAMPLE_NOTE}."
    text = (f"The deep features and CNN scores of the training cases were cross-fitted: for "
            f"each of the {n_folds} cross-validation folds of the DLR models (grouped by "
            f"patient), a CNN with the same backbone and settings was trained on the other "
            f"folds' cases and gave the features and score of its fold; test cases used the "
            f"CNN trained on all training cases. The CNN's cut-off and its training-set "
            f"results come from the cross-fitted scores. {CALIBRATION_TEXT}")
    if settings.select_on == "crossfit":
        text = text.replace("a CNN with the same backbone and settings was trained",
                            "a CNN with the same backbone and settings was trained (no "
                            "inner validation split)")
        text = text.replace(CALIBRATION_TEXT, NO_CALIBRATION_TEXT)
        text += (" The backbone and its number of training epochs were chosen by the pooled "
                 "out-of-fold AUC of the cross-fitted scores over all training cases "
                 "(fold CNNs in lockstep, the best epoch kept: cross-validated selection of "
                 "one hyperparameter, like a grid point chosen by CV AUC); each backbone's "
                 "final CNN was trained on all training cases for that many epochs.")
    return text


def trainings_needed(n_backbones: int, n_folds: int, settings: CrossfitSettings) -> int:
    """CNN trainings of a deep stage: the cost each setting buys (see CrossfitSettings)."""
    if settings.select_on == "crossfit":
        return n_backbones * (n_folds + 1)
    return n_backbones + (n_folds if settings.fusion_features == "crossfit" else 0)


def crossfit_folds(cases: pd.DataFrame, train_ids: Sequence[str], *, n_splits: int = 5,
                   seed: int = 0) -> pd.Series:
    """Fold (1..K) of every training case: the DLR classifiers' CV folds.

    Made as :func:`dlrn.modeling.fit_feature_set` makes them (``make_cv`` on the
    labels, grouped by ``patient_id`` when a patient has several cases, seeded).
    The folds depend on the row order: pass ``train_ids`` in the order the DLR model
    sees its training rows (the cohort table's); ``FeatureSetResult.cv_folds`` must
    then equal the result (same numbers, 1..K).
    """
    from dlrn.classifiers import make_cv

    training = cases.loc[list(train_ids)]
    splits = make_cv(training["label"].astype(int).to_numpy(),
                     training["patient_id"].astype(str).to_numpy(), n_splits=n_splits,
                     seed=seed)
    fold = np.empty(len(training), dtype=int)
    for number, (_, held_out) in enumerate(splits, start=1):
        fold[held_out] = number
    return pd.Series(fold, index=pd.Index(training.index.astype(str), name="case_id"),
                     name="fold")


def check_folds(folds: pd.Series, cases: pd.DataFrame) -> pd.Series:
    """The folds with string case ids; errors for unknown cases, one fold, split patients."""
    folds = folds.set_axis(folds.index.astype(str))
    unknown = folds.index.difference(cases.index.astype(str))
    if len(unknown):
        raise DlrnError(f"cross-fitting folds name cases not in the cohort: "
                        f"{', '.join(unknown[:5])}")
    if folds.nunique() < 2:
        raise DlrnError("cross-fitting needs at least 2 folds (classifiers.cv_folds)")
    patients = cases.set_axis(cases.index.astype(str)).loc[folds.index, "patient_id"]
    spread = patients.groupby(folds.to_numpy()).unique().explode()
    split_patients = spread[spread.duplicated()].astype(str).unique()
    if len(split_patients):
        raise DlrnError(f"cross-fitting folds split patient(s) {', '.join(split_patients[:5])} "
                        f"across folds; every image of a patient must be in one fold")
    return folds


@dataclass
class CrossfitResult:
    """Cross-fitted deep features and scores of the training cases, and the fold CNNs' log.

    ``trained_on[k]``: every case fold k's CNN saw in training (its fit and inner
    validation cases); ``labels``: the training cases' labels; ``fold_table``: one
    row per fold CNN (cases, best epoch, inner validation AUC, held-out AUC, training
    time, throughput); ``other_features``: the mean over the K fold CNNs of the
    features of every non-training case (the DLR's test rows); ``model_dirs``: the
    saved fold CNNs (empty without ``out_dir``); ``seconds``: wall time of all K
    trainings and their inference; ``epochs`` (lockstep only): the pooled out-of-fold
    AUC after every epoch, of which ``epoch`` is the best.
    """

    backbone: str
    folds: pd.Series
    features: pd.DataFrame
    scores: pd.Series
    labels: pd.Series
    other_features: pd.DataFrame
    fold_table: pd.DataFrame
    trained_on: dict[int, list[str]]
    model_dirs: list[Path]
    seconds: float
    epochs: pd.DataFrame | None = None

    @property
    def epoch(self) -> int | None:
        """The epoch chosen on the pooled out-of-fold AUC (None: each fold chose its own)."""
        if self.epochs is None:
            return None
        return int(self.fold_table["best_epoch"].iloc[0])

    @property
    def auc(self) -> float:
        """Pooled out-of-fold AUC over all training cases."""
        return _auc(self.folds.index, self.scores, self.labels)


def _auc(ids: Sequence[str], scores: pd.Series, labels: pd.Series) -> float:
    """AUC of the scores of ``ids``; NaN where they hold one class."""
    from sklearn.metrics import roc_auc_score

    labels = labels.loc[list(ids)]
    if labels.nunique() < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores.loc[labels.index]))


def _fold_row(fold: int, result: TrainResult, held_out: list[str], scores: np.ndarray,
              labels: pd.Series) -> dict:
    return {"fold": fold, "n_fit": len(result.fit_ids), "n_val": len(result.val_ids),
            "n_held_out": len(held_out), "best_epoch": result.best_epoch,
            "val_auc": result.best_val_auc,
            "held_out_auc": _auc(held_out, pd.Series(scores, index=held_out), labels),
            **platt_columns(result.calibration),
            "train_time_s": result.train_time_s, "images_per_s": result.images_per_s,
            "device": str(result.device)}


def crossfit_deep(
    cases: pd.DataFrame,
    folds: pd.Series,
    settings: DeepSettingsLike,
    *,
    backbone: str,
    cache: CropCache | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    lockstep: bool = False,
) -> CrossfitResult:
    """Train one CNN per fold on the other folds' cases; features and scores of its fold.

    ``cases``: cohort table (``label``, ``patient_id``) indexed by case id; ``folds``:
    fold per training case (:func:`crossfit_folds`); ``settings``: the deep stage's
    (weights, training, feature mode: the final CNN's, so the fold CNNs copy it).
    Every case of ``cases`` outside ``folds`` (test, external) gets the mean of the
    fold CNNs' features. ``cache``: the stage's crops (built from ``settings.crop``
    when None). With ``out_dir`` each fold CNN is saved in ``fold<k>/`` (resumable
    like any training; :func:`fold_mean_features` reads them back for ``predict``).
    ``lockstep``: the fold CNNs fit every case outside their fold and share the epoch
    with the best pooled out-of-fold AUC (:mod:`dlrn.deep.classifier.lockstep`); else each is a
    :func:`dlrn.deep.classifier.train.train_backbone` run with its own inner validation split.
    """
    from dlrn.deep.classifier.features import extract_deep_features
    from dlrn.deep.classifier.scores import cnn_probabilities
    from dlrn.deep.data import build_crop_cache

    cases = cases.set_axis(cases.index.astype(str))
    folds = check_folds(folds, cases)
    training = cases.loc[folds.index]
    other_ids = list(cases.index.difference(folds.index, sort=False))
    if cache is None:
        cache = build_crop_cache(cases, settings.crop, progress=settings.train.progress)
    labels = training["label"].astype(int)
    started = time.perf_counter()
    features, scores, rows, trained_on, others, model_dirs = [], [], [], {}, [], []
    trained, epochs = _fold_cnns(backbone, cache, training, folds, settings, lockstep,
                                 out_dir=out_dir, resume=resume, overwrite=overwrite)
    for fold, result in trained:
        held_out = list(folds.index[folds == fold])
        model_dirs += [] if result.out_dir is None else [result.out_dir]
        trained_on[int(fold)] = result.fit_ids + result.val_ids
        options = {"normalization": result.normalization, "device": result.device,
                   "batch_size": settings.train.batch_size,
                   "amp": result.device.type == "cuda"}
        fold_features = extract_deep_features(result.model, backbone, cache,
                                              held_out + other_ids,
                                              mode=settings.feature_mode, **options)
        features.append(fold_features.loc[held_out])
        others.append(fold_features.loc[other_ids])
        fold_scores = cnn_probabilities(result.model, backbone, cache, held_out, **options,
                                        calibration=result.calibration)
        scores.append(pd.Series(fold_scores, index=held_out))
        rows.append(_fold_row(int(fold), result, held_out, fold_scores, labels))
    order = folds.index
    return CrossfitResult(
        backbone=backbone, folds=folds, features=pd.concat(features).loc[order],
        scores=pd.concat(scores).loc[order].rename(f"DL-{backbone}").rename_axis("case_id"),
        labels=labels, other_features=mean_features(others),
        fold_table=pd.DataFrame(rows).assign(backbone=backbone), trained_on=trained_on,
        model_dirs=model_dirs, seconds=time.perf_counter() - started, epochs=epochs)


def _fold_cnns(backbone: str, cache: CropCache, training: pd.DataFrame, folds: pd.Series,
               settings: DeepSettingsLike, lockstep: bool, **run: object) -> tuple:
    """(fold, fold CNN) pairs and the lockstep's epoch table (None when sequential, where
    the CNNs come one at a time: each one's memory is freed before the next trains)."""
    from dlrn.deep.classifier.lockstep import train_folds_lockstep
    from dlrn.deep.classifier.train import train_backbone

    if lockstep:
        done = train_folds_lockstep(backbone, cache, training, folds, settings.train,
                                    weights=settings.weights, **run)
        return done.models.items(), done.epochs.assign(backbone=backbone)
    out_dir = run.pop("out_dir")
    return ((int(k), train_backbone(
        backbone, cache, training, list(folds.index[folds != k]), weights=settings.weights,
        settings=settings.train, out_dir=None if out_dir is None else Path(out_dir) / f"fold{k}",
        **run)) for k in sorted(folds.unique())), None


@dataclass
class StageCrossfit:
    """What the deep stage cross-fitted: the folds, one result per cross-fitted backbone,
    the chosen backbone and (``select_on: crossfit``) the choice table."""

    folds: pd.Series
    results: dict[str, CrossfitResult]
    chosen: str
    choice: pd.DataFrame | None


def crossfit_stage(
    cases: pd.DataFrame,
    folds: pd.Series,
    settings: DeepSettingsLike,
    crossfit: CrossfitSettings,
    *,
    chosen_on_validation: str | None = None,
    cache: CropCache | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> StageCrossfit:
    """The deep stage's cross-fitting as ``crossfit`` asks, after the final CNNs are trained.

    ``select_on: crossfit``: every backbone of ``settings.backbones`` is cross-fitted in
    lockstep (epoch on the pooled out-of-fold AUC; call it before training the final
    CNNs, which stop at each backbone's epoch) and the highest pooled out-of-fold AUC
    wins; ``validation``: ``chosen_on_validation`` (the stage's validation-AUC choice)
    is kept and cross-fitted alone;
    ``fusion_features: in_sample``: nothing is trained. Fold CNNs go to
    ``out_dir/<backbone>/fold<k>`` when ``out_dir`` is given.
    """
    if crossfit.select_on == "crossfit":
        backbones = list(settings.backbones)
    elif crossfit.fusion_features == "crossfit":
        backbones = [chosen_on_validation]
    else:
        backbones = []
    results = {backbone: crossfit_deep(
        cases, folds, settings, backbone=backbone, cache=cache, resume=resume,
        overwrite=overwrite, out_dir=None if out_dir is None else Path(out_dir) / backbone,
        lockstep=crossfit.select_on == "crossfit") for backbone in backbones}
    if crossfit.select_on == "crossfit":
        chosen, choice = choose_backbone(results)
        return StageCrossfit(check_folds(folds, cases), results, chosen, choice)
    return StageCrossfit(check_folds(folds, cases), results, chosen_on_validation, None)


def fusion_features(final_features: pd.DataFrame, crossfit: CrossfitResult | None,
                    settings: CrossfitSettings) -> pd.DataFrame:
    """The deep features the DLR fuses, in ``final_features``' rows and columns.

    ``in_sample``: the final CNN's features (``final_features``) of every case.
    ``crossfit``: cross-fitted rows for the training cases, the fold CNNs' mean for
    the others (see the module's notes). Fit the PCA (if any) on the training rows.
    """
    if settings.fusion_features == "in_sample":
        return final_features
    if crossfit is None:
        raise DlrnError("dl.fusion_features is crossfit but no cross-fitted features were made")
    if list(crossfit.features.columns) != list(final_features.columns):
        raise DlrnError(f"cross-fitted features of {crossfit.backbone} have other columns "
                        f"than the final CNN's features")
    rows = pd.concat([crossfit.features, crossfit.other_features])
    wanted = final_features.index.astype(str)
    missing = wanted.difference(rows.index)
    if len(missing):
        raise DlrnError(f"cases without cross-fitted features: {', '.join(missing[:5])}")
    return rows.loc[wanted].set_axis(final_features.index)


def out_of_fold_scores(results: Mapping[str, CrossfitResult]) -> pd.DataFrame:
    """Cross-fitted P(positive) per training case, one ``DL-<backbone>`` column per backbone.

    The CNN's training-set rows: pass as ``oof=`` to the evaluation (metrics, Table 7,
    DeLong, calibration) and write as the deep stage's ``oof.csv``.
    """
    return pd.concat([result.scores for result in results.values()], axis=1)


def crossfit_cutoff(crossfit: CrossfitResult) -> float:
    """The CNN's Youden cut-off on its cross-fitted training scores: for its cut-off
    metrics and Grad-CAM's TP/FP/TN/FN categories (``gradcam_overlays(threshold=...)``)."""
    from dlrn.evaluation.threshold import youden_threshold

    return youden_threshold(crossfit.labels.loc[crossfit.scores.index], crossfit.scores)


def choose_backbone(results: Mapping[str, CrossfitResult]) -> tuple[str, pd.DataFrame]:
    """``select_on: crossfit``: the backbone with the highest pooled out-of-fold AUC.

    Ties (to 10 decimals) go to the backbone listed first. Returns it and the table
    (``crossfit_epoch``: the epoch each backbone's AUC was reached at, see
    :mod:`dlrn.deep.classifier.lockstep`).
    """
    table = pd.DataFrame({"backbone": list(results),
                          "crossfit_auc": [result.auc for result in results.values()],
                          "crossfit_epoch": [result.epoch for result in results.values()],
                          "crossfit_seconds": [result.seconds for result in results.values()]})
    best = table["crossfit_auc"].round(10).idxmax()  # first of the tied maxima
    table["chosen"] = table.index == best
    return str(table.loc[best, "backbone"]), table
