import uuid

from flask import url_for

from api.auth import admin_required, current_settings, get_current_user
from api.input_gate import Blueprint
from api.openapi import documented
from api.schemas.admin import (
    AdminJobListArgsSchema,
    AdminJobPageSchema,
    AdminJobSchema,
    AuditListArgsSchema,
    AuditPageSchema,
    BulkFilterSchema,
    BulkOperationSchema,
    PurgeSchema,
    QueueStatsSchema,
)
from api.schemas.response_cache import CachePurgedSchema, CachePurgeSchema
from api.schemas.stats import StatsArgsSchema, StatsSchema
from api.services import admin, bulk_admin, cache_admin, stats
from db.session import db_session

IN_TASK = "More jobs than BULK_ADMIN_INLINE_MAX: a task runs it; follow `Location`."

blp = Blueprint("admin", __name__, description="Operators: every user's jobs, queues, the audit log.")


@blp.route("/jobs", methods=["GET"])
@admin_required
@blp.arguments(AdminJobListArgsSchema(), location="query")
@blp.response(200, AdminJobPageSchema)
def list_jobs(args):
    """Every user's jobs, newest first; filter by user (id or email), tool, status, time."""
    items, next_cursor = admin.list_jobs(db_session(), statuses=args.pop("status"), **args)
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/jobs/retry", methods=["POST"])
@documented(statuses={409})
@admin_required
@blp.arguments(BulkFilterSchema())
@blp.response(200, BulkOperationSchema)
@blp.alt_response(202, schema=BulkOperationSchema, description=IN_TASK)
def bulk_retry(data):
    """Retry every job the filter matches (the failed, canceled or expired ones); `dry_run` counts."""
    return _bulk("retry", data)


@blp.route("/jobs/cancel", methods=["POST"])
@documented(statuses={409})
@admin_required
@blp.arguments(BulkFilterSchema())
@blp.response(200, BulkOperationSchema)
@blp.alt_response(202, schema=BulkOperationSchema, description=IN_TASK)
def bulk_cancel(data):
    """Cancel every job the filter matches (the queued or running ones); `dry_run` counts."""
    return _bulk("cancel", data)


@blp.route("/jobs/purge", methods=["POST"])
@documented(statuses={409})
@admin_required
@blp.arguments(PurgeSchema())
@blp.response(200, BulkOperationSchema)
@blp.alt_response(202, schema=BulkOperationSchema, description=IN_TASK)
def purge(data):
    """Remove finished jobs that finished before a time, with their stored files and events."""
    return _bulk("purge", data)


def _bulk(action: str, data: dict):
    """200 with the finished operation, or 202 with the one a task runs and its URL."""
    settings = current_settings()
    operation = bulk_admin.run(
        db_session(), admin=get_current_user(), action=action, settings=settings, **data
    )
    if not bulk_admin.in_task(operation, settings=settings):
        return operation
    return operation, 202, {"Location": url_for("admin.get_operation", operation_id=operation.id)}


@blp.route("/cache/purge", methods=["POST"])
@admin_required
@blp.arguments(CachePurgeSchema())
@blp.response(200, CachePurgedSchema)
def purge_cache(data):
    """Remove response-cache answers: all, a tool's, a user's, or a user's of one tool."""
    return cache_admin.purge(db_session(), admin=get_current_user(), **data)


@blp.route("/operations/<uuid:operation_id>", methods=["GET"])
@admin_required
@blp.response(200, BulkOperationSchema)
def get_operation(operation_id: uuid.UUID):
    """A bulk operation: its filter and counts."""
    return bulk_admin.get(db_session(), operation_id=operation_id)


@blp.route("/jobs/<uuid:job_id>", methods=["GET"])
@admin_required
@blp.response(200, AdminJobSchema)
def get_job(job_id: uuid.UUID):
    """Any user's job."""
    return admin.get_job(db_session(), job_id=job_id)


@blp.route("/jobs/<uuid:job_id>/retry", methods=["POST"])
@documented(statuses={409})
@admin_required
@blp.response(202, AdminJobSchema)
def retry_job(job_id: uuid.UUID):
    """Run a failed, canceled or expired job again, as a new job linked by `retry_of`."""
    job = admin.retry(db_session(), admin=get_current_user(), job_id=job_id, settings=current_settings())
    return job, 202, {"Location": url_for("admin.get_job", job_id=job.id)}


@blp.route("/jobs/<uuid:job_id>/cancel", methods=["POST"])
@documented(statuses={409})
@admin_required
@blp.response(202, AdminJobSchema)
def cancel_job(job_id: uuid.UUID):
    """Cancel any user's job, as its owner could: at once if queued, within seconds if running."""
    return admin.cancel(db_session(), admin=get_current_user(), job_id=job_id)


@blp.route("/queues", methods=["GET"])
@admin_required
@blp.response(200, QueueStatsSchema)
def queue_stats():
    """Messages waiting and live workers per queue; jobs by status."""
    return admin.queue_stats(db_session(), settings=current_settings())


@blp.route("/stats", methods=["GET"])
@admin_required
@blp.arguments(StatsArgsSchema(), location="query")
@blp.response(200, StatsSchema)
def job_stats(args):
    """Jobs by status, tool and model; failures by code; wait and run time; cost per model."""
    return stats.stats(db_session(), start=args["from_"], end=args["to"])


@blp.route("/audit-log", methods=["GET"])
@admin_required
@blp.arguments(AuditListArgsSchema(), location="query")
@blp.response(200, AuditPageSchema)
def audit_log(args):
    """Admin actions, newest first."""
    items, next_cursor = admin.audit_page(db_session(), **args)
    return {"items": items, "next_cursor": next_cursor}
