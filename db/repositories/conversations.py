"""Conversation rows and their messages."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import and_, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models.conversation import ASSISTANT, USER, Conversation, ConversationMessage
from db.models.job import ACTIVE, Job


def create(session: Session, *, user_id: uuid.UUID, tool: str, title: str | None = None) -> Conversation:
    conversation = Conversation(user_id=user_id, tool=tool, title=title)
    session.add(conversation)
    session.flush()
    return conversation


def get_for_user(
    session: Session, *, conversation_id: uuid.UUID, user_id: uuid.UUID, lock: bool = False
) -> Conversation | None:
    """The user's conversation; `lock` holds it until the transaction ends (one
    message at a time)."""
    query = select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def list_for_user(
    session: Session,
    *,
    user_id: uuid.UUID,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int = 20,
) -> list[Conversation]:
    """Newest first; `after` is the (created_at, id) of the last row already seen."""
    query = select(Conversation).where(Conversation.user_id == user_id)
    if after is not None:
        created_at, conversation_id = after
        query = query.where(
            or_(
                Conversation.created_at < created_at,
                and_(Conversation.created_at == created_at, Conversation.id < conversation_id),
            )
        )
    query = query.order_by(Conversation.created_at.desc(), Conversation.id.desc()).limit(limit)
    return list(session.scalars(query))


def all_for_user(session: Session, *, user_id: uuid.UUID) -> list[Conversation]:
    query = select(Conversation).where(Conversation.user_id == user_id).order_by(Conversation.created_at)
    return list(session.scalars(query))


def delete_for_user(session: Session, *, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    result = session.execute(
        delete(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
    )
    return result.rowcount == 1


def messages(session: Session, *, conversation_id: uuid.UUID) -> list[ConversationMessage]:
    """Oldest first; a user message sorts before the reply it started."""
    query = (
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.created_at, ConversationMessage.role.desc(), ConversationMessage.id)
    )
    return list(session.scalars(query))


def add_user_message(
    session: Session, *, conversation: Conversation, content: str, job_id: uuid.UUID
) -> ConversationMessage:
    message = ConversationMessage(conversation_id=conversation.id, role=USER, content=content, job_id=job_id)
    session.add(message)
    if conversation.title is None:  # a conversation is named by how it began
        conversation.title = _title_from(content)
    conversation.updated_at = func.now()
    session.flush()
    return message


def add_reply(session: Session, *, job_id: uuid.UUID, content: str) -> bool:
    """Store the reply of the job a user message started, once. False when the job
    belongs to no conversation (or it was deleted) or the reply is already there."""
    asked = (
        select(
            func.gen_random_uuid(),
            ConversationMessage.conversation_id,
            literal(ASSISTANT),
            literal(content),
            ConversationMessage.job_id,
        )
        .where(ConversationMessage.job_id == job_id, ConversationMessage.role == USER)
        .limit(1)
    )
    inserted = session.execute(
        insert(ConversationMessage)
        .from_select(["id", "conversation_id", "role", "content", "job_id"], asked)
        .on_conflict_do_nothing(index_elements=["job_id", "role"])
        .returning(ConversationMessage.conversation_id)
    ).first()
    if inserted is None:
        return False
    session.execute(
        update(Conversation).where(Conversation.id == inserted.conversation_id).values(updated_at=func.now())
    )
    return True


def active_job(session: Session, *, conversation_id: uuid.UUID) -> Job | None:
    """A job of this conversation that is still queued or running (its reply is pending)."""
    query = (
        select(Job)
        .join(ConversationMessage, ConversationMessage.job_id == Job.id)
        .where(
            ConversationMessage.conversation_id == conversation_id,
            ConversationMessage.role == USER,
            Job.status.in_(ACTIVE),
        )
        .limit(1)
    )
    return session.scalar(query)


def answered_turns(session: Session, *, conversation_id: uuid.UUID) -> list[ConversationMessage]:
    """The messages a next turn carries as history: every reply and the user message
    that asked for it. A question whose job failed or was canceled has no reply and
    is left out, so the model never sees a question hanging unanswered."""
    rows = messages(session, conversation_id=conversation_id)
    answered = {row.job_id for row in rows if row.role == ASSISTANT and row.job_id is not None}
    return [row for row in rows if row.role == ASSISTANT or row.job_id in answered]


def _title_from(content: str, limit: int = 80) -> str:
    line = " ".join(content.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def delete_message(session: Session, *, message_id: uuid.UUID) -> None:
    session.execute(delete(ConversationMessage).where(ConversationMessage.id == message_id))
