import datetime as dt

from marshmallow import Schema, ValidationError, fields, validates_schema

from api.schemas.response_cache import CacheSavingsSchema
from api.schemas.times import UtcDateTime
from db.models.job import STATUSES

MAX_RANGE_DAYS = 92
DEFAULT_RANGE_DAYS = 7


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StatsArgsSchema(Schema):
    from_ = UtcDateTime(
        data_key="from",
        metadata={
            "description": "Start, inclusive (ISO 8601; UTC if no zone); "
            f"default: `to` minus {DEFAULT_RANGE_DAYS} days."
        },
    )
    to = UtcDateTime(
        load_default=_now,
        metadata={"description": "End, exclusive (ISO 8601; UTC if no zone); default: now."},
    )

    @validates_schema
    def _range(self, data, **kwargs):
        end = data.get("to")
        if end is None:
            return  # a field error already says why
        if "from_" not in data:
            data["from_"] = end - dt.timedelta(days=DEFAULT_RANGE_DAYS)
        start = data["from_"]
        if start >= end:
            raise ValidationError("Must be later than `from`.", field_name="to")
        if end - start > dt.timedelta(days=MAX_RANGE_DAYS):
            raise ValidationError(f"The range may span at most {MAX_RANGE_DAYS} days.", field_name="to")


class PercentilesSchema(Schema):
    p50 = fields.Float(allow_none=True)
    p95 = fields.Float(allow_none=True)


class RatingsSchema(Schema):
    up = fields.Integer()
    down = fields.Integer()


class ToolStatsSchema(Schema):
    tool = fields.String()
    jobs = fields.Integer()
    queue_wait_seconds = fields.Nested(
        PercentilesSchema,
        metadata={"description": "Submit to start (the last attempt's), of jobs that started."},
    )
    run_seconds = fields.Nested(PercentilesSchema, metadata={"description": "Start to finish."})
    feedback = fields.Nested(RatingsSchema)


class ModelStatsSchema(Schema):
    model = fields.String()
    calls = fields.Integer(metadata={"description": "Provider calls (a repair is a second call)."})
    jobs = fields.Integer()
    input_tokens = fields.Integer()
    output_tokens = fields.Integer()
    cost_micros = fields.Integer(metadata={"description": "What the calls cost, billed or not."})
    billed_cost_micros = fields.Integer(metadata={"description": "The part billed to users."})


class LaneStatsSchema(Schema):
    lane = fields.String(metadata={"description": "standard, flex or batch."})
    calls = fields.Integer()
    jobs = fields.Integer()
    cost_micros = fields.Integer(metadata={"description": "What the calls cost on their lane."})
    standard_cost_micros = fields.Integer(metadata={"description": "The same calls at standard prices."})
    saved_micros = fields.Integer(metadata={"description": "What the lane saved."})


class FailureCodeSchema(Schema):
    code = fields.String()
    jobs = fields.Integer()
    rate = fields.Float(allow_none=True, metadata={"description": "A share of the finished jobs, 0 to 1."})


class FailureStatsSchema(Schema):
    finished = fields.Integer()
    failed = fields.Integer()
    rate = fields.Float(
        allow_none=True, metadata={"description": "failed / finished; null if none finished."}
    )
    by_code = fields.List(fields.Nested(FailureCodeSchema))


class JobCountsSchema(Schema):
    total = fields.Integer()
    by_status = fields.Dict(keys=fields.String(metadata={"enum": list(STATUSES)}), values=fields.Integer())
    by_tool = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_model = fields.Dict(keys=fields.String(), values=fields.Integer())


class StatsSchema(Schema):
    from_ = fields.DateTime(data_key="from", attribute="from")
    to = fields.DateTime()
    jobs = fields.Nested(JobCountsSchema, metadata={"description": "Jobs submitted in the range."})
    failures = fields.Nested(FailureStatsSchema)
    tools = fields.List(fields.Nested(ToolStatsSchema))
    models = fields.List(
        fields.Nested(ModelStatsSchema),
        metadata={"description": "Provider calls made in the range (usage ledger)."},
    )
    lanes = fields.List(
        fields.Nested(LaneStatsSchema),
        metadata={"description": "The same calls by lane, with what the cheaper lanes saved."},
    )
    cache = fields.Nested(
        CacheSavingsSchema, metadata={"description": "Response-cache look-ups at submit in the range."}
    )
