"""the batch lane: a job's deadline and provider batch; the provider's batches (issue 25)

The job's `lane` (`batch` while held) and the ledger's `lane` are 0016's.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("provider_batch_id", sa.String(length=128), nullable=True))
    op.create_table(
        "provider_batches",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("input_file_id", sa.String(length=128), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("provider_status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('open', 'closed')", name=op.f("ck_provider_batches_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_batches")),
    )
    op.create_index(
        "ix_provider_batches_open",
        "provider_batches",
        ["created_at"],
        postgresql_where=sa.text("state = 'open'"),
    )
    # jobs is large and busy: build its index without blocking writes, outside the
    # migration's transaction (CREATE INDEX CONCURRENTLY cannot run inside one).
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_jobs_held_for_batch",
            "jobs",
            ["deadline"],
            postgresql_where=sa.text("status = 'scheduled' AND lane = 'batch'"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_jobs_held_for_batch", table_name="jobs", postgresql_concurrently=True, if_exists=True
        )
    op.drop_index("ix_provider_batches_open", table_name="provider_batches")
    op.drop_table("provider_batches")
    op.drop_column("jobs", "provider_batch_id")
    op.drop_column("jobs", "deadline")
