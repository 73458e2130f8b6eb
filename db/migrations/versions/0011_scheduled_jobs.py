"""scheduled jobs: the `scheduled` status, jobs.run_at and the due-job index (issue 24)

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITH_SCHEDULED = "status IN ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'canceled', 'expired')"
WITHOUT_SCHEDULED = "status IN ('queued', 'running', 'succeeded', 'failed', 'canceled', 'expired')"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f("ck_jobs_status"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_status"), "jobs", WITH_SCHEDULED)
    op.create_index("ix_jobs_scheduled", "jobs", ["run_at"], postgresql_where=sa.text("status = 'scheduled'"))


def downgrade() -> None:
    # The old constraint refuses a scheduled row: cancel or run them before going down.
    op.drop_index("ix_jobs_scheduled", table_name="jobs", postgresql_where=sa.text("status = 'scheduled'"))
    op.drop_constraint(op.f("ck_jobs_status"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_status"), "jobs", WITHOUT_SCHEDULED)
    op.drop_column("jobs", "run_at")
