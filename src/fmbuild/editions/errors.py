"""The one error type of the Editions commands: a message a user can act on, and its exit code."""

from __future__ import annotations

from fmbuild.errors import EXIT_FINDINGS, EXIT_USAGE, FmError

__all__ = ["EXIT_FINDINGS", "EXIT_USAGE", "EditionError"]


class EditionError(FmError):
    """A refusal or failure explained in one line (and, optionally, the lines that detail it):
    a bad name, a missing file, an Edition that exists (usage, 2); not ready to cut, an Edition
    that does not verify (findings, 1)."""
