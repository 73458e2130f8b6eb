"""bulk operations run as a task: state `queued`, a `failed` count, where the task is

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = "ck_bulk_operations_status"


def upgrade() -> None:
    op.drop_constraint(op.f(STATUS), "bulk_operations", type_="check")
    op.create_check_constraint(
        op.f(STATUS), "bulk_operations", "status IN ('queued', 'running', 'succeeded', 'failed')"
    )
    op.add_column("bulk_operations", sa.Column("failed", sa.Integer(), server_default="0", nullable=False))
    op.add_column("bulk_operations", sa.Column("last_created_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bulk_operations", sa.Column("last_job_id", sa.Uuid(), nullable=True))
    op.add_column("bulk_operations", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bulk_operations", sa.Column("resumes", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.execute("UPDATE bulk_operations SET status = 'running' WHERE status = 'queued'")
    for column in ("resumes", "lease_until", "last_job_id", "last_created_at", "failed"):
        op.drop_column("bulk_operations", column)
    op.drop_constraint(op.f(STATUS), "bulk_operations", type_="check")
    op.create_check_constraint(
        op.f(STATUS), "bulk_operations", "status IN ('running', 'succeeded', 'failed')"
    )
