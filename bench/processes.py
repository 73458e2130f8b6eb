"""The processes a bench run starts and what it reads of them: CPU time, memory, load,
the machine it ran on, and the tools it needs (wrk)."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


PYTHON = sys.executable


BIN = Path(PYTHON).parent


class Processes:
    """The processes the bench starts, each in a session of its own, stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.started.pop(name, None)
        if process is None or process.poll() is not None:
            return
        # The process leads its own session: its group is its workers (gunicorn's, Celery's pool).
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def stop_all(self) -> None:
        for name in list(self.started):
            self.stop(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited with {process.returncode} (see its log)")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone (a pool process replaced): it no longer counts
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def server_pids(name: str) -> list[int]:
    """The processes of a server the bench shares with the machine (`postgres`,
    `redis-server`), by their command name."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def children_cpu() -> float:
    """User + system CPU time of this process's finished children (wrk, bench.load)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """The CPU each group of processes spends over a block, per operation: the group
    under test, Postgres's and Redis's processes (what is on the path, and a little of
    other users' work: these servers are the machine's), and the load generator (the
    one child the block runs and waits for). Together, where the machine's cores went.
    A Postgres backend that starts and ends within the block is missed (the runs
    report the sessions opened: 1-4 a run)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups | {"postgres": server_pids("postgres"), "redis": server_pids("redis-server")}
        self.before = {name: group_cpu(pids) for name, pids in self.groups.items()}
        self.load_before = children_cpu()

    def per(self, count: int, unit: str) -> dict[str, float]:
        spent = {name: group_cpu(pids) - self.before[name] for name, pids in self.groups.items()}
        spent["load"] = children_cpu() - self.load_before
        return {f"{name}_cpu_ms_per_{unit}": cpu * 1000 / max(1, count) for name, cpu in spent.items()}


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(memory) / 1024**2, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def wait_for_quiet(threshold: float, limit: float = 20 * 60) -> None:
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        print(
            f"load average {load_average()}: waiting for the 1-minute figure to drop below {threshold}",
            flush=True,
        )
        time.sleep(60)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install wrk)", flush=True)
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, check=False, stdout=subprocess.DEVNULL).returncode != 0:
            # No package lists yet (a fresh machine): fetch them and try once more.
            subprocess.run(["apt-get", "update", "-q"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(install, check=False, stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        print(
            "warning: wrk not found (apt-get install wrk); the HTTP scenarios use bench/load.py's "
            "Python client instead, which needs more CPU per request: figures will be lower",
            flush=True,
        )
