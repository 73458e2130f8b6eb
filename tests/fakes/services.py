"""Real services the crash tests and the soak can break: a Redis server of their own
that can be restarted (losing everything, or keeping it in an append-only file), a
TCP proxy that cuts every connection to Postgres and refuses new ones, and Conveyor's
own processes (Celery workers, beat) as subprocesses that can be killed."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class RedisServer:
    """A redis-server on its own port, kept across restarts. With no persistence (the
    tests' default) a restart loses everything; `append_only` writes an append-only
    file fsynced every second, production's setting, so a restart loses nothing that
    was acknowledged a second before."""

    def __init__(self, directory: Path, *, append_only: bool = False) -> None:
        self.port = free_port()
        self.dir = directory
        self.append_only = append_only
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.append_only
            else ["--appendonly", "no"]
        )
        with (self.dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    *persistence,
                    "--dir",
                    str(self.dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # Loading a long append-only file back takes a while on a busy machine.
        wait_until(self._answers, 30, message="redis-server to start")
        return self

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits, as on a deploy."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def client(self) -> Redis:
        return Redis.from_url(self.url, socket_timeout=5)

    def _answers(self) -> bool:
        try:
            return Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
        except Exception:
            return False


class TcpProxy:
    """Forwards a local port to a target; `cut()` drops every connection and refuses
    new ones (as a restarting server does), `restore()` accepts again."""

    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", listen_host: str = "127.0.0.1"
    ) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._open = threading.Event()
        self._open.set()
        self._stopped = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server((listen_host, self.port))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._stopped.set()
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        try:
            while self._open.is_set():
                readable, _, _ = select.select(sockets, [], [], 0.2)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._connections.difference_update(sockets)


class Process:
    """One of Conveyor's processes, started as `make run` starts it, killable."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def children(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.pid:
                        found.append(int(entry.name))
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill_all(self) -> None:
        """SIGKILL the process and its children at once: a machine losing power."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_all()
        self._log.close()
        return self.popen.returncode


def celery_worker(
    env: dict[str, str],
    log: Path,
    *,
    queues: str = "ai_priority,ai,default,email,exports,maintenance",
    name: str = "test",
    concurrency: int = 1,
    netns: str | None = None,
    pool: str = "prefork",
) -> Process:
    """A worker (prefork, or `pool`: gevent); in network namespace `netns` (another
    host, tests/fakes/netns.py)."""
    return Process(
        [
            *in_netns(netns),
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "--queues",
            queues,
            "--hostname",
            f"{name}-{os.getpid()}-{free_port()}@%h",
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
        ],
        env,
        log,
    )


def celery_beat(env: dict[str, str], log: Path, schedule: Path, netns: str | None = None) -> Process:
    return Process(
        [
            *in_netns(netns),
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "beat",
            "--schedule",
            str(schedule),
            "--loglevel",
            "INFO",
        ],
        env,
        log,
    )


def in_netns(netns: str | None) -> list[str]:
    """The command prefix that runs a process in network namespace `netns` (none: here)."""
    return ["ip", "netns", "exec", netns] if netns else []
