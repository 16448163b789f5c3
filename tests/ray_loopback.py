"""A real Ray cluster on this machine's loopback for the tests and the benchmark: a head and
further node processes, each with its own resources, started and stopped here (and only those:
`ray stop` would stop every Ray on the machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackCluster:
    """`with LoopbackCluster(nodes=2, cpus=1) as address:` (address: host:port of the head)."""

    def __init__(self, nodes: int = 2, cpus: int = 1, memory_gib: int = 8) -> None:
        self.nodes, self.cpus, self.memory = nodes, cpus, memory_gib * 2**30
        self.temp = Path(f"/tmp/fmbr-{os.getpid()}-{_free_port()}")  # short: Ray's socket paths fit in 107 bytes
        self.procs: list[subprocess.Popen[bytes]] = []
        # A home of its own: a token file a past Ray session left in ~/.ray would turn on token
        # authentication in these nodes, which the clients (verify) do not use.
        self.home = self.temp.with_name(self.temp.name + "-home")
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(self.home)}

    def _start(self, *args: str) -> None:
        assert RAY, "the ray command is not installed next to this Python"
        common = ["--num-cpus", str(self.cpus), "--num-gpus", "0", "--memory", str(self.memory),
                  "--object-store-memory", str(200 * 2**20), "--disable-usage-stats", "--block",
                  "--node-ip-address", "127.0.0.1"]
        self.procs.append(subprocess.Popen([RAY, "start", *args, *common], env=self.env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True))

    def __enter__(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        address = f"127.0.0.1:{port}"
        try:
            self._start("--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(self.temp))
            self._wait_for(address, 1)
            for i in range(1, self.nodes):
                self._start("--address", address, "--resources", json.dumps({f"node_{i}": 1}))
            self._wait_for(address, self.nodes)
        except BaseException:
            self.__exit__()
            raise
        return address

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
        shutil.rmtree(self.temp, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def _wait_for(self, address: str, count: int, timeout: float = 120) -> None:
        probe = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
                 "print(sum(1 for n in ray.nodes() if n['Alive']))")
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            done = subprocess.run([sys.executable, "-c", probe], env=self.env, capture_output=True, text=True, timeout=60)
            if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            last = (done.stderr.strip().splitlines() or [""])[-1]
            time.sleep(1)
        raise RuntimeError(f"the loopback Ray cluster did not reach {count} node(s): {last}")


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
