"""admin: a Kubernetes identity and a token version per account.

``kube_user`` / ``kube_groups``: the user and groups the account acts as; every REST
action is authorized by Kubernetes (SubjectAccessReview) for them. NULL user means
``notifq:<email>``. ``token_version`` is in every token the account gets and is raised
by a password change, so the change revokes them at once (the API reads the row by its
primary key on every request anyway; removing the account revokes them as well).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("admin", sa.Column("kube_user", sa.Text, nullable=True))
    op.add_column(
        "admin",
        sa.Column("kube_groups", ARRAY(sa.Text), nullable=False, server_default="{}"),
    )
    op.add_column(
        "admin", sa.Column("token_version", sa.Integer, nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("admin", "token_version")
    op.drop_column("admin", "kube_groups")
    op.drop_column("admin", "kube_user")
