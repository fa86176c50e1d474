"""Predict new cases with a study's bundle: every model's probability, the nomogram's points.

Load the bundle (checksums verified), validate the new cases like the cohort reader
(the label column is optional), compute the inputs each model was fitted on (the
study's clinical encoder, PyRadiomics with the study's parameters, read from the
study's feature cache where a case is in it, the CNN and its PCA) and call each frozen
model's ``predict_proba``; the nomogram (DLRN, or the radiomics nomogram RadN) adds its
points. A blank clinical value or a level the study never saw is handled by the study's
rules and explained in the ``note`` column. Nothing here is fitted, and nothing imports
the study's orchestrator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrn.clinical_predictors import clinical_features, encoder_for
from dlrn.errors import DlrnError
from dlrn.stacking import DLRN, NOMOGRAMS, nomogram_inputs
from dlrn.study.applicability_check import assess_cases
from dlrn.study.bundle import Bundle

__all__ = ["Bundle", "FeatureCacheUse", "predict_cases", "predict_table", "read_new_cases",
           "study_feature_cache"]


def read_new_cases(table: str | Path, settings: dict[str, Any], *,
                   progress: bool = True) -> pd.DataFrame:
    """Validate the new cases like ``dlrn.cohort.read_cohort``; the label is optional."""
    from dlrn.cohort import CohortColumns, read_cohort
    from dlrn.io import table_columns

    columns = dict(settings["columns"])
    header = table_columns(table, what="table of new cases")
    clinical = (settings.get("clinical") or {}).get("selected", [])
    absent = [c for c in clinical if c not in header]
    if absent:
        raise DlrnError(f"{table} lacks the clinical column(s) the models need: "
                        f"{', '.join(absent)}")
    columns.update(repeat_masks=(), clinical=tuple(clinical),
                   label=columns["label"] if columns["label"] in header else None,
                   patient=columns["patient"] if columns["patient"] in header else None)
    cohort = read_cohort(table, CohortColumns(**columns),
                         min_roi_pixels=settings["min_roi_pixels"],
                         min_roi_mm=settings.get("min_roi_mm"), **_image_options(settings),
                         progress=progress)
    return cohort.cases


def _image_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The study's ROI label and frame (bundles written before these settings: defaults)."""
    return {"mask_label": settings.get("mask_label"), "frame": settings.get("frame", 0)}


def _model_probabilities(bundle: Bundle, stage: str, names: list[str],
                         features: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({name: bundle.estimator(f"{stage}/{name}").predict_proba(features)[:, 1]
                         for name in names}, index=features.index)


@dataclass(frozen=True)
class FeatureCacheUse:
    """A PyRadiomics feature cache (keyed by content, as ``dlrn extract --cache``) that
    ``predict`` reads the cases from, adding the new ones only when told to."""

    folder: Path
    add_new_cases: bool = False


def study_feature_cache(bundle: Bundle) -> FeatureCacheUse | None:
    """The study's own feature cache, read only, if the bundle names it and it is there."""
    reference = bundle.json("settings").get("radiomics_cache")  # absent in older bundles
    folder = None if reference is None else (bundle.folder / reference).resolve()
    return FeatureCacheUse(folder) if folder is not None and folder.is_dir() else None


def _radiomics(bundle: Bundle, cases: pd.DataFrame, progress: bool,
               cache: FeatureCacheUse | None, jobs: int | None) -> pd.DataFrame:
    from dlrn.radiomics import extract_features

    result = extract_features(cases, bundle.json("radiomics/params"), jobs=jobs,
                              **_image_options(bundle.json("settings")),
                              cache_dir=None if cache is None else cache.folder,
                              update_cache=cache is not None and cache.add_new_cases,
                              progress=progress)
    if len(result.failures):
        listing = "; ".join(f"{r.case_id}: {r.error}" for r in result.failures.itertuples())
        raise DlrnError(f"feature extraction failed: {listing}")
    return result.features.loc[cases.index]


def bundle_pca(bundle: Bundle) -> Any:
    """The deep-feature PCA fitted in the study, as dlrn.deep.classifier.features.DeepFeaturePCA."""
    from dlrn.deep.classifier.features import DeepFeaturePCA

    meta, arrays = bundle.json("deep/pca"), bundle.arrays("deep/pca")
    return DeepFeaturePCA.from_arrays(arrays["mean"], arrays["components"],
                                      meta["feature_names_in"], prefix=meta["prefix"])


#: CNN batch size of ``predict``: a case's numbers must not depend on the cases scored
#: with it (``dlrn serve`` scores one at a time). Batched, the CNN's float32 logit moved
#: by an ulp with the batch, which the Platt map carries into the probability's 7th
#: digit; one case at a time cost about 5 % more CPU time (DenseNet121, 224 px, 2
#: threads: 0.072 against 0.069 s per image at batch 16).
CASE_AT_A_TIME = 1


def _dlr_deep_features(bundle: Bundle, deep: dict[str, Any], model: Any, cache: Any,
                       ids: list[str]) -> pd.DataFrame:
    """The deep features the DLR was fitted on: the mean of the cross-fitting CNNs'
    (as the study's test rows), or the final CNN's (dl.fusion_features: in_sample)."""
    from dlrn.deep.classifier.features import extract_deep_features
    from dlrn.deep.classifier.foldmean import mean_features

    backbone, mode = deep["backbone"], deep.get("feature_mode", "pooled")
    options = {"normalization": deep["normalization"], "mode": mode,
               "batch_size": CASE_AT_A_TIME}
    if not deep.get("fold_models"):
        return extract_deep_features(model, backbone, cache, ids, **options)
    # the fold CNNs through the bundle too: checksum-checked, built once per bundle object
    return mean_features([extract_deep_features(bundle.cnn(backbone, name), backbone, cache,
                                                ids, **options)
                          for name in deep["fold_models"]])


def _deep(bundle: Bundle, settings: dict[str, Any], cases: pd.DataFrame,
          gradcam_dir: str | Path | None, progress: bool) -> tuple[pd.Series, pd.DataFrame]:
    """The CNN's probability and the PCA of its deep features for each case."""
    import torch

    from dlrn.deep.classifier.calibration import PlattScaling
    from dlrn.deep.classifier.scores import cnn_probabilities
    from dlrn.deep.data import CropSettings, build_crop_cache

    deep = settings["deep"]
    backbone, normalization = deep["backbone"], deep["normalization"]
    model = bundle.cnn(backbone)  # built once per bundle object
    cache = build_crop_cache(cases, CropSettings(**deep["crop"]), progress=progress)
    ids = list(cases.index)
    calibration = PlattScaling.from_dict(deep.get("calibration"))
    probability = pd.Series(cnn_probabilities(model, backbone, cache, ids,
                                              normalization=normalization,
                                              device=torch.device("cpu"),
                                              batch_size=CASE_AT_A_TIME,
                                              calibration=calibration),
                            index=cases.index, name=f"DL-{backbone}")
    features = _dlr_deep_features(bundle, deep, model, cache, ids)
    if gradcam_dir is not None:
        from dlrn.deep.classifier.gradcam import gradcam_overlays

        unknown = pd.Series(np.nan, index=cases.index)  # shown as "label unknown"
        frame = pd.DataFrame({"label": cases.get("label", unknown),
                              probability.name: probability}, index=cases.index)
        gradcam_overlays(model, backbone, cache, frame, gradcam_dir,
                         normalization=normalization, threshold=deep.get("threshold", 0.5),
                         cases=ids)
    return probability, bundle_pca(bundle).transform(features)


def _clinical_notes(bundle: Bundle, selected: list[str], cases: pd.DataFrame
                    ) -> tuple[pd.Index, pd.Series]:
    """Cases the study's rules cannot encode, and each case's encoding note.

    A case an ``exclude`` rule leaves out, or that a ``stop`` rule refuses, gets no
    clinical prediction; its note says why (the other cases go on).
    """
    notes = pd.Series("", index=cases.index, dtype=object)
    if not selected or not bundle.has("clinical/encoder", ".json"):
        return pd.Index([]), notes
    encoder = encoder_for(bundle.json("clinical/encoder"), selected)
    excluded = encoder.exclusions(cases).groupby("case", sort=False)["reason"]
    left_out = {case: "; ".join(reasons) for case, reasons in excluded}
    for case in cases.index.difference(list(left_out), sort=False):
        try:
            encoder.transform(cases.loc[[case]])
        except DlrnError as error:
            left_out[case] = str(error)
        else:
            notes[case] = "; ".join(encoder.transform_notes(cases.loc[[case]]))
    for case, why in left_out.items():
        notes[case] = f"no clinical prediction: {why}"
    return pd.Index(list(left_out)), notes


def _nomogram(bundle: Bundle, settings: dict[str, Any], out: pd.DataFrame,
              cases: pd.DataFrame, selected: list[str]) -> pd.DataFrame:
    """The nomogram's probability (named DLRN or RadN) and points of each case."""
    from dlrn.nomogram import Nomogram

    kind = NOMOGRAMS[settings.get("nomogram", DLRN.name)]
    nomogram = Nomogram.from_dict(bundle.json("dlrn/nomogram"))
    X = nomogram_inputs(cases, out.loc[cases.index, settings["best"][kind.score_stage]],
                        selected, kind.score)
    points = nomogram.points(X)
    return points.drop(columns=["probability"]).assign(**{kind.name: points["probability"]})


def predict_cases(bundle: Bundle, cases: pd.DataFrame, *, gradcam_dir: str | Path | None = None,
                  progress: bool = True, feature_cache: FeatureCacheUse | None = None,
                  jobs: int | None = None) -> pd.DataFrame:
    """One row per case: each model's probability, the nomogram's probability and points,
    and the applicability check (:func:`dlrn.study.applicability_check.assess_cases`:
    ``applicable`` and, where not, ``applicability_note`` saying why in plain words).

    ``note`` says how the study's clinical rules read each case (an imputed value, a
    level the study never saw); a case an ``exclude`` rule leaves out gets no clinical
    model or nomogram probability, and the note says why. ``feature_cache``: where to read
    the cases' PyRadiomics features from; None extracts every case and keeps nothing.
    ``jobs``: extraction processes (None: all cores; 1: in this process, what a server
    answering a few cases at a time wants, as a pool costs more to start than it saves).
    """
    settings = bundle.json("settings")
    models = settings["models"]
    selected = (settings.get("clinical") or {}).get("selected", [])
    out = pd.DataFrame(index=cases.index)
    if "label" in cases.columns:
        out["label"] = cases["label"].astype(int)
    left_out, notes = _clinical_notes(bundle, selected, cases)
    usable = cases.drop(index=left_out)
    if models.get("clinical_models"):
        X = clinical_features(bundle.json("clinical/encoder"), selected, usable)
        out = out.join(_model_probabilities(bundle, "clinical_models",
                                            models["clinical_models"], X))
    hcr = (_radiomics(bundle, cases, progress, feature_cache, jobs)
           if models.get("hcr_models") else None)
    features = hcr
    if hcr is not None:
        out = out.join(_model_probabilities(bundle, "hcr_models", models["hcr_models"], hcr))
    if settings.get("deep"):
        probability, deep_features = _deep(bundle, settings, cases, gradcam_dir, progress)
        out[probability.name] = probability
        if models.get("dlr_models") and hcr is not None:
            features = hcr.join(deep_features)
            out = out.join(_model_probabilities(bundle, "dlr_models", models["dlr_models"],
                                                features))
    if bundle.has("dlrn/nomogram", ".json"):
        out = out.join(_nomogram(bundle, settings, out, usable, selected))
    out["note"] = notes
    out = out.join(assess_cases(bundle, cases, features))
    out.index.name = "case_id"
    return out


def predict_table(bundle_dir: str | Path, table: str | Path, *,
                  gradcam_dir: str | Path | None = None, progress: bool = True,
                  feature_cache: str | Path | None = None,
                  masks_dir: str | Path | None = None) -> pd.DataFrame:
    """``dlrn predict``: open and verify the bundle, validate the table, predict every case.

    A case whose image, mask and settings are in a feature cache is not extracted again:
    ``feature_cache`` names one (the cases it lacks are added to it); by default the
    study's own is read, where it still is, and left as it was. A case without a mask
    (no mask column, or an empty cell) gets the bundle's U-Net's, written into
    ``masks_dir`` (:mod:`dlrn.study.missing_masks`); its note says so.
    """
    from dlrn.study.missing_masks import fill_missing_masks, with_unpredicted

    bundle = Bundle.open(bundle_dir)
    filled = fill_missing_masks(bundle, table, None if masks_dir is None else Path(masks_dir),
                                progress=progress)
    cases = read_new_cases(filled.table, bundle.json("settings"), progress=progress)
    cache = (study_feature_cache(bundle) if feature_cache is None
             else FeatureCacheUse(Path(feature_cache), add_new_cases=True))
    predictions = predict_cases(bundle, cases, gradcam_dir=gradcam_dir, progress=progress,
                                feature_cache=cache)
    return with_unpredicted(predictions, filled)
