"""``message``'s status index holds only the rows that are looked up by status.

The index on ``(campaign_id, status, seq)`` of every row served two kinds of query: the
failed rows of a campaign (its most common failure reasons, the retry of failures, the
failed and suppressed recipients listed by the API) and, before the per-chunk counters
(0005), the counts. Every other read names a range of ``seq`` and uses the primary key.
Yet the full index was a second sort of the whole list each time a campaign was stored
(about 0.45 s and 45 MB of WAL per million rows) and an index entry for every outcome a
worker wrote. It is now partial: only ``failed`` and ``suppressed`` rows, none of them at
the time a list is stored, so building it is a scan, and a message that is sent adds no
entry. A query on ``status = 'failed'`` (or ``'suppressed'``) is implied by the predicate
and keeps its index.

Tables of campaigns being stored (not attached yet) lose the old index; the attach builds
the new one if storing does not.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PREDICATE = "status IN ('failed', 'suppressed')"


def _unattached() -> list[str]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' "
            "AND c.relname ~ '^message_[0-9a-f]{32}$' AND NOT c.relispartition"
        )
    )
    return [r[0] for r in rows]


def upgrade() -> None:
    op.execute("DROP INDEX ix_message_campaign_status_seq")  # and every partition's
    for table in _unattached():
        op.execute(f'DROP INDEX IF EXISTS "ix_{table.removeprefix("message_")}_status_seq"')
    op.execute(
        f"CREATE INDEX ix_message_failed ON message (campaign_id, status, seq) WHERE {PREDICATE}"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_message_failed")
    for table in _unattached():
        op.execute(f'DROP INDEX IF EXISTS "ix_{table.removeprefix("message_")}_failed"')
    op.execute("CREATE INDEX ix_message_campaign_status_seq ON message (campaign_id, status, seq)")
