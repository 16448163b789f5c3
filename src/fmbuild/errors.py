"""The one error type a user can cause: what went wrong, how to fix it, and the exit code.

Every command's user-facing error derives from `FmError`; the command group handles it once
(`fmbuild.cli`), printing `fmbuild: error: <message>`, any detail lines, and the fix, then
exiting with the error's code (2 usage or configuration by default, 1 for findings). Anything
else that escapes a command is a bug in fmbuild, reported in one line, never as a traceback
(`FMBUILD_DEBUG=1` shows it).
"""

from __future__ import annotations

EXIT_FINDINGS = 1
EXIT_USAGE = 2


class FmError(Exception):
    exit_code = EXIT_USAGE

    def __init__(self, message: str = "", *, fix: str = "", details: list[str] | None = None,
                 exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.details = list(details or [])
        if exit_code is not None:
            self.exit_code = exit_code

    def lines(self) -> list[str]:
        out = [f"fmbuild: error: {self.message or self}"]
        out += [f"  {line}" for line in self.details]
        if self.fix:
            out.append(f"  fix: {self.fix}")
        return out
