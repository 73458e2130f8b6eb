"""Celery settings, from the same environment as everything else (settings.py).

Clients never read Celery state: the jobs table is the source of truth, so there
is no result backend.
"""

from celery.schedules import crontab
from kombu import Exchange, Queue

from settings import get_settings

_settings = get_settings()

broker_url = _settings.celery_broker_url
broker_connection_retry_on_startup = True
# Redis re-delivers an unacknowledged message after this long; it must outlast the
# longest a task can run, or a slow job would be handed to a second worker.
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout,
    # Sweep for the unacked messages of dead workers every interval (kombu's default
    # throttle would make it ten intervals).
    "unacked_restore_interval": _settings.broker_restore_interval,
    "unacked_restore_throttle": 1,
    # A worker listening on several queues empties them in the order it lists them
    # (the Procfile lists ai_priority before ai): paid work goes first.
    "queue_order_strategy": "priority",
}
result_backend = None
task_ignore_result = True
# One (disabled) backend object per process. By default Celery keeps one per thread,
# and under the gevent pool every task runs in a greenlet of its own, which counts as
# a thread: each job built a backend object for nothing.
result_backend_thread_safe = True

task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# At-least-once delivery; the job row's compare-and-set start makes a second
# delivery harmless.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_soft_time_limit = _settings.job_soft_time_limit
task_time_limit = _settings.job_hard_time_limit

# Each queue has its own exchange and routing key: with the defaults both would be
# bound to the same key, and a message could reach either queue.
QUEUES = ("ai_priority", "ai", "default", "email", "exports", "maintenance")
task_queues = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES)
task_default_queue = "default"
task_default_exchange = "default"
task_default_routing_key = "default"

# Everything the beat sends: job recovery, scheduled-job pickup, the outbox sweeps and the
# clean-ups. They have a queue and a worker line of their own (Procfile `maintenance`), so
# the reaper and admission never wait behind slow webhook receivers or a full AI queue.
MAINTENANCE_TASKS = (
    "conveyor.maintenance.resend_queued",
    "conveyor.maintenance.reap_leases",
    "conveyor.maintenance.queue_scheduled",
    "conveyor.maintenance.expire_overdue",
    "conveyor.housekeeping.purge_expired_results",
    "conveyor.housekeeping.purge_unverified_accounts",
    "conveyor.housekeeping.purge_expired_refresh_tokens",
    "conveyor.housekeeping.daily_report",
    "conveyor.housekeeping.sweep_response_cache",
    "conveyor.exports.resend",
    "conveyor.webhooks.sweep",
    "conveyor.email.sweep",
    "conveyor.accounts.sweep_deleted",
    "conveyor.usage.rollup",
    "conveyor.billing.sweep_events",
    "conveyor.admin.resume_bulk_operations",
    "conveyor.batch_lane.tick",
)
# Exact names are looked up before the patterns, so a sweep goes to `maintenance` while
# the deliveries it hands out stay on their queues.
task_routes = {
    **{name: {"queue": "maintenance"} for name in MAINTENANCE_TASKS},
    "conveyor.generation.*": {"queue": "ai"},
    "conveyor.webhooks.*": {"queue": "default"},
    "conveyor.email.*": {"queue": "email"},
    "conveyor.accounts.*": {"queue": "default"},
    "conveyor.exports.build": {"queue": "exports"},
    "conveyor.housekeeping.*": {"queue": "maintenance"},
    "conveyor.maintenance.*": {"queue": "maintenance"},
    "conveyor.usage.*": {"queue": "default"},
    "conveyor.billing.*": {"queue": "default"},
    "conveyor.admin.*": {"queue": "default"},
}


# Time limits by kind of task. Jobs, export builds and account deletions keep the job
# limits above. A delivery (one email, webhook or Stripe event) and a sweep or recovery
# pass are short: one that hangs is ended long before a job would be, and the next
# tick (or the outbox's retry) tries again. Never above the job limits, which the
# broker's visibility timeout is sized for.
def _short_limits(soft: float) -> dict:
    return {
        "soft_time_limit": min(soft, _settings.job_soft_time_limit),
        "time_limit": min(soft + 30, _settings.job_hard_time_limit),
    }


# Not the clean-ups, nor the batch lane's tick (its uploads and downloads): they keep the
# job limits.
LONG_SWEEPS = ("conveyor.housekeeping.", "conveyor.batch_lane.")
SHORT_TASKS = (
    *(name for name in MAINTENANCE_TASKS if not name.startswith(LONG_SWEEPS)),
    "conveyor.email.send",
    "conveyor.billing.process_event",
)
task_annotations = {
    **{name: _short_limits(60) for name in SHORT_TASKS},
    # A delivery may wait on the receiver WEBHOOK_TIMEOUT to connect, and again to read.
    "conveyor.webhooks.deliver": _short_limits(max(60, 3 * _settings.webhook_timeout)),
}

# A pool process that grew past this is replaced after its task (memory a provider SDK
# or a large export kept does not stay for the worker's life).
worker_max_memory_per_child = _settings.worker_max_memory_per_child or None
# SIGTERM (docker stop, Kubernetes) is Celery's warm shutdown: no new messages, running
# jobs finish (bounded by the hard time limit), then exit. SIGQUIT is the cold one: running
# tasks get this long, then go back to the queue for another worker.
worker_soft_shutdown_timeout = _settings.worker_soft_shutdown_timeout

imports = (
    "tasks.generation",
    "tasks.job_recovery",
    "tasks.webhooks",
    "tasks.email",
    "tasks.accounts",
    "tasks.exports",
    "tasks.cleanup",
    "tasks.daily_report",
    "tasks.usage",
    "tasks.billing",
    "tasks.bulk_operations",
    "tasks.batch_lane",
)

# Task events (received, started, succeeded: a Redis publish each) are sent only while
# someone watches them. Flower asks every worker to send them when it starts and again
# every few seconds (its `enable_events`, on by default), so a worker started before or
# after Flower shows its tasks from then on; nothing else reads them (the jobs table is
# the record, /metrics counts in the worker itself). Workers still send their heartbeats.
# No task-sent event either: a waiting job is a `queued` row (and a message counted in
# Flower's broker view and in /metrics' queue depth), and the event would cost every
# submit a second publish to Redis, on top of the one that sends the job.
worker_send_task_events = False
task_send_sent_event = False


def _every(task: str, seconds: float) -> dict:
    """A beat entry whose tick is dropped if no worker took it within its interval: ticks
    sent while the maintenance worker was down would otherwise all run when it is back,
    where any one does the work."""
    return {"task": task, "schedule": seconds, "options": {"expires": max(seconds, 10.0)}}


# The beat is one process across every host: a second beat waits on the leader lock
# (workers/beat_leader.py) until the first stops.
beat_scheduler = "workers.beat_leader:LeaderScheduler"
beat_schedule = {
    # Scheduled tasks hold a Redis lock each (workers.locks): a tick that finds a run
    # still going is skipped. Task names are as registered, which deployed beats and
    # queued messages use: `conveyor.maintenance.*` live in tasks/job_recovery.py,
    # `conveyor.housekeeping.*` in tasks/cleanup.py and tasks/daily_report.py.
    "purge-expired-results": _every(
        "conveyor.housekeeping.purge_expired_results", _settings.cleanup_interval
    ),
    "purge-unverified-accounts": _every(
        "conveyor.housekeeping.purge_unverified_accounts", _settings.cleanup_interval
    ),
    "purge-expired-refresh-tokens": _every(
        "conveyor.housekeeping.purge_expired_refresh_tokens", _settings.cleanup_interval
    ),
    "sweep-response-cache": _every("conveyor.housekeeping.sweep_response_cache", _settings.cleanup_interval),
    "daily-report": {
        "task": "conveyor.housekeeping.daily_report",
        "schedule": crontab(minute=0, hour=_settings.daily_report_hour),
        "options": {"expires": 3600.0},
    },
    "resend-lost-exports": _every("conveyor.exports.resend", 60.0),
    "resend-queued-jobs": _every("conveyor.maintenance.resend_queued", _settings.maintenance_interval),
    "reap-lapsed-leases": _every("conveyor.maintenance.reap_leases", _settings.maintenance_interval),
    # Scheduled jobs are held in Postgres until their run_at (workers/scheduled_jobs.py),
    # so this tick is what starts them on time.
    "queue-scheduled-jobs": _every("conveyor.maintenance.queue_scheduled", 1.0),
    # A bulk operation whose task died is resumed from the last progress it recorded.
    "resume-bulk-operations": _every("conveyor.admin.resume_bulk_operations", _settings.maintenance_interval),
    "expire-overdue-jobs": _every("conveyor.maintenance.expire_overdue", 60.0),
    "send-due-webhooks": _every("conveyor.webhooks.sweep", 10.0),
    "send-due-emails": _every("conveyor.email.sweep", 30.0),
    "finish-account-deletions": _every("conveyor.accounts.sweep_deleted", 300.0),
    "roll-up-usage": _every("conveyor.usage.rollup", 60.0),
    "retry-stripe-events": _every("conveyor.billing.sweep_events", 60.0),
    # Held batch-lane jobs: gathered into the provider's batches, followed, taken out
    # near their deadline (workers/batch_lane/).
    "batch-lane": _every("conveyor.batch_lane.tick", _settings.batch_lane_interval),
}
