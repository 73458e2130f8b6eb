import datetime as dt

from marshmallow import Schema, fields, validate
from webargs.fields import DelimitedList

from api import API_PREFIX
from api.schemas.jobs import JobSchema
from api.schemas.times import UtcDateTime
from db.models.bulk_operation import MAX_JOBS, OPERATION_STATUSES
from db.models.job import STATUSES


class AdminJobSchema(JobSchema):
    """A job as operators see it: whose it is, where it went, which request made it."""

    manage_path = f"{API_PREFIX}/admin/jobs/"

    user_id = fields.UUID()
    queue = fields.String()
    priority = fields.Integer()
    request_id = fields.String(allow_none=True)
    webhook_url = fields.String(allow_none=True)


class AdminJobListArgsSchema(Schema):
    user = fields.String(
        validate=validate.Length(min=1, max=320), metadata={"description": "A user's id or email."}
    )
    status = DelimitedList(
        fields.String(validate=validate.OneOf(STATUSES)),
        load_default=(),
        metadata={"description": "Comma-separated statuses to include."},
    )
    tool = fields.String(validate=validate.Length(max=64))
    created_from = fields.AwareDateTime(
        default_timezone=dt.UTC, metadata={"description": "Created at or after (ISO 8601; UTC if no zone)."}
    )
    created_to = fields.AwareDateTime(
        default_timezone=dt.UTC, metadata={"description": "Created before (ISO 8601; UTC if no zone)."}
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(
        validate=validate.Length(max=200), metadata={"description": "next_cursor of the previous page."}
    )


class AdminJobPageSchema(Schema):
    items = fields.List(fields.Nested(AdminJobSchema))
    next_cursor = fields.String(allow_none=True)


class QueueSchema(Schema):
    name = fields.String()
    depth = fields.Integer(metadata={"description": "Messages waiting in the broker."})
    workers = fields.List(fields.String(), metadata={"description": "Live workers consuming it."})


class QueueStatsSchema(Schema):
    queues = fields.List(fields.Nested(QueueSchema))
    jobs = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "Jobs by status, all users."}
    )


class AuditEntrySchema(Schema):
    id = fields.UUID()
    actor_id = fields.UUID(allow_none=True)
    actor_email = fields.String()
    action = fields.String(metadata={"example": "job.retry"})
    target_type = fields.String()
    target_id = fields.String()
    details = fields.Dict()
    request_id = fields.String(allow_none=True)
    at = fields.DateTime()


class AuditListArgsSchema(Schema):
    action = fields.String(validate=validate.Length(max=64), metadata={"example": "job.cancel"})
    target_id = fields.String(validate=validate.Length(max=64))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200))


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEntrySchema))
    next_cursor = fields.String(allow_none=True)


class BulkFilterSchema(Schema):
    """Which jobs a bulk retry or cancel acts on: the filters of GET /admin/jobs."""

    user = fields.String(
        validate=validate.Length(min=1, max=320), metadata={"description": "A user's id or email."}
    )
    status = fields.List(fields.String(validate=validate.OneOf(STATUSES)), validate=validate.Length(max=10))
    tool = fields.String(validate=validate.Length(min=1, max=64))
    error_code = fields.String(
        validate=validate.Length(min=1, max=64), metadata={"example": "provider_error"}
    )
    created_from = UtcDateTime(metadata={"description": "Inclusive."})
    created_to = UtcDateTime(metadata={"description": "Exclusive."})
    dry_run = fields.Boolean(load_default=False, metadata={"description": "Only count the jobs that match."})
    max = fields.Integer(
        load_default=100,
        validate=validate.Range(min=1, max=MAX_JOBS),
        metadata={"description": "Refuse (409) when more jobs than this match."},
    )


class PurgeSchema(Schema):
    before = UtcDateTime(
        required=True,
        metadata={"description": "Remove finished jobs that finished before this time."},
    )
    user = fields.String(validate=validate.Length(min=1, max=320))
    tool = fields.String(validate=validate.Length(min=1, max=64))
    dry_run = fields.Boolean(load_default=False)
    max = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_JOBS))


class BulkOperationSchema(Schema):
    id = fields.UUID(allow_none=True, metadata={"description": "Null for a dry run."})
    action = fields.String(metadata={"enum": ["retry", "cancel", "purge"]})
    dry_run = fields.Boolean(load_default=False, dump_default=False)
    status = fields.String(
        metadata={
            "enum": list(OPERATION_STATUSES),
            "description": "`queued` or `running` while its task works through it.",
        }
    )
    filter = fields.Dict()
    matched = fields.Integer(metadata={"description": "Jobs the filter matched."})
    done = fields.Integer(metadata={"description": "Retried, canceled or purged."})
    skipped = fields.Integer(metadata={"description": "Refused by the single-job rules when reached."})
    failed = fields.Integer(metadata={"description": "Could not be acted on (the store refused); kept."})
    error = fields.String(allow_none=True, metadata={"description": "Why a `failed` operation stopped."})
    resumes = fields.Integer(
        metadata={"description": "Times its task died and the beat's sweep resumed it (at most 3)."}
    )
    actor_email = fields.String()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
