"""``dlrn train-seg`` and ``dlrn segment``: the study's lesion segmentation, alone.

``train-seg`` trains a 2D U-Net (MONAI) on the training cases' expert masks (a split by
patient, stratified by label, or --split-column), chooses its epoch on a patient-grouped
validation split's Dice, and reports Dice, IoU and HD95 of its masks of the test cases
with patient-level CIs, with overlays of the best and worst cases. ``segment`` applies a
trained U-Net to a table's images and writes their masks and the table with them filled in
(ready for ``dlrn extract`` or ``dlrn predict``); where the table has expert masks, it
scores the U-Net's against them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dlrn.cli._cohort_args import add_cohort_arguments, label_column, read_cohort_from_args
from dlrn.cli._console import Console, add_console_options, noted, run_log
from dlrn.cli._settings import option_help, parse_value
from dlrn.errors import ConfigError
from dlrn.study.config import DeepSettings, SegmentationConfig

#: option -> study-file setting (segmentation.<name>): the same knobs as ``dlrn run``'s stage
SETTING_OPTIONS = {"--image-size": "image_size", "--epochs": "epochs",
                   "--batch-size": "batch_size", "--lr": "learning_rate",
                   "--patience": "patience", "--val-fraction": "val_fraction"}
#: option -> the ``dl`` section's setting the U-Net shares with the CNNs
RUNTIME_OPTIONS = {"--device": "device", "--threads": "threads"}


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    for option, name in SETTING_OPTIONS.items():
        parser.add_argument(option, dest=name, default=None,
                            help=option_help(SegmentationConfig, name, "segmentation"))
    for option, name in RUNTIME_OPTIONS.items():
        parser.add_argument(option, dest=name, default=None,
                            help=option_help(DeepSettings, name, "dl"))
    parser.add_argument("--no-deterministic", dest="deterministic", action="store_const",
                        const=False, default=None,
                        help=option_help(DeepSettings, "deterministic", "dl"))


def _sections(args: argparse.Namespace) -> tuple[SegmentationConfig, DeepSettings]:
    """The options as the study file's ``segmentation`` and ``dl`` sections (validated the
    same way)."""
    from dlrn.study.validation import section_from_dict

    def given(names: dict[str, str]) -> dict[str, Any]:
        return {name: parse_value(getattr(args, name)) for name in names.values()
                if getattr(args, name) is not None}

    section = section_from_dict(SegmentationConfig, {**given(SETTING_OPTIONS), "enabled": True},
                                path="segmentation", source="the train-seg options")
    runtime = given(RUNTIME_OPTIONS)
    if args.deterministic is not None:
        runtime["deterministic"] = args.deterministic
    dl = section_from_dict(DeepSettings, runtime, path="dl", source="the train-seg options")
    return section, dl


def run_train(args: argparse.Namespace) -> int:
    from dlrn.cohort import split_cohort
    from dlrn.io import check_output_folder
    from dlrn.notes import collect
    from dlrn.study.stages.segmentation import segmentation_settings, train_and_evaluate

    console = Console(args)
    section, dl = _sections(args)
    settings = segmentation_settings(section, dl, seed=args.seed,
                                     progress=console.progress and not args.no_progress,
                                     mask_label=args.mask_label, frame=args.frame)
    if args.split_column is None and label_column(args) is None:
        raise ConfigError("train-seg splits by label: give --label, or --split-column")
    cohort = read_cohort_from_args(args)
    split = (cohort.given_split if args.split_column else
             split_cohort(cohort.cases, test_size=args.test_size, seed=args.seed))
    cases = cohort.cases.assign(set=split)
    check_output_folder(args.out, overwrite=args.overwrite)
    with run_log(args.out, args) as log_path, collect() as raised:
        summary = train_and_evaluate(cases, settings, args.out, progress=settings.progress)
    console.say(*[f"{name}: {label} {value}" for name, metrics in summary.results.items()
                  for label, value in metrics.items()])
    console.say(f"U-Net in {args.out / 'model'}; masks, tables and overlays in {args.out}",
                f"log: {log_path} ({noted(raised)})")
    return 0


def run_segment(args: argparse.Namespace) -> int:
    import pandas as pd

    from dlrn.io import check_output_folder, read_table
    from dlrn.segmentation import SegmentationModel, mask_metrics, metric_summary
    from dlrn.segmentation.masks import absolute_paths, segment_table

    out = check_output_folder(args.out, overwrite=args.overwrite)
    console = Console(args)
    model = SegmentationModel.load(args.model)
    table = read_table(args.table, what="table", text_columns=(
        args.id_column, args.image_column, args.mask_column))
    for column in (args.id_column, args.image_column):
        if column not in table.columns:
            raise ConfigError(f"{args.table} has no column {column!r}")
    with run_log(out, args) as log_path:
        filled, masks = segment_table(model, table, args.table.parent, out / "masks",
                                      case_id=args.id_column, image=args.image_column,
                                      mask=args.mask_column, progress=console.progress)
        masks.to_csv(out / "masks.csv")
        filled.to_csv(out / "cases_with_masks.csv", index=False)
        lines = [f"{int(masks['mask'].notna().sum())} of {len(masks)} case(s) segmented into "
                 f"{out / 'masks'}; the table with them: {out / 'cases_with_masks.csv'}"]
        lines += [f"{case}: {note}" for case, note in masks["note"].dropna().items() if note]
        if args.mask_column in table.columns:
            expert = pd.DataFrame({"image": filled[args.image_column].to_numpy(),
                                   "mask": absolute_paths(table[args.mask_column],
                                                          args.table.parent).to_numpy()},
                                  index=masks.index)
            scored = expert["mask"].notna()  # the cases that have an expert mask
            per_case = mask_metrics(expert[scored], masks[scored.to_numpy()],
                                    label=model.settings.mask_label, frame=model.settings.frame)
            per_case.to_csv(out / "per_case.csv")
            summary = metric_summary(per_case)
            summary.to_csv(out / "summary.csv")
            lines += ["", f"against the expert masks ({int(scored.sum())} case(s)):",
                      summary.round(3).to_string()]
    console.say(*lines, f"log: {log_path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train-seg", help="train a lesion segmentation U-Net; Dice, IoU, HD95 on the test set",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    train.add_argument("table", type=Path, help="cohort table (CSV, TSV or Excel)")
    train.add_argument("--out", required=True, type=Path, help="output folder")
    add_cohort_arguments(train, split=True)
    _add_setting_options(train)
    train.add_argument("--test-size", type=float, default=0.3, help="test fraction (0.3)")
    train.add_argument("--seed", type=int, default=0,
                       help="seed of the split, the initial weights and the shuffling")
    train.add_argument("--overwrite", action="store_true", help="replace earlier outputs")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_console_options(train)
    train.set_defaults(func=run_train)

    segment = subparsers.add_parser(
        "segment", help="masks of a table's images from a U-Net trained by train-seg",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    segment.add_argument("model", type=Path, help="the U-Net's folder (train-seg's OUT/model, "
                                                  "or a study's stages/segmentation/model)")
    segment.add_argument("table", type=Path, help="table with a case id and an image column")
    segment.add_argument("--out", required=True, type=Path, help="output folder")
    segment.add_argument("--id", dest="id_column", metavar="COLUMN", default="case_id")
    segment.add_argument("--image", dest="image_column", metavar="COLUMN", default="image")
    segment.add_argument("--mask", dest="mask_column", metavar="COLUMN", default="mask",
                         help="the column the masks are written to; where the table already "
                              "has it (expert masks), the U-Net's are scored against them")
    segment.add_argument("--overwrite", action="store_true", help="replace earlier outputs")
    add_console_options(segment)
    segment.set_defaults(func=run_segment)
