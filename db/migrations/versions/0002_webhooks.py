"""webhooks: a per-user signing secret, the delivery outbox and its attempt log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = "('succeeded', 'failed', 'canceled', 'expired')"

# The outbox is filled in the transaction that finishes the job, whoever finishes
# it (worker, reaper, cancel, expiry): a webhook is recorded once and never lost.
RECORD_FUNCTION = """
CREATE FUNCTION jobs_record_webhook() RETURNS trigger AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, job_id, user_id, event, url, next_attempt_at)
    VALUES (gen_random_uuid(), NEW.id, NEW.user_id, 'job.' || NEW.status, NEW.webhook_url, now())
    ON CONFLICT (job_id) DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
RECORD_TRIGGER = f"""
CREATE TRIGGER jobs_record_webhook AFTER UPDATE OF status ON jobs
FOR EACH ROW
WHEN (NEW.webhook_url IS NOT NULL AND NEW.status IN {TERMINAL} AND OLD.status NOT IN {TERMINAL})
EXECUTE FUNCTION jobs_record_webhook()
"""


def upgrade() -> None:
    op.add_column("users", sa.Column("webhook_secret", sa.String(length=64), nullable=True))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_webhook_deliveries_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_webhook_deliveries_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("job_id", name="uq_webhook_deliveries_job_id"),
    )
    op.create_index(
        "ix_webhook_deliveries_open",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        sa.UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempts_delivery_attempt"),
    )
    op.execute(RECORD_FUNCTION)
    op.execute(RECORD_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_record_webhook ON jobs")
    op.execute("DROP FUNCTION IF EXISTS jobs_record_webhook()")
    op.drop_table("webhook_attempts")
    op.drop_index(
        "ix_webhook_deliveries_open",
        table_name="webhook_deliveries",
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.drop_table("webhook_deliveries")
    op.drop_column("users", "webhook_secret")
