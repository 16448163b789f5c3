"""Isolation pieces: the sandbox's view, the environment allowlist, the capped log, the choice of
executor when bubblewrap is missing, and what the fallback says it lacks."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

import fmbuild.evidence.isolation as isolation
from fmbuild.evidence.capture import CappedLog, tail_lines
from fmbuild.evidence.isolation import (
    SANDBOX_OUT,
    BubblewrapExecutor,
    IsolationError,
    Launch,
    SubprocessExecutor,
    bwrap_usable,
    choose_executor,
)
from fmbuild.evidence.limits import Limits, PidsCgroup
from test_evidence_support import add_hostile, fmbuild, make_project, run_modules

LIMITS = Limits(timeout_s=10, memory_mb=512, max_processes=32, max_file_mb=8, max_log_bytes=1 << 20)


def launch(tmp_path: Path, argv: list[str], env: dict[str, str] | None = None) -> Launch:
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return Launch(argv=argv, cwd=tmp_path, project_root=tmp_path, out_dir=tmp_path / "out",
                  tmp_dir=tmp_path / "tmp", env=env or {"PATH": "/usr/bin:/bin"})


def test_sandbox_view_hides_git_and_state(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".fmbuild").mkdir()
    args = BubblewrapExecutor().arguments(launch(tmp_path, ["true"]))
    joined = " ".join(args)
    assert f"--tmpfs {tmp_path / '.git'}" in joined and f"--tmpfs {tmp_path / '.fmbuild'}" in joined
    assert f"--ro-bind {tmp_path} {tmp_path}" in joined
    assert f"--bind {tmp_path / 'out'} {SANDBOX_OUT}" in joined
    for flag in ("--unshare-net", "--unshare-pid", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in args
    assert "--ro-bind /etc /etc" not in joined and "/etc/shadow" not in joined
    assert args.index("--remount-ro") > args.index(SANDBOX_OUT)
    assert str(Path(sys.base_prefix)) in args  # the interpreter is visible, read-only


def test_environment_is_an_allowlist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent")
    project = make_project(tmp_path)
    module = project / "evidence" / "ev-uncited"
    (module / "run.py").write_text(
        "import json, os\nfrom pathlib import Path\n"
        "(Path(os.environ['FMBUILD_OUT']) / 'metrics.json').write_text(json.dumps({'env': sorted(os.environ)}))\n"
    )
    for executor in (SubprocessExecutor(), *( [BubblewrapExecutor()] if isolation.bwrap_usable()[0] else [])):
        r = run_modules(project, "ev-uncited", executor=executor, use_cache=False)["ev-uncited"]
        names = set(r.metrics["env"])
        assert "AWS_SECRET_ACCESS_KEY" not in names and "SSH_AUTH_SOCK" not in names
        assert {"PATH", "HOME", "TMPDIR", "FMBUILD_OUT", "FMBUILD_DEVICE", "FMBUILD_SEED", "FMBUILD_SCALE"} <= names
        allowed_prefixes = ("FMBUILD_", "LC_", "PYTHON", "JUPYTER_", "MPL", "XDG_")
        allowed = {"PATH", "HOME", "TMPDIR", "LANG", "TZ", "VIRTUAL_ENV", "IPYTHONDIR", "PWD",
                   "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                   "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"}
        assert all(n in allowed or n.startswith(allowed_prefixes) for n in names), names


def test_file_size_limit(tmp_path: Path) -> None:
    code = "open('big', 'wb').write(b'x' * (16 * 1024 * 1024))"
    result = SubprocessExecutor().run(launch(tmp_path, [sys.executable, "-c", code]), LIMITS)
    assert result.returncode != 0
    assert result.signal_name == "SIGXFSZ" or b"File too large" in result.log


def test_missing_command_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = SubprocessExecutor().run(launch(tmp_path, ["/nonexistent/python"]), LIMITS)
    assert result.returncode == 127 and b"could not start" in result.log


def test_capped_log_keeps_head_and_tail() -> None:
    log = CappedLog(256 * 1024)
    for i in range(10_000):
        log.feed(f"line {i:05d} {'x' * 90}\n".encode())
    data = log.content()
    assert log.truncated and log.total > len(data)
    assert data.startswith(b"line 00000") and b"line 09999" in data[-200:]
    assert b"bytes of output cut here" in data
    assert len(data) < 256 * 1024 + 200


def test_small_log_is_kept_whole() -> None:
    log = CappedLog(1 << 20)
    log.feed(b"hello\n")
    assert log.content() == b"hello\n" and not log.truncated


def test_tail_lines() -> None:
    text = "\n".join(str(i) for i in range(100))
    assert tail_lines(text, 3) == "97\n98\n99"


def test_without_bubblewrap_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "bwrap_usable", lambda: (False, "bubblewrap (bwrap) is not installed"))
    assert isinstance(choose_executor("auto"), SubprocessExecutor)
    assert isolation.fallback_reason() == "bubblewrap (bwrap) is not installed"
    with pytest.raises(IsolationError, match="not installed"):
        choose_executor("bubblewrap")


def test_fallback_without_cgroups_says_it_has_no_process_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "cgroups_available", lambda: False)
    monkeypatch.setattr(isolation, "nproc_enforced", lambda: False)
    executor = SubprocessExecutor()
    assert "process limit" in executor.lacks()
    assert "no process limit" in executor.describe(LIMITS)
    assert "process limit" in BubblewrapExecutor().lacks()


def test_pids_cgroup_holds_for_root(tmp_path: Path) -> None:
    group = PidsCgroup.create(8)
    if group is None:
        pytest.skip("no writable pids cgroup here")
    group.remove()
    code = (
        "import os, time\nn = 0\n"
        "for _ in range(50):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(30); os._exit(0)\n"
        "    n += 1\nprint('forked', n)\n"
    )
    limits = Limits(timeout_s=20, memory_mb=512, max_processes=8, max_file_mb=8, max_log_bytes=1 << 20)
    result = SubprocessExecutor().run(launch(tmp_path, [sys.executable, "-c", code]), limits)
    forked = int(result.log.decode().split("forked")[1].split()[0])
    assert forked < 8
    assert result.killed_leftovers == forked  # the sleeping children were found and killed


# --- what enters a sandbox is the project's decision (issue 23, item 2) -------------------------

def _credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    secret = "cred-" + uuid.uuid4().hex
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "FMBUILD_EXTRA_DATA"):
        path = tmp_path / f"{name.lower()}.txt"
        path.write_text(f"secret = {secret}\n")
        monkeypatch.setenv(name, str(path))
    return secret


@pytest.mark.parametrize("executor_cls", [SubprocessExecutor, BubblewrapExecutor], ids=["subprocess", "bubblewrap"])
def test_a_module_cannot_ask_for_host_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  executor_cls: type) -> None:
    if executor_cls is BubblewrapExecutor and not bwrap_usable()[0]:
        pytest.skip("bubblewrap unusable here")
    project = make_project(tmp_path)
    secret = _credentials(tmp_path, monkeypatch)
    add_hostile(project, "declared-credentials")
    r = run_modules(project, "declared-credentials", executor=executor_cls(), record=True)["declared-credentials"]
    assert r.status == "passed", r.reason + r.log_tail
    assert all(not v["set"] for v in r.metrics["got"].values()), r.metrics
    assert r.not_passed == ["AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "FMBUILD_EXTRA_DATA"]
    log = (r.run_dir / "log.txt").read_text()
    assert ("[fmbuild: AWS_SHARED_CREDENTIALS_FILE is declared by the module but was not passed: only what "
            "fmbuild.toml [evidence] pass_env or --pass-env allows enters a sandbox, never a credential]") in log
    record = project / "evidence" / "declared-credentials" / "record"
    assert secret not in "".join(p.read_text() for p in record.rglob("*") if p.is_file())


def test_the_project_passes_what_it_allows_and_never_a_credential(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path)
    _credentials(tmp_path, monkeypatch)
    add_hostile(project, "declared-credentials")
    r = run_modules(project, "declared-credentials", executor=SubprocessExecutor(),
                    pass_env=("FMBUILD_EXTRA_DATA", "AWS_SHARED_CREDENTIALS_FILE"))["declared-credentials"]
    assert r.metrics["got"]["FMBUILD_EXTRA_DATA"] == {"set": True, "read": True}
    assert r.metrics["got"]["AWS_SHARED_CREDENTIALS_FILE"]["set"] is False  # refused even when allowed
    assert r.not_passed == ["AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS"]


def test_a_required_variable_the_project_does_not_pass_is_a_skip(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path)
    model = tmp_path / "model.bin"
    model.write_bytes(b"model")
    monkeypatch.setenv("FMBUILD_TEST_MODEL", str(model))
    r = run_modules(project, "ev-model-file", pass_env=())["ev-model-file"]
    assert (r.status, r.reason) == ("skipped", (
        "needs FMBUILD_TEST_MODEL (a test model file), which the project does not pass into a sandbox "
        "(allow it in fmbuild.toml [evidence] pass_env, or: --pass-env FMBUILD_TEST_MODEL)"))
    toml = project / "evidence" / "ev-model-file" / "module.toml"
    toml.write_text('env = { GOOGLE_APPLICATION_CREDENTIALS = "a key file" }\n')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(model))
    r = run_modules(project, "ev-model-file", pass_env=("GOOGLE_APPLICATION_CREDENTIALS",))["ev-model-file"]
    assert r.status == "skipped" and r.reason.startswith(
        "needs GOOGLE_APPLICATION_CREDENTIALS (a key file), which is never passed: "
        "GOOGLE_APPLICATION_CREDENTIALS looks like a credential")


def test_a_credential_in_pass_env_is_a_configuration_error(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    config = project / "fmbuild.toml"
    config.write_text(config.read_text().replace('pass_env = ["FMBUILD_TEST_MODEL"]',
                                                 'pass_env = ["FMBUILD_TEST_MODEL", "AWS_SHARED_CREDENTIALS_FILE"]'))
    done = fmbuild(project, "verify", "ev-pass")
    assert done.returncode == 2
    assert ("fmbuild.toml: [evidence].pass_env[1]: AWS_SHARED_CREDENTIALS_FILE looks like a credential; credentials "
            "never enter a sandbox (a run's output is published in its record)") in done.stderr
    assert "Traceback" not in done.stderr


def test_pass_env_on_the_command_line(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    done = fmbuild(project, "verify", "--pass-env", "GITHUB_TOKEN", "ev-pass")
    assert done.returncode == 2 and "--pass-env GITHUB_TOKEN: GITHUB_TOKEN looks like a credential" in done.stderr
    model = tmp_path / "model.bin"
    model.write_bytes(b"12345")
    config = project / "fmbuild.toml"
    config.write_text(config.read_text().replace('pass_env = ["FMBUILD_TEST_MODEL"]', "pass_env = []"))
    env = {"FMBUILD_TEST_MODEL": str(model)}
    done = fmbuild(project, "verify", "--format", "json", "ev-model-file", env=env)
    assert '"status": "skipped"' in done.stdout and "--pass-env FMBUILD_TEST_MODEL" in done.stdout
    done = fmbuild(project, "verify", "--format", "json", "--pass-env", "FMBUILD_TEST_MODEL", "ev-model-file", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"model_bytes": 5' in done.stdout
    add_hostile(project, "declared-credentials")
    done = fmbuild(project, "verify", "declared-credentials", env={"AWS_SHARED_CREDENTIALS_FILE": str(model)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("note: declared-credentials declares AWS_SHARED_CREDENTIALS_FILE; not passed (only what fmbuild.toml "
            "[evidence] pass_env or --pass-env NAME allows enters a sandbox, never a credential)") in " ".join(
                done.stderr.split())


@pytest.mark.parametrize(("name", "refused"), [
    ("FMBUILD_GGUF_MODEL", False), ("FMBUILD_TEST_MODEL", False), ("OMP_NUM_THREADS", False),
    ("AWS_SHARED_CREDENTIALS_FILE", True), ("GOOGLE_APPLICATION_CREDENTIALS", True), ("GITHUB_TOKEN", True),
    ("MY_API_KEY", True), ("KUBECONFIG", True), ("SSH_AUTH_SOCK", True), ("DB_PASSWORD", True),
    ("HF_HOME", True), ("lower_case", True),
])
def test_pass_env_policy(name: str, refused: bool) -> None:
    from fmbuild.evidence.env_policy import pass_env_problem

    assert bool(pass_env_problem(name)) is refused


def test_reading_back_refuses_every_odd_file(tmp_path: Path) -> None:
    import os

    from fmbuild.evidence import safe_read

    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    host = tmp_path / "host.txt"
    host.write_text("host only\n")
    (out / "sub" / "plain.txt").write_text("mine\n")
    (out / "link").symlink_to(host)
    (out / "dirlink").symlink_to(tmp_path)
    os.mkfifo(out / "fifo")
    os.link(host, out / "hard")
    assert safe_read.read_bytes(out, "sub/plain.txt", 100) == b"mine\n"
    for rel, why in [("link", "a symbolic link"), ("fifo", "a FIFO"), ("hard", "a hard link (2 names")]:
        with pytest.raises(safe_read.UnsafeFile, match=f"^{rel} is {why.replace('(', '[(]')}"):
            safe_read.read_bytes(out, rel, 100)
    with pytest.raises(OSError):  # a link in the middle of the path is not followed either
        safe_read.read_bytes(out, "dirlink/host.txt", 100)
    with pytest.raises(safe_read.UnsafeFile, match="over the 2-byte limit"):
        safe_read.read_bytes(out, "sub/plain.txt", 2)
    listed = {f.rel: f.problem for f in safe_read.walk(out)}
    assert listed["sub/plain.txt"] == "" and set(listed) == {"sub/plain.txt", "link", "dirlink", "fifo", "hard"}
    assert all(listed[k] for k in ("link", "dirlink", "fifo", "hard"))
