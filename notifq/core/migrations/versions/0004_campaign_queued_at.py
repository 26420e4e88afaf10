"""campaign.queued_at: when the operator had every chunk job of a campaign enqueued.

With ``materialized_at`` (rows stored) it dates the two halves of accepting a
campaign in the database itself, so benchmarks and operators read accept times
from facts instead of log wording.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaign", sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("campaign", "queued_at")
