import uuid

from flask import url_for

from api.auth import current_caller, current_settings, current_user_id, login_required
from api.errors import error_response
from api.input_gate import Blueprint
from api.openapi import documented
from api.request_limits import plan_request_limits
from api.schemas.batches import (
    BatchCreateSchema,
    BatchGetArgsSchema,
    BatchListArgsSchema,
    BatchListSchema,
    BatchPageSchema,
    BatchSubmittedSchema,
)
from api.services import batches
from db.session import db_session

blp = Blueprint(
    "batches", __name__, description="Submit many jobs at once, and follow or cancel them as one."
)


@blp.route("/jobs/batch", methods=["POST"])
@documented(statuses={429})
@login_required
@plan_request_limits  # the whole batch is one request; its jobs count against the day's and the quota
@blp.arguments(BatchCreateSchema())
@blp.response(202, BatchSubmittedSchema)
def submit(data):
    """Submit up to 500 jobs; each item answers with its job or its own error."""
    submitted = batches.submit(
        db_session(),
        user=current_caller(),
        settings=current_settings(),
        items=data["jobs"],
        webhook_url=data.get("webhook_url"),
    )
    items = [_item(item) for item in submitted.items]
    headers = {"Location": url_for("batches.get_one", batch_id=submitted.batch.id)}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return {"batch": submitted.batch, "items": items}, 202, headers


def _item(item: batches.Item) -> dict:
    if item.error is None:
        return {"index": item.index, "job": item.job}
    error = error_response(item.error.status, item.error.message, item.error.errors)[0]
    return {"index": item.index, "error": error}


@blp.route("/batches", methods=["GET"])
@login_required
@blp.arguments(BatchListArgsSchema(), location="query")
@blp.response(200, BatchListSchema)
def list_batches(args):
    """The caller's batches, newest first, each with its jobs' counts by status."""
    items, next_cursor = batches.list_page(db_session(), user_id=current_user_id(), **args)
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/batches/<uuid:batch_id>", methods=["GET"])
@login_required
@blp.arguments(BatchGetArgsSchema(), location="query")
@blp.response(200, BatchPageSchema)
def get_one(args, batch_id: uuid.UUID):
    """A batch: its jobs' counts by status, and its jobs a page at a time in item order."""
    return batches.get(db_session(), user_id=current_user_id(), batch_id=batch_id, **args)


@blp.route("/batches/<uuid:batch_id>/cancel", methods=["POST"])
@login_required
@blp.response(202, BatchPageSchema)
def cancel(batch_id: uuid.UUID):
    """Cancel every job of the batch not finished yet; running ones stop within seconds."""
    return batches.cancel(db_session(), user_id=current_user_id(), batch_id=batch_id)
