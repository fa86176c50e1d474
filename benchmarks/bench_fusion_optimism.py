"""Fusion optimism: DLR models on in-sample vs cross-fitted deep features.

The cohort is built so that the deep features carry nothing beyond the HCR ones:
each case has a latent z ~ N(0, 1) and a label ~ Bernoulli(sigmoid(1.5 z)); its ROI
crop is per-case random speckle (which a CNN can memorise) around a mean grey level
of 110 + 25 z. The HCR features are the crop's first-order statistics (mean, SD,
percentiles) plus noise columns: they hold all the label information there is. A
ResNet18 from random initialisation, without augmentation, is fine-tuned on the
training crops (the study's loop, best epoch on its validation split). By default the
crops are z-scored per image (dlrn's choice for random initialisation), which hides
the grey level from the CNN: its features can only memorise. ``--normalization
imagenet`` (fixed scaling) lets it learn the grey level as well, i.e. the same
signal as the HCR features. Then:

- ``in_sample``: the DLR fuses the final CNN's features of its own training cases;
- ``crossfit``: the training rows come from fold CNNs (K folds = the DLR's CV folds),
  the test rows are the mean of the fold CNNs' features (dlrn's design);
- ``crossfit, final-CNN test rows``: the same training rows, but test rows from the
  CNN trained on all training cases (the design dlrn rejected; shown for the record).

Both go through the study's DLR recipe (PCA fitted on training rows, the default
selection pipeline, LR tuned by median fold AUC) via ``dlrn.modeling.fit_feature_set``.
An honest DLR CV AUC lies within the test AUC's CI; an optimistic one above it.

    nice -n 10 .venv/bin/python benchmarks/bench_fusion_optimism.py [--cases 160]
        [--size 24] [--epochs 8] [--folds 5] [--seed 0] [--threads 1]
        [--normalization zscore|imagenet]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from dlrn.deep.classifier.crossfit import (
    CrossfitSettings,
    crossfit_cutoff,
    crossfit_deep,
    crossfit_folds,
    fusion_features,
)
from dlrn.deep.classifier.diagnostics import feature_agreement
from dlrn.deep.classifier.features import DeepFeaturePCA, extract_deep_features
from dlrn.deep.classifier.scores import cnn_probabilities
from dlrn.deep.classifier.settings import TrainSettings
from dlrn.deep.classifier.train import train_backbone
from dlrn.deep.classifier.workflow import DeepStageSettings
from dlrn.deep.data import Augmentation, CropCache, CropSettings
from dlrn.modeling import fit_feature_set
from dlrn.splitting import split_cohort


def make_cohort(n_cases: int, size: int, seed: int) -> tuple[CropCache, pd.DataFrame,
                                                              pd.DataFrame]:
    """Crops, cases (label, patient_id, set) and HCR features holding all the signal."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n_cases)
    labels = (rng.random(n_cases) < 1 / (1 + np.exp(-1.5 * latent))).astype(int)
    crops = (110 + 25 * latent[:, None, None, None]
             + rng.normal(0, 30, (n_cases, 1, size, size))).clip(0, 255).astype(np.uint8)
    ids = [f"case{i:03d}" for i in range(n_cases)]
    cases = pd.DataFrame({"label": labels, "patient_id": ids}, index=pd.Index(ids,
                                                                             name="case_id"))
    cases["set"] = split_cohort(cases, test_size=0.3, seed=seed)
    pixels = crops.reshape(n_cases, -1).astype(float)
    hcr = pd.DataFrame({"mean": pixels.mean(1), "sd": pixels.std(1),
                        **{f"p{q}": np.percentile(pixels, q, axis=1) for q in (10, 50, 90)},
                        **{f"noise{i}": rng.normal(size=n_cases) for i in range(5)}},
                       index=cases.index)
    return CropCache(crops, ids, CropSettings(image_size=size)), cases, hcr


def dlr_figures(name: str, features: pd.DataFrame, cases: pd.DataFrame,
                seed: int) -> dict[str, float]:
    """CV (out-of-fold) AUC and test AUC with its CI of the study's DLR recipe, LR."""
    result = fit_feature_set(name, features, cases["label"], cases["set"],
                             groups=cases["patient_id"], classifiers=["LR"], seed=seed,
                             progress=False, n_jobs=1)
    cv = result.cv_metrics.iloc[0]
    test = result.metrics[result.metrics["set"] == "test"].iloc[0]
    return {"cv_auc": cv["auc"], "test_auc": test["auc"], "test_ci_low": test["auc_ci_low"],
            "test_ci_high": test["auc_ci_high"],
            "selected": len(result.selected_features),
            "cv_within_test_ci": bool(test["auc_ci_low"] <= cv["auc"] <= test["auc_ci_high"]),
            "cv_folds": result.cv_folds}


def cohort_arguments(description: str) -> argparse.Namespace:
    """The options of the cross-fitting benchmarks (this one and ``bench_lockstep.py``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cases", type=int, default=160)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--normalization", choices=("zscore", "imagenet"), default="zscore")
    return parser.parse_args()


def resnet18_settings(args: argparse.Namespace, crop) -> DeepStageSettings:
    """ResNet18 from random initialisation, no augmentation, every epoch run."""
    return DeepStageSettings(
        backbones=("resnet18",), weights=None, crop=crop,
        train=TrainSettings(epochs=args.epochs, batch_size=8, patience=None, seed=args.seed,
                            threads=args.threads, progress=False,
                            normalization=args.normalization, augmentation=Augmentation.none()))


def main() -> None:
    args = cohort_arguments(__doc__.split("\n")[0])
    warnings.filterwarnings("ignore")

    cache, cases, hcr = make_cohort(args.cases, args.size, args.seed)
    train_ids = list(cases.index[cases["set"] == "train"])
    settings = resnet18_settings(args, cache.settings)
    started = time.perf_counter()
    final = train_backbone("resnet18", cache, cases, train_ids, weights=None,
                           settings=settings.train)
    final_seconds = time.perf_counter() - started
    options = {"normalization": final.normalization, "device": final.device}
    deep = extract_deep_features(final.model, "resnet18", cache, list(cases.index), **options)
    scores = pd.Series(cnn_probabilities(final.model, "resnet18", cache, list(cases.index),
                                         **options), index=cases.index)
    test = cases["set"] == "test"

    folds = crossfit_folds(cases, train_ids, n_splits=args.folds, seed=args.seed)
    crossfit = crossfit_deep(cases, folds, settings, backbone="resnet18", cache=cache)
    from sklearn.metrics import roc_auc_score

    labels = cases.loc[train_ids, "label"]
    print(f"cohort: {args.cases} cases ({len(train_ids)} train), {args.size} px, "
          f"ResNet18 random init, {args.normalization}, {args.epochs} epochs, "
          f"{args.folds} folds, seed {args.seed}")
    print(f"CNN AUC: training in-sample {roc_auc_score(labels, scores[train_ids]):.3f}, "
          f"training cross-fitted {crossfit.auc:.3f}, test "
          f"{roc_auc_score(cases.loc[test, 'label'], scores[test]):.3f}; Youden cut-off on "
          f"cross-fitted scores {crossfit_cutoff(crossfit):.3f}")
    agreement = feature_agreement(crossfit, deep)["median_correlation"]
    print(f"feature agreement fold CNN vs final CNN (median r per fold): "
          f"{', '.join(f'{r:.2f}' for r in agreement)}")
    print(f"cost: final CNN {final_seconds:.0f} s; {args.folds} fold CNNs "
          f"{crossfit.seconds:.0f} s ({crossfit.seconds / args.folds:.0f} s each, "
          f"training {crossfit.fold_table['train_time_s'].sum():.0f} s); K+1 trainings "
          f"{final_seconds + crossfit.seconds:.0f} s = "
          f"{(final_seconds + crossfit.seconds) / final_seconds:.1f}x the final CNN alone")

    final_test_rows = deep.copy()
    final_test_rows.loc[train_ids] = crossfit.features.loc[train_ids].to_numpy()
    variants = {"DLR in_sample": fusion_features(deep, crossfit, CrossfitSettings("in_sample")),
                "DLR crossfit": fusion_features(deep, crossfit, CrossfitSettings()),
                "DLR crossfit, final-CNN test rows": final_test_rows}
    rows = {"HCR only": dlr_figures("HCR", hcr, cases, args.seed)}
    for name, fused in variants.items():
        pca = DeepFeaturePCA(512, random_state=args.seed).fit(fused.loc[train_ids])
        rows[name] = dlr_figures("DLR", hcr.join(pca.transform(fused)), cases, args.seed)
    for row in rows.values():
        assert row.pop("cv_folds").equals(folds), "DLR CV folds differ from the crossfit folds"
    table = pd.DataFrame(rows).T
    table["gap"] = table["cv_auc"] - table["test_auc"]
    print(table.to_string(float_format=lambda value: f"{value:.3f}"))


if __name__ == "__main__":
    main()
