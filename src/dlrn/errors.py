"""Errors a user can act on.

Every problem caused by the user's data or settings is raised as a
:class:`DlrnError` (or a subclass) whose message names the file, row, case or
setting at fault. The CLI prints these without a traceback; anything else is a
bug in dlrn and keeps its traceback.
"""

from __future__ import annotations


class DlrnError(Exception):
    """A problem with the user's input or settings, explained in the message."""


class ConfigError(DlrnError):
    """A study file or command-line setting is invalid."""
