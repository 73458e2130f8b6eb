"""mail outbox (issue 5, email)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = "('succeeded', 'failed', 'canceled', 'expired')"

# Like the webhook outbox (0002): the email is recorded in the transaction that
# finishes the job, whoever finishes it (worker, reaper, cancel, expiry), and the
# dedupe key makes it once per job. The link is composed when the email is rendered.
RECORD_FUNCTION = """
CREATE FUNCTION jobs_record_email() RETURNS trigger AS $$
BEGIN
    INSERT INTO email_outbox (id, to_address, template, context, dedupe_key)
    SELECT gen_random_uuid(), u.email, 'job_finished',
           jsonb_build_object(
               'name', u.name,
               'job_id', NEW.id::text,
               'tool', NEW.tool,
               'status', NEW.status,
               'error_code', NEW.error_code,
               'error_message', left(NEW.error_message, 300)
           ),
           'job_finished:' || NEW.id::text
    FROM users u
    WHERE u.id = NEW.user_id
    ON CONFLICT (dedupe_key) DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
RECORD_TRIGGER = f"""
CREATE TRIGGER jobs_record_email AFTER UPDATE OF status ON jobs
FOR EACH ROW
WHEN (NEW.notify_email AND NEW.status IN {TERMINAL} AND OLD.status NOT IN {TERMINAL})
EXECUTE FUNCTION jobs_record_email()
"""


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("notify_email", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True
        ),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')", name=op.f("ck_email_outbox_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_outbox")),
        sa.UniqueConstraint("dedupe_key", name="uq_email_outbox_dedupe_key"),
    )
    op.create_index(
        "ix_email_outbox_open",
        "email_outbox",
        ["status", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.execute(RECORD_FUNCTION)
    op.execute(RECORD_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_record_email ON jobs")
    op.execute("DROP FUNCTION IF EXISTS jobs_record_email()")
    op.drop_index(
        "ix_email_outbox_open",
        table_name="email_outbox",
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.drop_table("email_outbox")
    op.drop_column("jobs", "notify_email")
