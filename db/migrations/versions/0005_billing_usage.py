"""plans, quotas, usage ledger, Stripe (issue 4)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = "('succeeded', 'failed', 'canceled', 'expired')"

# The reservation a job took at submit is settled in the transaction that ends the
# job, whoever ends it (worker, cancel, reaper, expiry), and exactly once: the
# trigger fires only on the one transition into a terminal state. A job's month
# is the month it was submitted in (its reservation is there). Tokens are billed
# for a job that produced something (succeeded, or canceled with partial output);
# a failed or expired job only gives its reservation back.
SETTLE_FUNCTION = """
CREATE FUNCTION jobs_settle_usage() RETURNS trigger AS $$
DECLARE
    billed bigint := CASE WHEN NEW.status IN ('succeeded', 'canceled')
                          THEN NEW.input_tokens + NEW.output_tokens ELSE 0 END;
BEGIN
    IF billed = 0 AND NEW.reserved_tokens = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO usage_counters AS c (user_id, period, tokens_used, tokens_reserved)
    VALUES (NEW.user_id, date_trunc('month', NEW.created_at AT TIME ZONE 'UTC')::date, billed, 0)
    ON CONFLICT (user_id, period) DO UPDATE
    SET tokens_used = c.tokens_used + billed,
        tokens_reserved = greatest(c.tokens_reserved - NEW.reserved_tokens, 0),
        updated_at = now();
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
SETTLE_TRIGGER = f"""
CREATE TRIGGER jobs_settle_usage AFTER UPDATE OF status ON jobs
FOR EACH ROW
WHEN (NEW.status IN {TERMINAL} AND OLD.status NOT IN {TERMINAL})
EXECUTE FUNCTION jobs_settle_usage()
"""

# A job withdrawn before it ran (the broker refused it at submit) gives back its
# reservation and its place in the day's job count. UPDATE only, never INSERT: when
# the whole account is deleted, its counters are going too.
RELEASE_FUNCTION = """
CREATE FUNCTION jobs_release_usage() RETURNS trigger AS $$
BEGIN
    UPDATE usage_counters
    SET tokens_reserved = greatest(tokens_reserved - OLD.reserved_tokens, 0), updated_at = now()
    WHERE user_id = OLD.user_id
      AND period = date_trunc('month', OLD.created_at AT TIME ZONE 'UTC')::date;
    IF OLD.attempt = 0 THEN
        UPDATE daily_job_counts SET jobs = greatest(jobs - 1, 0)
        WHERE user_id = OLD.user_id AND day = (OLD.created_at AT TIME ZONE 'UTC')::date;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
RELEASE_TRIGGER = f"""
CREATE TRIGGER jobs_release_usage AFTER DELETE ON jobs
FOR EACH ROW
WHEN (OLD.status NOT IN {TERMINAL})
EXECUTE FUNCTION jobs_release_usage()
"""


def upgrade() -> None:
    op.add_column("jobs", sa.Column("reserved_tokens", sa.Integer(), server_default="0", nullable=False))
    op.add_column("users", sa.Column("stripe_customer_id", sa.String(length=255), nullable=True))
    op.create_unique_constraint(op.f("uq_users_stripe_customer_id"), "users", ["stripe_customer_id"])

    op.create_table(
        "usage_counters",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("tokens_used", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tokens_reserved", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_counters_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "period", name=op.f("pk_usage_counters")),
    )
    op.create_table(
        "daily_job_counts",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("jobs", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_daily_job_counts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_daily_job_counts")),
    )
    op.create_table(
        "usage_ledger",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("call_index", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("billed", sa.Boolean(), nullable=False),
        sa.Column("rolled_up", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_ledger_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_ledger")),
        sa.UniqueConstraint("job_id", "attempt", "call_index", name="uq_usage_ledger_job_attempt_call"),
    )
    op.create_index("ix_usage_ledger_user_created", "usage_ledger", ["user_id", "created_at"], unique=False)
    op.create_index(
        "ix_usage_ledger_pending_rollup",
        "usage_ledger",
        ["id"],
        unique=False,
        postgresql_where=sa.text("NOT rolled_up"),
    )
    op.create_table(
        "usage_daily",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("billed", sa.Boolean(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_daily_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "day", "tool", "model", "billed", name=op.f("pk_usage_daily")),
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(
        "ix_stripe_events_unprocessed",
        "stripe_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("price_id", sa.String(length=255), nullable=True),
        sa.Column("plan", sa.String(length=32), nullable=True),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_subscriptions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index("ix_subscriptions_user_id", "subscriptions", ["user_id"], unique=False)
    op.execute(SETTLE_FUNCTION)
    op.execute(SETTLE_TRIGGER)
    op.execute(RELEASE_FUNCTION)
    op.execute(RELEASE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_release_usage ON jobs")
    op.execute("DROP FUNCTION IF EXISTS jobs_release_usage()")
    op.execute("DROP TRIGGER IF EXISTS jobs_settle_usage ON jobs")
    op.execute("DROP FUNCTION IF EXISTS jobs_settle_usage()")
    op.drop_index("ix_subscriptions_user_id", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(
        "ix_stripe_events_unprocessed",
        table_name="stripe_events",
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.drop_table("stripe_events")
    op.drop_table("usage_daily")
    op.drop_index(
        "ix_usage_ledger_pending_rollup", table_name="usage_ledger", postgresql_where=sa.text("NOT rolled_up")
    )
    op.drop_index("ix_usage_ledger_user_created", table_name="usage_ledger")
    op.drop_table("usage_ledger")
    op.drop_table("daily_job_counts")
    op.drop_table("usage_counters")
    op.drop_constraint(op.f("uq_users_stripe_customer_id"), "users", type_="unique")
    op.drop_column("users", "stripe_customer_id")
    op.drop_column("jobs", "reserved_tokens")
