"""The ``dlrn`` command.

Each sub-command lives in its own module under ``dlrn.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func``. Command
modules import heavy libraries (torch, radiomics...) inside their handlers so
that ``dlrn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dlrn import __version__
from dlrn.cli._console import console_level, console_logging
from dlrn.errors import DlrnError

COMMAND_MODULES: tuple[str, ...] = ("clinical", "deep", "evaluate", "extract", "model",
                                     "reproduce", "segmentation", "serve", "study",
                                     "validate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlrn",
        description="Deep learning radiomics for 2D medical images: cohort to nomogram.",
    )
    parser.add_argument("--version", action="version", version=f"dlrn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print every log line and library warning, with its source")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"dlrn.cli.{name}").register(subparsers)
    return parser


def _figures_to_files() -> None:
    """The command writes figures to files: matplotlib's Agg backend, chosen once here.

    The library never chooses a backend, so a notebook keeps its own.
    """
    import matplotlib

    matplotlib.use("Agg")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # for the run log
    _figures_to_files()
    with console_logging(console_level(args)):
        try:
            return int(args.func(args) or 0)
        except DlrnError as error:
            print(f"dlrn {args.command}: error: {error}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
