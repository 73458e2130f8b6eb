from marshmallow import Schema, fields


class UserSchema(Schema):
    id = fields.UUID(dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    plan = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    profile = fields.Dict(dump_only=True)
    email_verified = fields.Function(lambda user: user.email_verified_at is not None, dump_only=True)
    created_at = fields.DateTime(dump_only=True)
