from marshmallow import Schema, fields, validate

from db.models.conversation import ROLES


class ConversationCreateSchema(Schema):
    tool = fields.String(
        required=True, validate=validate.Length(min=1, max=64), metadata={"example": "coach"}
    )
    title = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Defaults to the start of the first message."},
    )


class ConversationMessageCreateSchema(Schema):
    content = fields.String(
        required=True,
        validate=validate.Length(min=1, max=8000, error="content must be 1 to 8000 characters."),
        metadata={"example": "I have two job offers and can't decide."},
    )


class ConversationMessageSchema(Schema):
    id = fields.UUID()
    role = fields.String(metadata={"enum": list(ROLES)})
    content = fields.String()
    job_id = fields.UUID(
        allow_none=True,
        metadata={"description": "The job that the message started, or that wrote the reply."},
    )
    created_at = fields.DateTime()


class ConversationSchema(Schema):
    id = fields.UUID()
    tool = fields.String()
    title = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ConversationDetailSchema(ConversationSchema):
    messages = fields.List(fields.Nested(ConversationMessageSchema))


class ConversationListArgsSchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(
        validate=validate.Length(max=200), metadata={"description": "next_cursor of the previous page."}
    )


class ConversationPageSchema(Schema):
    items = fields.List(fields.Nested(ConversationSchema))
    next_cursor = fields.String(allow_none=True)
