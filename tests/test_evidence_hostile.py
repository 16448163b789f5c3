"""Hostile modules (tests/hostile/) against both executors: each ends in a clear status within its
bound, leaves nothing running, and the runner stays healthy afterwards."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from fmbuild.evidence import safe_read
from fmbuild.evidence.devices import GpuInfo
from fmbuild.evidence.isolation import (
    BubblewrapExecutor,
    SubprocessExecutor,
    bwrap_usable,
    cgroups_available,
    memory_cgroups_available,
)
from test_evidence_support import add_hostile, make_project, run_modules

SECRET = "s3cr3t-" + uuid.uuid4().hex

needs_bwrap = pytest.mark.skipif(not bwrap_usable()[0], reason=f"bubblewrap unusable here: {bwrap_usable()[1]}")
needs_cgroup = pytest.mark.skipif(not cgroups_available(), reason="no writable pids cgroup on this host")

EXECUTORS = [
    pytest.param(BubblewrapExecutor, id="bubblewrap", marks=needs_bwrap),
    pytest.param(SubprocessExecutor, id="subprocess"),
]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def run_one(project: Path, name: str, executor_cls: type, **options) -> object:
    start = time.monotonic()
    result = run_modules(project, name, executor=executor_cls(), use_cache=False, **options)[name]
    result.wall = time.monotonic() - start  # type: ignore[attr-defined]
    return result


@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_secrets_of_the_parent_stay_out(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        executor_cls: type) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(f"aws_secret_access_key = {SECRET}\n")
    (project / ".git").mkdir()
    (project / ".git" / "config").write_text(f"[http]\n\textraheader = AUTHORIZATION: bearer {SECRET}\n")
    monkeypatch.setenv("FMBUILD_HOSTILE_SECRET", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    add_hostile(project, "steal-secret", module_toml=(
        f'[params]\ncredentials = "{home / ".aws" / "credentials"}"\ngit_config = "{project / ".git" / "config"}"\n'
    ))
    r = run_one(project, "steal-secret", executor_cls)
    assert r.status == "passed", r.reason + r.log_tail
    assert r.metrics["saw_secret_env"] is False
    assert "FMBUILD_HOSTILE_SECRET" not in r.metrics["env_names"] and "GITHUB_TOKEN" not in r.metrics["env_names"]
    log = (r.run_dir / "log.txt").read_text()
    if executor_cls is BubblewrapExecutor:
        assert r.metrics["read_credentials"] is False
        assert r.metrics["read_git_config"] is False
        assert SECRET not in log
    else:
        # The fallback cannot hide files: it says so, and the log it keeps is still redacted.
        assert "hidden home folder" in r.isolation
        assert SECRET not in log


@needs_bwrap
def test_repository_is_read_only(project: Path) -> None:
    add_hostile(project, "write-repo")
    r = run_one(project, "write-repo", BubblewrapExecutor)
    assert r.status == "passed", r.reason + r.log_tail
    assert all(r.metrics["blocked"].values()), r.metrics
    assert not (project / "evidence" / "write-repo" / "planted.txt").exists()
    assert not (project / "planted.txt").exists()
    assert not Path("/usr/planted.txt").exists()


def test_fallback_names_what_it_lacks(project: Path) -> None:
    # Never run write-repo without the sandbox: it would really write into /usr and the venv.
    r = run_one(project, "ev-uncited", SubprocessExecutor)
    assert r.status == "passed"
    assert r.isolation.startswith("subprocess (weaker: no read-only repository, no network isolation")


@needs_bwrap
def test_no_network_but_loopback(project: Path) -> None:
    add_hostile(project, "network")
    r = run_one(project, "network", BubblewrapExecutor)
    assert r.status == "passed", r.reason + r.log_tail
    assert r.metrics == {"external": False, "loopback": True}
    assert r.wall < 20


@needs_cgroup
@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_fork_swarm_is_capped_and_cleaned_up(project: Path, executor_cls: type) -> None:
    add_hostile(project, "fork-swarm")
    r = run_one(project, "fork-swarm", executor_cls)
    assert r.status == "passed", r.reason + r.log_tail
    assert r.metrics["refused"] is True
    assert r.metrics["spawned"] < 64  # max_processes of the fixture project, which we run as root
    assert r.wall < 30
    assert processes_mentioning(str(project / "evidence" / "fork-swarm")) == []


@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_print_flood_is_capped(project: Path, executor_cls: type) -> None:
    add_hostile(project, "print-flood")
    r = run_one(project, "print-flood", executor_cls)
    assert r.status == "passed", r.reason
    log = (r.run_dir / "log.txt").read_bytes()
    assert len(log) < 1.2 * 1024 * 1024  # max_log_mb = 1
    assert b"bytes of output cut here" in log
    assert b"the run printed 209715210 bytes" in log
    assert b"FLOOD-END" in log  # the tail is kept
    assert r.wall < 60


@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_sleeper_behind_children_times_out_and_everything_dies(project: Path, executor_cls: type) -> None:
    marker = "fmbuild-sleeper-" + uuid.uuid4().hex
    # Without a pids cgroup the fallback cannot reach a daemon that left the session (it says so
    # in its isolation text); the module then keeps to an ordinary child, so no test leaks one.
    daemon = executor_cls is BubblewrapExecutor or cgroups_available()
    params = f'[params]\nmarker = "{marker}"\ndaemon = {str(daemon).lower()}\n'
    add_hostile(project, "sleeper", timeout=3, module_toml=params)
    r = run_one(project, "sleeper", executor_cls)
    assert r.status == "timeout"
    assert "timed out after 3 s" in r.reason
    assert r.wall < 3 + 10
    time.sleep(0.2)
    assert processes_mentioning(marker) == []


@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_memory_hog_hits_the_limit(project: Path, executor_cls: type) -> None:
    add_hostile(project, "memory-hog")
    r = run_one(project, "memory-hog", executor_cls)
    assert r.status == "error"
    assert "memory limit" in r.reason and "1024 MB" in r.reason
    assert "MemoryError" in r.log_tail
    assert r.wall < 30


@needs_bwrap
def test_runner_stays_healthy_after_hostile_runs(project: Path) -> None:
    for name in ("fork-swarm", "print-flood", "memory-hog"):
        add_hostile(project, name)
    got = run_modules(project, "fork-swarm", "print-flood", "memory-hog", "ev-pass", parallel=2, use_cache=False)
    assert got["ev-pass"].status == "passed"
    assert got["fork-swarm"].status == "passed" and got["print-flood"].status == "passed"
    assert got["memory-hog"].status == "error"
    leftovers = list((project / ".fmbuild" / "evidence" / "work").iterdir())
    assert leftovers == []  # every run folder moved to the cache or to last/


@pytest.mark.skipif(not memory_cgroups_available(), reason="no writable memory cgroup on this host")
@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_memory_hog_on_a_gpu_run_hits_the_memory_cgroup(project: Path, executor_cls: type) -> None:
    # GPU runs cannot have an address-space limit (CUDA maps tens of GB), so the memory cgroup
    # must hold instead. The GPU is mocked: device nodes that do not exist are bound with -try.
    add_hostile(project, "memory-hog", module_toml='device = "gpu"\n')
    gpu = GpuInfo(True, ("Mock GPU",), "mocked", ("/dev/nvidia-fmbuild-test0",))
    r = run_one(project, "memory-hog", executor_cls, gpu=gpu, host="cuda")
    assert r.device == "cuda"
    assert "memory cgroup" in r.isolation and "address space" not in r.isolation.split("memory 1024 MB")[0]
    assert r.status == "error"
    assert "memory limit" in r.reason and "1024 MB" in r.reason
    assert r.wall < 60


# --- nothing a run leaves is followed outside its folder (issue 23, item 1) ---------------------

def _host_file(tmp_path: Path) -> Path:
    """A host file the module cannot read, shaped so that following it would parse as metrics."""
    secret = tmp_path / "host-only" / "credentials.json"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"value": SECRET}))
    return secret


def _odd(project: Path, mode: str, **params: object) -> None:
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in params.items())
    add_hostile(project, "odd-outputs", module_toml=f'[params]\nmode = "{mode}"\n{lines}')


@pytest.mark.parametrize("executor_cls", EXECUTORS)
@pytest.mark.parametrize("mode", ["symlink-metrics", "symlink-dir-metrics"])
def test_a_symlinked_metrics_file_is_never_followed(project: Path, tmp_path: Path, executor_cls: type,
                                                     mode: str) -> None:
    _odd(project, mode, target=str(_host_file(tmp_path)))
    r = run_one(project, "odd-outputs", executor_cls, record=True)
    assert r.status == "error"
    assert r.reason == "metrics.json is a symbolic link (never followed); not read"
    assert SECRET not in json.dumps(r.as_dict())
    assert not (project / "evidence" / "odd-outputs" / "record").exists()


@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_a_fifo_metrics_file_is_never_opened(project: Path, executor_cls: type) -> None:
    _odd(project, "fifo-metrics")
    start = time.monotonic()
    r = run_one(project, "odd-outputs", executor_cls)
    assert r.status == "error" and r.reason == "metrics.json is a FIFO (never opened); not read"
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_a_hard_link_to_a_host_file_is_not_read(project: Path, executor_cls: type) -> None:
    """Inside bubblewrap link() across the read-only bind fails (EXDEV); without it the link
    works, and the runner refuses a metrics file with more than one name."""
    secret = project / "host-secret.json"  # in the repository: visible to the run, same file system
    secret.write_text(json.dumps({"value": SECRET}))
    _odd(project, "hardlink-metrics", target=str(secret))
    r = run_one(project, "odd-outputs", executor_cls)
    assert SECRET not in json.dumps(r.as_dict())
    if executor_cls is BubblewrapExecutor:  # the read-only bind is another mount: link() fails
        assert r.status == "passed", r.reason + r.log_tail
        assert r.metrics["linked"] is False and r.metrics["link_error"] == "Invalid cross-device link"
    else:
        assert r.status == "error"
        assert r.reason == "metrics.json is a hard link (2 names; only files the run wrote itself are read); not read"


@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_odd_artifacts_are_neither_copied_nor_listed(project: Path, tmp_path: Path, executor_cls: type) -> None:
    _odd(project, "artifacts", target=str(_host_file(tmp_path)))
    r = run_one(project, "odd-outputs", executor_cls, record=True)
    assert r.status == "passed", r.reason + r.log_tail
    assert r.artifacts == ["plot.png"]
    log = (r.run_dir / "log.txt").read_text()
    for name, why in [("stolen.txt", "a symbolic link"), ("hostdir", "a symbolic link"), ("pipe", "a FIFO"),
                      ("own.txt", "a hard link"), ("own-again.txt", "a hard link")]:
        assert f"[fmbuild: output {name} not read, copied or listed: it is {why}" in log, name
    record = project / "evidence" / "odd-outputs" / "record"
    assert sorted(p.name for p in (record / "artifacts").iterdir()) == ["plot.png"]
    assert SECRET not in "".join(p.read_text(errors="replace") for p in record.rglob("*") if p.is_file())


# --- metrics read with bounds; NaN and Infinity refused (issue 23, item 7) ----------------------

@pytest.mark.parametrize(("mode", "reason"), [
    ("nan", "metrics.json holds NaN, which is not a number a claim can be judged on"),
    ("infinity", "metrics.json holds -Infinity, which is not a number a claim can be judged on"),
    ("overflow", "metrics.json holds 1e999, which overflows a float"),
    ("long-number", "metrics.json holds a 5000-digit number (at most 100 characters)"),
    ("deep", "metrics.json is nested deeper than 32 levels"),
])
def test_metrics_that_cannot_be_judged_are_an_error(project: Path, mode: str, reason: str) -> None:
    _odd(project, mode)
    add_claims = project / "vault" / "techniques" / "odd-outputs.md"
    add_claims.write_text(add_claims.read_text().replace("  module: evidence/odd-outputs\n",
                                                         "  module: evidence/odd-outputs\n  claims:\n    value: '!= 0.5'\n"))
    r = run_one(project, "odd-outputs", SubprocessExecutor, record=True)
    assert (r.status, r.reason) == ("error", reason)
    assert not (project / "evidence" / "odd-outputs" / "record").exists()


def test_a_huge_metrics_file_is_refused_without_being_read(project: Path) -> None:
    config = project / "fmbuild.toml"
    config.write_text(config.read_text().replace("seed = 0\n", "seed = 0\nmax_metrics_mb = 2\n"))
    _odd(project, "huge", mb=20)
    start = time.monotonic()
    r = run_one(project, "odd-outputs", SubprocessExecutor)
    assert r.status == "error"
    assert r.reason.startswith("metrics.json is ") and r.reason.endswith("bytes, over the 2097152-byte limit; not read")
    assert time.monotonic() - start < 30


# --- memory and disk bound a run, not a process (issue 23, item 12) -----------------------------

@pytest.mark.skipif(not memory_cgroups_available(), reason="no writable memory cgroup on this host")
@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_children_together_hit_the_run_memory_limit(project: Path, executor_cls: type) -> None:
    """Four children of 300 MB each pass a 1024 MB per-process limit; the run's cgroup holds 1024 MB."""
    add_hostile(project, "memory-children", module_toml="[params]\neach_mb = 300\nchildren = 4\n")
    r = run_one(project, "memory-children", executor_cls)
    assert "for the whole run (memory cgroup)" in r.isolation
    killed = r.status == "error" or any(code != 0 for code in r.metrics.get("exit_codes", []))
    assert killed, r.metrics
    assert r.wall < 60


@pytest.mark.parametrize("executor_cls", EXECUTORS)
def test_files_of_a_run_are_bounded_together(project: Path, executor_cls: type) -> None:
    """Four 40 MB files are each under the 64 MB file limit; together they pass a 100 MB run limit."""
    config = project / "fmbuild.toml"
    config.write_text(config.read_text().replace("seed = 0\n", "seed = 0\nmax_output_mb = 100\n"))
    add_hostile(project, "disk-filler", module_toml="[params]\neach_mb = 40\nfiles = 4\n")
    r = run_one(project, "disk-filler", executor_cls)
    assert r.status == "error"
    assert "over its 100 MB limit for all its files together" in r.reason
    state = project / ".fmbuild"
    assert safe_read.tree_bytes(state) < 50 * 1024 * 1024  # nothing of it stays behind
    assert r.wall < 60


def test_a_failed_run_keeps_no_large_outputs(project: Path) -> None:
    add_hostile(project, "disk-filler", module_toml="[params]\neach_mb = 40\nfiles = 4\n",
                note_claims={"written_mb": "> 1000"})
    r = run_one(project, "disk-filler", SubprocessExecutor)
    assert r.status == "failed"
    assert not (r.run_dir / "out").exists()
    assert "the failed run's outputs (80 MB) were removed" in (r.run_dir / "log.txt").read_text()


def test_an_abandoned_run_folder_is_swept_at_once(project: Path) -> None:
    work = project / ".fmbuild" / "evidence" / "work" / "ev-pass-deadbeef"
    (work / "out").mkdir(parents=True)
    (work / "out" / "big.bin").write_bytes(b"\0" * 1024)
    run_one(project, "ev-uncited", SubprocessExecutor)
    assert not work.exists()
