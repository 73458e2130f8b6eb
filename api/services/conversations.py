"""The rules for conversations with the coach and the tutor.

A message is a job: its input carries the earlier turns as `history`, trimmed
oldest-first to the model's context budget (workers.conversations). The user's
message is stored with the job, in its transaction; the reply is stored when the
job succeeds (workers.pipeline). One message at a time: a second one while the
reply to the first is being written is refused (409), so turns never interleave.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.services import jobs as job_service
from api.services.errors import Conflict, Invalid, NotFound, Unavailable
from db.models import Conversation, ConversationMessage, User
from db.repositories import conversations
from settings import Settings
from workers import conversations as turns
from workers.tools import all_tools, get_tool


@dataclass(frozen=True)
class Thread:
    """A conversation with its messages; reads as the conversation for its own fields."""

    conversation: Conversation
    messages: list[ConversationMessage]

    def __getattr__(self, name: str):
        return getattr(self.conversation, name)


def conversation_tools() -> list[str]:
    return [tool.name for tool in all_tools() if tool.conversation]


def create(session: Session, *, user: User, tool: str, title: str | None = None) -> Conversation:
    names = conversation_tools()
    if tool not in names:
        raise Invalid(
            "This tool does not hold conversations.",
            errors={"json": {"tool": [f"Choose one of: {', '.join(names)}."]}},
        )
    conversation = conversations.create(session, user_id=user.id, tool=tool, title=title)
    session.commit()
    return conversation


def get(session: Session, *, user: User, conversation_id: uuid.UUID) -> Thread:
    conversation = _own(session, user=user, conversation_id=conversation_id)
    return Thread(conversation, conversations.messages(session, conversation_id=conversation.id))


def list_page(
    session: Session, *, user: User, limit: int = 20, cursor: str | None = None
) -> tuple[list[Conversation], str | None]:
    after = _decode_cursor(cursor) if cursor else None
    rows = conversations.list_for_user(session, user_id=user.id, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return page, (_encode_cursor(page[-1]) if more else None)


def delete(session: Session, *, user: User, conversation_id: uuid.UUID) -> None:
    """The conversation and its messages go; its jobs stay in the job list."""
    if not conversations.delete_for_user(session, conversation_id=conversation_id, user_id=user.id):
        raise NotFound("No conversation with this id.")
    session.commit()


def send_message(
    session: Session, *, user: User, settings: Settings, conversation_id: uuid.UUID, content: str
) -> job_service.Submitted:
    """Store the user's message and submit the job that writes the reply."""
    conversation = _own(session, user=user, conversation_id=conversation_id, lock=True)
    pending = conversations.active_job(session, conversation_id=conversation.id)
    if pending is not None:
        raise Conflict(
            f"The reply to your previous message is still being written (job {pending.id}); "
            "send the next message once that job has finished."
        )
    tool = get_tool(conversation.tool)
    if tool is None:
        raise Conflict(f"The {conversation.tool!r} tool no longer exists; start a new conversation.")
    model = tool.default_model or settings.default_model
    earlier = [
        {"role": message.role, "content": message.content}
        for message in conversations.answered_turns(session, conversation_id=conversation.id)
    ]
    job_input = turns.turn_input(
        tool, model, message=content, earlier=earlier, profile={"name": user.name, **(user.profile or {})}
    )
    stored: list[ConversationMessage] = []

    def add_message(job_session: Session, job) -> None:
        stored.append(
            conversations.add_user_message(
                job_session, conversation=conversation, content=content, job_id=job.id
            )
        )

    try:
        return job_service.submit(
            session, user=user, settings=settings, tool=tool.name, input=job_input, on_create=add_message
        )
    except Unavailable:
        # The job was withdrawn (the queue is down): take its message back too, so
        # the client's retry does not show the message twice.
        for message in stored:
            conversations.delete_message(session, message_id=message.id)
        session.commit()
        raise


def _own(session: Session, *, user: User, conversation_id: uuid.UUID, lock: bool = False) -> Conversation:
    conversation = conversations.get_for_user(
        session, conversation_id=conversation_id, user_id=user.id, lock=lock
    )
    if conversation is None:
        raise NotFound("No conversation with this id.")
    return conversation


def _encode_cursor(conversation: Conversation) -> str:
    raw = f"{conversation.created_at.isoformat()}|{conversation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, conversation_id = raw.split("|")
        return dt.datetime.fromisoformat(created_at), uuid.UUID(conversation_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Invalid(
            "The cursor is not valid.",
            errors={"query": {"cursor": ["Pass next_cursor from the previous page unchanged."]}},
        ) from None
