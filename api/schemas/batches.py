from marshmallow import Schema, ValidationError, fields, validate

from api.schemas.errors import ErrorSchema
from api.schemas.jobs import JobCreateSchema, JobSchema
from api.services.errors import Invalid
from db.models.batch import MAX_JOBS
from db.models.job import STATUSES


class BatchItemSchema(JobCreateSchema):
    class Meta:
        # A batch's jobs run now: scheduling one, or holding it for the batch lane, is
        # refused (unknown field) rather than ignored.
        exclude = ("run_at", "delay_seconds", "lane", "deadline")

    idempotency_key = fields.String(
        validate=validate.Length(min=1, max=255),
        metadata={"description": "Retry-safe: the same key and job give the same job, charged once."},
    )


class _Items(fields.List):
    """The batch's jobs, each parsed on its own: a bad item becomes its own 422 (an
    `Invalid` in the list) rather than the whole request's."""

    def __init__(self) -> None:
        super().__init__(
            fields.Nested(BatchItemSchema),
            required=True,
            metadata={"description": f"1 to {MAX_JOBS} jobs, each as POST /jobs takes one."},
        )

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("A list of jobs.")
        if not 1 <= len(value) <= MAX_JOBS:
            raise ValidationError(
                f"A batch holds 1 to {MAX_JOBS} jobs; this one has {len(value)}. "
                "Split it into several batches."
            )
        return [_item(item) for item in value]


def _item(item):
    try:
        return BatchItemSchema().load(item if isinstance(item, dict) else {"": item})
    except ValidationError as error:
        return Invalid("The job is not valid.", errors={"json": error.messages})


class BatchCreateSchema(Schema):
    jobs = _Items()
    webhook_url = fields.Url(
        schemes={"https", "http"},
        validate=validate.Length(max=2048),
        metadata={
            "description": "Gets one signed `batch.finished` POST once every job of the batch has ended."
        },
    )


class BatchItemResultSchema(Schema):
    index = fields.Integer(metadata={"description": "The item's place in `jobs`, from 0."})
    job = fields.Nested(JobSchema, metadata={"description": "The item's job, when it has one."})
    error = fields.Nested(
        ErrorSchema, metadata={"description": "Instead of `job`: what POST /jobs would have answered."}
    )


class BatchSchema(Schema):
    id = fields.UUID()
    status = fields.String(metadata={"enum": ["active", "finished"]})
    total = fields.Integer(metadata={"description": "Its jobs (items that got no job are not in it)."})
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "Its jobs by status: " + ", ".join(STATUSES) + "."},
    )
    webhook_url = fields.String(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True, metadata={"description": "When its last job ended."})


class BatchSubmittedSchema(Schema):
    batch = fields.Nested(BatchSchema)
    items = fields.List(fields.Nested(BatchItemResultSchema))


class BatchPageSchema(BatchSchema):
    jobs = fields.List(
        fields.Nested(JobSchema), metadata={"description": "A page of its jobs, in item order."}
    )
    next_cursor = fields.String(allow_none=True)


class BatchGetArgsSchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(
        validate=validate.Length(max=200), metadata={"description": "next_cursor of the previous page."}
    )


class BatchListArgsSchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(
        validate=validate.Length(max=200), metadata={"description": "next_cursor of the previous page."}
    )


class BatchListSchema(Schema):
    items = fields.List(fields.Nested(BatchSchema))
    next_cursor = fields.String(allow_none=True)
