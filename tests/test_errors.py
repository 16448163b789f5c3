"""One error type, handled once by the command group: message, fix and exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fmbuild import cli as cli_module
from fmbuild.cli import cli
from fmbuild.config import ConfigError
from fmbuild.editions.errors import EditionError
from fmbuild.errors import FmError
from fmbuild.evidence.merge import MergeError
from fmbuild.evidence.selection import SelectionError
from fmbuild.scaffold.create import ScaffoldError
from fmbuild.site.build import BuildError
from fmbuild.site.output import OutputError


@pytest.mark.parametrize("cls", [ConfigError, EditionError, MergeError, SelectionError, ScaffoldError, BuildError,
                                 OutputError])
def test_every_user_error_is_an_fmerror(cls: type) -> None:
    assert issubclass(cls, FmError)


def test_lines_carry_message_details_and_fix() -> None:
    exc = FmError("the key is inside the repository", fix="move it to ~/.config/fmbuild", details=["key.pem"])
    assert exc.lines() == ["fmbuild: error: the key is inside the repository", "  key.pem",
                           "  fix: move it to ~/.config/fmbuild"]
    assert exc.exit_code == 2 and BuildError("x").exit_code == 1


def test_a_configuration_error_exits_2_with_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fmbuild.toml").write_text("[vault\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 2
    assert result.output.startswith("fmbuild: error: ") and "fmbuild.toml" in result.output
    assert "Traceback" not in result.output


def test_a_bug_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command("boom")
    def boom() -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(cli_module.COMMANDS, "boom", "boom")
    monkeypatch.setattr(cli_module.LazyGroup, "get_command", lambda self, ctx, name: boom if name == "boom" else None)
    monkeypatch.delenv("FMBUILD_DEBUG", raising=False)
    result = CliRunner().invoke(cli, ["boom"])
    assert result.exit_code == 1
    assert result.output.strip() == ("fmbuild: internal error: ZeroDivisionError: division by zero (a bug in fmbuild, "
                                     "not in your files; run again with FMBUILD_DEBUG=1 for the traceback and report it)")
    monkeypatch.setenv("FMBUILD_DEBUG", "1")
    assert isinstance(CliRunner().invoke(cli, ["boom"]).exception, ZeroDivisionError)
