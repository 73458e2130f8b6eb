"""Conversations with a conversation tool (coach, tutor) and their messages.

A user message starts a job (`job_id`); the assistant's reply is stored with the
same `job_id` when that job succeeds, in the transaction that finishes it. The
unique (job_id, role) makes it one reply per job whatever is delivered twice.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, TimestampMixin

USER = "user"
ASSISTANT = "assistant"
ROLES = (USER, ASSISTANT)


class Conversation(TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_user_created", "user_id", text("created_at DESC"), text("id DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tool: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200))

    def __repr__(self) -> str:
        return f"<Conversation {self.id} {self.tool}>"


class ConversationMessage(Base):
    __tablename__ = "conversation_messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
        UniqueConstraint("job_id", "role", name="uq_conversation_messages_job_role"),
        Index("ix_conversation_messages_conversation", "conversation_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.clock_timestamp())

    def __repr__(self) -> str:
        return f"<ConversationMessage {self.id} {self.role}>"
