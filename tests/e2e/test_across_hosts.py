"""Conveyor on several hosts: the web (with a beat), two worker hosts (the second with
a beat of its own) and the data services each on a network of their own
(tests/fakes/netns.py), talking only over those links. A worker host cut off
mid-job leaves its jobs to the other host: each finishes once and is charged once,
and the cut-off host coming back changes nothing.

Real processes, started as `make run` starts them; the lease, the reaper and the
broker's redelivery made quick as in test_crashes.py."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db.redis_client import get_redis
from db.session import session_scope
from tests.conftest import reset_state
from tests.e2e.conftest import launch_stack
from tests.fakes.netns import Network
from tests.fakes.services import Process, TcpProxy, celery_beat, celery_worker, wait_until
from tests.helpers import call, mark_verified
from workers import queues

pytestmark = pytest.mark.e2e

SLOW_WORDS = " ".join(f"w{n}" for n in range(40))  # streamed at 0.05 s a chunk: long enough to cut mid-job


@dataclass
class Cluster:
    network: Network
    base: str  # the API, on the web host
    stack_log: Path  # the web host's processes: web and beat
    workers: dict[str, Process]
    second_beat: Process


@pytest.fixture(autouse=True)
def clean_state():
    """Not before each test here: the cluster's beats keep their leader lock in Redis,
    which the suite's clean would delete under them, handing the lead over mid-module.
    The cluster starts from a clean state instead."""
    yield


@pytest.fixture(scope="module")
def cluster(fake_openai, tmp_path_factory):
    reset_state(fake_openai)
    workdir = tmp_path_factory.mktemp("hosts")
    database, redis = make_url(os.environ["DATABASE_URL"]), make_url(os.environ["REDIS_URL"])
    processes: list[Process] = []
    stop_stack = None
    with Network(["web", "w1", "w2"]) as network:
        data = network.data_address
        proxies = [
            TcpProxy(database.port or 5432, listen_host=data),
            TcpProxy(redis.port or 6379, listen_host=data),
            TcpProxy(fake_openai.port, listen_host=data),
        ]
        try:
            overrides = {
                "DATABASE_URL": database.set(host=data, port=proxies[0].port).render_as_string(False),
                "REDIS_URL": redis.set(host=data, port=proxies[1].port).render_as_string(False),
                "OPENAI_BASE_URL": f"http://{data}:{proxies[2].port}/v1",
                "JOB_LEASE_SECONDS": "3",
                "JOB_SOFT_TIME_LIMIT": "8",
                "JOB_HARD_TIME_LIMIT": "9",
                "BROKER_VISIBILITY_TIMEOUT": "10",
                "BROKER_RESTORE_INTERVAL": "1",
                "MAINTENANCE_INTERVAL": "1",
                "REQUEUE_STALE_AFTER": "5",
                "DB_CONNECT_TIMEOUT": "2",
                "LOG_LEVEL": "INFO",  # the beats' "Sending due task" lines
            }
            env = {**os.environ, **overrides}
            web = network.hosts["web"]
            base, stop_stack = launch_stack(
                workdir, ("web", "beat"), netns=web.netns, address=web.address, **overrides
            )
            for name in ("w1", "w2"):
                processes.append(
                    celery_worker(env, workdir / f"{name}.log", name=name, netns=network.hosts[name].netns)
                )
            second_beat = celery_beat(
                env, workdir / "beat-w2.log", workdir / "beat-w2-schedule", netns=network.hosts["w2"].netns
            )
            processes.append(second_beat)
            for worker in processes[:2]:
                wait_until(
                    lambda worker=worker: "ready." in worker.log(), 40, message="the workers to be ready"
                )
            yield Cluster(
                network,
                base,
                next(workdir.glob("stack-*.log")),
                {"w1": processes[0], "w2": processes[1]},
                second_beat,
            )
        finally:
            for name in network.hosts:
                network.restore(name, check=False)  # so that every process can say goodbye and stop
            for process in processes:
                process.stop(timeout=10)
            if stop_stack is not None:
                stop_stack()
            for proxy in proxies:
                proxy.close()


def register(base: str) -> str:
    status, _, body = call(
        "POST",
        f"{base}/auth/register",
        {"email": "hosts@example.com", "password": "a long password", "name": "Ada"},
    )
    assert status == 201, body
    mark_verified(body["user"]["id"], "hosts@example.com")
    return body["access_token"]


def job_row(job_id: str):
    with session_scope() as session:
        return session.execute(
            text("SELECT status, attempt, finished_at FROM jobs WHERE id = :id"), {"id": job_id}
        ).one()


def charges(job_id: str) -> list[tuple[int, int, bool]]:
    """The job's rows in the usage ledger: (attempt, cost, billed)."""
    with session_scope() as session:
        rows = session.execute(
            text("SELECT attempt, cost_micros, billed FROM usage_ledger WHERE job_id = :id ORDER BY id"),
            {"id": job_id},
        )
        return [tuple(row) for row in rows]


def billed_calls(job_id: str) -> list[tuple[int, int]]:
    return [(attempt, cost) for attempt, cost, billed in charges(job_id) if billed]


def provider_calls(fake_openai, marker: str) -> int:
    return sum(marker in request["messages"][-1]["content"] for request in fake_openai.requests)


def test_a_worker_host_cut_off_mid_job_leaves_each_job_to_the_other_once(cluster, fake_openai):
    token = register(cluster.base)
    w1, w2 = cluster.workers["w1"], cluster.workers["w2"]
    jobs = []
    for n in range(3):
        status, _, job = call(
            "POST",
            f"{cluster.base}/jobs",
            {"tool": "text", "input": {"prompt": f"host-{n} [[slow:0.05]] {SLOW_WORDS}"}},
            token,
        )
        assert status == 202, job
        jobs.append(job["id"])

    def taken_by_w1() -> list[str]:  # jobs whose provider call w1 has started
        log = w1.log()
        return [
            job_id
            for job_id in jobs
            if f"job_id={job_id} started" in log and job_row(job_id).status == "running"
        ]

    [cut_job, *_] = wait_until(taken_by_w1, 30, message="w1 to be running a job")
    marker = f"host-{jobs.index(cut_job)} "
    wait_until(lambda: provider_calls(fake_openai, marker) == 1, 10, message="w1's provider call")
    time.sleep(0.3)  # mid-stream
    cluster.network.cut("w1")

    wait_until(
        lambda: all(job_row(job_id).status == "succeeded" for job_id in jobs),
        60,
        message="every job to finish",
    )
    rows = {job_id: job_row(job_id) for job_id in jobs}
    assert rows[cut_job].attempt == 2  # w1's attempt lapsed; w2 ran the second
    wait_until(lambda: f"job_id={cut_job} succeeded" in w2.log(), 10, message="w2 to log the job's end")
    assert provider_calls(fake_openai, marker) == 2  # w1's cut-off call and w2's
    billed = {job_id: billed_calls(job_id) for job_id in jobs}
    for job_id in jobs:  # charged once, for the attempt that finished, as the job says
        status, _, job = call("GET", f"{cluster.base}/jobs/{job_id}", token=token)
        assert billed[job_id] == [(rows[job_id].attempt, job["usage"]["cost_micros"])], job

    # w1 comes back with its stale attempt: nothing it does changes a finished job.
    cluster.network.restore("w1")
    wait_until(
        lambda: any(name.startswith("w1-") for name in queues.workers_by_queue(get_redis(), ["ai"])["ai"]),
        30,
        message="w1 to be back",
    )
    time.sleep(3)  # its lease checks and its stale stream have had their turn
    assert {job_id: job_row(job_id) for job_id in jobs} == rows
    assert {job_id: billed_calls(job_id) for job_id in jobs} == billed
    # Its call may be in the books now, as a call whose outcome lost: kept, not billed.
    assert all(attempt == 1 for attempt, _, paid in charges(cut_job) if not paid)
    assert provider_calls(fake_openai, marker) == 2


def test_a_second_beat_on_another_host_sends_no_sweep(cluster):
    # Both beats have run through the test above (the cluster is the module's): one
    # holds the lead and sends the sweeps, the other, on another host, sends none.
    def sending() -> list[bool]:
        logs = [cluster.stack_log.read_text(errors="replace"), cluster.second_beat.log()]
        return ["Sending due task" in log for log in logs]

    wait_until(lambda: any(sending()), 10, message="a beat to send a sweep")
    assert sorted(sending()) == [False, True]
