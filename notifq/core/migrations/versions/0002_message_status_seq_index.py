"""Index messages by (campaign_id, status, seq).

The chunk query (``campaign_id = ? AND status = 'pending' AND seq in [a, b)``) and
the status UPDATE must never scan a campaign's whole pending set. With only
``(campaign_id, status)`` the planner picked that index whenever statistics
were fresh-table estimates, filtering out 99.5 % of 100,000 rows per chunk
(9.6 ms instead of 0.1 ms). Adding ``seq`` makes every form an exact range
scan, and the index still serves the per-status counts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_message_campaign_status_seq", "message", ["campaign_id", "status", "seq"])
    op.drop_index("ix_message_campaign_status", table_name="message")


def downgrade() -> None:
    op.create_index("ix_message_campaign_status", "message", ["campaign_id", "status"])
    op.drop_index("ix_message_campaign_status_seq", table_name="message")
