"""``dlrn train-dl`` and ``dlrn deep-features``: the study's deep-learning stage, alone.

``train-dl`` fine-tunes each backbone on the training cases, compares them,
chooses one on validation AUC (a patient-grouped split of the training set;
--select-on crossfit: backbone and epoch on cross-fitted AUC), and writes
predictions, metrics, deep features (+ PCA fitted on training cases) and
Grad-CAM overlays. ``deep-features`` applies a trained model (and its PCA)
to a cohort, e.g. an external test set.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dlrn.cli._cohort_args import (
    add_cohort_arguments,
    add_hidden_aliases,
    label_column,
    read_cohort_from_args,
)
from dlrn.cli._console import Console, add_console_options, noted, run_log
from dlrn.cli._settings import option_help, parse_value
from dlrn.errors import ConfigError
from dlrn.study.config import DeepSettings

log = logging.getLogger(__name__)

_FEATURES_CROPS = ("Crops are made as when the model was trained (size, margin, mask label, "
                   "frame); --mask-label and --frame, when given, name this cohort's own.")

#: option -> study-file setting (dl.<name>): the same knobs as ``dlrn run``'s deep stage.
SETTING_OPTIONS = {
    "--backbones": "backbones", "--weights": "weights", "--epochs": "epochs",
    "--batch-size": "batch_size", "--lr": "learning_rate", "--optimizer": "optimizer",
    "--warmup-epochs": "warmup_epochs", "--patience": "patience",
    "--val-fraction": "val_fraction", "--class-weighted": "class_weighted",
    "--no-augment": "augment", "--normalization": "normalization",
    "--image-size": "image_size", "--margin": "crop_margin", "--keep-aspect": "keep_aspect",
    "--feature-mode": "feature_mode", "--pca-components": "pca_components",
    "--gradcam-cases": "gradcam_cases", "--device": "device", "--no-amp": "amp",
    "--precision": "precision", "--fusion-features": "fusion_features",
    "--select-on": "select_on", "--no-deterministic": "deterministic",
    "--threads": "threads", "--workers": "workers",
}
_SWITCHES = {"--class-weighted", "--keep-aspect"}  # on when given
_NEGATIONS = {"--no-augment", "--no-amp", "--no-deterministic"}  # off when given
_LISTS = {"--backbones", "--gradcam-cases"}  # comma-separated


def _add_common_arguments(parser: argparse.ArgumentParser, *, split: bool = False) -> None:
    parser.add_argument("table", type=Path, help="cohort table (CSV, TSV or Excel)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_cohort_arguments(parser, split=split)
    parser.add_argument("--overwrite", action="store_true", help="replace earlier outputs")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_console_options(parser)


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One option per setting of the study file's ``dl`` section, with its help."""
    for option, name in SETTING_OPTIONS.items():
        help_text = option_help(DeepSettings, name, "dl")
        if option in _SWITCHES or option in _NEGATIONS:
            parser.add_argument(option, dest=name, action="store_const",
                                const=option in _SWITCHES, default=None, help=help_text)
        else:
            parser.add_argument(option, dest=name, default=None, help=help_text)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train-dl", help="fine-tune CNN backbones, compare them, deep features, Grad-CAM",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    _add_common_arguments(train, split=True)
    add_hidden_aliases(train, {"--split": "split_column"})  # its former name
    _add_setting_options(train)
    train.add_argument("--test-size", type=float, default=0.3, help="test fraction (0.3)")
    train.add_argument("--seed", type=int, default=0,
                       help="seed of split, init, shuffling and cross-fitting folds")
    train.add_argument("--cv-folds", type=int, default=5,
                       help="folds of the cross-fitting: use the DLR models' "
                            "(study file: classifiers.cv_folds; 5)")
    train.add_argument("--resume", action="store_true", help="continue a run in --out")
    train.set_defaults(func=run_train)

    features = subparsers.add_parser(
        "deep-features", help="deep features of a cohort from a model trained by train-dl",
        description=__doc__.split("\n\n")[1].replace("\n", " ") + " " + _FEATURES_CROPS)
    _add_common_arguments(features)
    features.set_defaults(frame=None)  # None: the model's frame (see _FEATURES_CROPS)
    features.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, mps")
    features.add_argument("--batch-size", type=int, default=16, help="images per batch (16)")
    features.add_argument("--model", required=True, type=Path,
                          help="a model folder of train-dl (OUT/models/<backbone>)")
    features.add_argument("--pca", type=Path, default=None,
                          help="PCA folder of train-dl (OUT/pca) to apply as well, to the "
                               "features it was fitted on: the mean of the fold CNNs' "
                               "(OUT/chosen.json: fusion_features crossfit) or the model's "
                               "(in_sample)")
    features.add_argument("--feature-mode", choices=["pooled", "map"], default="pooled")
    features.set_defaults(func=run_features)


def _option_value(option: str, text: Any) -> Any:
    if option in _SWITCHES or option in _NEGATIONS:
        return text
    if option in _LISTS:
        return [name.strip() for name in text.split(",") if name.strip()]
    if option == "--weights":
        return None if text.lower() == "none" else text
    if option == "--margin":
        return text if text.strip().endswith("%") else parse_value(text)
    return parse_value(text)


def deep_section(args: argparse.Namespace) -> DeepSettings:
    """The options as the study file's ``dl`` section (validated the same way)."""
    from dlrn.study.validation import section_from_dict

    given = {name: _option_value(option, getattr(args, name))
             for option, name in SETTING_OPTIONS.items() if getattr(args, name) is not None}
    dl = section_from_dict(DeepSettings, given, path="dl", source="the train-dl options")
    if dl.weights not in (None, "imagenet") and len(dl.backbones) > 1:
        raise ConfigError("--weights FILE holds one backbone's weights; give one --backbones")
    return dl


def _cases_with_set(cohort: Any, args: argparse.Namespace) -> Any:
    from dlrn.cohort import split_cohort

    if args.split_column:
        split = cohort.given_split
    else:
        split = split_cohort(cohort.cases, test_size=args.test_size, seed=args.seed)
    return cohort.cases.assign(set=split)


def run_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from dlrn.io import check_output_folder
    from dlrn.notes import collect
    from dlrn.study.stages.deep import deep_stage_settings, train_and_save

    if label_column(args) is None:
        raise ConfigError("train-dl needs an outcome column: --label none is not allowed here")
    console = Console(args)
    dl = deep_section(args)
    settings = deep_stage_settings(dl, seed=args.seed, weights=dl.weights,
                                   mask_label=args.mask_label, frame=args.frame,
                                   progress=console.progress and not args.no_progress,
                                   cv_folds=args.cv_folds)
    cases = _cases_with_set(read_cohort_from_args(args), args)
    check_output_folder(args.out, overwrite=args.resume or args.overwrite,
                        remedy="pass --resume to continue the run there or --overwrite")
    with run_log(args.out, args) as log_path, collect() as raised:
        summary = train_and_save(args.out, cases, settings, source=args.table, run_dir=".",
                                 resume=args.resume, overwrite=args.overwrite)
        log.info("notes: %s", " ".join(summary.notes))
    console.say(pd.read_csv(args.out / "comparison.csv").round(3).to_string(index=False))
    console.cautions(("", caution) for caution in [*summary.cautions, *raised.cautions])
    console.say("", f"chosen backbone: {summary.chosen}; results in {args.out}",
                f"log: {log_path} ({noted(raised)})")
    return 0


def _features_crop(trained: Any, args: argparse.Namespace) -> Any:
    """The model's crop settings, with the mask label and frame of this cohort where given."""
    from dataclasses import replace

    return replace(
        trained,
        mask_label=trained.mask_label if args.mask_label is None else args.mask_label,
        frame=trained.frame if args.frame is None else args.frame,
    )


def run_features(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from dlrn.deep.classifier.features import DeepFeaturePCA, extract_deep_features
    from dlrn.deep.classifier.train import load_trained_model
    from dlrn.deep.data import CropSettings, build_crop_cache
    from dlrn.deep.runtime import select_device
    from dlrn.io import check_output_folder
    from dlrn.provenance import write_provenance

    out = check_output_folder(args.out, overwrite=args.overwrite)
    model, card = load_trained_model(args.model)
    crop = _features_crop(CropSettings(**card["crop"]), args)
    cases = read_cohort_from_args(args, mask_label=crop.mask_label, frame=crop.frame).cases
    cache = build_crop_cache(cases, crop, progress=Console(args).progress and not args.no_progress)
    features = extract_deep_features(model, card["backbone"], cache,
                                     normalization=card["normalization"],
                                     mode=args.feature_mode, device=select_device(args.device),
                                     batch_size=args.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    features.to_csv(out / "deep_features.csv")
    pca_input = None
    if args.pca is not None:
        reduced, pca_input = _pca_features(args, card, features, cache)
        DeepFeaturePCA.load(args.pca).transform(reduced).to_csv(out / "deep_features_pca.csv")
    write_provenance(out / "provenance.json", model=str(args.model), card=card,
                     crop=asdict(crop), pca=None if args.pca is None else str(args.pca),
                     pca_applied_to=pca_input, input=str(args.table))
    Console(args).say(f"{features.shape[1]} deep features for {len(features)} cases written "
                      f"to {out}" + ("" if pca_input is None else f"; PCA applied to {pca_input}"))
    return 0


def _pca_features(args: argparse.Namespace, card: dict, features: Any,
                  cache: Any) -> tuple[Any, str]:
    """The features ``--pca`` applies to, as the DLR saw them, and their name.

    train-dl's PCA (``OUT/pca``) was fitted on what the DLR fuses: under
    ``fusion_features: crossfit`` the cross-fitted rows, i.e. the fold CNNs' feature
    space, whose rows for new cases are the MEAN of the fold CNNs' features
    (:func:`dlrn.deep.classifier.crossfit.fold_mean_features`); under ``in_sample`` the final
    CNN's. ``OUT/chosen.json`` says which.
    """
    import json

    from dlrn.deep.classifier.foldmean import fold_mean_features
    from dlrn.deep.runtime import select_device

    run_dir = args.pca.resolve().parent
    if not (run_dir / "chosen.json").is_file():
        log.warning("no chosen.json in %s: the PCA is applied to the model's own features, "
                    "which is right only for a train-dl run with fusion_features in_sample",
                    run_dir)
        return features, f"the model's features ({run_dir}/chosen.json not found)"
    chosen = json.loads((run_dir / "chosen.json").read_text())
    if chosen.get("fusion_features") != "crossfit":
        return features, "the model's features (fusion_features: in_sample)"
    if card["backbone"] != chosen["chosen"]:
        raise ConfigError(f"the PCA in {args.pca} was fitted on {chosen['chosen']} features; "
                          f"--model is a {card['backbone']}: give --model "
                          f"{run_dir / 'models' / chosen['chosen']}")
    dirs = [run_dir / folder for folder in chosen["fold_model_dirs"]]
    mean = fold_mean_features(dirs, cache, list(features.index), mode=args.feature_mode,
                              batch_size=args.batch_size,
                              device=str(select_device(args.device)))
    return mean, (f"the mean features of the {len(dirs)} fold CNNs in {run_dir} "
                  f"(fusion_features: crossfit)")
