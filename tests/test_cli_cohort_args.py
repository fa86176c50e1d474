"""Every command that reads a cohort table spells, defaults and applies its options alike."""

from __future__ import annotations

import argparse

import pytest

from dlrn.cli import build_parser
from dlrn.cli._cohort_args import _DEFAULT_MIN_ROI_PIXELS, cohort_columns
from dlrn.cli.deep import _features_crop
from dlrn.cohort import DEFAULT_MIN_ROI_PIXELS, CohortColumns
from dlrn.deep.data import CropSettings

REQUIRED = {  # each command's own required arguments
    "validate": ["cohort.csv"],
    "extract": ["cohort.csv", "--out", "f.csv"],
    "train-dl": ["cohort.csv", "--out", "dl"],
    "deep-features": ["cohort.csv", "--out", "dl", "--model", "m"],
}
COLUMNS = ["--id", "ID", "--image", "us", "--mask", "roi", "--label", "malignant",
           "--patient", "mrn", "--positive-label", "yes"]
READING = ["--mask-label", "2", "--frame", "3", "--min-roi-mm", "5", "--min-roi-pixels", "30"]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def reading_settings(args: argparse.Namespace) -> tuple:
    return args.mask_label, args.frame, args.min_roi_mm, args.min_roi_pixels


@pytest.mark.parametrize("command", list(REQUIRED))
def test_image_commands_share_names_and_meaning(command: str) -> None:
    args = parse(command, *REQUIRED[command], *COLUMNS, *READING)
    assert cohort_columns(args) == CohortColumns(
        case_id="ID", image="us", mask="roi", label="malignant", patient="mrn",
        positive_label="yes")
    assert reading_settings(args) == (2, 3, 5.0, 30)


@pytest.mark.parametrize("command", ["validate", "extract", "train-dl"])
def test_image_commands_share_defaults(command: str) -> None:
    args = parse(command, *REQUIRED[command])
    assert cohort_columns(args) == CohortColumns()
    assert reading_settings(args) == (None, 0, None, DEFAULT_MIN_ROI_PIXELS)
    assert _DEFAULT_MIN_ROI_PIXELS == DEFAULT_MIN_ROI_PIXELS


def test_label_none_means_no_outcome_column() -> None:
    assert cohort_columns(parse("validate", "t.csv", "--label", "None")).label is None
    assert cohort_columns(parse("extract", "t.csv", "--out", "f.csv", "--label", "none")).label \
        is None


@pytest.mark.parametrize("command", ["validate", "train-dl"])
def test_split_column_where_a_split_is_used(command: str) -> None:
    args = parse(command, *REQUIRED[command], "--split-column", "group")
    assert cohort_columns(args).split == "group"


def test_train_dl_accepts_its_former_split_option() -> None:
    assert parse("train-dl", "t.csv", "--out", "dl", "--split", "group").split_column == "group"


def test_model_uses_the_same_names_and_still_accepts_the_former_ones() -> None:
    required = ["model", "features.csv", "--cohort", "cohort.csv", "--out", "out"]
    new = parse(*required, "--id", "ID", "--label", "y", "--patient", "mrn",
                "--split-column", "group")
    old = parse(*required, "--case-id-column", "ID", "--label-column", "y",
                "--patient-column", "mrn", "--split-column", "group")
    expected = CohortColumns(case_id="ID", label="y", patient="mrn", split="group")
    assert cohort_columns(new) == cohort_columns(old) == expected
    assert cohort_columns(parse(*required)) == CohortColumns()


def test_former_model_names_are_hidden_from_help(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse("model", "--help")
    shown = capsys.readouterr().out
    assert "--id" in shown and "--label" in shown and "--split-column" in shown
    assert "--case-id-column" not in shown and "--label-column" not in shown


def test_deep_features_crops_as_trained_unless_told_otherwise() -> None:
    trained = CropSettings(image_size=32, mask_label=2, frame=1)
    as_trained = parse("deep-features", *REQUIRED["deep-features"])
    assert _features_crop(trained, as_trained) == trained
    own = parse("deep-features", *REQUIRED["deep-features"], "--mask-label", "1", "--frame", "0")
    assert _features_crop(trained, own) == CropSettings(image_size=32, mask_label=1, frame=0)


def _subcommands() -> list[str]:
    actions = build_parser()._subparsers._group_actions  # the one subcommand action
    return sorted(actions[0].choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_command_prints_its_help(command: str, capsys: pytest.CaptureFixture) -> None:
    # setting texts become option help: a literal % ('10%') once made train-dl --help crash
    with pytest.raises(SystemExit) as stop:
        parse(command, "--help")
    assert stop.value.code == 0
    assert f"usage: dlrn {command}" in capsys.readouterr().out
