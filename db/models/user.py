from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, TimestampMixin

ROLES = ("user", "admin")


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(32), default="free", server_default="free")
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    # Fields tools use to personalise prompts (workers.tools.base.PROFILE_FIELDS).
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    email_verified_at: Mapped[dt.datetime | None]
    # Set when the owner asks to close the account: every credential stops working at
    # once, and a task (conveyor.accounts.delete_user) then deletes the row and its data.
    deleted_at: Mapped[dt.datetime | None]
    # Signs this user's webhooks (Standard Webhooks, `whsec_…`); made when first needed.
    webhook_secret: Mapped[str | None] = mapped_column(String(64))
    # Set when the user first starts a Stripe checkout (unique: one customer, one user).
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


# Emails are stored lower-cased; the index also guards rows written by other means.
Index("uq_users_email_lower", func.lower(User.email), unique=True)
