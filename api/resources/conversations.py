import uuid

from flask import url_for

from api.auth import current_settings, get_current_user, login_required
from api.input_gate import Blueprint
from api.openapi import documented
from api.request_limits import plan_request_limits
from api.schemas.conversations import (
    ConversationCreateSchema,
    ConversationDetailSchema,
    ConversationListArgsSchema,
    ConversationMessageCreateSchema,
    ConversationPageSchema,
    ConversationSchema,
)
from api.schemas.jobs import JobSchema
from api.services import conversations
from db.session import db_session

blp = Blueprint("conversations", __name__, description="Conversations with the coach and the tutor.")


@blp.route("", methods=["POST"])
@login_required
@blp.arguments(ConversationCreateSchema())
@blp.response(201, ConversationSchema)
def create(data):
    """Start a conversation with a conversation tool (coach, tutor)."""
    conversation = conversations.create(db_session(), user=get_current_user(), **data)
    return conversation, 201, {"Location": url_for("conversations.get_one", conversation_id=conversation.id)}


@blp.route("", methods=["GET"])
@login_required
@blp.arguments(ConversationListArgsSchema(), location="query")
@blp.response(200, ConversationPageSchema)
def list_conversations(args):
    """Your conversations, newest first, a page at a time."""
    items, next_cursor = conversations.list_page(db_session(), user=get_current_user(), **args)
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/<uuid:conversation_id>", methods=["GET"])
@login_required
@blp.response(200, ConversationDetailSchema)
def get_one(conversation_id: uuid.UUID):
    """A conversation and its messages, oldest first."""
    return conversations.get(db_session(), user=get_current_user(), conversation_id=conversation_id)


@blp.route("/<uuid:conversation_id>", methods=["DELETE"])
@login_required
@blp.response(204)
def delete(conversation_id: uuid.UUID):
    """Delete a conversation and its messages (its jobs stay in your job list)."""
    conversations.delete(db_session(), user=get_current_user(), conversation_id=conversation_id)


@blp.route("/<uuid:conversation_id>/messages", methods=["POST"])
@documented(statuses={402, 409, 429})
@login_required
@plan_request_limits
@blp.arguments(ConversationMessageCreateSchema())
@blp.response(202, JobSchema)
def send_message(data, conversation_id: uuid.UUID):
    """Send a message: 202 with the job that writes the reply (poll or stream it)."""
    submitted = conversations.send_message(
        db_session(),
        user=get_current_user(),
        settings=current_settings(),
        conversation_id=conversation_id,
        content=data["content"],
    )
    return submitted.job, 202, {"Location": url_for("jobs.get_one", job_id=submitted.job.id)}
