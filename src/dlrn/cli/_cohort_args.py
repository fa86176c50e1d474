"""The cohort-table options shared by every command that reads a cohort table.

One spelling, default and help text per option (``--id``, ``--image``, ``--mask``,
``--label``, ``--patient``...), so a user who learnt them for ``dlrn validate``
can pass the same ones to ``dlrn extract``, ``dlrn train-dl``, ``dlrn
deep-features`` and ``dlrn model``. Option destinations end in ``_column`` for
column names (``args.id_column``, ``args.label_column``...).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlrn.cohort import Cohort, CohortColumns

NO_LABEL = "none"
"""``--label none``: the table has no outcome column (feature extraction, prediction)."""

_DEFAULT_MIN_ROI_PIXELS = 16  # dlrn.cohort.DEFAULT_MIN_ROI_PIXELS, not imported: keeps --help fast


def add_cohort_arguments(
    parser: argparse.ArgumentParser,
    *,
    images: bool = True,
    split: bool = False,
    repeat_masks: bool = False,
    on_error: bool = False,
) -> None:
    """Add the cohort-table column options and, with ``images``, how cases are read.

    ``images=True`` (tables read with :func:`dlrn.cohort.read_cohort`) adds ``--image``,
    ``--mask``, ``--positive-label``, ``--mask-label``, ``--frame`` and the ROI size
    limits. ``images=False`` is for tables read without their images (``dlrn model``):
    case id, label and patient only. ``split``, ``repeat_masks`` and ``on_error`` add
    ``--split-column``, ``--repeat-mask`` and ``--on-error`` for commands that use them.
    """
    group = parser.add_argument_group("cohort table columns")
    group.add_argument("--id", dest="id_column", metavar="COLUMN", default="case_id",
                       help="case id column (default: case_id)")
    if images:
        group.add_argument("--image", dest="image_column", metavar="COLUMN", default="image",
                           help="image path column (default: image)")
        group.add_argument("--mask", dest="mask_column", metavar="COLUMN", default="mask",
                           help="mask path column (default: mask)")
    group.add_argument("--label", dest="label_column", metavar="COLUMN", default="label",
                       help="0/1 outcome column (default: label; 'none' for a table without one)")
    group.add_argument("--patient", dest="patient_column", metavar="COLUMN", default=None,
                       help="patient id column (default: patient_id if present, else one "
                            "patient per case)")
    if split:
        group.add_argument("--split-column", dest="split_column", metavar="COLUMN", default=None,
                           help="column with train/test per case (default: none; where a "
                                "split is needed, a random one by patient, stratified by label)")
    if repeat_masks:
        group.add_argument("--repeat-mask", dest="repeat_masks", metavar="COLUMN",
                           action="append", default=[],
                           help="repeat segmentation column (ICC); may be given several times")
    if images:
        _add_reading_arguments(parser, on_error=on_error)


def _add_reading_arguments(parser: argparse.ArgumentParser, *, on_error: bool) -> None:
    group = parser.add_argument_group("reading and checking the cases")
    group.add_argument("--positive-label", metavar="VALUE", default=None,
                       help="label value of the positive class, for text labels "
                            "(default: labels must be 0/1 or true/false)")
    group.add_argument("--mask-label", metavar="K", type=int, default=None,
                       help="ROI value in label-map masks (default: any non-zero value)")
    group.add_argument("--frame", metavar="N", type=int, default=0,
                       help="frame of multi-frame files (default: 0, the first)")
    group.add_argument("--min-roi-mm", metavar="MM", type=float, default=None,
                       help="smallest ROI maximum diameter in mm, where the spacing is known "
                            "(the study: 5)")
    group.add_argument("--min-roi-pixels", metavar="PIXELS", type=int,
                       default=_DEFAULT_MIN_ROI_PIXELS,
                       help=f"smallest ROI in pixels (default: {_DEFAULT_MIN_ROI_PIXELS})")
    if on_error:
        group.add_argument("--on-error", choices=["stop", "exclude"], default="stop",
                           help="invalid cases: stop before any long work (default) or "
                                "exclude them and record why")


def add_hidden_aliases(parser: argparse.ArgumentParser, aliases: Mapping[str, str]) -> None:
    """Accept old option names (``{"--label-column": "label_column"}``) without showing them."""
    for option, dest in aliases.items():
        parser.add_argument(option, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def label_column(args: argparse.Namespace) -> str | None:
    """The outcome column, or None for ``--label none``."""
    return None if args.label_column.strip().lower() in ("", NO_LABEL) else args.label_column


def cohort_columns(args: argparse.Namespace) -> CohortColumns:
    """The :class:`dlrn.cohort.CohortColumns` named by :func:`add_cohort_arguments`' options."""
    from dlrn.cohort import CohortColumns

    defaults = CohortColumns()
    return CohortColumns(
        case_id=args.id_column,
        image=getattr(args, "image_column", defaults.image),
        mask=getattr(args, "mask_column", defaults.mask),
        label=label_column(args),
        patient=args.patient_column,
        repeat_masks=tuple(getattr(args, "repeat_masks", ())),
        split=getattr(args, "split_column", None),
        positive_label=getattr(args, "positive_label", None),
    )


def read_cohort_from_args(
    args: argparse.Namespace, columns: CohortColumns | None = None, **settings: Any
) -> Cohort:
    """Read and validate ``args.table`` as the options say; ``settings`` override them."""
    from dlrn.cohort import read_cohort

    options: dict[str, Any] = {
        "min_roi_mm": args.min_roi_mm,
        "min_roi_pixels": args.min_roi_pixels,
        "mask_label": args.mask_label,
        "frame": args.frame,
        "on_error": getattr(args, "on_error", "stop"),
        "progress": not (getattr(args, "no_progress", False) or getattr(args, "quiet", False)),
    }
    return read_cohort(args.table, columns or cohort_columns(args), **{**options, **settings})
