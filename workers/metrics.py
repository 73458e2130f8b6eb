"""Prometheus metrics: every definition in one place, and the small helpers the
code calls where things happen (submit, a job's start and end, a provider request,
a webhook or email attempt, an HTTP request).

Where Prometheus scrapes them (one target per process group, as it expects):

- web: `GET /api/v1/metrics` — the gunicorn workers' metrics (HTTP, submits,
  cancels), plus gauges read from Redis at scrape time: messages waiting per
  queue and live workers per queue (cluster-wide, so only the web serves them).
- each Celery worker: `http://<host>:$METRICS_PORT/metrics` — its pool
  processes' metrics (jobs run, queue wait, provider requests, tokens, cost,
  webhook and email deliveries). The Procfile gives each worker line a port.

Both are several processes, so prometheus-client runs in multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (the Procfile sets one directory per line; it is
emptied when the process group starts). Every metric has labels, so nothing is
written to that directory at import time, before it has been emptied.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from redis import Redis

from workers import queues as queue_info
from workers.providers.base import Canceled

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MICROS = 1_000_000

JOBS_SUBMITTED = Counter(
    "conveyor_jobs_submitted_total", "Jobs accepted (POST /jobs, admin retries).", ["tool", "queue"]
)
JOBS_FINISHED = Counter(
    "conveyor_jobs_finished_total",
    "Jobs that reached a final status, by tool, status and error code (empty when none).",
    ["tool", "status", "code"],
)
JOBS_REAPED = Counter(
    "conveyor_jobs_reaped_total",
    "Jobs the beat's job recovery moved: requeued or worker_lost (lapsed lease), expired (deadline).",
    ["outcome"],
)
JOB_DURATION = Histogram(
    "conveyor_job_duration_seconds",
    "One delivery of a job, from a worker taking it to its outcome.",
    ["tool", "status"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
)
QUEUE_WAIT = Histogram(
    "conveyor_job_queue_wait_seconds",
    "From submit to a worker starting the job's first attempt (includes waiting for the plan's slot).",
    ["tool", "queue"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
PROVIDER_LATENCY = Histogram(
    "conveyor_provider_request_duration_seconds",
    "One request to the AI provider, until its stream ended; outcome ok, error or canceled.",
    ["provider", "model", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
PROVIDER_ERRORS = Counter(
    "conveyor_provider_errors_total",
    "Failed provider requests (retried or not) by error code and HTTP status (empty: no HTTP answer).",
    ["provider", "code", "http_status"],
)
FALLBACKS = Counter(
    "conveyor_fallbacks_total",
    "Jobs that went on from one model to the next: because the call failed (its error code) "
    "or its breaker was open (`breaker_open`).",
    ["from_model", "to_model", "reason"],
)
BREAKER_CHANGES = Counter(
    "conveyor_breaker_transitions_total",
    "A model's circuit breaker opening (skipped by jobs) or closing (healthy again).",
    ["provider", "model", "state"],
)
FLEX_FALLBACKS = Counter(
    "conveyor_flex_standard_fallbacks_total",
    "Flex jobs that ran on the standard tier after the provider had no flex capacity in time.",
    ["model"],
)
TOKENS = Counter("conveyor_tokens_total", "Tokens the provider reported, by model.", ["model", "kind"])
COST = Counter("conveyor_cost_dollars_total", "What those tokens cost at the catalogue's prices.", ["model"])
WEBHOOK_DELIVERIES = Counter(
    "conveyor_webhook_deliveries_total",
    "Webhook attempts by outcome: delivered, retrying (will try again), failed (gave up).",
    ["outcome"],
)
EMAIL_DELIVERIES = Counter(
    "conveyor_email_deliveries_total",
    "Email attempts by outcome: sent, retrying (will try again), failed (gave up).",
    ["outcome"],
)
CACHE_LOOKUPS = Counter(
    "conveyor_response_cache_lookups_total",
    "Submits that looked in the response cache, by tool and outcome (hit, miss).",
    ["tool", "outcome"],
)
CACHE_SAVED_TOKENS = Counter(
    "conveyor_response_cache_saved_tokens_total",
    "Tokens the response cache's hits did not spend: what producing the answers had used.",
    ["tool", "kind"],
)
CACHE_SAVED_COST = Counter(
    "conveyor_response_cache_saved_dollars_total",
    "What those tokens had cost at the price table.",
    ["tool"],
)
HTTP_REQUESTS = Counter(
    "conveyor_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "conveyor_http_request_duration_seconds",
    "Time to answer an HTTP request (to the first byte, for streams).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Outbox statuses as the deliveries name them → the outcome a dashboard shows.
_OUTCOMES = {"pending": "retrying"}


def job_submitted(*, tool: str, queue: str) -> None:
    JOBS_SUBMITTED.labels(tool=tool, queue=queue).inc()


def job_started(*, tool: str, queue: str, attempt: int, waited: float) -> None:
    if attempt == 1:  # a re-run after a lost worker is not queue wait
        _queue_wait_series(tool, queue).observe(max(waited, 0.0))


def job_finished(*, tool: str, status: str, code: str | None = None, duration: float | None = None) -> None:
    count, latency = _finished_series(tool, status, code or "")
    count.inc()
    if duration is not None:
        latency.observe(duration)


def jobs_reaped(outcome: str, count: int) -> None:
    if count:
        JOBS_REAPED.labels(outcome=outcome).inc(count)


def usage(*, model: str, input_tokens: int, output_tokens: int, cost_micros: int) -> None:
    tokens_in, tokens_out, cost = _usage_series(model)
    if input_tokens:
        tokens_in.inc(input_tokens)
    if output_tokens:
        tokens_out.inc(output_tokens)
    if cost_micros:
        cost.inc(cost_micros / MICROS)


# Every job records these: each series is looked up once per set of labels rather than
# have `labels()` check the names and take its lock on every job (as _http_series does
# for requests). Tools, queues, statuses, error codes and models are few.
@functools.lru_cache(maxsize=1024)
def _queue_wait_series(tool: str, queue: str) -> Any:
    return QUEUE_WAIT.labels(tool, queue)


@functools.lru_cache(maxsize=1024)
def _finished_series(tool: str, status: str, code: str) -> tuple[Any, Any]:
    return JOBS_FINISHED.labels(tool, status, code), JOB_DURATION.labels(tool, status)


@functools.lru_cache(maxsize=1024)
def _usage_series(model: str) -> tuple[Any, Any, Any]:
    return TOKENS.labels(model, "input"), TOKENS.labels(model, "output"), COST.labels(model)


def fallback(*, from_model: str, to_model: str, reason: str) -> None:
    FALLBACKS.labels(from_model=from_model, to_model=to_model, reason=reason).inc()


def breaker_changed(*, provider: str, model: str, state: str) -> None:
    BREAKER_CHANGES.labels(provider=provider, model=model, state=state).inc()


def flex_ran_standard(*, model: str) -> None:
    FLEX_FALLBACKS.labels(model=model).inc()


def cache_lookup(
    *, tool: str, hit: bool, input_tokens: int = 0, output_tokens: int = 0, cost_micros: int = 0
) -> None:
    CACHE_LOOKUPS.labels(tool=tool, outcome="hit" if hit else "miss").inc()
    if input_tokens:
        CACHE_SAVED_TOKENS.labels(tool=tool, kind="input").inc(input_tokens)
    if output_tokens:
        CACHE_SAVED_TOKENS.labels(tool=tool, kind="output").inc(output_tokens)
    if cost_micros:
        CACHE_SAVED_COST.labels(tool=tool).inc(cost_micros / MICROS)


@contextlib.contextmanager
def provider_request(provider: str, model: str) -> Iterator[None]:
    """Time one provider request; count it as an error if it raises one with a `code`."""
    started = time.monotonic()
    outcome = "ok"
    try:
        yield
    except BaseException as error:
        code = getattr(error, "code", None)
        if isinstance(code, str):
            status = getattr(error.__cause__, "status_code", None)
            PROVIDER_ERRORS.labels(provider=provider, code=code, http_status=str(status or "")).inc()
            outcome = "error"
        else:
            outcome = "canceled" if isinstance(error, Canceled) else "error"
        raise
    finally:
        PROVIDER_LATENCY.labels(provider=provider, model=model, outcome=outcome).observe(
            time.monotonic() - started
        )


def webhook_delivery(status: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome=_OUTCOMES.get(status, status)).inc()


def email_delivery(status: str) -> None:
    EMAIL_DELIVERIES.labels(outcome=_OUTCOMES.get(status, status)).inc()


def http_request(*, method: str, route: str, status: int, duration: float) -> None:
    count, latency = _http_series(method, route, status)
    count.inc()
    latency.observe(duration)


@functools.lru_cache(maxsize=1024)
def _http_series(method: str, route: str, status: int) -> tuple[Any, Any]:
    # Every request records both: look the pair up once per (method, route, status) rather
    # than have `labels()` check the names and take its lock twice a request. The same
    # objects prometheus_client keeps for these labels (routes are templates, not paths).
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(method, route)


# ---------------------------------------------------------------- exposing them


class QueueCollector:
    """Gauges read from Redis at scrape time: messages waiting per queue (LLEN on the
    broker) and live workers per queue (their heartbeats). A scrape while Redis is down
    leaves them out (Prometheus marks them stale) rather than failing the scrape."""

    def __init__(self, *, broker: Redis, redis: Redis, queues: Iterable[str]) -> None:
        self.broker = broker
        self.redis = redis
        self.queues = tuple(queues)

    def collect(self):
        try:
            depth = queue_info.depths(self.broker, self.queues)
            workers = queue_info.workers_by_queue(self.redis, self.queues)
        except Exception as error:
            logger.warning("metrics: queue gauges skipped, Redis unavailable: %s", error)
            return
        waiting = GaugeMetricFamily(
            "conveyor_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        listening = GaugeMetricFamily(
            "conveyor_queue_workers", "Live workers consuming each queue (heartbeats).", labels=["queue"]
        )
        for name in self.queues:
            waiting.add_metric([name], depth[name])
            listening.add_metric([name], len(workers[name]))
        yield waiting
        yield listening
        yield from self._breakers()

    def _breakers(self):
        from workers import breaker  # it counts its transitions here: imported late

        try:
            tripped = breaker.tripped_models(self.redis)
        except Exception as error:
            logger.warning("metrics: breaker gauges skipped, Redis unavailable: %s", error)
            return
        state = GaugeMetricFamily(
            "conveyor_breaker_open",
            "Models whose circuit breaker is not closed: 1 by provider, model and state "
            "(open: skipped; half_open: one job is trying it). Closed breakers are absent.",
            labels=["provider", "model", "state"],
        )
        for provider, model, current in tripped:
            state.add_metric([provider, model, current], 1)
        yield state


class _Collected:
    """Adapts a registry (the default one) so it can sit in another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry(*extra) -> CollectorRegistry:
    """A registry for one scrape: every process's metrics in multiprocess mode, this
    process's otherwise, plus `extra` collectors."""
    scrape = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(scrape)
    else:
        scrape.register(_Collected(REGISTRY))
    for collector in extra:
        scrape.register(collector)
    return scrape


def reset_multiprocess_dir() -> None:
    """Empty PROMETHEUS_MULTIPROC_DIR when a process group starts: files left by an
    earlier run would otherwise be added to this run's counters."""
    path = multiprocess_dir()
    if not path:
        return
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)


def process_exited(pid: int) -> None:
    """A gunicorn worker or pool process ended (prometheus-client's own advice)."""
    if multiprocess_dir():
        mark_process_dead(pid)


def serve(port: int) -> bool:
    """Serve this process group's metrics on `port` (a Celery worker). A port already in
    use is logged and skipped: metrics are not worth refusing to run jobs for."""
    try:
        start_http_server(port, registry=registry())
    except OSError as error:
        logger.warning(
            "metrics: cannot listen on port %s (%s); this worker's metrics are not served", port, error
        )
        return False
    logger.info("metrics: serving on port %s at /metrics", port)
    return True
