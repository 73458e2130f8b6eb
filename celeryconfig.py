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
QUEUES = ("ai_priority", "ai", "default", "email", "exports")
task_queues = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES)
task_default_queue = "default"
task_default_exchange = "default"
task_default_routing_key = "default"
task_routes = {
    "conveyor.generation.*": {"queue": "ai"},
    "conveyor.webhooks.*": {"queue": "default"},
    "conveyor.email.*": {"queue": "email"},
    "conveyor.accounts.*": {"queue": "default"},
    "conveyor.exports.build": {"queue": "exports"},
    "conveyor.exports.resend": {"queue": "default"},
    "conveyor.housekeeping.*": {"queue": "default"},
    "conveyor.usage.*": {"queue": "default"},
    "conveyor.billing.*": {"queue": "default"},
    "conveyor.admin.*": {"queue": "default"},
    "conveyor.batch_lane.*": {"queue": "default"},
}
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

# Flower shows tasks as they move, from the moment a worker receives them. No task-sent
# event: a waiting job is a `queued` row (and a message counted in Flower's broker view and
# in /metrics' queue depth), and the event would cost every submit a second publish to
# Redis, on top of the one that sends the job.
worker_send_task_events = True
task_send_sent_event = False

beat_schedule = {
    # Scheduled tasks hold a Redis lock each (workers.locks): a tick that finds a run
    # still going is skipped. Task names are as registered, which deployed beats and
    # queued messages use: `conveyor.maintenance.*` live in tasks/job_recovery.py,
    # `conveyor.housekeeping.*` in tasks/cleanup.py and tasks/daily_report.py.
    "purge-expired-results": {
        "task": "conveyor.housekeeping.purge_expired_results",
        "schedule": _settings.cleanup_interval,
    },
    "purge-unverified-accounts": {
        "task": "conveyor.housekeeping.purge_unverified_accounts",
        "schedule": _settings.cleanup_interval,
    },
    "purge-expired-refresh-tokens": {
        "task": "conveyor.housekeeping.purge_expired_refresh_tokens",
        "schedule": _settings.cleanup_interval,
    },
    "sweep-response-cache": {
        "task": "conveyor.housekeeping.sweep_response_cache",
        "schedule": _settings.cleanup_interval,
    },
    "daily-report": {
        "task": "conveyor.housekeeping.daily_report",
        "schedule": crontab(minute=0, hour=_settings.daily_report_hour),
    },
    "resend-lost-exports": {"task": "conveyor.exports.resend", "schedule": 60.0},
    "resend-queued-jobs": {
        "task": "conveyor.maintenance.resend_queued",
        "schedule": _settings.maintenance_interval,
    },
    "reap-lapsed-leases": {
        "task": "conveyor.maintenance.reap_leases",
        "schedule": _settings.maintenance_interval,
    },
    # Scheduled jobs are held in Postgres until their run_at (workers/scheduled_jobs.py),
    # so this tick is what starts them on time. Ticks that waited long in the queue (the
    # worker was down) are dropped rather than run in a heap: any one does the work.
    "queue-scheduled-jobs": {
        "task": "conveyor.maintenance.queue_scheduled",
        "schedule": 1.0,
        "options": {"expires": 10.0},
    },
    # A bulk operation whose task died is resumed from the last progress it recorded.
    "resume-bulk-operations": {
        "task": "conveyor.admin.resume_bulk_operations",
        "schedule": _settings.maintenance_interval,
    },
    "expire-overdue-jobs": {"task": "conveyor.maintenance.expire_overdue", "schedule": 60.0},
    "send-due-webhooks": {"task": "conveyor.webhooks.sweep", "schedule": 10.0},
    "send-due-emails": {"task": "conveyor.email.sweep", "schedule": 30.0},
    "finish-account-deletions": {"task": "conveyor.accounts.sweep_deleted", "schedule": 300.0},
    "roll-up-usage": {"task": "conveyor.usage.rollup", "schedule": 60.0},
    "retry-stripe-events": {"task": "conveyor.billing.sweep_events", "schedule": 60.0},
    # Held batch-lane jobs: gathered into the provider's batches, followed, taken out
    # near their deadline (workers/batch_lane/).
    "batch-lane": {"task": "conveyor.batch_lane.tick", "schedule": _settings.batch_lane_interval},
}
