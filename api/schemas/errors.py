from marshmallow import Schema, fields


class ErrorSchema(Schema):
    """The one error shape every 4xx and 5xx answers in (api/errors.py), for the spec."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status, again."})
    status = fields.String(required=True, metadata={"description": "The status's name."})
    message = fields.String(required=True, metadata={"description": "What went wrong and what to do."})
    errors = fields.Dict(metadata={"description": "Per location and field: what to fix in each."})
