"""Conveyor's processes for a soak, each started from its Procfile line as `make run`
starts it, but one by one, so the chaos driver can kill one and start it again."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

from bench.processes import ROOT, Processes, children, wait_http
from tests.fakes.services import wait_until

PROCESSES = ("web", "worker_ai", "worker", "maintenance", "beat")
WORKERS = ("worker_ai", "worker", "maintenance")


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    lines = (line.partition(":") for line in path.read_text().splitlines() if re.match(r"^\w+:", line))
    return {name.strip(): command.strip() for name, _, command in lines}


class Stack:
    def __init__(self, logs: Path, env: dict[str, str], port: int) -> None:
        self.logs = logs
        self.port = port
        self.env = {
            **env,
            "PORT": str(port),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        self.lines = procfile()
        self.processes = Processes(logs)
        self._log_size: dict[str, int] = {}
        # Processes that exited on their own and were started again, as production's
        # supervisor does (docker-compose: `restart: unless-stopped`): (name, when, code).
        self.exits: list[tuple[str, float, int]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def release(self) -> None:
        """The Procfile's `release` line (the migrations), run to its end."""
        command = ["/bin/sh", "-c", f"exec env {self.lines['release']}"]
        with (self.logs / "release.log").open("ab") as log:
            subprocess.run(command, cwd=ROOT, env=self.env, check=True, stdout=log, stderr=subprocess.STDOUT)

    def start(self, name: str) -> None:
        self._launch(name)
        self._wait_ready(name)

    def start_all(self) -> None:
        """All at once, then each waited for: the start-ups overlap. Then supervised."""
        for name in PROCESSES:
            self._launch(name)
        for name in PROCESSES:
            self._wait_ready(name)
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()

    def _supervise(self) -> None:
        """Start again a process that exited by itself (a Celery worker whose pool process
        died while it started gives up: `Could not start worker processes`)."""
        while not self._stopping.wait(0.5):
            with self._lock:
                for name, process in list(self.processes.started.items()):
                    if process.poll() is not None:
                        self.exits.append((name, time.time(), process.returncode))
                        self._launch(name)

    def _launch(self, name: str) -> None:
        log = self.logs / f"{name}.log"
        self._log_size[name] = log.stat().st_size if log.exists() else 0
        # `exec env`: the shell expands the line's ${VAR:-default}s, then the command
        # itself takes the shell's pid, so signals reach it and not a shell.
        self.processes.start(name, ["/bin/sh", "-c", f"exec env {self.lines[name]}"], self.env)

    def _wait_ready(self, name: str) -> None:
        process = self.processes.started[name]
        if name == "web":
            wait_http(f"{self.base}/health", process, timeout=120)
        elif name in WORKERS:
            log, size = self.logs / f"{name}.log", self._log_size[name]
            wait_until(
                lambda: process.poll() is not None or b"ready." in log.read_bytes()[size:],
                120,
                interval=0.2,
                message=f"{name} to be ready",
            )

    def pid(self, name: str) -> int:
        return self.processes.started[name].pid

    def children(self, name: str) -> list[int]:
        return children(self.pid(name))

    def kill_child(self, name: str, rng: random.Random) -> int | None:
        """SIGKILL one pool process (a Celery child, a gunicorn worker): its parent makes another."""
        pids = self.children(name)
        if not pids:
            return None
        pid = rng.choice(pids)
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid

    def kill_all(self, name: str) -> None:
        """SIGKILL the process and its pool at once (a machine losing power), then start it again."""
        with self._lock:
            process = self.processes.started.pop(name)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            self._launch(name)  # not waited for: the chaos goes on while it starts

    def terminate(self, name: str) -> None:
        """SIGTERM (a deploy): the worker finishes what it runs and exits; then start it again."""
        with self._lock:
            process = self.processes.started.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        with self._lock:
            self._launch(name)

    def stop_all(self) -> None:
        self._stopping.set()
        with self._lock:
            self.processes.stop_all()
