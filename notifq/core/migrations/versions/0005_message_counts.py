"""message_count: per-chunk counters of message states, kept by the database itself.

Status, the API's detail and the autoscaler's backlog read these rows instead of
counting message rows: O(chunks) per campaign, never O(messages). One row per
``(campaign_id, chunk)`` where ``chunk = seq / campaign.chunk_size``, so the
workers' batched outcome writes of different jobs touch different counter rows
(no hot row).

A statement-level trigger with transition tables keeps them: every INSERT,
UPDATE or DELETE of message rows adds its net change per chunk in the same
transaction (one upsert per statement, never per message). So every writer
(the operator's COPY, cancel, tombstone, retry-failed and give-up; the workers'
claimed outcome writes and their outbox) keeps the counters right without
knowing of them, and a rolled-back write rolls its counts back too.
``pending`` counts messages not attempted yet, ``queued`` pending ones attempted
before (waiting for a retry); the upsert takes the counter rows in key order, so
two statements never deadlock on them.

Existing rows are counted once here (backfill).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DELTAS = """
    INSERT INTO message_count AS mc (campaign_id, chunk, pending, queued, sent, failed, cancelled)
    SELECT d.campaign_id, d.seq / c.chunk_size,
           sum(d.sign * (d.status = 'pending' AND d.attempts = 0)::int),
           sum(d.sign * (d.status = 'pending' AND d.attempts > 0)::int),
           sum(d.sign * (d.status = 'sent')::int),
           sum(d.sign * (d.status = 'failed')::int),
           sum(d.sign * (d.status = 'cancelled')::int)
    FROM ({rows}) AS d JOIN campaign c ON c.id = d.campaign_id
    GROUP BY 1, 2
    HAVING bool_or(d.sign <> 0)
    ORDER BY 1, 2
    ON CONFLICT (campaign_id, chunk) DO UPDATE SET
      pending = mc.pending + EXCLUDED.pending,
      queued = mc.queued + EXCLUDED.queued,
      sent = mc.sent + EXCLUDED.sent,
      failed = mc.failed + EXCLUDED.failed,
      cancelled = mc.cancelled + EXCLUDED.cancelled;
"""
_NEW = "SELECT campaign_id, seq, status, attempts, 1 AS sign FROM new_rows"
_OLD = "SELECT campaign_id, seq, status, attempts, -1 AS sign FROM old_rows"
# An UPDATE that leaves status and attempts alone (a claim, a release) changes nothing:
# its old and new rows cancel out and are dropped before the join and the upsert.
_CHANGED = f"""
    SELECT campaign_id, seq, status, attempts, sum(sign)::int AS sign
    FROM ({_NEW} UNION ALL {_OLD}) AS u
    GROUP BY campaign_id, seq, status, attempts HAVING sum(sign) <> 0
"""

FUNCTION = f"""
CREATE FUNCTION message_count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_DELTAS.format(rows=_NEW)}
  ELSIF TG_OP = 'UPDATE' THEN
    {_DELTAS.format(rows=_CHANGED)}
  ELSE
    {_DELTAS.format(rows=_OLD)}
  END IF;
  RETURN NULL;
END
$$
"""

TRIGGERS = [
    "CREATE TRIGGER message_count_insert AFTER INSERT ON message "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_count_apply()",
    "CREATE TRIGGER message_count_update AFTER UPDATE ON message "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION message_count_apply()",
    "CREATE TRIGGER message_count_delete AFTER DELETE ON message "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION message_count_apply()",
]

BACKFILL = """
INSERT INTO message_count (campaign_id, chunk, pending, queued, sent, failed, cancelled)
SELECT m.campaign_id, m.seq / c.chunk_size,
       count(*) FILTER (WHERE m.status = 'pending' AND m.attempts = 0),
       count(*) FILTER (WHERE m.status = 'pending' AND m.attempts > 0),
       count(*) FILTER (WHERE m.status = 'sent'),
       count(*) FILTER (WHERE m.status = 'failed'),
       count(*) FILTER (WHERE m.status = 'cancelled')
FROM message m JOIN campaign c ON c.id = m.campaign_id
GROUP BY 1, 2
"""


def upgrade() -> None:
    op.create_table(
        "message_count",
        sa.Column(
            "campaign_id",
            UUID(as_uuid=True),
            sa.ForeignKey("campaign.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("chunk", sa.Integer, primary_key=True),
        *(
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in ("pending", "queued", "sent", "failed", "cancelled")
        ),
    )
    # no write may slip between the backfill and the trigger's first count
    op.execute("LOCK TABLE message IN SHARE ROW EXCLUSIVE MODE")
    op.execute(FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)
    op.execute(BACKFILL)


def downgrade() -> None:
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER message_count_{name} ON message")
    op.execute("DROP FUNCTION message_count_apply()")
    op.drop_table("message_count")
