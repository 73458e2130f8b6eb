"""the response cache: its entries, each submit's look-up, a job's cache choice (issue 25)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("cache_mode", sa.String(length=8), server_default="default", nullable=False)
    )
    op.add_column("jobs", sa.Column("cached", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.create_table(
        "response_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column(
            "output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("source_job_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_response_cache_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_response_cache")),
    )
    op.create_index("ix_response_cache_expires", "response_cache", ["expires_at"])
    op.create_index("ix_response_cache_tool", "response_cache", ["tool"])
    op.create_index("ix_response_cache_user", "response_cache", ["user_id"])
    op.create_index("ix_response_cache_source_job", "response_cache", ["source_job_id"])
    op.create_table(
        "response_cache_lookups",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("hit", sa.Boolean(), nullable=False),
        sa.Column("saved_input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("saved_output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("saved_cost_micros", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_response_cache_lookups_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_cache_lookups")),
    )
    op.create_index(
        "ix_response_cache_lookups_user_created", "response_cache_lookups", ["user_id", "created_at"]
    )
    op.create_index("ix_response_cache_lookups_created", "response_cache_lookups", ["created_at"])


def downgrade() -> None:
    op.drop_table("response_cache_lookups")
    op.drop_table("response_cache")
    op.drop_column("jobs", "cached")
    op.drop_column("jobs", "cache_mode")
