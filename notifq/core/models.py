"""Database schema: campaigns, their messages, and admin accounts.

Postgres is the source of truth. Messages are keyed by ``(campaign_id, seq)`` so
every step that writes them can be repeated without creating duplicates; the
campaign id is the Campaign resource's uid. Campaign counts come
from :class:`MessageCount`, per-chunk counters that a statement-level trigger
keeps in the same transaction as every write of message rows (one upsert per
statement, never a counter incremented per message; migration 0005);
``sent_count``/``failed_count`` on the campaign are a copy of the counts the
operator writes with the status when they change (for SQL users and the API's
list).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Campaign(Base):
    """One Campaign resource, as the operator materialized it."""

    __tablename__ = "campaign"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    namespace: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text, default="email")
    provider: Mapped[str] = mapped_column(Text, default="auto")
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    """The HTML template (NULL: text only); ``body`` is then the text part, or empty to make
    the text part from the HTML (migration 0010)."""
    max_attempts: Mapped[int] = mapped_column(SmallInteger, default=4)
    backoff_ms: Mapped[int] = mapped_column(Integer, default=1000)
    chunk_size: Mapped[int] = mapped_column(Integer, default=500)
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    """Messages per second for this campaign across all workers (None: provider limit only)."""
    total: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(Text, default="active")
    """The operator's intent, read by workers: active, suspended or cancelled."""
    phase: Mapped[str] = mapped_column(Text, default="Pending")
    """Last phase the operator wrote to the resource status."""
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    materialized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set in the same transaction that copies the message rows."""
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When every chunk job of the first enqueue was added (NULL while not active)."""
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set when the resource was deleted; rows are kept for audit."""
    stored_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Message rows committed so far while storing (batches commit one by one): where a
    restarted operator goes on."""
    source_offset: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Bytes of an object-storage list read up to the last committed batch."""
    source_etag: Mapped[str | None] = mapped_column(Text)
    """The object's ETag when storing started: a resumed read must see the same object."""
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When retention dropped the campaign's message rows (its partition); counts stay in
    ``sent_count``/``failed_count``."""
    bounced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Hard bounces SES reported for this campaign's messages (``delivery_event``)."""
    complained: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Complaints SES reported for this campaign's messages (``delivery_event``)."""
    guard_tripped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the reputation guard suspended the campaign (it acts once per campaign)."""
    guard_reason: Mapped[str | None] = mapped_column(Text)
    """Why it did (the rate that passed its limit)."""
    display_name: Mapped[str | None] = mapped_column(Text)
    """The resource's ``notifq.dev/display-name`` annotation (migration 0011: these
    ``status_*`` columns are the operator's copy of what the API's detail shows)."""
    resource_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """The resource's ``metadata.creationTimestamp``."""
    status_message: Mapped[str | None] = mapped_column(Text)
    """``status.message`` as the operator last computed it."""
    status_quota: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """``status.quota`` as the operator last computed it (None: none)."""
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the operator last wrote this copy (None: never; the API reads the resource)."""
    generated_from: Mapped[int | None] = mapped_column(Integer)
    """A generated list's first generated seq (``user0``); its rows from there on hold no
    address, it is computed (migration 0014, ``recipients.RECIPIENT_SQL``)."""
    generated_domain: Mapped[str | None] = mapped_column(Text)
    """A generated list's domain (set with ``generated_from``)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("state IN ('active', 'suspended', 'cancelled')", name="state"),
        CheckConstraint("(generated_from IS NULL) = (generated_domain IS NULL)", name="generated"),
        Index("ix_campaign_created_at", "created_at"),
        Index("ix_campaign_namespace_name", "namespace", "name"),
        Index(
            "ix_campaign_slots",
            "namespace",
            postgresql_where=text(
                "deleted_at IS NULL AND finished_at IS NULL AND materialized_at IS NOT NULL "
                "AND state <> 'cancelled'"
            ),
        ),
    )


class Message(Base):
    """One recipient of one campaign and its delivery fate."""

    __tablename__ = "message"

    campaign_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    """The campaign's id; also the partition key (one partition per campaign, migration 0006)."""
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient: Mapped[str | None] = mapped_column(Text)
    """The address; NULL in a generated list's rows, computed from ``seq`` and the
    campaign's ``generated_from``/``generated_domain`` (``recipients.RECIPIENT_SQL``)."""
    status: Mapped[str] = mapped_column(Text, default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Idempotency mark: a message with ``sent_at`` is never sent again."""
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claim_token: Mapped[str | None] = mapped_column(Text)
    """Set by the worker that is about to send this message (one claim per send)."""
    claim_owner: Mapped[str | None] = mapped_column(Text)
    """The claiming worker (a ``worker_lease`` id); its lapsed lease frees the claim."""
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Claims end here even if their worker still looks alive (a safety net)."""
    data: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    """The recipient's fields for the templates (a CSV row, a ``records`` entry); NULL for a
    plain address (migration 0010)."""

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'cancelled', 'suppressed')", name="status"
        ),
        # only the rows looked up by status (migration 0012): none when a list is stored
        Index(
            "ix_message_failed",
            "campaign_id",
            "status",
            "seq",
            postgresql_where=text("status IN ('failed', 'suppressed')"),
        ),
        {"postgresql_partition_by": "LIST (campaign_id)"},
    )


class MessageCount(Base):
    """Messages of one chunk (``seq / campaign.chunk_size``) per state.

    Written only by the database's ``message_count_apply`` trigger on ``message``
    (migration 0005): every statement that inserts, updates or deletes message rows
    adds its net change here in the same transaction.
    """

    __tablename__ = "message_count"

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    pending: Mapped[int] = mapped_column(Integer, server_default="0")
    """Pending and never attempted."""
    queued: Mapped[int] = mapped_column(Integer, server_default="0")
    """Pending after a failed attempt (waiting for a retry)."""
    sent: Mapped[int] = mapped_column(Integer, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, server_default="0")
    cancelled: Mapped[int] = mapped_column(Integer, server_default="0")
    suppressed: Mapped[int] = mapped_column(Integer, server_default="0")
    """Not sent: the recipient is on the suppression list (migration 0009)."""


class Suppression(Base):
    """A recipient never sent to again in a namespace (``*``: in every namespace)."""

    __tablename__ = "suppression"

    namespace: Mapped[str] = mapped_column(Text, primary_key=True)
    recipient: Mapped[str] = mapped_column(Text, primary_key=True)
    """Lower-cased."""
    reason: Mapped[str] = mapped_column(Text)
    """bounce, complaint, unsubscribe or manual."""
    detail: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    """Who or what added it: an SES feedback id, the unsubscribe link, an admin."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "reason IN ('bounce', 'complaint', 'unsubscribe', 'manual')", name="reason"
        ),
        CheckConstraint("recipient = lower(recipient)", name="lower"),
        Index("ix_suppression_recipient", "recipient"),
    )


class DeliveryEvent(Base):
    """One SES feedback (hard bounce or complaint) for one recipient, counted once."""

    __tablename__ = "delivery_event"

    feedback_id: Mapped[str] = mapped_column(Text, primary_key=True)
    recipient: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    seq: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("kind IN ('bounce', 'complaint')", name="kind"),
        Index("ix_delivery_event_campaign", "campaign_id", "kind"),
    )


class WorkerLease(Base):
    """A live worker process: renewed every few seconds, it protects the worker's claims."""

    __tablename__ = "worker_lease"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Admin(Base):
    """An administrator who may log in to the API."""

    __tablename__ = "admin"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    kube_user: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Kubernetes user the account acts as; NULL: ``notifq:<email>`` (migration 0007)."""
    kube_groups: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    """Kubernetes groups of the account (``system:authenticated`` is always added)."""
    token_version: Mapped[int] = mapped_column(Integer, server_default="0")
    """In every token of the account; raised by a password change (revokes them)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
