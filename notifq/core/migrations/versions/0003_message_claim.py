"""Claims on message rows, and the leases of live workers.

A worker claims the rows it is about to send (``claim_token``, ``claim_owner``,
``claimed_until``) in the same UPDATE that checks they are still pending, not
claimed by a live worker, and that their campaign is still active. A second live
job for the same chunk therefore cannot send them. ``worker_lease`` holds one
row per live worker process, renewed every few seconds: rows claimed by a worker
whose lease ran out may be claimed again (it died, or stalled past its lease).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("message", sa.Column("claim_token", sa.Text))
    op.add_column("message", sa.Column("claim_owner", sa.Text))
    op.add_column("message", sa.Column("claimed_until", TS))
    op.create_table(
        "worker_lease",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("worker_lease")
    op.drop_column("message", "claimed_until")
    op.drop_column("message", "claim_owner")
    op.drop_column("message", "claim_token")
