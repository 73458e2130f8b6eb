from marshmallow import EXCLUDE, Schema, fields, validate
from webargs.fields import DelimitedList

from api import API_PREFIX
from api.auth import current_settings
from api.services import files
from api.services import jobs as job_service
from api.services.scheduling import MAX_DELAY_SECONDS
from db.models.job import BATCH, FLEX, LANES, RATINGS, STANDARD, STATUSES
from workers import job_links, metering, response_cache

SERVICE_TIERS = (STANDARD, FLEX)
SUBMIT_LANES = (STANDARD, BATCH)

FEEDBACK_COMMENT_MAX = 2000


class JobCreateSchema(Schema):
    tool = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={"example": "text"})
    input = fields.Dict(
        required=True,
        metadata={
            "description": "The tool's input; GET /tools/<name> gives its JSON Schema.",
            "example": {"prompt": "Write a haiku about queues."},
        },
    )
    model = fields.String(
        validate=validate.Length(min=1, max=128), metadata={"description": "Defaults per tool."}
    )
    webhook_url = fields.Url(schemes={"https", "http"}, validate=validate.Length(max=2048))
    notify_email = fields.Boolean(
        load_default=False, metadata={"description": "Email the account's address when the job finishes."}
    )
    run_at = fields.AwareDateTime(
        error_messages={
            "invalid": "run_at is an ISO 8601 date and time, e.g. 2030-01-31T09:00:00Z.",
            "invalid_awareness": "run_at needs a timezone, e.g. 2030-01-31T09:00:00Z or +02:00.",
        },
        metadata={
            "description": "Run the job at this time (with a timezone; at most 30 days ahead): "
            "it is `scheduled` until then. Not with delay_seconds.",
            "example": "2030-01-31T09:00:00Z",
        },
    )
    delay_seconds = fields.Integer(
        strict=True,
        validate=validate.Range(
            min=1,
            max=MAX_DELAY_SECONDS,
            error=f"delay_seconds is a number of seconds from 1 to {MAX_DELAY_SECONDS} (30 days).",
        ),
        metadata={"description": "Run the job this many seconds from now: it is `scheduled` until then."},
    )
    service_tier = fields.String(
        validate=validate.OneOf(SERVICE_TIERS, error="service_tier is `standard` or `flex`."),
        metadata={
            "description": "`flex`: a cheaper, slower lane, for models that have one; if the provider "
            "has no room the job waits, then runs on the standard tier. Unset: the plan's "
            "lane for tools that are not interactive, else standard (docs/spending.md).",
            "enum": list(SERVICE_TIERS),
        },
    )
    cache = fields.String(
        load_default=response_cache.DEFAULT,
        validate=validate.OneOf(response_cache.MODES, error="cache is one of: default, bypass, refresh."),
        metadata={
            "enum": list(response_cache.MODES),
            "description": "The response cache, for tools that declare one (GET /tools: `cache_ttl`): "
            "`default` serves an identical earlier answer at once and keeps a new one; `bypass` "
            "neither serves nor keeps; `refresh` calls the model and replaces the kept answer.",
        },
    )
    lane = fields.String(
        validate=validate.OneOf(SUBMIT_LANES, error="lane is `standard` or `batch`."),
        metadata={
            "enum": list(SUBMIT_LANES),
            "description": "`batch`: run through the provider's Batch API at the model's batch "
            "price (models that have one), within a day (or by `deadline`); the job is "
            "`scheduled` until its answer is in. Defaults to `batch` with a `deadline`, else "
            "`standard` (whose tier `service_tier` chooses).",
        },
    )
    deadline = fields.AwareDateTime(
        error_messages={
            "invalid": "deadline is an ISO 8601 date and time, e.g. 2030-01-31T09:00:00Z.",
            "invalid_awareness": "deadline needs a timezone, e.g. 2030-01-31T09:00:00Z or +02:00.",
        },
        metadata={
            "description": "When the result is needed by, at least BATCH_LANE_MIN_DEADLINE (an hour) "
            "and at most 7 days ahead: the job goes on the batch lane, and runs on the normal lane "
            "if its batch has not answered shortly before then. Not with run_at or delay_seconds.",
            "example": "2030-01-31T09:00:00Z",
        },
    )


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Length(min=1, max=255),
        metadata={"description": "Retry-safe submit: the same key and body return the same job."},
    )


class FeedbackSchema(Schema):
    rating = fields.String(required=True, validate=validate.OneOf(RATINGS), metadata={"enum": list(RATINGS)})
    comment = fields.String(
        allow_none=True,
        validate=validate.Length(
            max=FEEDBACK_COMMENT_MAX, error=f"At most {FEEDBACK_COMMENT_MAX} characters."
        ),
        metadata={"description": "Optional: what was good or wrong."},
    )
    updated_at = fields.DateTime(dump_only=True)


def _feedback(job) -> dict | None:
    if job.feedback_rating is None:
        return None
    shown = {"rating": job.feedback_rating, "comment": job.feedback_comment, "updated_at": job.feedback_at}
    return FeedbackSchema().dump(shown)


class JobErrorSchema(Schema):
    code = fields.String()
    message = fields.String()


class UsageSchema(Schema):
    input_tokens = fields.Integer()
    output_tokens = fields.Integer()
    cost_micros = fields.Integer(metadata={"description": "Cost in millionths of a US dollar."})
    lane = fields.String(
        metadata={"description": "How it was sold: standard, flex or batch.", "enum": list(LANES)}
    )
    cached = fields.Boolean(metadata={"description": "Answered from the response cache, at no cost."})


class AttemptSchema(Schema):
    model = fields.String()
    outcome = fields.String(metadata={"enum": ["succeeded", "failed", "skipped"]})
    error_code = fields.String(allow_none=True)


_URL = {"type": "string", "format": "uri"}
URLS_DOC = {
    "type": "object",
    "description": "Absolute links for this job, built on PUBLIC_BASE_URL.",
    "properties": {
        "get": {**_URL, "description": "GET: the job (poll, long-poll)."},
        "cancel": {**_URL, "description": "POST: cancel the job."},
        "stream": {
            **_URL,
            "description": "Its events (server-sent events) for a plain browser `EventSource`, no "
            "header needed: the URL carries a signed token for this job alone, read only. It works "
            "for STREAM_TOKEN_TTL after it was handed out, and no longer than STREAM_TOKEN_GRACE "
            "after the job ended; once refused (410 expired, 401 otherwise), GET the job again "
            "for a fresh one.",
        },
    },
}


QUEUE_DOC = {
    "type": "object",
    "nullable": True,
    "description": "While the job is queued: its place in its queue. `ahead`: the jobs that "
    "will start before it (those sent to its queue before it and not started yet, those of "
    "a queue drained first, and, for a job held for its owner's running limit, the owner's "
    "older held jobs); `position` = `ahead` + 1 (1: next to start). `eta_seconds`: about how "
    "long until it starts, from the recent run times of its tool and model and the live "
    "workers' capacity, or null when unknown. Null once the job runs, once it has finished, "
    "and when the queue's counters cannot be read. An estimate: see docs/api.md.",
    "properties": {
        "position": {"type": "integer", "minimum": 1},
        "ahead": {"type": "integer", "minimum": 0},
        "eta_seconds": {"type": "integer", "minimum": 0, "nullable": True},
    },
}


class JobSchema(Schema):
    # Where `urls.get` and `urls.cancel` point (the admin API's own routes for admins).
    manage_path = f"{API_PREFIX}/jobs/"

    id = fields.UUID()
    tool = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    input = fields.Dict()
    output = fields.Raw(allow_none=True)
    output_url = fields.Method(
        "_output_url",
        allow_none=True,
        metadata={
            "description": "Set when the output was too large for `output`: a download URL, "
            "fresh on each GET and valid for at most 15 minutes."
        },
    )
    error = fields.Method("_error", allow_none=True)
    progress = fields.Integer()
    model = fields.String()
    attempt = fields.Integer()
    usage = fields.Method("_usage")
    service_tier = fields.String(
        allow_none=True, metadata={"description": "The lane it asked for, or its plan chose; null: standard."}
    )
    answered_by = fields.String(
        allow_none=True,
        metadata={"description": "The model that answered: `model`, or a fallback when that one failed."},
    )
    attempts = fields.List(
        fields.Nested(AttemptSchema),
        allow_none=True,
        metadata={
            "description": "The models the last run tried, in order: `succeeded`, `failed` (with "
            "its error code) or `skipped` (`breaker_open`: it had been failing). Null before it ran."
        },
    )
    cached = fields.Boolean(
        metadata={
            "description": "Answered at submit from the response cache (no worker, no provider "
            "call, no tokens charged); see docs/spending.md."
        }
    )
    cancel_requested = fields.Function(lambda job: job.cancel_requested_at is not None)
    notify_email = fields.Boolean()
    retry_of = fields.UUID(
        allow_none=True, metadata={"description": "The failed job an admin retried to make this one."}
    )
    batch_id = fields.UUID(
        allow_none=True, metadata={"description": "The batch it was submitted in (POST /jobs/batch)."}
    )
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(metadata={"description": "A job not started by then ends `expired`."})
    run_at = fields.DateTime(
        allow_none=True,
        metadata={
            "description": "When a scheduled job is due (it is `scheduled` until then); null if it was not."
        },
    )
    lane = fields.Function(
        metering.job_lane,
        metadata={
            "type": "string",
            "enum": list(LANES),
            "description": "`batch`: held (`scheduled`) for the provider's Batch API, or answered "
            "by it; otherwise the lane of the call that answered, or that it asked for; see "
            "docs/spending.md.",
        },
    )
    deadline = fields.DateTime(
        allow_none=True, metadata={"description": "A batch-lane job's deadline; null on the standard lane."}
    )
    urls = fields.Method("_urls", metadata=URLS_DOC)
    queue = fields.Method("_queue", allow_none=True, metadata=QUEUE_DOC)

    def _queue(self, job):
        return job_service.queue_place(job)

    feedback = fields.Function(
        _feedback,
        allow_none=True,
        metadata={
            "description": "The owner's `{rating, comment, updated_at}`, or null (PUT /jobs/<id>/feedback)."
        },
    )

    def _urls(self, job):
        return job_links.urls(job, settings=current_settings(), manage_path=self.manage_path)

    def _output_url(self, job):
        if job.output_key is None:
            return None
        return files.output_url(job, settings=current_settings())

    def _error(self, job):
        if job.error_code is None:
            return None
        return {"code": job.error_code, "message": job.error_message}

    def _usage(self, job):
        return metering.job_usage(job)


class JobListArgsSchema(Schema):
    status = DelimitedList(
        fields.String(validate=validate.OneOf(STATUSES)),
        load_default=(),
        metadata={"description": "Comma-separated statuses to include."},
    )
    tool = fields.String(validate=validate.Length(max=64))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(
        validate=validate.Length(max=200), metadata={"description": "next_cursor of the previous page."}
    )


class JobGetArgsSchema(Schema):
    wait = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=30, error="wait is a number of seconds from 0 to 30."),
        metadata={"description": "Long-poll: answer as soon as the job changes, or after this many seconds."},
    )
    until = fields.String(
        load_default="change",
        validate=validate.OneOf(["change", "finished"], error="until is `change` or `finished`."),
        metadata={
            "description": "With `wait`: `change` (the default) answers at the job's first change; "
            "`finished` only once it has finished (succeeded, failed, canceled or expired), "
            "or when the wait is over."
        },
    )


class JobEventsArgsSchema(Schema):
    token = fields.String(
        validate=validate.Length(max=200),
        metadata={
            "description": "A stream token, as in the job's `urls.stream`: instead of an "
            "Authorization header or API key, for a browser's EventSource. Good for this job's "
            "events only."
        },
    )
    last_event_id = fields.String(
        validate=validate.Regexp(r"^\d+(-\d+)?$", error="An event id looks like 1700000000000-0."),
        metadata={"description": "Resume after this event (browsers send the Last-Event-ID header)."},
    )


class JobPageSchema(Schema):
    items = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.String(allow_none=True)
