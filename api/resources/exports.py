import uuid

from flask import url_for

from api.auth import current_settings, get_current_user, jwt_login_required, login_required
from api.input_gate import Blueprint
from api.openapi import documented
from api.request_limits import account_export_limits, plan_request_limits
from api.schemas.exports import ExportCreateSchema, ExportSchema
from api.services import exports
from db.session import db_session

blp = Blueprint(
    "exports", __name__, description="Download a job's output as a document, or all of your data as a zip."
)


@blp.route("/jobs/<uuid:job_id>/exports", methods=["POST"])
@documented(statuses={409})
@login_required
@plan_request_limits
@blp.arguments(ExportCreateSchema())
@blp.response(202, ExportSchema)
def export_job(data, job_id: uuid.UUID):
    """Export a succeeded job's output (md, json, pdf, docx); poll the `Location`."""
    export = exports.export_job(
        db_session(),
        user=get_current_user(),
        job_id=job_id,
        format=data["format"],
        settings=current_settings(),
    )
    return export, 202, {"Location": url_for("exports.get_one", export_id=export.id)}


@blp.route("/users/me/export", methods=["POST"])
@jwt_login_required
@account_export_limits
@blp.response(202, ExportSchema)
def export_account():
    """Export all of your data as a zip; the link is also emailed to you. Not with an API key."""
    export = exports.export_account(db_session(), user=get_current_user(), settings=current_settings())
    return export, 202, {"Location": url_for("exports.get_one", export_id=export.id)}


@blp.route("/exports/<uuid:export_id>", methods=["GET"])
@login_required
@blp.response(200, ExportSchema)
def get_one(export_id: uuid.UUID):
    """An export's status and, once ready, a fresh download URL."""
    return exports.get(
        db_session(), user=get_current_user(), export_id=export_id, settings=current_settings()
    )
