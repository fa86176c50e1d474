"""What a command shows on the console, and the log file that keeps everything else.

Three levels, chosen by ``--quiet`` and ``--verbose`` (``dlrn -v`` too): *quiet* prints
errors only (scripts, CI); *normal* shows the progress bars, a status line per stage,
the results and what needs action (errors, and the cautions: the few notes that change
what a number means); *verbose* adds every log record and Python warning with its source,
as dlrn printed them before. A command that writes results keeps
``logs/run-<timestamp>.log`` in its output folder whatever the level: the command line,
the settings, each stage's time and memory, every note with its origin, every library
warning (those of worker processes too) and the traceback of a failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

QUIET, NORMAL, VERBOSE = "quiet", "normal", "verbose"
FILE_ONLY = "file_only"  # a log record with this attribute set goes to the log file only
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
AUC_CELL = 21  # "0.922 (0.841-0.984) *"

log = logging.getLogger("dlrn.cli")


def add_console_options(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--verbose``, the console levels every long command takes."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true",
                       help="print errors only (scripts, CI): no progress, no results")
    group.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="also print every log line and library warning, with its source")


def console_level(args: argparse.Namespace) -> str:
    if getattr(args, "verbose", False):
        return VERBOSE
    return QUIET if getattr(args, "quiet", False) else NORMAL


class _ConsoleFilter(logging.Filter):
    """Keeps the log file's own records, and (unless verbose) library warnings, off the console."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, FILE_ONLY, False):
            return False
        return self.verbose or record.name != "py.warnings"


@contextmanager
def console_logging(level: str) -> Iterator[None]:
    """Log records on the console by ``level``, Python warnings through logging, for one
    command; everything is put back afterwards (tests run many commands in one process)."""
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setLevel({QUIET: logging.ERROR, NORMAL: logging.WARNING,
                      VERBOSE: logging.DEBUG}[level])
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    handler.addFilter(_ConsoleFilter(level == VERBOSE))
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level == VERBOSE else logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(previous)


@contextmanager
def run_log(folder: Path, args: argparse.Namespace,
            settings: Mapping[str, Any] | None = None) -> Iterator[Path]:
    """``folder/logs/run-<timestamp>.log`` for one command: the full record of the run.

    Open it once the command has checked its output folder (a refused folder gets no log).
    Worker processes write their warnings into it too, unless the console is verbose.
    """
    import yaml

    from dlrn import __version__
    from dlrn.io import RUN_LOGS
    from dlrn.parallel import worker_warnings_to
    from dlrn.study.memory import MemoryPeak

    path = folder / RUN_LOGS / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    log.info("dlrn %s (Python %s): dlrn %s", __version__, sys.version.split()[0],
             " ".join(getattr(args, "command_line", [])))
    if settings is not None:
        log.info("settings:\n%s", yaml.safe_dump(dict(settings), sort_keys=False, width=100),
                 extra={FILE_ONLY: True})  # the study file's own view, too long for a console
    started = time.perf_counter()
    try:
        with MemoryPeak() as memory:
            if console_level(args) == VERBOSE:  # workers print their warnings, as before
                yield path
            else:
                with worker_warnings_to(path):
                    yield path
    except BaseException:
        log.error("the command stopped:", exc_info=True, extra={FILE_ONLY: True})
        raise
    finally:
        log.info("finished in %.1f s, peak memory %.0f MB (this process and its workers)",
                 time.perf_counter() - started, memory.peak_mb)
        root.removeHandler(handler)
        handler.close()


class Console:
    """The lines a command prints for its user, by console level (quiet prints none)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.level = console_level(args)

    @property
    def progress(self) -> bool:
        return self.level != QUIET

    def say(self, *lines: str) -> None:
        if self.level != QUIET:
            for line in lines:
                print(line)

    def stage_done(self, record: Any) -> None:
        """The status line of a stage as soon as it ends (a ``run_stages`` listener)."""
        self.say(status_line(record))

    def cautions(self, cautions: Iterable[tuple[str, str]]) -> None:
        """What needs action: ``(where, caution)`` pairs, under one heading."""
        listed = [f"  {where}: {caution}" if where else f"  {caution}"
                  for where, caution in cautions]
        if listed:
            self.say("", "Needs attention:", *listed)


def noted(raised: Any) -> str:
    """'3 notes': how many kinds of note a command's work raised (each kept in the log)."""
    count = len(raised.remarks) + len(raised.cautions)
    return f"{count} note{'s' * (count != 1)}"


def status_line(record: Any) -> str:
    """One line per stage: its name, what happened, its time and how many notes it has."""
    if record.status == "skipped":
        return f"  {record.name:<16} skipped ({record.reason})"
    state = "reused" if record.reused else record.status
    summary = record.summary
    noted = len(summary.notes) + len(summary.cautions)
    timing = "" if record.reused else f"{record.seconds:5.0f} s"
    notes = f"   {noted} note{'s' * (noted != 1)} in the report" if noted else ""
    return f"  {record.name:<16} {state:<7}{timing}{notes}".rstrip()


def auc_cell(row: Any, chosen: bool = False) -> str:
    """'0.922 (0.841-0.984)', starred when the model is the one chosen."""
    if row is None or row["auc"] != row["auc"]:  # absent, or NaN (one-class set)
        return "n/a"
    text = f"{row['auc']:.3f} ({row['auc_ci_low']:.3f}-{row['auc_ci_high']:.3f})"
    return text + (" *" if chosen else "")


def table_lines(title: str, columns: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    """A plain-text table: a title line, the column heads, then one line per row."""
    width = max(len(name) for name, _ in rows) + 4
    head = " " * width + "".join(f"{column:<{AUC_CELL + 2}}" for column in columns)
    lines = [title, head.rstrip()]
    for name, cells in rows:
        lines.append((f"  {name:<{width - 2}}"
                      + "".join(f"{cell:<{AUC_CELL + 2}}" for cell in cells)).rstrip())
    return lines


def model_auc_lines(aucs: Any, chosen: Iterable[str] = (), *,
                    title: str = "AUC (95% CI); * the model chosen on the training data"
                    ) -> list[str]:
    """Each model (a row) on each set (a column) of an AUC table (``model``, ``set``,
    ``auc``, ``auc_ci_low``, ``auc_ci_high``)."""
    picked = set(chosen)
    sets = list(dict.fromkeys(aucs["set"]))
    by_key = {(row["model"], row["set"]): row for _, row in aucs.iterrows()}
    rows = [(model, [auc_cell(by_key.get((model, name)), model in picked) for name in sets])
            for model in dict.fromkeys(aucs["model"])]
    return table_lines(title, sets, rows)
