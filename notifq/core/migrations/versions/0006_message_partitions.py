"""Message rows in one partition per campaign; storing progress on the campaign row.

``message`` becomes a table partitioned by LIST on ``campaign_id``, one partition per
campaign (named ``message_<campaign id hex>``), so expiring a campaign's rows is dropping
one table (docs/architecture.md, "Partitions"). The existing rows are moved, campaign by
campaign, into partitions of their own. The foreign key to ``campaign`` goes: its check
cost a trigger call per stored row (1.6 s per million), and rows leave with their
partition, not by a cascading DELETE.

New campaign columns: ``stored_count`` and ``source_offset`` (how far storing got: rows
committed, and bytes read of an object-storage list), ``source_etag`` (the object's
version storing started from) and ``expired_at`` (when retention dropped the rows).

The counters of 0005 stay as they are (the moved rows are the rows they count); their
triggers are created again on the partitioned ``message`` (a statement trigger with
transition tables on the parent sees the rows of every partition a statement writes).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

# 0005's triggers, as it created them (migrations do not import each other)
COUNT_TRIGGERS = [
    "CREATE TRIGGER message_count_insert AFTER INSERT ON message "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_count_apply()",
    "CREATE TRIGGER message_count_update AFTER UPDATE ON message "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION message_count_apply()",
    "CREATE TRIGGER message_count_delete AFTER DELETE ON message "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION message_count_apply()",
]

COLUMNS = """
  campaign_id uuid NOT NULL,
  seq integer NOT NULL,
  recipient text NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  attempts smallint NOT NULL DEFAULT 0,
  last_error text,
  provider text,
  provider_message_id text,
  sent_at timestamptz,
  updated_at timestamptz,
  claim_token text,
  claim_owner text,
  claimed_until timestamptz,
  CONSTRAINT ck_message_ck_message_status
    CHECK (status IN ('pending', 'sent', 'failed', 'cancelled'))
"""


def upgrade() -> None:
    op.add_column(
        "campaign", sa.Column("stored_count", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column(
        "campaign", sa.Column("source_offset", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column("campaign", sa.Column("source_etag", sa.Text))
    op.add_column("campaign", sa.Column("expired_at", TS))
    op.execute("ALTER TABLE message RENAME TO message_unpartitioned")
    op.execute("ALTER TABLE message_unpartitioned RENAME CONSTRAINT pk_message TO pk_message_old")
    op.execute(
        "ALTER TABLE message_unpartitioned "
        "RENAME CONSTRAINT ck_message_ck_message_status TO ck_message_old_status"
    )
    op.execute("ALTER INDEX ix_message_campaign_status_seq RENAME TO ix_message_old_status_seq")
    op.execute(
        f"CREATE TABLE message ({COLUMNS}, CONSTRAINT pk_message PRIMARY KEY (campaign_id, seq))"
        " PARTITION BY LIST (campaign_id)"
    )
    op.execute("CREATE INDEX ix_message_campaign_status_seq ON message (campaign_id, status, seq)")
    bind = op.get_bind()
    ids = [
        r[0]
        for r in bind.execute(sa.text("SELECT DISTINCT campaign_id FROM message_unpartitioned"))
    ]
    for cid in ids:
        h = cid.hex
        op.execute(f"CREATE TABLE message_{h} PARTITION OF message FOR VALUES IN ('{cid}')")
        op.execute(
            f"INSERT INTO message_{h} SELECT * FROM message_unpartitioned "
            f"WHERE campaign_id = '{cid}'"
        )
    op.execute("UPDATE campaign c SET stored_count = c.total WHERE c.materialized_at IS NOT NULL")
    op.execute("DROP TABLE message_unpartitioned")  # and 0005's triggers with it
    for trigger in COUNT_TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    op.execute(f"CREATE TABLE message_flat ({COLUMNS})")
    op.execute("INSERT INTO message_flat SELECT * FROM message")
    op.execute("DROP TABLE message")  # and every partition
    bind = op.get_bind()
    unattached = bind.execute(
        sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename ~ '^message_[0-9a-f]{32}$'"
        )
    )
    for (table,) in list(unattached):  # campaigns half stored: storing starts again
        op.execute(f'DROP TABLE "{table}"')
    op.execute("ALTER TABLE message_flat RENAME TO message")
    op.execute("ALTER TABLE message ADD CONSTRAINT pk_message PRIMARY KEY (campaign_id, seq)")
    op.execute("CREATE INDEX ix_message_campaign_status_seq ON message (campaign_id, status, seq)")
    for trigger in COUNT_TRIGGERS:
        op.execute(trigger)
    op.execute(
        "ALTER TABLE message ADD CONSTRAINT fk_message_campaign_id_campaign FOREIGN KEY "
        "(campaign_id) REFERENCES campaign (id) ON DELETE CASCADE NOT VALID"
    )
    op.drop_column("campaign", "expired_at")
    op.drop_column("campaign", "source_etag")
    op.drop_column("campaign", "source_offset")
    op.drop_column("campaign", "stored_count")
