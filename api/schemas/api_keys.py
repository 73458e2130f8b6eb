from marshmallow import Schema, ValidationError, fields, validate


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Give the key a name, e.g. the program that will use it.")


class ApiKeyCreateSchema(Schema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=100), _not_blank])


class ApiKeySchema(Schema):
    id = fields.UUID()
    name = fields.String()
    prefix = fields.String(metadata={"description": "The start of the key, to tell keys apart."})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(
        allow_none=True, metadata={"description": "Updated at most once a minute."}
    )
    revoked_at = fields.DateTime(allow_none=True)


class NewApiKeySchema(Schema):
    id = fields.UUID(attribute="api_key.id")
    name = fields.String(attribute="api_key.name")
    prefix = fields.String(attribute="api_key.prefix")
    key = fields.String(
        metadata={"description": "The secret: send it as `X-API-Key`. It is shown only this once."}
    )
    created_at = fields.DateTime(attribute="api_key.created_at")


class ApiKeyListSchema(Schema):
    items = fields.List(fields.Nested(ApiKeySchema))
