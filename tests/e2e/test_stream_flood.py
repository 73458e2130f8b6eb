"""One user flooding the real gunicorn gevent web with event streams and long-polls
(a few hundred real connections): everyone else is still served, /ready stays green,
and the flooder is refused past their cap with a 429 that says what to do."""

import contextlib
import json
import resource
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from db.redis_client import get_redis
from tests.fakes.services import wait_until
from tests.helpers import call
from workers import queues

pytestmark = pytest.mark.e2e

ALL_QUEUES = ["ai_priority", "ai", "default", "email", "exports", "maintenance"]


@pytest.fixture(autouse=True)
def enough_file_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def workers_seen():
    """/ready wants a live worker on every queue; these stacks run none (the flooder's
    job must stay queued), so their heartbeats are left as a worker would."""
    for name in ALL_QUEUES:
        queues.write_heartbeat(get_redis(), hostname=f"flood-{name}@box", queues=[name], interval=120)
    yield
    for name in ALL_QUEUES:
        queues.leave(get_redis(), hostname=f"flood-{name}@box")


def account(base: str) -> str:
    status, _, body = call(
        "POST",
        f"{base}/auth/register",
        {"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "a long password", "name": "Flood"},
    )
    assert status == 201, body
    return body["access_token"]


def queued_job(base: str, token: str) -> str:
    status, _, job = call("POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": "never run"}}, token)
    assert status == 202, job
    return job["id"]


class Connections:
    """Raw HTTP/1.1 requests left open, as a flooding client leaves them."""

    def __init__(self, base: str) -> None:
        self.address = urlsplit(base)
        self.sockets: list[socket.socket] = []

    def open(self, path: str, headers: dict[str, str]) -> socket.socket:
        sock = socket.create_connection((self.address.hostname, self.address.port), timeout=30)
        lines = [f"GET {self.address.path}{path} HTTP/1.1", f"Host: {self.address.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self.sockets.clear()


def response_head(sock: socket.socket) -> tuple[int, dict[str, str], str]:
    """The status, the headers and, when the response says how long it is, the body."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    while len(body) < int(headers.get("Content-Length", 0)):
        body += sock.recv(65536)
    return int(status_line.split(" ", 2)[1]), headers, body.decode()


@pytest.fixture
def connections(start_stack):
    opened: list[Connections] = []

    def open_for(base: str) -> Connections:
        opened.append(Connections(base))
        return opened[-1]

    yield open_for
    for each in opened:
        each.close()


def test_a_flood_of_streams_and_long_polls_leaves_other_users_served(start_stack, connections, workers_seen):
    # The cap is lifted here so that every one of the flooder's connections is served:
    # what is under test is that open streams hold nothing other requests need.
    base = start_stack(processes=("web",), WEB_CONCURRENCY="2", MAX_OPEN_STREAMS_PER_USER="1000")
    flooder, victim = account(base), account(base)
    job_id = queued_job(base, flooder)
    flood = connections(base)
    streams = [
        flood.open(f"/jobs/{job_id}/events", {"Authorization": f"Bearer {flooder}"}) for _ in range(300)
    ]
    for _ in range(100):
        flood.open(f"/jobs/{job_id}?wait=30", {"Authorization": f"Bearer {flooder}"})
    assert [response_head(sock)[0] for sock in streams] == [200] * 300  # all open, and streaming

    answers = [call("GET", f"{base}/users/me", token=victim)[0] for _ in range(5)]
    assert answers == [200] * 5
    status, _, ready = call("GET", f"{base}/ready")
    assert (status, ready["checks"]) == (200, {"database": "ok", "redis": "ok", "workers": "ok"})
    status, _, job = call("POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": "mine"}}, victim)
    assert status == 202, job


def test_streams_past_the_cap_are_429_until_some_close(start_stack, connections):
    base = start_stack(
        processes=("web",), WEB_CONCURRENCY="2", MAX_OPEN_STREAMS_PER_USER="20", SSE_HEARTBEAT_SECONDS="1"
    )
    flooder, victim = account(base), account(base)
    job_id = queued_job(base, flooder)
    bearer = {"Authorization": f"Bearer {flooder}"}
    first = connections(base)
    heads = [response_head(first.open(f"/jobs/{job_id}/events", bearer)) for _ in range(25)]

    assert [status for status, _, _ in heads] == [200] * 20 + [429] * 5
    _, headers, body = heads[-1]
    refused = json.loads(body)
    assert int(headers["Retry-After"]) > 0
    assert (refused["code"], refused["status"]) == (429, "Too Many Requests")
    assert "20 event streams and long-polls open" in refused["message"]
    assert "Close some" in refused["message"] and "webhook" in refused["message"]
    # Long-polls count against the same cap.
    status, headers, body = call("GET", f"{base}/jobs/{job_id}?wait=5", token=flooder)
    assert status == 429 and int(headers["Retry-After"]) > 0, body
    # Another user is not affected by the flooder's cap.
    other_job = queued_job(base, victim)
    status, _, _ = call("GET", f"{base}/jobs/{other_job}?wait=1", token=victim)
    assert status in (200, 304)

    first.close()  # the server sees each client go at its next write, and gives its slot back
    second = connections(base)
    opened = []

    def twenty_open_again() -> bool:
        status, _, _ = response_head(second.open(f"/jobs/{job_id}/events", bearer))
        opened.append(status)
        return opened.count(200) == 20

    wait_until(twenty_open_again, 30, interval=0.2, message="the closed streams' slots to be given back")
    assert response_head(second.open(f"/jobs/{job_id}/events", bearer))[0] == 429


def test_streams_through_the_gevent_web_deliver_every_event_in_order_and_resume(start_stack):
    # The process's one event reader runs as a greenlet here (gunicorn patches threading).
    base = start_stack(WEB_CONCURRENCY="1")
    token = account(base)
    words = " ".join(f"w{n}" for n in range(30))
    status, _, job = call(
        "POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": f"[[slow:0.02]] {words}"}}, token
    )
    assert status == 202, job
    followers = [sse_events(base, job["id"], token) for _ in range(3)]
    for events in followers:
        assert events[0]["event"] == "status" and events[-1]["event"] == "done"
        assert events == followers[0]
    finished = call("GET", f"{base}/jobs/{job['id']}", token=token)[2]
    text = "".join(event["data"]["text"] for event in followers[0] if event["event"] == "delta")
    assert text == finished["output"]["text"]
    resumed = sse_events(base, job["id"], token, last_event_id=followers[0][3]["id"])
    assert resumed == followers[0][4:]


def sse_events(base: str, job_id: str, token: str, last_event_id: str | None = None) -> list[dict]:
    """Read an event stream over HTTP until the server ends it: the job's events (a
    queued job's place updates, which depend on when each reader looked, left out)."""
    import http.client

    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    connection.request("GET", f"{address.path}/jobs/{job_id}/events", headers=headers)
    response = connection.getresponse()
    assert response.status == 200
    found, block = [], []
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line:
            block.append(line)
            continue
        fields = dict(part.split(": ", 1) for part in block if not part.startswith((":", "retry:")))
        block = []
        if "event" in fields and fields["event"] != "queue":
            found.append(
                {"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])}
            )
    connection.close()
    return found
