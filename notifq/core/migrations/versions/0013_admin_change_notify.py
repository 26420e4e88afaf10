"""A change of an account is announced: ``NOTIFY notifq_admin`` with its id.

The API keeps account rows between requests (api/account_cache.py) and must hear of a
new password or a removed account at once, whoever makes the change (an API replica,
``notifq-api set-password`` or ``remove-admin``, plain SQL). A row trigger on ``admin``
notifies with the account's id after every UPDATE and DELETE; a statement trigger
notifies ``*`` (every account) after a TRUNCATE. A notification is sent when the change
commits, to every connection listening on the channel. Inserts need none: the API keeps
only accounts it has read.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION notifq_admin_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        "PERFORM pg_notify('notifq_admin', "
        "CASE WHEN TG_LEVEL = 'ROW' THEN OLD.id::text ELSE '*' END); "
        "RETURN NULL; "
        "END $$"
    )
    op.execute(
        "CREATE TRIGGER admin_changed AFTER UPDATE OR DELETE ON admin "
        "FOR EACH ROW EXECUTE FUNCTION notifq_admin_changed()"
    )
    op.execute(
        "CREATE TRIGGER admin_truncated AFTER TRUNCATE ON admin "
        "FOR EACH STATEMENT EXECUTE FUNCTION notifq_admin_changed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER admin_truncated ON admin")
    op.execute("DROP TRIGGER admin_changed ON admin")
    op.execute("DROP FUNCTION notifq_admin_changed()")
