"""a job's feedback; admin bulk operations; the ledger by time for the stats (issue 24)

Deleting a job needs nothing new: the usage ledger names its job without a foreign key
(the books outlive the job), exports and webhook deliveries go with it by cascade.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("feedback_rating", sa.String(length=8), nullable=True))
    op.add_column("jobs", sa.Column("feedback_comment", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(op.f("ck_jobs_feedback_rating"), "jobs", "feedback_rating IN ('up', 'down')")
    op.create_index("ix_usage_ledger_created", "usage_ledger", ["created_at"])
    op.create_table(
        "bulk_operations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="running", nullable=False),
        sa.Column(
            "filter",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_email", sa.String(length=320), nullable=False),
        sa.Column("matched", sa.Integer(), server_default="0", nullable=False),
        sa.Column("done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("skipped", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("action IN ('retry', 'cancel', 'purge')", name=op.f("ck_bulk_operations_action")),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_bulk_operations_status")
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_bulk_operations_actor_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_operations")),
    )


def downgrade() -> None:
    op.drop_table("bulk_operations")
    op.drop_index("ix_usage_ledger_created", table_name="usage_ledger")
    op.drop_constraint(op.f("ck_jobs_feedback_rating"), "jobs", type_="check")
    op.drop_column("jobs", "feedback_at")
    op.drop_column("jobs", "feedback_comment")
    op.drop_column("jobs", "feedback_rating")
