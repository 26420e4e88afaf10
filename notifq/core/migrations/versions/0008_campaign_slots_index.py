"""A partial index on the campaigns holding a slot of their namespace (fair use).

The operator counts a namespace's stored, unfinished, not cancelled campaigns each
time it admits one under a NotifqPolicy's ``maxActiveCampaigns``; the index holds only
those rows, so the count costs the namespace's active campaigns, not its history.

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_campaign_slots ON campaign (namespace) "
        "WHERE deleted_at IS NULL AND finished_at IS NULL AND materialized_at IS NOT NULL "
        "AND state <> 'cancelled'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_campaign_slots")
