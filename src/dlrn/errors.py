"""Errors a user can act on.

Every problem caused by the user's data or settings is raised as a
:class:`DlrnError` (or a subclass) whose message names the file, row, case or
setting at fault. The CLI prints these without a traceback; anything else is a
bug in dlrn and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class DlrnError(Exception):
    """A problem with the user's input or settings, explained in the message."""


class ConfigError(DlrnError):
    """A study file or command-line setting is invalid."""


def shown_items(items: Iterable[object], limit: int = 10) -> str:
    """The first ``limit`` items for an error message, then "and N more", so messages stay short."""
    listed = [str(item) for item in items]
    more = f" and {len(listed) - limit} more" if len(listed) > limit else ""
    return ", ".join(listed[:limit]) + more
