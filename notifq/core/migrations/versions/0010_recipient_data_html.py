"""Per-recipient fields on messages; an HTML template on campaigns.

``message.data`` (jsonb, NULL for a plain address) holds a recipient's fields (a CSV row
or a ``records`` entry) for the templates. It is added without a default, so no row is
rewritten, and generated recipients (``INSERT … SELECT generate_series``) leave it NULL
at no cost. ``campaign.html`` holds the HTML template (NULL: text only).

Tables of campaigns that were being stored when this runs (``message_<hex>``, not
attached yet) get the column too, or their attach would fail.

Revision ID: 0010
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UNATTACHED = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname ~ '^message_[0-9a-f]{32}$'
  AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
"""


def _unattached() -> list[str]:
    return [str(r[0]) for r in op.get_bind().execute(sa.text(UNATTACHED))]


def upgrade() -> None:
    op.add_column("campaign", sa.Column("html", sa.Text))
    op.execute("ALTER TABLE message ADD COLUMN data jsonb")  # and every attached partition
    for table in _unattached():
        op.execute(f'ALTER TABLE "{table}" ADD COLUMN data jsonb')


def downgrade() -> None:
    for table in _unattached():
        op.execute(f'ALTER TABLE "{table}" DROP COLUMN IF EXISTS data')
    op.execute("ALTER TABLE message DROP COLUMN data")
    op.drop_column("campaign", "html")
