from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from workers.tools.base import PROFILE_FIELDS


class UserSchema(Schema):
    id = fields.UUID(dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    plan = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    profile = fields.Dict(dump_only=True)
    email_verified = fields.Function(lambda user: user.email_verified_at is not None, dump_only=True)
    created_at = fields.DateTime(dump_only=True)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("The name cannot be blank.")


MAX_PROFILE_TEXT = 500
MAX_PROFILE_ITEMS = 20


def _check_profile(profile: dict) -> None:
    errors: dict[str, list[str]] = {}
    allowed = ", ".join(PROFILE_FIELDS)
    for name, value in profile.items():
        if name not in PROFILE_FIELDS:
            errors[name] = [f"Unknown profile field. Allowed: {allowed}."]
        elif value is not None and not _is_profile_value(value):
            errors[name] = [
                f"Must be a string of at most {MAX_PROFILE_TEXT} characters, a list of at most "
                f"{MAX_PROFILE_ITEMS} such strings, or null to remove it."
            ]
    if errors:
        raise ValidationError(errors)


def _is_profile_value(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_PROFILE_TEXT
    return (
        isinstance(value, list)
        and len(value) <= MAX_PROFILE_ITEMS
        and all(isinstance(item, str) and len(item) <= MAX_PROFILE_TEXT for item in value)
    )


class ProfileField(fields.Dict):
    """A profile patch; its errors are keyed by profile field."""

    def _deserialize(self, value, attr, data, **kwargs):
        profile = super()._deserialize(value, attr, data, **kwargs)
        _check_profile(profile)
        return profile


class UserUpdateSchema(Schema):
    name = fields.String(validate=[validate.Length(min=1, max=200), _not_blank])
    profile = ProfileField(
        keys=fields.String(),
        metadata={
            "description": "Merged into the profile: a key set to null is removed. Keys: "
            + ", ".join(PROFILE_FIELDS)
            + ". Tools use these to personalise their prompts."
        },
    )
    # Named here only to refuse it with a clear message.
    email = fields.Raw(load_only=True, metadata={"description": "Cannot be changed."})

    @validates_schema
    def _no_email(self, data: dict, **_kwargs) -> None:
        if "email" in data:
            raise ValidationError("The email address cannot be changed here.", field_name="email")


class DeletionSchema(Schema):
    status = fields.String(metadata={"example": "deleting"})
    message = fields.String()
