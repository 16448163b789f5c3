"""Bad input is one clear diagnostic on that file, never a traceback, and checking goes on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fmbuild.vault.load import load_vault


def check_json(fmbuild, vault: Path) -> tuple[int, list[tuple[str, int, int, str]]]:
    result = fmbuild("check", "--vault", str(vault), "--format", "json", "--no-cache")
    assert "Traceback" not in result.stderr
    found = json.loads(result.stdout)
    return result.exit_code, [(d["path"], d["line"], d["column"], d["code"]) for d in found]


GOOD = {"good.md": "# Good\n\n[[broken-one]]\n"}
GOOD_FINDING = ("good.md", 3, 1, "link-broken")


def test_malformed_yaml(fmbuild, write_files) -> None:
    vault = write_files({**GOOD, "bad.md": "---\ntitle: ok\nlist: [a, b\nnext: x\n---\n# Body\n"})
    code, found = check_json(fmbuild, vault)
    assert code == 1
    assert found == [("bad.md", 4, 5, "frontmatter-invalid"), GOOD_FINDING]


def test_yaml_tab_indentation(fmbuild, write_files) -> None:
    vault = write_files({"bad.md": "---\ntitle: ok\n\tmaturity: draft\n---\n"})
    code, found = check_json(fmbuild, vault)
    assert code == 1 and found == [("bad.md", 3, 1, "frontmatter-invalid")]


def test_non_utf8_bytes(fmbuild, write_files) -> None:
    vault = write_files({**GOOD, "latin1.md": "# Caf\xe9\n\nline two caf\xe9\n".encode("latin-1")})
    code, found = check_json(fmbuild, vault)
    assert code == 1
    assert found == [GOOD_FINDING, ("latin1.md", 1, 6, "encoding")]


def test_encoding_message_says_where_and_what_to_do(fmbuild, write_files) -> None:
    vault = write_files({"x.md": b"ok\nab\xff"})
    result = fmbuild("check", "--vault", str(vault), "--no-cache")
    assert "x.md:2:3: error[encoding] not valid UTF-8 (byte 0xff at offset 5)" in result.stdout
    assert "UTF-8" in result.stdout


def test_symlink_out_of_the_vault(fmbuild, write_files, tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret [[leak]]\n", encoding="utf-8")
    vault = write_files(GOOD)
    (vault / "link.md").symlink_to(outside)
    (vault / "dir-link").symlink_to(tmp_path, target_is_directory=True)
    code, found = check_json(fmbuild, vault)
    assert code == 1
    assert found == [("dir-link", 0, 0, "path-escape"), GOOD_FINDING, ("link.md", 0, 0, "path-escape")]


def test_symlink_inside_the_vault_is_followed_and_dangling_one_reported(fmbuild, write_files) -> None:
    vault = write_files({"real.md": "# Real\n", "a.md": "[[alias]] [[gone]]\n"})
    (vault / "alias.md").symlink_to(vault / "real.md")
    (vault / "gone.md").symlink_to(vault / "nowhere.md")
    code, found = check_json(fmbuild, vault)
    assert found == [("a.md", 1, 11, "link-broken"), ("gone.md", 0, 0, "file-unreadable")]


def test_file_over_the_size_limit(fmbuild, write_files) -> None:
    vault = write_files({**GOOD, "huge.md": "x" * (2 * 1024 * 1024 + 1), "big.png": b"\0" * (2 * 1024 * 1024 + 1),
                         "links.md": "[[huge]] ![[big.png]]\n"})
    code, found = check_json(fmbuild, vault)
    assert code == 1
    # The files still exist for links; each is one diagnostic.
    assert found == [("big.png", 0, 0, "file-too-large"), GOOD_FINDING, ("huge.md", 0, 0, "file-too-large")]


def test_size_limit_comes_from_the_config(fmbuild, fixture_vault) -> None:
    project = fixture_vault("core-manual")
    (project / "vault" / "sources" / "blob.pdf").write_bytes(b"\0" * 70_000)  # limit is 65536 there
    result = fmbuild("check", "--format", "json", cwd=project)
    found = json.loads(result.stdout)
    assert [(d["path"], d["code"]) for d in found] == [("sources/blob.pdf", "file-too-large")]
    assert "70,000 bytes is over the limit of 65,536" in found[0]["message"]


def test_unreadable_folder(fmbuild, write_files, monkeypatch) -> None:
    vault = write_files({**GOOD, "locked/inside.md": "# hidden\n"})
    real_scandir = os.scandir

    def scandir(path):  # the suite may run as root, for whom chmod 000 locks nothing
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, found = check_json(fmbuild, vault)
    assert code == 1
    assert found == [GOOD_FINDING, ("locked", 0, 0, "file-unreadable")]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file_for_real(fmbuild, write_files) -> None:
    vault = write_files({**GOOD, "secret.md": "# no\n"})
    (vault / "secret.md").chmod(0)
    try:
        code, found = check_json(fmbuild, vault)
    finally:
        (vault / "secret.md").chmod(0o644)
    assert ("secret.md", 0, 0, "file-unreadable") in found


def test_every_bad_input_at_once_still_checks_the_rest(write_files, tmp_path: Path) -> None:
    outside = tmp_path / "o.md"
    outside.write_text("x", encoding="utf-8")
    vault = write_files({
        **GOOD,
        "yaml.md": "---\n: : :\n---\n",
        "bytes.md": b"\xc3\x28",
        "huge.md": "y" * (3 * 1024 * 1024),
    })
    (vault / "escape.md").symlink_to(outside)
    loaded = load_vault(vault, None, use_cache=False)
    assert set(loaded.notes) == {"good.md", "yaml.md"}
    assert loaded.unparsed == {"bytes.md", "huge.md"}
    assert sorted((d.path, d.code) for d in loaded.problems) == [
        ("bytes.md", "encoding"), ("escape.md", "path-escape"), ("huge.md", "file-too-large"),
    ]
    assert [p.code for p in loaded.notes["yaml.md"].problems] == ["frontmatter-invalid"]


def test_nested_templates_folder_from_the_config(fmbuild, fixture_vault) -> None:
    project = fixture_vault("core-manual")
    config = project / "fmbuild.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('templates = "templates"', 'templates = "meta/tpl"'))
    (project / "vault" / "templates").rename(project / "vault" / "sources" / "tpl-moved")
    (project / "vault" / "meta" / "tpl").mkdir(parents=True)
    (project / "vault" / "meta" / "tpl" / "t.md").write_text("---\ntags: [nonsense]\n---\n[[nothing]]\n")
    (project / "vault" / "sources" / "tpl-moved").rename(project / "vault" / "meta" / "tpl" / "more")
    result = fmbuild("check", "--format", "json", "--no-cache", cwd=project)
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_file_name_that_is_not_utf8(fmbuild, write_files) -> None:
    vault = write_files(GOOD)
    try:
        with open(os.path.join(os.fsencode(vault), b"bad-\xff-name.md"), "wb") as fh:
            fh.write(b"# x\n")
    except OSError:
        pytest.skip("this file system refuses such names")
    code, found = check_json(fmbuild, vault)
    assert code == 1
    assert found == [("bad-\ufffd-name.md", 0, 0, "encoding"), GOOD_FINDING]


# --- hostile claims and format specs: check, graph, verify and build all answer -------------------

HOSTILE_CLAIMS = {
    "clean_accuracy": ">= " + "-" * 1500 + "1",
    "fgsm.accuracy": "<= " + "(" * 5000 + "1",
    "fgsm.epsilon": "== " + "9" * 5000,
}


def _hostile_project(tmp_path: Path, claims: dict[str, str], prose: str = "") -> Path:
    from browser.sitekit import copy_fixture

    root = copy_fixture(tmp_path / "project")
    note = root / "vault" / "techniques" / "evasion.md"
    text = note.read_text(encoding="utf-8")
    head, body = text.split("  claims:\n", 1)
    rest = body.split("---\n", 1)[1]
    lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in claims.items())
    note.write_text(head + "  claims:\n" + lines + "---\n" + rest + prose, encoding="utf-8")
    return root


def test_hostile_claims_are_diagnostics_in_every_command(fmbuild, tmp_path: Path) -> None:
    root = _hostile_project(tmp_path, HOSTILE_CLAIMS)
    check = fmbuild("check", "--format", "json", "--no-cache", cwd=root)
    found = {(d["code"], d["message"].split(": ", 1)[0]) for d in json.loads(check.stdout)}
    assert check.exit_code == 1
    assert sum(1 for code, _ in found if code == "claim-invalid") == 3, found
    messages = " ".join(d["message"] for d in json.loads(check.stdout))
    assert "characters long (at most 500)" in messages
    for args in (["graph", "--format", "json"], ["build", "--output", str(tmp_path / "out")],
                 ["verify", "toy-evasion", "--format", "json", "--isolation", "subprocess", "--scale", "smoke"]):
        result = fmbuild(*args, cwd=root)
        combined = result.stdout + result.stderr
        assert "Traceback" not in combined and "RecursionError" not in combined, args
        assert "Exceeds the limit" not in combined, args  # Python's int-string ValueError
        assert result.exit_code in (0, 1, 2), (args, combined[-500:])


@pytest.mark.parametrize("spec, column, fragment", [
    (">99999999999", 2, "width 99999999999 is over 40"),
    (".999999999f", 2, "precision 999999999 is over 12"),
    (".3q", 3, "unexpected 'q' at character 3"),
])
def test_a_bad_format_spec_is_reported_at_its_column_and_never_used(fmbuild, tmp_path: Path, spec: str, column: int,
                                                                     fragment: str) -> None:
    prose = f"\nMeasured {{{{evidence:clean_accuracy:{spec}}}}} here.\n"
    root = _hostile_project(tmp_path, {"clean_accuracy": ">= 0.9"}, prose)
    check = fmbuild("check", "--format", "json", "--no-cache", cwd=root)
    bad = [d for d in json.loads(check.stdout) if d["code"] == "metric-format-invalid"]
    assert len(bad) == 1 and fragment in bad[0]["message"]
    line = (root / "vault" / "techniques" / "evasion.md").read_text().splitlines().index(prose.strip()) + 1
    assert (bad[0]["line"], bad[0]["column"]) == (line, len("Measured {{evidence:clean_accuracy:") + column)
    from browser.sitekit import build

    report = build(root, fail_on_check=False)  # the site shows the value plainly: no 100 GB string
    page = (report.output / "techniques" / "evasion" / "index.html").read_text(encoding="utf-8")
    assert ">0.9733</span>" in page


def test_a_link_name_many_notes_bear_lists_a_handful(fmbuild, write_files) -> None:
    files = {f"f{i}/same.md": "# Same\n" for i in range(40)}
    files["index.md"] = "# Index\n\n[[same]]\n"
    vault = write_files(files)
    result = fmbuild("check", "--vault", str(vault), "--format", "json", "--no-cache")
    message = next(d["message"] for d in json.loads(result.stdout) if d["code"] == "link-ambiguous")
    assert "matches 40 files" in message and "… and 35 more" in message
    assert message.count("same.md") <= 6  # five candidates and the suggested path
