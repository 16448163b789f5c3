"""The one error type of the Editions commands: a message a user can act on, and its exit code."""

from __future__ import annotations

EXIT_FINDINGS = 1  # not ready to cut, an Edition that does not verify
EXIT_USAGE = 2  # a bad name, a missing file, an Edition that exists


class EditionError(Exception):
    """A refusal or failure explained in one line (and, optionally, the lines that detail it)."""

    def __init__(self, message: str, *, details: list[str] | None = None, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.exit_code = exit_code
