"""``dlrn train-dl`` and ``dlrn deep-features``: the study's deep-learning stage.

``train-dl`` fine-tunes each backbone on the training cases, compares them,
chooses one on validation AUC (a patient-grouped split of the training set),
and writes predictions, metrics, deep features (+ PCA fitted on training cases)
and Grad-CAM overlays. ``deep-features`` applies a trained model (and its PCA)
to a cohort, e.g. an external test set.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dlrn.cli._cohort_args import (
    add_cohort_arguments,
    add_hidden_aliases,
    label_column,
    read_cohort_from_args,
)
from dlrn.errors import ConfigError

log = logging.getLogger(__name__)

_FEATURES_CROPS = ("Crops are made as when the model was trained (size, margin, mask label, "
                   "frame); --mask-label and --frame, when given, name this cohort's own.")


def _add_common_arguments(parser: argparse.ArgumentParser, *, split: bool = False) -> None:
    parser.add_argument("table", type=Path, help="cohort table (CSV, TSV or Excel)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_cohort_arguments(parser, split=split)
    parser.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, mps")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (16)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier outputs")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train-dl", help="fine-tune CNN backbones, compare them, deep features, Grad-CAM",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    _add_common_arguments(train, split=True)
    add_hidden_aliases(train, {"--split": "split_column"})  # its former name
    train.add_argument("--backbones", default="densenet121,vgg19,resnet50",
                       help="comma-separated torchvision names (densenet121,vgg19,resnet50)")
    train.add_argument("--weights", default="imagenet",
                       help="imagenet (downloaded once to the torch cache), a local "
                            ".pth/.pt/.safetensors file (one backbone only), or none")
    train.add_argument("--test-size", type=float, default=0.3, help="test fraction (0.3)")
    train.add_argument("--seed", type=int, default=0, help="seed of split, init, shuffling")
    train.add_argument("--epochs", type=int, default=30, help="maximum epochs (30)")
    train.add_argument("--patience", type=int, default=10,
                       help="stop after this many epochs without a better validation AUC")
    train.add_argument("--lr", type=float, default=None,
                       help="peak learning rate (1e-4 pretrained, 1e-3 random init)")
    train.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    train.add_argument("--warmup-epochs", type=float, default=1.0)
    train.add_argument("--class-weighted", action="store_true",
                       help="weight the loss by the class ratio (pos_weight)")
    train.add_argument("--val-fraction", type=float, default=0.2,
                       help="part of the training patients used for best-epoch selection")
    train.add_argument("--image-size", type=int, default=224, help="crop side in pixels")
    train.add_argument("--margin", default="0", help="crop margin: pixels (10) or percent (10%%)")
    train.add_argument("--keep-aspect", action="store_true",
                       help="letterbox crops instead of stretching them to a square")
    train.add_argument("--normalization", choices=["zscore", "imagenet"], default=None,
                       help="default: imagenet with pretrained weights, zscore without")
    train.add_argument("--no-augment", action="store_true", help="no random crop or flips")
    train.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    train.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                       help="CUDA autocast: auto = bf16 where the GPU has it, else fp16 "
                            "(CPU always trains in fp32)")
    train.add_argument("--threads", type=int, default=None, help="CPU threads (all allowed)")
    train.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    train.add_argument("--feature-mode", choices=["pooled", "map"], default="pooled",
                       help="deep features: pooled last feature map or the flattened map")
    train.add_argument("--pca-components", type=int, default=512,
                       help="PCA components (capped by the training cases); 0: no PCA")
    train.add_argument("--gradcam-cases", default=None,
                       help="comma-separated case ids (default: most confident test "
                            "TP, TN, FP, FN)")
    train.add_argument("--resume", action="store_true", help="continue a run in --out")
    train.set_defaults(func=run_train)

    features = subparsers.add_parser(
        "deep-features", help="deep features of a cohort from a model trained by train-dl",
        description=__doc__.split("\n\n")[1].replace("\n", " ") + " " + _FEATURES_CROPS)
    _add_common_arguments(features)
    features.set_defaults(frame=None)  # None: the model's frame (see _FEATURES_CROPS)
    features.add_argument("--model", required=True, type=Path,
                          help="a model folder of train-dl (OUT/models/<backbone>)")
    features.add_argument("--pca", type=Path, default=None,
                          help="PCA folder of train-dl (OUT/pca) to apply as well")
    features.add_argument("--feature-mode", choices=["pooled", "map"], default="pooled")
    features.set_defaults(func=run_features)


def _split(cohort, args: argparse.Namespace):
    from dlrn.cohort import split_cohort

    if args.split_column:
        return cohort.given_split
    return split_cohort(cohort.cases, test_size=args.test_size, seed=args.seed)


def _settings(args: argparse.Namespace):
    from dlrn.deep.data import Augmentation, CropSettings
    from dlrn.deep.train import TrainSettings
    from dlrn.deep.workflow import DeepStageSettings

    backbones = tuple(name.strip() for name in args.backbones.split(",") if name.strip())
    weights = None if args.weights.lower() == "none" else args.weights
    if weights not in (None, "imagenet") and len(backbones) > 1:
        raise ConfigError("--weights FILE holds one backbone's weights; give one --backbones")
    margin = args.margin if args.margin.endswith("%") else int(args.margin)
    train = TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
        learning_rate=args.lr, warmup_epochs=args.warmup_epochs,
        class_weighted=args.class_weighted, patience=args.patience,
        val_fraction=args.val_fraction, seed=args.seed, device=args.device,
        amp=not args.no_amp, precision=args.precision, threads=args.threads,
        num_workers=args.workers, normalization=args.normalization,
        progress=not args.no_progress,
        augmentation=Augmentation.none() if args.no_augment else Augmentation())
    cases = None if args.gradcam_cases is None else tuple(args.gradcam_cases.split(","))
    return DeepStageSettings(
        backbones=backbones, weights=weights,
        crop=CropSettings(image_size=args.image_size, margin=margin,
                          keep_aspect=args.keep_aspect, mask_label=args.mask_label,
                          frame=args.frame),
        train=train, feature_mode=args.feature_mode,
        pca_components=args.pca_components or None, gradcam_cases=cases)


def run_train(args: argparse.Namespace) -> int:
    from dlrn.deep.workflow import run_deep_stage

    if label_column(args) is None:
        raise ConfigError("train-dl needs an outcome column: --label none is not allowed here")
    settings = _settings(args)
    cohort = read_cohort_from_args(args)
    result = run_deep_stage(cohort.cases, _split(cohort, args), args.out, settings,
                            resume=args.resume, overwrite=args.overwrite, source=args.table)
    print(result.comparison.round(3).to_string(index=False))
    print(f"chosen backbone: {result.chosen} (highest validation AUC); results in {args.out}")
    return 0


def _features_crop(trained, args: argparse.Namespace):
    """The model's crop settings, with the mask label and frame of this cohort where given."""
    from dataclasses import replace

    return replace(
        trained,
        mask_label=trained.mask_label if args.mask_label is None else args.mask_label,
        frame=trained.frame if args.frame is None else args.frame,
    )


def run_features(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from dlrn.deep.data import CropSettings, build_crop_cache
    from dlrn.deep.features import DeepFeaturePCA, extract_deep_features
    from dlrn.deep.train import load_trained_model, select_device
    from dlrn.provenance import write_provenance

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ConfigError(f"output folder {out} is not empty; pass --overwrite to replace it")
    model, card = load_trained_model(args.model)
    crop = _features_crop(CropSettings(**card["crop"]), args)
    cases = read_cohort_from_args(args, mask_label=crop.mask_label, frame=crop.frame).cases
    cache = build_crop_cache(cases, crop, progress=not args.no_progress)
    device = select_device(args.device)
    features = extract_deep_features(model, card["backbone"], cache,
                                     normalization=card["normalization"],
                                     mode=args.feature_mode, device=device,
                                     batch_size=args.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    features.to_csv(out / "deep_features.csv")
    if args.pca is not None:
        DeepFeaturePCA.load(args.pca).transform(features).to_csv(out / "deep_features_pca.csv")
    write_provenance(out / "provenance.json", model=str(args.model), card=card,
                     crop=asdict(crop), pca=None if args.pca is None else str(args.pca),
                     input=str(args.table))
    print(f"{features.shape[1]} deep features for {len(features)} cases written to {out}")
    return 0
