"""``dlrn validate``: check a cohort table and all its files before any long work."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    parser.add_argument("--id", dest="case_id", default="case_id", help="case id column")
    parser.add_argument("--image", default="image", help="image path column")
    parser.add_argument("--mask", default="mask", help="mask path column")
    parser.add_argument("--label", default="label",
                        help="outcome column ('none' for a table without one)")
    parser.add_argument("--patient", default=None, help="patient id column")
    parser.add_argument("--repeat-mask", action="append", default=[], dest="repeat_masks",
                        help="repeat segmentation column (ICC); may be given several times")
    parser.add_argument("--positive-label", default=None, help="label value of the positive class")
    parser.add_argument("--split-column", default=None, help="column with train/test values")
    parser.add_argument("--min-roi-mm", type=float, default=None,
                        help="smallest ROI maximum diameter in mm (when spacing is known)")
    parser.add_argument("--min-roi-pixels", type=int, default=16, help="smallest ROI in pixels")
    parser.add_argument("--mask-label", type=int, default=None,
                        help="ROI label value in label-map masks (default: any non-zero)")
    parser.add_argument("--frame", type=int, default=0, help="frame of multi-frame files")
    parser.add_argument("--exclusions", type=Path, default=None,
                        help="exclude bad cases instead of stopping, and write them to this CSV")
    parser.add_argument("--overwrite", action="store_true", help="replace --exclusions file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dlrn.cohort import CohortColumns, read_cohort

    if args.exclusions and args.exclusions.exists() and not args.overwrite:
        raise DlrnError(f"{args.exclusions} already exists; use --overwrite to replace it")
    columns = CohortColumns(
        case_id=args.case_id, image=args.image, mask=args.mask,
        label=None if args.label.lower() in ("", "none") else args.label,
        patient=args.patient, repeat_masks=tuple(args.repeat_masks),
        split=args.split_column, positive_label=args.positive_label,
    )
    cohort = read_cohort(
        args.table, columns, min_roi_mm=args.min_roi_mm, min_roi_pixels=args.min_roi_pixels,
        mask_label=args.mask_label, frame=args.frame,
        on_error="exclude" if args.exclusions else "stop",
    )
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
