"""Suppression list, delivery feedback (bounces, complaints) and the reputation guard.

- ``suppression``: recipients never sent to again, per namespace (``namespace = '*'``:
  every namespace), with the reason (``bounce``, ``complaint``, ``unsubscribe``,
  ``manual``) and where it came from. Recipients are stored lower-cased.
- ``message.status`` may now be ``suppressed`` (the worker found the recipient on the
  list just before the send; ``last_error`` holds the reason), and ``message_count``
  counts it: the counter function of 0005 is re-created with the new column.
- ``delivery_event``: one row per SES feedback (hard bounce or complaint) per recipient,
  keyed by the feedback id so an SQS re-delivery counts once; ``campaign.bounced`` and
  ``campaign.complained`` are its per-campaign counts (events are rare: a plain increment).
- ``campaign.guard_tripped_at`` / ``guard_reason``: when the reputation guard suspended
  the campaign (once: a person who resumes it is not overruled).

Revision ID: 0009
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
STATES = ("pending", "sent", "failed", "cancelled", "suppressed")
COLUMNS = ("pending", "queued", "sent", "failed", "cancelled", "suppressed")


def _function(columns: tuple[str, ...]) -> str:
    """0005's ``message_count_apply`` over ``columns`` (migrations do not import each other)."""
    sums = {
        "pending": "sum(d.sign * (d.status = 'pending' AND d.attempts = 0)::int)",
        "queued": "sum(d.sign * (d.status = 'pending' AND d.attempts > 0)::int)",
    }
    exprs = ",\n           ".join(
        sums.get(c, f"sum(d.sign * (d.status = '{c}')::int)") for c in columns
    )
    sets = ",\n      ".join(f"{c} = mc.{c} + EXCLUDED.{c}" for c in columns)
    deltas = f"""
    INSERT INTO message_count AS mc (campaign_id, chunk, {", ".join(columns)})
    SELECT d.campaign_id, d.seq / c.chunk_size,
           {exprs}
    FROM ({{rows}}) AS d JOIN campaign c ON c.id = d.campaign_id
    GROUP BY 1, 2
    HAVING bool_or(d.sign <> 0)
    ORDER BY 1, 2
    ON CONFLICT (campaign_id, chunk) DO UPDATE SET
      {sets};
"""
    new = "SELECT campaign_id, seq, status, attempts, 1 AS sign FROM new_rows"
    old = "SELECT campaign_id, seq, status, attempts, -1 AS sign FROM old_rows"
    changed = f"""
    SELECT campaign_id, seq, status, attempts, sum(sign)::int AS sign
    FROM ({new} UNION ALL {old}) AS u
    GROUP BY campaign_id, seq, status, attempts HAVING sum(sign) <> 0
"""
    return f"""
CREATE OR REPLACE FUNCTION message_count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {deltas.format(rows=new)}
  ELSIF TG_OP = 'UPDATE' THEN
    {deltas.format(rows=changed)}
  ELSE
    {deltas.format(rows=old)}
  END IF;
  RETURN NULL;
END
$$
"""


def _status_check(states: tuple[str, ...]) -> None:
    """The new CHECK on ``message`` (and so its partitions) and on campaign tables not
    attached yet (storing was under way): ATTACH wants the parent's constraints."""
    listed = ", ".join(f"'{s}'" for s in states)
    unattached = op.get_bind().execute(
        sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' "
            "AND c.relname ~ '^message_[0-9a-f]{32}$' "
            "AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)"
        )
    )
    for table in ["message", *(r[0] for r in unattached)]:
        op.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT ck_message_ck_message_status')
        op.execute(
            f'ALTER TABLE "{table}" ADD CONSTRAINT ck_message_ck_message_status '
            f"CHECK (status IN ({listed}))"
        )


def upgrade() -> None:
    op.create_table(
        "suppression",
        sa.Column("namespace", sa.Text, primary_key=True),
        sa.Column("recipient", sa.Text, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("source", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "reason IN ('bounce', 'complaint', 'unsubscribe', 'manual')",
            name="ck_suppression_reason",
        ),
        sa.CheckConstraint("recipient = lower(recipient)", name="ck_suppression_lower"),
    )
    op.create_index("ix_suppression_recipient", "suppression", ["recipient"])
    op.create_table(
        "delivery_event",
        sa.Column("feedback_id", sa.Text, primary_key=True),
        sa.Column("recipient", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("campaign_id", UUID(as_uuid=True)),
        sa.Column("seq", sa.Integer),
        sa.Column("detail", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('bounce', 'complaint')", name="ck_delivery_event_kind"),
    )
    op.create_index("ix_delivery_event_campaign", "delivery_event", ["campaign_id", "kind"])
    op.add_column("campaign", sa.Column("bounced", sa.Integer, nullable=False, server_default="0"))
    op.add_column(
        "campaign", sa.Column("complained", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("campaign", sa.Column("guard_tripped_at", TS))
    op.add_column("campaign", sa.Column("guard_reason", sa.Text))
    op.add_column(
        "message_count", sa.Column("suppressed", sa.Integer, nullable=False, server_default="0")
    )
    # no message write may count with the old function once the new states exist
    op.execute("LOCK TABLE message IN SHARE ROW EXCLUSIVE MODE")
    _status_check(STATES)
    op.execute(_function(COLUMNS))


def downgrade() -> None:
    op.execute("LOCK TABLE message IN SHARE ROW EXCLUSIVE MODE")
    # suppressed messages were never sent: they read as failed with their reason
    op.execute("UPDATE message SET status = 'failed' WHERE status = 'suppressed'")
    op.execute(_function(COLUMNS[:-1]))
    _status_check(STATES[:-1])
    op.drop_column("message_count", "suppressed")
    for col in ("guard_reason", "guard_tripped_at", "complained", "bounced"):
        op.drop_column("campaign", col)
    op.drop_table("delivery_event")
    op.drop_table("suppression")
