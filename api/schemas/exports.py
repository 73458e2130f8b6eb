from marshmallow import Schema, fields, validate

from db.models.export import EXPORT_STATUSES, FORMATS, JOB_FORMATS


class ExportCreateSchema(Schema):
    format = fields.String(
        required=True,
        validate=validate.OneOf(JOB_FORMATS, error="format must be one of: md, json, pdf, docx."),
        metadata={"example": "pdf"},
    )


class ExportSchema(Schema):
    id = fields.UUID()
    job_id = fields.UUID(allow_none=True, metadata={"description": "Null for the account export (zip)."})
    format = fields.String(metadata={"enum": list(FORMATS)})
    status = fields.String(metadata={"enum": list(EXPORT_STATUSES)})
    url = fields.String(
        allow_none=True,
        metadata={
            "description": "Download URL once succeeded; each GET gives a fresh one (15 minutes at most)."
        },
    )
    expires_at = fields.DateTime(allow_none=True, metadata={"description": "When `url` stops working."})
    error = fields.Dict(allow_none=True)
    filename = fields.String(allow_none=True)
    size_bytes = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
