"""The chaos driver: faults at random intervals while the load runs, each followed by a
probe (a job submitted and waited for) that times how long the system took to recover.

Faults come in shuffled rounds: the first has each kind once, so every kind happens in
even a short run; the later ones repeat the worker kills, which production meets most.
A fault's probe runs beside the next faults, so they overlap as they do in production."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from soak.services import Postgres
from soak.stack import WORKERS, Stack
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.services import RedisServer

KINDS = (
    "pool_child",
    "worker_kill",
    "worker_term",
    "redis_restart",
    "postgres_restart",
    "web_kill",
    "provider_stall",
)
ROUND = KINDS + ("pool_child",) * 4 + ("worker_kill",)
WORKER_KILLS = ("pool_child", "worker_kill", "worker_term")
# What a submit goes through: while one of these is down, a submit may be refused.
SUBMIT_PATH = ("redis_restart", "postgres_restart", "web_kill")
RECOVERY_LIMIT = 180.0  # seconds a probe waits before the fault counts as not recovered


@dataclass
class Fault:
    kind: str
    target: str
    started: float
    ended: float = 0.0  # the dependency back, the process started again
    recovered: float | None = None  # a job submitted after it succeeded
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.started


class Chaos:
    def __init__(
        self,
        stack: Stack,
        postgres: Postgres,
        redis: RedisServer,
        provider: FakeOpenAI,
        probe_token: str,
        seed: int,
        interval: tuple[float, float] = (1.0, 4.0),
    ) -> None:
        self.stack = stack
        self.postgres = postgres
        self.redis = redis
        self.provider = provider
        self.probe_token = probe_token
        self.random = random.Random(seed)
        self.interval = interval
        self.faults: list[Fault] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)
        self._probing: list[threading.Thread] = []
        self._probes = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the fault under way and inject no more (its probes go on: `settle`)."""
        self._stop.set()
        self._thread.join()

    def settle(self) -> None:
        """Wait for every probe, so each fault has its recovery time (or none)."""
        for probe in self._probing:
            probe.join()

    def windows(self) -> list[tuple[float, float, str]]:
        """When something a submit goes through was down: from the fault until a job went
        through again."""
        return [
            (fault.started, fault.recovered or time.time(), fault.kind)
            for fault in self.faults
            if fault.kind in SUBMIT_PATH
        ]

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(fault) | {"recovery_seconds": fault.recovery_seconds} for fault in self.faults]

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        rounds = 0
        while not self._stop.is_set():
            kinds = list(ROUND if rounds else KINDS)
            rounds += 1
            self.random.shuffle(kinds)
            for kind in kinds:
                if self._stop.wait(self.random.uniform(*self.interval)):
                    return
                try:
                    fault = self._inject(kind)
                except Exception as error:  # a fault that could not be injected is a finding too
                    self.errors.append(f"{kind}: {error!r}")
                    continue
                self.faults.append(fault)
                probe = threading.Thread(target=self._probe, args=(fault,), daemon=True)
                probe.start()
                self._probing.append(probe)

    def _inject(self, kind: str) -> Fault:
        worker = self.random.choice(WORKERS)
        fault = Fault(kind, target=worker, started=time.time())
        if kind == "pool_child":
            fault.notes["pid"] = self.stack.kill_child(worker, self.random)
        elif kind == "worker_kill":
            self.stack.kill_all(worker)
        elif kind == "worker_term":
            self.stack.terminate(worker)
        elif kind == "web_kill":
            fault.target = "web"
            fault.notes["pid"] = self.stack.kill_child("web", self.random)
        elif kind == "redis_restart":
            fault.target = "redis"
            self.redis.restart()
        elif kind == "postgres_restart":
            fault.target = "postgres"
            self.postgres.restart()
        elif kind == "provider_stall":
            fault.target = "provider"
            self.provider.stalled.set()
            self._stop.wait(self.random.uniform(2, 8))
            self.provider.stalled.clear()
        fault.ended = time.time()
        return fault

    def _probe(self, fault: Fault) -> None:
        fault.recovered = self._probe_job()

    def _probe_job(self) -> float | None:
        """Submit a job that asks the provider for nothing unusual and wait for it to succeed."""
        with self._lock:
            self._probes += 1
            number = self._probes
        key = f"probe-{id(self)}-{number}"
        headers = {"Authorization": f"Bearer {self.probe_token}", "Idempotency-Key": key}
        body = {"tool": "text", "input": {"prompt": f"probe {number} [[reply:probe ok]]"}}
        deadline = time.time() + RECOVERY_LIMIT
        job_id = None
        while time.time() < deadline:
            try:
                if job_id is None:
                    response = requests.post(
                        f"{self.stack.base}/jobs", json=body, headers=headers, timeout=10
                    )
                    if response.status_code == 202:
                        job_id = response.json()["id"]
                        continue
                else:
                    response = requests.get(
                        f"{self.stack.base}/jobs/{job_id}?wait=10", headers=headers, timeout=20
                    )
                    status = response.json().get("status") if response.status_code == 200 else None
                    if status == "succeeded":
                        return time.time()
                    if status in ("failed", "canceled", "expired"):
                        job_id = None  # a fault ended it: the next probe must go through
                        headers["Idempotency-Key"] = key = key + "+"
                    continue
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        return None
