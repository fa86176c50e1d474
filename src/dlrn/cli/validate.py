"""``dlrn validate``: check a cohort table and all its files before any long work."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlrn.cli._cohort_args import add_cohort_arguments, read_cohort_from_args
from dlrn.errors import DlrnError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a cohort table: every file, mask and label, all problems in one list",
        description=(
            "Read the cohort table and every image and mask, and list all problems "
            "(row, case id, file, problem). Exit code 0 when the cohort is valid."
        ),
    )
    parser.add_argument("table", type=Path, help="cohort table (CSV, TSV or Excel)")
    add_cohort_arguments(parser, split=True, repeat_masks=True)
    parser.add_argument("--exclusions", type=Path, default=None,
                        help="exclude bad cases instead of stopping, and write them to this CSV")
    parser.add_argument("--overwrite", action="store_true", help="replace --exclusions file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.exclusions and args.exclusions.exists() and not args.overwrite:
        raise DlrnError(f"{args.exclusions} already exists; use --overwrite to replace it")
    cohort = read_cohort_from_args(args, on_error="exclude" if args.exclusions else "stop")
    for note in cohort.notes:
        print(f"note: {note}")
    if args.exclusions:
        args.exclusions.parent.mkdir(parents=True, exist_ok=True)
        cohort.exclusions.to_csv(args.exclusions, index=False)
        print(f"{len(cohort.exclusions)} exclusion(s) written to {args.exclusions}")
    summary = f"{len(cohort.cases)} valid case(s) from {cohort.source}"
    if "label" in cohort.cases:
        summary += f" ({int(cohort.cases['label'].sum())} positive)"
    print(summary)
    for column in cohort.repeat_masks:
        print(f"{column}: {int(cohort.cases[column].notna().sum())} case(s) with a repeat mask")
    return 0
