import datetime as dt

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas.response_cache import CacheSavingsSchema
from db.repositories.usage import GROUPS

MAX_RANGE_DAYS = 366


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class UsageArgsSchema(Schema):
    from_ = fields.Date(
        data_key="from",
        load_default=lambda: _today().replace(day=1),
        metadata={"description": "First day (UTC), inclusive; default: the 1st of this month."},
    )
    to = fields.Date(
        load_default=_today, metadata={"description": "Last day (UTC), inclusive; default: today."}
    )
    group_by = fields.String(load_default="day", validate=validate.OneOf(GROUPS))

    @validates_schema
    def _range(self, data, **kwargs):
        start, end = data.get("from_"), data.get("to")
        if start is None or end is None:
            return  # a field error already says why
        if start > end:
            raise ValidationError(
                "Must not be before `from` (the 1st of this month unless given).", field_name="to"
            )
        if (end - start).days >= MAX_RANGE_DAYS:
            raise ValidationError(f"The range may span at most {MAX_RANGE_DAYS} days.", field_name="to")


class UsageTotalsSchema(Schema):
    input_tokens = fields.Integer()
    output_tokens = fields.Integer()
    cost_micros = fields.Integer(metadata={"description": "Millionths of a US dollar."})
    jobs = fields.Integer()
    standard_cost_micros = fields.Integer(
        metadata={"description": "What the same calls cost at standard prices (no flex or batch lane)."}
    )
    saved_micros = fields.Integer(metadata={"description": "standard_cost_micros - cost_micros."})


class UsageItemSchema(UsageTotalsSchema):
    key = fields.String(
        metadata={"description": "The day (YYYY-MM-DD), tool, model or lane (standard, flex, batch)."}
    )


class QuotaSchema(Schema):
    limit = fields.Integer(metadata={"description": "Tokens a month on your plan."})
    used = fields.Integer(metadata={"description": "Tokens of finished jobs this month."})
    reserved = fields.Integer(metadata={"description": "Tokens held for jobs not finished yet."})
    remaining = fields.Integer()
    period_start = fields.String(metadata={"description": "The month's first day (UTC), YYYY-MM-DD."})
    resets_on = fields.String(metadata={"description": "The next month's first day, YYYY-MM-DD."})


class PeriodSchema(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()


class UsageReportSchema(Schema):
    group_by = fields.String()
    items = fields.List(fields.Nested(UsageItemSchema))
    totals = fields.Nested(UsageTotalsSchema)
    quota = fields.Nested(QuotaSchema)
    period = fields.Nested(PeriodSchema)
    plan = fields.String()
    cache = fields.Nested(
        CacheSavingsSchema,
        metadata={"description": "The response cache over the same days: what it saved you."},
    )
