"""Generated addresses are computed, not stored.

A generated list (``recipients.generate``: ``user<i>@<domain>``, a load test's list) used
to write each address as text into its message row. The address follows from the row's
``seq`` and two facts of the campaign, so its rows now hold NULL in ``recipient`` and the
campaign records the facts:

- ``campaign.generated_from``: the seq of ``user0`` (the ``include`` entries come first
  and are stored as written);
- ``campaign.generated_domain``: the domain.

Everything that reads a recipient computes it where ``recipient`` is NULL
(:data:`notifq.core.recipients.RECIPIENT_SQL`). Storing a million generated rows then
writes 79 MiB of WAL instead of 102 MiB and no text: 1.02-1.21 s instead of 1.63-1.75 s
for its COPYs and keys on a scratch Postgres (docs/architecture.md "Partitions").

Dropping NOT NULL on ``message`` reaches every attached partition and rewrites nothing;
a campaign's table still being stored (not attached yet, ``message_<hex>``, a plain table
or one split by ranges, whose ranges it reaches in turn) is altered on its own, or the
new operator's ``COPY (seq)`` into it would fail.

Old pods cannot run beside this schema: a worker or API server from before it reads a
NULL address in a generated campaign stored by a newer operator. Roll the image and the
schema together (docs/deploy.md, "Migrations").

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


UNATTACHED = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
  AND c.relname ~ '^message_[0-9a-f]{32}$' AND NOT c.relispartition
"""
"""Campaign tables not attached to ``message`` (being stored): plain or split by ranges."""


def _unattached() -> list[str]:
    return [str(r[0]) for r in op.get_bind().execute(sa.text(UNATTACHED))]


def upgrade() -> None:
    op.execute("ALTER TABLE campaign ADD COLUMN generated_from integer")
    op.execute("ALTER TABLE campaign ADD COLUMN generated_domain text")
    op.execute(
        "ALTER TABLE campaign ADD CONSTRAINT ck_campaign_generated "
        "CHECK ((generated_from IS NULL) = (generated_domain IS NULL))"
    )
    op.execute("ALTER TABLE message ALTER COLUMN recipient DROP NOT NULL")
    for table in _unattached():
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN recipient DROP NOT NULL')


def downgrade() -> None:
    # the computed addresses are written into their rows first, attached or not
    for table in ["message", *_unattached()]:
        op.execute(
            f"UPDATE \"{table}\" m SET recipient = 'user' || (m.seq - c.generated_from)::text "
            "|| '@' || c.generated_domain FROM campaign c "
            "WHERE c.id = m.campaign_id AND m.recipient IS NULL"
        )
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN recipient SET NOT NULL')
    op.execute("ALTER TABLE campaign DROP CONSTRAINT ck_campaign_generated")
    op.execute("ALTER TABLE campaign DROP COLUMN generated_domain")
    op.execute("ALTER TABLE campaign DROP COLUMN generated_from")
