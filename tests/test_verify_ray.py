"""`fmbuild verify --executor ray`: modules as Ray tasks, judged, cached and recorded as a local run.

Most tests use a real two-node Ray cluster on this machine's loopback (a head and a second node
process, each with one CPU), started here and stopped at the end. The first tests need no Ray:
the shipping of a module and the worker's side run in-process.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from fmbuild.evidence import parcel
from fmbuild.evidence.contract import read_module
from fmbuild.evidence.fingerprint import inputs_hash
from fmbuild.evidence.isolation import Launch
from fmbuild.evidence.ray_dispatch import RemoteRun, as_remote_run, make_request
from fmbuild.evidence.worker import run_shipped
from ray_loopback import LoopbackCluster
from test_evidence_support import fmbuild, make_project, run_modules

REPO = Path(__file__).resolve().parent.parent

SLEEPER = '''"""Sleeps, saying so: a run to interrupt or whose worker to kill."""
import time
from fmbuild.evidence import kit
run = kit.start(__file__)
print("ray-sleeper started", flush=True)
time.sleep(float(run.params.get("sleep", 60)))
run.metric("slept", True)
run.finish()
'''


def _note(name: str, claims: str = "") -> str:
    body = f"  claims:\n{claims}" if claims else ""
    return (f"---\ntitle: {name}\nid: {name}\ntags: [type/technique]\nmaturity: draft\ncreated: 2026-12-03\n"
            f"updated: 2026-12-03\nevidence:\n  module: evidence/{name}\n{body}---\n\n# {name}\n")


def _add_sleeper(project: Path, seconds: float = 60) -> None:
    folder = project / "evidence" / "ray-sleeper"
    folder.mkdir()
    (folder / "run.py").write_text(SLEEPER)
    (folder / "module.toml").write_text(f"timeout = 120\n[params]\nsleep = {seconds}\n")
    (project / "vault" / "techniques" / "ray-sleeper.md").write_text(_note("ray-sleeper", '    slept: "== true"\n'))


# --- without Ray: what travels, and the worker's side --------------------------------------------


def test_module_archive_holds_exactly_what_the_cache_key_hashed(tmp_path: Path) -> None:
    """The worker's copy hashes to the caller's inputs hash: it runs the content the key names."""
    spec = read_module(REPO / "evidence" / "adversarial-training")
    archive = parcel.module_archive(spec, REPO)
    names = sorted(tarfile.open(fileobj=io.BytesIO(archive)).getnames())
    assert "evidence/evasion-fgsm-pgd/digits_lab.py" in names  # the declared input
    assert "evidence/evasion-fgsm-pgd/run.py" not in names  # the rest of the sibling is not an input
    assert not [n for n in names if "/record/" in n or n.endswith(".pyc")]
    parcel.extract(archive, tmp_path)
    copy = read_module(tmp_path / "evidence" / "adversarial-training")
    assert inputs_hash(copy.path, copy, tmp_path) == inputs_hash(spec.path, spec, REPO)
    assert parcel.module_archive(spec, REPO) == archive  # the same bytes every time


def test_portable_launch_swaps_host_paths_both_ways(tmp_path: Path) -> None:
    root, model = tmp_path / "repo", tmp_path / "models" / "m.gguf"
    launch = Launch(argv=["/venv/bin/python", f"{root}/evidence/m/run.py"], cwd=root / "evidence" / "m",
                    project_root=root, out_dir=tmp_path / "o", tmp_dir=tmp_path / "t",
                    env={"PATH": "/venv/bin:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": "/venv",
                         "FMBUILD_GGUF_MODEL": str(model), "FMBUILD_PARAMS": '{"a": "b:c"}'})
    portable = parcel.portable_launch(launch, "/venv/bin/python", "/venv", {"FMBUILD_GGUF_MODEL": model})
    assert portable["argv"] == ["{python}", "{root}/evidence/m/run.py"]
    assert portable["env"]["PATH"] == "{venv_bin}:/usr/local/bin:/usr/bin:/bin"
    assert portable["env"]["FMBUILD_GGUF_MODEL"] == "{files}/FMBUILD_GGUF_MODEL/m.gguf"
    assert portable["env"]["FMBUILD_PARAMS"] == '{"a": "b:c"}'
    assert str(tmp_path) not in json.dumps(portable)  # nothing of the caller's disk travels
    there = parcel.local_launch(portable, python="/w/env/bin/python3", venv="/w/env", root=Path("/w/p"),
                                files_dir=Path("/w/f"), out_dir=Path("/w/o"), tmp_dir=Path("/w/t"), devices=[])
    assert there.argv == ["/w/env/bin/python3", "/w/p/evidence/m/run.py"] and there.cwd == Path("/w/p/evidence/m")
    assert there.env["PATH"].startswith("/w/env/bin:/usr/local/bin:/usr/bin")
    assert there.env["VIRTUAL_ENV"] == "/w/env" and there.ro_files == [Path("/w/f/FMBUILD_GGUF_MODEL/m.gguf")]


def test_outputs_coming_back_are_plain_files_inside_the_run_folder(tmp_path: Path) -> None:
    for name, kind in (("../escape.txt", tarfile.REGTYPE), ("/etc/x", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            tar.addfile(info, io.BytesIO(b""))
        out = tmp_path / f"out-{len(name)}"
        out.mkdir()
        with pytest.raises(parcel.ParcelError, match="not a plain file inside the run folder"):
            parcel.unpack_outputs(buffer.getvalue(), out)
        assert list(out.iterdir()) == []


class InProcessDispatch:
    """The remote path without Ray: the worker's side runs here, on the shipped copy."""

    name = "in-process"

    def __init__(self, environment_change: dict[str, Any] | None = None) -> None:
        self.environment_change = environment_change or {}
        self.requests: list[dict[str, Any]] = []

    def gpus(self) -> float:
        return 0.0

    def run(self, spec, digest, launch, limits, device, declared_files, python, venv) -> RemoteRun:
        request = make_request(spec, launch, limits, device, declared_files, python, venv, "auto")
        self.requests.append(request)
        back = run_shipped(request, parcel.module_archive(spec, launch.project_root),
                           {v: p.read_bytes() for v, p in declared_files.items()})
        back.get("environment", {}).update(self.environment_change)
        return as_remote_run(back, "in-process worker")


def test_shipped_runs_match_local_runs_and_a_different_worker_is_named(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    names = ("ev-pass", "ev-fail", "ev-error", "ev-notebook", "ev-nometrics", "ev-gpu")
    local = run_modules(project, *names, use_cache=False)
    shipped = run_modules(project, *names, use_cache=False, dispatch=InProcessDispatch())
    for name in names[:-1]:
        a, b = local[name], shipped[name]
        assert (b.status, b.reason, b.metrics, b.artifacts) == (a.status, a.reason, a.metrics, a.artifacts), name
        assert [(c.metric, c.ok, c.measured) for c in b.claims] == [(c.metric, c.ok, c.measured) for c in a.claims]
        assert b.isolation == a.isolation and b.environment == a.environment, name
        if a.status not in ("skipped",):
            assert b.node == "in-process worker", name
            assert str(tmp_path) not in b.log_tail.replace(str(project), "")  # the worker's paths are cleaned
    assert shipped["ev-gpu"].reason == "needs a GPU; the Ray cluster has none"
    other = run_modules(project, "ev-pass", use_cache=False,
                        dispatch=InProcessDispatch({"python": "3.99.0", "packages": {"numpy": "0.1"}}))["ev-pass"]
    assert other.status == "passed"
    assert other.environment["worker"] == {"node": "in-process worker", "python": "3.99.0", "packages": {"numpy": "0.1"}}


# --- a real loopback cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    pytest.importorskip("ray")
    with LoopbackCluster(nodes=2, cpus=1) as address:
        yield address


def _json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(done.stdout[-2000:] + done.stderr[-3000:]) from None


def test_verdicts_on_the_cluster_are_those_of_a_local_run(cluster: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    names = ["ev-pass", "ev-fail", "ev-error", "ev-notebook", "ev-nometrics", "ev-missing-pkg"]
    local = _json(fmbuild(project, "verify", *names, "--format", "json", "--no-cache"))
    remote_done = fmbuild(project, "verify", *names, "--format", "json", "--no-cache", "--executor", "ray",
                          "--ray-address", cluster)
    remote = _json(remote_done)
    assert remote_done.returncode == 1  # ev-fail and ev-error, as locally
    by = {r["module"]: r for r in local["results"]}
    nodes = set()
    for r in remote["results"]:
        l = by[r["module"]]
        assert (r["status"], r["reason"], r["metrics"], r["claims"], r["artifacts"], r["environment"], r["isolation"]) == \
            (l["status"], l["reason"], l["metrics"], l["claims"], l["artifacts"], l["environment"], l["isolation"]), r["module"]
        if r["status"] != "skipped":
            assert r["node"].startswith("ray node "), r
            nodes.add(r["node"])
    assert len(nodes) == 2  # both nodes took work
    assert "on ray node" in remote_done.stderr and "executor: Ray" in remote_done.stderr
    table = fmbuild(project, "verify", "ev-pass", "--no-cache", "--executor", "ray", "--ray-address", cluster).stdout
    header = next(line for line in table.splitlines() if "module" in line and "status" in line)
    assert " node " in header and "ray node" in table, table  # the summary table says where it ran
    # Merged into the caller's cache: a local run now finds the cluster's results.
    again = _json(fmbuild(project, "verify", "ev-pass", "--format", "json"))
    assert again["results"][0]["cached"] is True


def test_bundled_modules_on_the_cluster_reproduce_their_records(cluster: str, tmp_path: Path) -> None:
    """Real modules of the manual, shipped to the workers: the committed (local) records' numbers."""
    project = tmp_path / "manual"
    shutil.copytree(REPO, project, ignore=shutil.ignore_patterns(".git", ".fmbuild", ".venv", "site", "node_modules",
                                                               "__pycache__", ".pytest_cache"))
    names = ["dataset-integrity", "canary-rollback"]  # deterministic numbers, no timings
    done = fmbuild(project, "verify", *names, "--seed", "0", "--no-cache", "--format", "json", "--executor", "ray",
                   "--ray-address", cluster, timeout=600)
    data = _json(done)
    assert done.returncode == 0, done.stderr[-3000:]
    # The environment and isolation are this machine's (its kernel, its installed packages), so
    # they are compared with a local run here; the numbers also with the committed record.
    local = fmbuild(project, "verify", *names, "--seed", "0", "--no-cache", "--format", "json", timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    here = {r["module"]: r for r in _json(local)["results"]}
    for r in data["results"]:
        record = json.loads((REPO / "evidence" / r["module"] / "record" / "record.json").read_text())
        assert r["status"] == "passed" and r["node"].startswith("ray node ")
        assert r["metrics"] == record["seed_metrics"]["0"] == here[r["module"]]["metrics"], r["module"]
        assert r["environment"] == here[r["module"]]["environment"]
        assert r["isolation"] == here[r["module"]]["isolation"]


def _pids_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if marker in cmdline and "bwrap" not in cmdline.split(" ")[0]:
                found.append(int(entry.name))
    return found


def _ray_worker_of(pid: int) -> int | None:
    """The Ray worker process above a sandboxed run (its title starts with 'ray::')."""
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        if cmdline.startswith(b"ray::"):
            return pid
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return None


def _wait_for(predicate, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return None


def test_a_killed_worker_is_retried_elsewhere_then_reported_as_error(cluster: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    _add_sleeper(project)
    killed: list[int] = []

    def killer() -> None:
        for _ in range(2):  # the first attempt and its retry
            def worker() -> int | None:
                for pid in _pids_running("ray-sleeper/run.py"):
                    owner = _ray_worker_of(pid)
                    if owner and owner not in killed:
                        return owner
                return None
            owner = _wait_for(worker)
            if owner is None:
                return
            killed.append(owner)
            os.kill(owner, signal.SIGKILL)

    thread = threading.Thread(target=killer)
    thread.start()
    done = fmbuild(project, "verify", "ray-sleeper", "--format", "json", "--executor", "ray", "--ray-address", cluster,
                   "--record")
    thread.join()
    result = _json(done)["results"][0]
    assert len(killed) == 2, done.stderr[-2000:]
    assert done.returncode == 1 and result["status"] == "error"
    assert result["reason"].startswith("the Ray worker running it was lost twice")
    first, second = result["reason"].split("(1) on node ")[1].split("; (2) on node ")
    assert first.split(":")[0] != second.split(":")[0]  # the retry ran on the other node
    assert result["record"] == "not written: the run error"
    assert not (project / "evidence" / "ray-sleeper" / "record").exists()
    cache = project / ".fmbuild" / "evidence" / "cache"
    assert not (cache.exists() and [p for p in cache.rglob("*") if "ray-sleeper" in str(p)])


def test_timeouts_gpu_modules_and_infeasible_asks_on_the_cluster(cluster: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    done = fmbuild(project, "verify", "ev-timeout", "ev-gpu", "--format", "json", "--executor", "ray",
                   "--ray-address", cluster)
    by = {r["module"]: r for r in _json(done)["results"]}
    assert by["ev-timeout"]["status"] == "timeout"
    assert by["ev-timeout"]["reason"].endswith("s; the process tree was killed")
    assert by["ev-gpu"]["status"] == "skipped" and by["ev-gpu"]["reason"] == "needs a GPU; the Ray cluster has none"
    cuda = fmbuild(project, "verify", "ev-pass", "--device", "cuda", "--executor", "ray", "--ray-address", cluster)
    assert cuda.returncode == 2 and "--device cuda, but the Ray cluster has no GPU" in cuda.stderr
    # A run asking for more memory than any node has is skipped with the reason, never left pending.
    toml = project / "fmbuild.toml"
    toml.write_text(toml.read_text().replace("memory_mb = 1024", "memory_mb = 16384"))
    big = _json(fmbuild(project, "verify", "ev-pass", "--format", "json", "--executor", "ray", "--ray-address", cluster,
                        timeout=120))["results"][0]
    assert big["status"] == "skipped" and big["reason"] == "no node of the Ray cluster offers 1 CPU, 16384 MB memory"
    toml.write_text(toml.read_text().replace("memory_mb = 16384", "memory_mb = 1024"))
    module_toml = project / "evidence" / "ev-pass" / "module.toml"
    module_toml.write_text("cpus = 4\n" + module_toml.read_text())  # the nodes have one CPU each
    wide = _json(fmbuild(project, "verify", "ev-pass", "--format", "json", "--executor", "ray", "--ray-address", cluster,
                         timeout=120))["results"][0]
    assert wide["status"] == "skipped" and wide["reason"] == "no node of the Ray cluster offers 4 CPU, 1024 MB memory"


def test_ctrl_c_cancels_the_remote_runs_and_keeps_nothing(cluster: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    _add_sleeper(project)
    proc = subprocess.Popen([sys.executable, "-m", "fmbuild", "verify", "ray-sleeper", "--executor", "ray",
                             "--ray-address", cluster], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert _wait_for(lambda: _pids_running("ray-sleeper/run.py")), "the module never started on the cluster"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err
    assert _wait_for(lambda: not _pids_running("ray-sleeper/run.py"), timeout=30), "the remote run was not cancelled"
    cache = project / ".fmbuild" / "evidence" / "cache"
    assert not (cache.exists() and [p for p in cache.rglob("*") if "ray-sleeper" in str(p)])


def test_usage_errors_of_the_executor_options(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    done = fmbuild(project, "verify", "ev-pass", "--ray-address", "auto")
    assert done.returncode == 2 and "--ray-address needs --executor ray" in done.stderr
