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


class RefreshedSchema(AccessTokenSchema):
    refresh_token = fields.String(
        metadata={"description": "The next refresh token; the one you sent no longer works."}
    )


class ForgotPasswordSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))


class ResetPasswordSchema(Schema):
    token = fields.String(
        required=True,
        validate=validate.Length(min=1, max=1024),
        metadata={"description": "The `token` of the link in the reset email."},
    )
    password = fields.String(required=True, load_only=True, validate=PASSWORD)


class NoticeSchema(Schema):
    message = fields.String()


class EmailVerifiedSchema(Schema):
    email_verified = fields.Boolean()
    already_verified = fields.Boolean(
        metadata={"description": "True when the link had been used before; nothing changed."}
    )
