"""The audit after the drain: reads Postgres, Redis, the webhook receiver's and the
mail server's records and the load's own, and lists every way the run broke the
promise "nothing lost, nothing charged twice, nothing stuck"."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extras
from redis import Redis

from tests.fakes.smtp_server import SmtpServer
from tests.fakes.webhook_receiver import WebhookReceiver

TERMINAL = ("succeeded", "failed", "canceled", "expired")
FAULT_GRACE = 2.0  # seconds around a fault in which a refusal is still the fault's
# A message delivered longer ago than this and still not acknowledged is left behind:
# after the drain no job runs, and the beat's own tasks take far less.
UNACKED_FOR = 15.0
# Seconds from an email's arrival within which a kill of the mail worker explains a copy.
KILL_WINDOW = 2.0
EXAMPLES = 5  # findings of one kind shown in full; all are counted


@dataclass
class Audit:
    counts: dict[str, Any] = field(default_factory=dict)
    findings: dict[str, list[Any]] = field(default_factory=dict)

    def find(self, check: str, items: list[Any]) -> None:
        self.counts[check] = len(items)
        if items:
            self.findings[check] = items[:EXAMPLES]

    @property
    def passed(self) -> bool:
        return not self.findings


def audit(
    database_url: str,
    redis: Redis,
    receiver: WebhookReceiver,
    smtp: SmtpServer,
    records: list[dict[str, Any]],
    windows: list[tuple[float, float, str]],
    faults: list[dict[str, Any]],
) -> Audit:
    result = Audit()
    connection = psycopg2.connect(database_url, cursor_factory=psycopg2.extras.RealDictCursor)
    try:
        with connection.cursor() as cursor:
            jobs = _jobs(cursor, result, records)
            _billing(cursor, result, jobs)
            _webhooks(cursor, result, receiver, jobs)
            _emails(cursor, result, smtp, faults)
    finally:
        connection.close()
    _broker(result, redis)
    _submits(result, records, windows)
    return result


def open_work(database_url: str, redis: Redis) -> int:
    """Jobs not finished, outbox rows still moving and messages not acknowledged: the
    drain waits for this to reach 0."""
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT count(*) FROM jobs WHERE status NOT IN %(t)s)"
                " + (SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'sending'))"
                " + (SELECT count(*) FROM email_outbox WHERE status IN ('pending', 'sending'))"
                " + (SELECT count(*) FROM exports WHERE status IN ('queued', 'running'))",
                {"t": TERMINAL},
            )
            open_rows = cursor.fetchone()[0]
    finally:
        connection.close()
    return open_rows + len(_left_unacknowledged(redis))


def _jobs(cursor, result: Audit, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    cursor.execute("SELECT * FROM jobs")
    jobs = {str(row["id"]): row for row in cursor.fetchall()}
    accepted = {record["job"] for record in records if record["kind"] == "accepted"}
    result.counts["accepted"] = len(accepted)
    result.counts["jobs_by_state"] = dict(Counter(job["status"] for job in jobs.values()))
    result.find("lost", sorted(accepted - jobs.keys()))
    now = dt.datetime.now(dt.UTC)
    open_jobs = [job for job in jobs.values() if job["status"] not in TERMINAL]
    result.find("stuck", [f"{job['id']} {job['status']} attempt {job['attempt']}" for job in open_jobs])
    result.find(
        "running_without_lease",
        [
            str(job["id"])
            for job in open_jobs
            if job["status"] == "running" and (job["lease_until"] is None or job["lease_until"] < now)
        ],
    )
    # One idempotency key, one job: a retried submit must not have made a second.
    by_key = defaultdict(set)
    for record in records:
        if record["kind"] == "submit" and record["job"]:
            by_key[record["key"]].add(record["job"])
    result.find("one_key_two_jobs", [key for key, ids in by_key.items() if len(ids) > 1])
    return jobs


def _billing(cursor, result: Audit, jobs: dict[str, dict[str, Any]]) -> None:
    cursor.execute("SELECT * FROM usage_ledger")
    ledger = defaultdict(list)
    for row in cursor.fetchall():
        ledger[str(row["job_id"])].append(row)
    charged_twice, wrong_bill = [], []
    used = Counter()
    for job_id, job in jobs.items():
        billed = [row for row in ledger.get(job_id, []) if row["billed"]]
        attempts = {row["attempt"] for row in billed}
        if len(attempts) > 1:
            charged_twice.append(f"{job_id}: billed attempts {sorted(attempts)}")
        tokens = sum(row["input_tokens"] + row["output_tokens"] for row in billed)
        job_tokens = job["input_tokens"] + job["output_tokens"]
        cost = sum(row["cost_micros"] for row in billed)
        if billed and (tokens != job_tokens or cost != job["cost_micros"] or attempts != {job["attempt"]}):
            wrong_bill.append(
                f"{job_id}: job {job_tokens} tokens/{job['cost_micros']}, ledger {tokens}/{cost}"
            )
        if billed and job["status"] not in ("succeeded", "canceled"):
            wrong_bill.append(f"{job_id}: {job['status']} but billed")
        if job["status"] in ("succeeded", "canceled"):
            used[(job["user_id"], job["created_at"].astimezone(dt.UTC).date().replace(day=1))] += tokens
    result.find("charged_twice", charged_twice)
    result.find("bill_not_one_attempt", wrong_bill)

    cursor.execute("SELECT user_id, period, tokens_used, tokens_reserved FROM usage_counters")
    counters = {(row["user_id"], row["period"]): row for row in cursor.fetchall()}
    mismatched = [
        f"{user} {period}: counter {counters.get((user, period), {}).get('tokens_used', 0)}, ledger {tokens}"
        for (user, period), tokens in used.items()
        if counters.get((user, period), {}).get("tokens_used", 0) != tokens
    ]
    mismatched += [
        f"{user} {period}: counter {row['tokens_used']}, ledger 0"
        for (user, period), row in counters.items()
        if row["tokens_used"] and (user, period) not in used
    ]
    result.find("quota_counter_not_ledger", mismatched)
    # What the counters still hold must be what unfinished jobs reserved: none of it a
    # finished job's.
    held = Counter()
    for job in jobs.values():
        if job["status"] not in TERMINAL:
            held[(job["user_id"], job["created_at"].astimezone(dt.UTC).date().replace(day=1))] += job[
                "reserved_tokens"
            ]
    result.find(
        "reservation_left",
        [
            f"{user} {period}: {row['tokens_reserved']} reserved, open jobs {held[(user, period)]}"
            for (user, period), row in counters.items()
            if row["tokens_reserved"] != held[(user, period)]
        ],
    )


def _webhooks(cursor, result: Audit, receiver: WebhookReceiver, jobs: dict[str, dict[str, Any]]) -> None:
    cursor.execute("SELECT job_id, status, attempts FROM webhook_deliveries WHERE job_id IS NOT NULL")
    deliveries = {str(row["job_id"]): row for row in cursor.fetchall()}
    received = defaultdict(list)
    for request in receiver.requests:
        try:
            job_id = json.loads(request.body)["data"]["id"]
        except (ValueError, KeyError, TypeError):
            continue
        received[job_id].append(request.headers.get("webhook-id"))
    wanted = [job_id for job_id, job in jobs.items() if job["webhook_url"]]
    result.counts["webhooks_wanted"] = len(wanted)
    result.counts["webhook_requests"] = sum(len(ids) for ids in received.values())
    result.find(
        "webhook_not_delivered",
        [
            f"{job_id}: {deliveries.get(job_id, {}).get('status', 'no row')}, got {len(received[job_id])}"
            for job_id in wanted
            if deliveries.get(job_id, {}).get("status") != "delivered" or not received[job_id]
        ],
    )
    result.find(
        "webhook_event_id_changed",
        [f"{job_id}: {sorted(set(ids))}" for job_id, ids in received.items() if len(set(ids)) > 1],
    )


def _emails(cursor, result: Audit, smtp: SmtpServer, faults: list[dict[str, Any]]) -> None:
    cursor.execute("SELECT id, dedupe_key, status FROM email_outbox")
    rows = cursor.fetchall()
    arrivals = smtp.arrivals()
    copies = defaultdict(list)
    for message, arrived in arrivals:
        copies[message["Message-ID"].strip("<>").split("@")[0]].append(arrived)
    result.counts["emails_sent"] = len(arrivals)
    # The one copy the design allows (workers/outbox.py): the mail worker's process was
    # killed after the server took the email and before `sent` was committed. Any other
    # second copy is a finding.
    kills = [
        fault["started"]
        for fault in faults
        if fault["kind"] in ("pool_child", "worker_kill") and fault["target"] == "worker"
    ]

    def after_a_kill(first: float) -> bool:
        return any(first <= killed <= first + KILL_WINDOW for killed in kills)

    twice = {str(row["id"]): row for row in rows if len(copies[str(row["id"])]) > 1}
    folded = [key for key, row in twice.items() if len(copies[key]) == 2 and after_a_kill(min(copies[key]))]
    result.counts["email_copies_after_a_killed_worker"] = len(folded)
    result.find(
        "email_twice",
        [f"{row['dedupe_key']}: {len(copies[key])}" for key, row in twice.items() if key not in folded],
    )
    result.find(
        "email_not_sent",
        [
            f"{row['dedupe_key']}: {row['status']}"
            for row in rows
            if row["status"] == "sent" and not copies[str(row["id"])]
        ],
    )
    result.find(
        "outbox_left_open",
        [
            f"email {row['dedupe_key']}: {row['status']}"
            for row in rows
            if row["status"] in ("pending", "sending")
        ],
    )
    cursor.execute("SELECT job_id, status FROM webhook_deliveries WHERE status IN ('pending', 'sending')")
    result.counts["webhook_outbox_left_open"] = cursor.rowcount
    if cursor.rowcount:
        result.findings.setdefault("outbox_left_open", []).extend(
            f"webhook {row['job_id']}: {row['status']}" for row in cursor.fetchall()[:EXAMPLES]
        )


def _broker(result: Audit, redis: Redis) -> None:
    result.find("unacknowledged_messages", _left_unacknowledged(redis))


def _left_unacknowledged(redis: Redis) -> list[str]:
    """Celery messages delivered to a worker and never acknowledged (kombu's Redis
    transport keeps them in `unacked`, by delivery time in `unacked_index`); those of a
    dead worker go back to their queue after the visibility timeout."""
    before = time.time() - UNACKED_FOR
    return [tag.decode() for tag in redis.zrangebyscore("unacked_index", 0, before)]


def _submits(result: Audit, records: list[dict[str, Any]], windows: list[tuple[float, float, str]]) -> None:
    """Refusals only while a dependency was down, and then only 503 with Retry-After (or,
    while a web worker died under it, no answer)."""

    def faults_at(started: float, ended: float) -> set[str]:
        return {
            kind
            for low, high, kind in windows
            if started <= high + FAULT_GRACE and ended >= low - FAULT_GRACE
        }

    wrong = []
    latencies: dict[str, list[float]] = {"in_faults": [], "outside_faults": []}
    for record in records:
        if record["kind"] not in ("submit", "turn"):
            continue
        ended = record["started"] + record["seconds"]
        kinds = faults_at(record["started"], ended)
        latencies["in_faults" if kinds else "outside_faults"].append(record["seconds"])
        status = record["status"]
        if status in (200, 202):
            continue
        excused = kinds and (
            (status == 503 and record["retry_after"]) or (status is None and "web_kill" in kinds)
        )
        if not excused:
            wrong.append(
                f"{record['kind']} {status or record['error']} at {record['started']:.1f} {sorted(kinds)}"
            )
    result.find("submit_refused_wrongly", wrong)
    result.counts["submit_latency"] = {name: _percentiles(values) for name, values in latencies.items()}
    result.counts["submit_refusals"] = dict(
        Counter(
            str(r["status"] or r["error"])
            for r in records
            if r["kind"] in ("submit", "turn") and r["status"] not in (200, 202)
        )
    )


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)

    return {"count": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99)}
