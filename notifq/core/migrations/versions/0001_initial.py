"""Initial schema: campaign, message, admin.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaign",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("namespace", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("max_attempts", sa.SmallInteger, nullable=False),
        sa.Column("backoff_ms", sa.Integer, nullable=False),
        sa.Column("chunk_size", sa.Integer, nullable=False),
        sa.Column("rate_limit", sa.Integer),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("sent_count", sa.Integer, nullable=False),
        sa.Column("failed_count", sa.Integer, nullable=False),
        sa.Column("materialized_at", TS),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("deleted_at", TS),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "state IN ('active', 'suspended', 'cancelled')", name="ck_campaign_state"
        ),
    )
    op.create_index("ix_campaign_created_at", "campaign", ["created_at"])
    op.create_index("ix_campaign_namespace_name", "campaign", ["namespace", "name"])
    op.create_table(
        "message",
        sa.Column(
            "campaign_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "campaign.id", ondelete="CASCADE", name="fk_message_campaign_id_campaign"
            ),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("provider", sa.Text),
        sa.Column("provider_message_id", sa.Text),
        sa.Column("sent_at", TS),
        sa.Column("updated_at", TS),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'cancelled')", name="ck_message_status"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "seq", name="pk_message"),
    )
    op.create_index("ix_message_campaign_status", "message", ["campaign_id", "status"])
    op.create_table(
        "admin",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("admin")
    op.drop_index("ix_message_campaign_status", table_name="message")
    op.drop_table("message")
    op.drop_index("ix_campaign_namespace_name", table_name="campaign")
    op.drop_index("ix_campaign_created_at", table_name="campaign")
    op.drop_table("campaign")
