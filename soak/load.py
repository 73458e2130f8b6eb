"""The soak's load, run as a process of its own (`python -m soak.load PLAN.json`):
users submitting at a steady rate with idempotency keys, retrying a 503 (or a dropped
connection) with the same key, some cancelling, some following their job by SSE, some
exporting the result, some taking conversation turns. Every request it makes and every
job it was given is one line of JSON in the plan's `out` file, read by the audit."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

RETRY_FOR = 120.0  # seconds a submit keeps being retried before the client gives up
TERMINAL = ("succeeded", "failed", "canceled", "expired")


class Recorder:
    def __init__(self, path: str) -> None:
        self._file = Path(path).open("a")  # noqa: SIM115 - open for the whole run
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"kind": kind, "at": time.time(), **fields})
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


class Load:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.base = plan["base"]
        self.users = plan["users"]  # [{id, token, plan}]
        self.rate = plan["rate"]  # actions a second
        self.seconds = plan["seconds"]
        self.seed = plan["seed"]
        self.webhook_url = plan["webhook_url"]
        self.record = Recorder(plan["out"])
        self.local = threading.local()
        self.conversations: dict[str, dict[str, Any]] = {}
        self.conversation_lock = threading.Lock()

    def run(self) -> None:
        start = time.time()
        with ThreadPoolExecutor(max_workers=48) as pool:
            for index in range(int(self.rate * self.seconds)):
                time.sleep(max(0.0, start + index / self.rate - time.time()))
                pool.submit(self._guarded, index)

    def _guarded(self, index: int) -> None:
        try:
            self.one(index)
        except Exception as error:  # a load bug must show in the audit, not end the run
            self.record("load_error", index=index, error=repr(error))

    def one(self, index: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + index)
        user = rng.choice(self.users)
        if rng.random() < 0.15:
            self.conversation_turn(rng, user, index)
            return
        body: dict[str, Any] = {"tool": "text", "input": {"prompt": f"soak {index}: {rng.random()}"}}
        if rng.random() < 0.3:
            body["webhook_url"] = self.webhook_url
        if rng.random() < 0.1:
            body["notify_email"] = True
        job_id = self.submit(user, body, key=f"soak-{self.seed}-{index}")
        if job_id is None:
            return
        roll = rng.random()
        if roll < 0.1:
            time.sleep(rng.uniform(0, 2))
            status = self.call("POST", f"/jobs/{job_id}/cancel", user)[0]
            self.record("cancel", job=job_id, status=status)
        elif roll < 0.25:
            self.follow(user, job_id)
        elif roll < 0.3:
            self.export(user, job_id)

    # ------------------------------------------------------------------ actions

    def submit(self, user: dict[str, Any], body: dict[str, Any], key: str) -> str | None:
        """POST /jobs until it is accepted, retrying a 503 or a lost connection with the same key."""
        deadline = time.time() + RETRY_FOR
        while True:
            status, headers, job_id = self.timed_submit(
                "submit", "/jobs", user, body, {"Idempotency-Key": key}, key=key
            )
            if job_id:
                self.record("accepted", job=job_id, user=user["id"], key=key, webhook="webhook_url" in body)
                return job_id
            if status not in (None, 503) or time.time() > deadline:
                return None
            time.sleep(min(float(headers.get("Retry-After") or 0.5), 5.0))

    def conversation_turn(self, rng: random.Random, user: dict[str, Any], index: int) -> None:
        """One turn at a time per conversation, as a chat client sends them (a turn while the
        reply to the last is being written is a 409). A turn has no idempotency key: a
        refused one is recorded and not retried."""
        with self.conversation_lock:
            conversation = self.conversations.setdefault(user["id"], {"lock": threading.Lock(), "id": None})
        with conversation["lock"]:
            if conversation["id"] is None:
                status, _, payload, _ = self.call("POST", "/conversations", user, {"tool": "tutor"})
                if status != 201:
                    self.record("conversation", user=user["id"], status=status)
                    return
                conversation["id"] = payload["id"]
            if conversation.get("last_job"):
                self.wait(user, conversation["last_job"])
            body = {"content": f"soak turn {index}: {rng.random()}"}
            path = f"/conversations/{conversation['id']}/messages"
            _, _, job_id = self.timed_submit("turn", path, user, body)
            if job_id:
                conversation["last_job"] = job_id
                self.record("accepted", job=job_id, user=user["id"], key=None, webhook=False)

    def follow(self, user: dict[str, Any], job_id: str) -> None:
        """Read the job's event stream to its `done` event, reconnecting from Last-Event-ID."""
        last_id, events, deadline = None, 0, time.time() + 180
        while time.time() < deadline:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with self.session().get(
                    f"{self.base}/jobs/{job_id}/events",
                    headers={**self.auth(user), **headers},
                    stream=True,
                    timeout=(5, 40),
                ) as response:
                    if response.status_code == 204:
                        break
                    if response.status_code != 200:
                        time.sleep(1)
                        continue
                    for line in response.iter_lines(decode_unicode=True):
                        if line.startswith("id:"):
                            last_id = line[3:].strip()
                        elif line.startswith("event:"):
                            events += 1
                            if line[6:].strip() == "done":
                                self.record("sse", job=job_id, events=events, done=True)
                                return
            except requests.RequestException:
                time.sleep(1)
        self.record("sse", job=job_id, events=events, done=False)

    def export(self, user: dict[str, Any], job_id: str) -> None:
        job = self.wait(user, job_id)
        if job is None or job.get("status") != "succeeded":
            return
        status, _, payload, _ = self.call("POST", f"/jobs/{job_id}/exports", user, {"format": "md"})
        self.record("export", job=job_id, status=status, export=payload.get("id") if status == 202 else None)

    def wait(self, user: dict[str, Any], job_id: str) -> dict[str, Any] | None:
        deadline = time.time() + 180
        while time.time() < deadline:
            status, _, payload, _ = self.call("GET", f"/jobs/{job_id}?wait=20", user)
            if status == 200 and payload.get("status") in TERMINAL:
                return payload
            if status != 200:
                time.sleep(1)
        return None

    # ------------------------------------------------------------------ HTTP

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def auth(self, user: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {user['token']}"}

    def timed_submit(
        self,
        kind: str,
        path: str,
        user: dict[str, Any],
        body: Any,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> tuple[int | None, dict[str, str], str | None]:
        """POST something that makes a job, and record the attempt (`kind`, its status,
        Retry-After, latency; `fields` besides): (status, headers, the job's id or None)."""
        started = time.time()
        status, answer_headers, payload, error = self.call("POST", path, user, body, headers)
        job_id = payload.get("id") if status in (200, 201, 202) and isinstance(payload, dict) else None
        self.record(
            kind,
            user=user["id"],
            started=started,
            status=status,
            retry_after=answer_headers.get("Retry-After"),
            job=job_id,
            error=error,
            seconds=time.time() - started,
            **fields,
        )
        return status, answer_headers, job_id

    def call(
        self,
        method: str,
        path: str,
        user: dict[str, Any],
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int | None, dict[str, str], Any, str | None]:
        """(status, headers, JSON, None), or (None, {}, {}, why) when no answer came."""
        try:
            response = self.session().request(
                method,
                self.base + path,
                json=body,
                headers={**self.auth(user), **(headers or {})},
                timeout=30,
            )
        except requests.RequestException as error:
            self.local.session = requests.Session()  # the broken connection is not reused
            return None, {}, {}, type(error).__name__
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        return response.status_code, dict(response.headers), payload, None


def main() -> None:
    with Path(sys.argv[1]).open() as file:
        Load(json.load(file)).run()


if __name__ == "__main__":
    main()
