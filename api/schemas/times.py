import datetime as dt

from marshmallow import ValidationError, fields

EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time (UTC when no zone is given), in UTC, between 1970 and 9000: what
    Postgres takes whatever the zone offset (it refuses offsets beyond ±15:59)."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=dt.UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = parsed.astimezone(dt.UTC)
        except OverflowError:
            utc = None
        if utc is None or not EARLIEST <= utc < LATEST:
            raise ValidationError("Must be a time between 1970 and 9000.")
        return utc
