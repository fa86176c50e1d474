"""``dlrn reproduce STUDY_DIR``: re-run a finished study from its record and compare."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlrn.errors import DlrnError

#: Exit status when the re-run differs (inputs that changed exit 2, as every error does).
DIFFERENT_EXIT = 1


def _default_out(study: Path) -> Path:
    return study.resolve().parent / f"{study.resolve().name}-reproduced"


def _reproduce(args: argparse.Namespace) -> int:
    from dlrn.study.reproduce import IDENTICAL, prepare, rerun, write_summary

    study = Path(args.study)
    out = Path(args.out) if args.out else _default_out(study)
    reproduction = prepare(study, out, overwrite=args.overwrite)
    if reproduction.input_changes:
        page = write_summary(reproduction)
        listing = "\n  ".join(reproduction.input_changes)
        raise DlrnError(f"{len(reproduction.input_changes)} input(s) of {reproduction.study} "
                        f"are not what the study read; nothing was re-run (summary: {page}):"
                        f"\n  {listing}")
    print(f"study: {reproduction.study} (finished {reproduction.record.data['finished']})")
    print(f"versions when the study ran: {reproduction.lock_recorded}")
    print(f"versions now: {reproduction.lock_now}")
    if reproduction.version_changes:
        print(f"versions that differ from the record ({len(reproduction.version_changes)}):")
        for line in reproduction.version_changes:
            print(f"  {line}")
    else:
        print("versions: every package has the recorded version")
    print(f"re-running the whole study into {reproduction.out} (no caches) ...")
    rerun(reproduction, progress=not args.quiet)
    page = write_summary(reproduction)
    print(reproduction.headline())
    for file in reproduction.differing:
        print(f"  {file.line()}")
    print(f"summary: {page}")
    return 0 if reproduction.verdict == IDENTICAL else DIFFERENT_EXIT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="re-run a finished study from its record and compare every number",
        description="Check a finished study's inputs against its record (a changed, missing, "
                    "added or removed table, image or mask: exit 2, nothing re-run), state "
                    "every version that differs from the record, re-run the whole study from "
                    "the recorded settings into a new folder without caches, and compare "
                    "every table, figure and the bundle's predictions: exit 0 when "
                    "identical, 1 when not.")
    parser.add_argument("study", help="output folder of a finished `dlrn run`")
    parser.add_argument("--out", help="new folder for the re-run and the summary (default: "
                                      "STUDY-reproduced beside the study)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier reproduction in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_reproduce)
