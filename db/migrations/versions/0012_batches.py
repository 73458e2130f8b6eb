"""batches: a `batches` table, jobs.batch_id and batch_index, and batch.finished webhooks

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = "('succeeded', 'failed', 'canceled', 'expired')"

# A batch is finished once none of its jobs can move any more. Called in the transaction
# that ends one of its jobs (the trigger below, whoever ends it) and by the API for a
# batch made with no job. The batch row is locked first, so of two jobs ending at once
# the second to take the lock sees the first one's outcome: one of them finishes the
# batch, and its webhook is recorded once.
FINISH_FUNCTION = """
CREATE FUNCTION batch_finish_if_done(finished_batch uuid) RETURNS boolean AS $$
DECLARE
    hook text;
    owner uuid;
BEGIN
    PERFORM 1 FROM batches WHERE id = finished_batch FOR UPDATE;
    UPDATE batches SET finished_at = now()
    WHERE id = finished_batch AND finished_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE batch_id = finished_batch AND status NOT IN ('succeeded', 'failed', 'canceled', 'expired'))
    RETURNING webhook_url, user_id INTO hook, owner;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF hook IS NOT NULL THEN
        INSERT INTO webhook_deliveries (id, batch_id, user_id, event, url, next_attempt_at)
        VALUES (gen_random_uuid(), finished_batch, owner, 'batch.finished', hook, now())
        ON CONFLICT (batch_id) DO NOTHING;
    END IF;
    RETURN true;
END;
$$ LANGUAGE plpgsql
"""
TRIGGER_FUNCTION = """
CREATE FUNCTION jobs_finish_batch() RETURNS trigger AS $$
BEGIN
    PERFORM batch_finish_if_done(NEW.batch_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
TRIGGER = f"""
CREATE TRIGGER jobs_finish_batch AFTER UPDATE OF status ON jobs
FOR EACH ROW
WHEN (NEW.batch_id IS NOT NULL AND NEW.status IN {TERMINAL} AND OLD.status NOT IN {TERMINAL})
EXECUTE FUNCTION jobs_finish_batch()
"""


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_batches_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index(
        "ix_batches_user_created", "batches", ["user_id", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.add_column("jobs", sa.Column("batch_id", sa.Uuid(), nullable=True))
    op.add_column("jobs", sa.Column("batch_index", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_jobs_batch_id_batches"), "jobs", "batches", ["batch_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index(
        "ix_jobs_batch", "jobs", ["batch_id", "batch_index"], postgresql_where=sa.text("batch_id IS NOT NULL")
    )
    op.alter_column("webhook_deliveries", "job_id", existing_type=sa.Uuid(), nullable=True)
    op.add_column("webhook_deliveries", sa.Column("batch_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_webhook_deliveries_batch_id_batches"),
        "webhook_deliveries",
        "batches",
        ["batch_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_unique_constraint("uq_webhook_deliveries_batch_id", "webhook_deliveries", ["batch_id"])
    op.create_check_constraint("job_or_batch", "webhook_deliveries", "(job_id IS NULL) <> (batch_id IS NULL)")
    op.execute(FINISH_FUNCTION)
    op.execute(TRIGGER_FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_finish_batch ON jobs")
    op.execute("DROP FUNCTION IF EXISTS jobs_finish_batch()")
    op.execute("DROP FUNCTION IF EXISTS batch_finish_if_done(uuid)")
    op.execute("DELETE FROM webhook_deliveries WHERE batch_id IS NOT NULL")
    op.drop_constraint("job_or_batch", "webhook_deliveries", type_="check")
    op.drop_constraint("uq_webhook_deliveries_batch_id", "webhook_deliveries", type_="unique")
    op.drop_constraint(
        op.f("fk_webhook_deliveries_batch_id_batches"), "webhook_deliveries", type_="foreignkey"
    )
    op.drop_column("webhook_deliveries", "batch_id")
    op.alter_column("webhook_deliveries", "job_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_index("ix_jobs_batch", table_name="jobs", postgresql_where=sa.text("batch_id IS NOT NULL"))
    op.drop_constraint(op.f("fk_jobs_batch_id_batches"), "jobs", type_="foreignkey")
    op.drop_column("jobs", "batch_index")
    op.drop_column("jobs", "batch_id")
    op.drop_index("ix_batches_user_created", table_name="batches")
    op.drop_table("batches")
