from marshmallow import Schema, fields, validate

from api.schemas.users import UserSchema

PASSWORD = validate.Length(min=8, max=256, error="Passwords are 8 to 256 characters long.")


class RegisterSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class LoginSchema(Schema):
    email = fields.Email(required=True)
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=256))


class LogoutSchema(Schema):
    refresh_token = fields.String(
        load_default=None,
        validate=validate.Length(max=4096),
        metadata={"description": "Also revoke this refresh token (recommended)."},
    )


class AccessTokenSchema(Schema):
    access_token = fields.String()
    token_type = fields.String(dump_default="Bearer")
    expires_in = fields.Integer(metadata={"description": "Seconds until the access token expires."})


class SessionSchema(AccessTokenSchema):
    refresh_token = fields.String()
    user = fields.Nested(UserSchema)
