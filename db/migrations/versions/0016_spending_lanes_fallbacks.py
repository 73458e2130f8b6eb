"""the lane and fallbacks of a job; the ledger's lane and standard-price cost (issue 25)

A job records the lane it asked for (`service_tier`), the lane and model that answered,
and each model it tried. Each ledger row records its call's lane and what the call would
have cost at standard prices, so that usage can show what the cheaper lanes saved;
NULL (every row from before) is a standard call's: its cost.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("service_tier", sa.String(length=16), nullable=True))
    op.add_column("jobs", sa.Column("lane", sa.String(length=16), nullable=True))
    op.add_column("jobs", sa.Column("answered_by", sa.String(length=128), nullable=True))
    op.add_column(
        "jobs",
        sa.Column(
            "attempts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )
    op.add_column(
        "usage_ledger", sa.Column("lane", sa.String(length=16), server_default="standard", nullable=False)
    )
    op.add_column("usage_ledger", sa.Column("standard_cost_micros", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_ledger", "standard_cost_micros")
    op.drop_column("usage_ledger", "lane")
    op.drop_column("jobs", "attempts")
    op.drop_column("jobs", "answered_by")
    op.drop_column("jobs", "lane")
    op.drop_column("jobs", "service_tier")
