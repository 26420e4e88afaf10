"""SES bounce and complaint notifications (SES -> SNS -> SQS), read by the operator's leader.

A thread of its own long-polls the SQS queue (blocking boto3, so never on the event
loop; a daemon thread, so a long poll never delays shutdown) and hands each batch to
the event loop, which records it: one ``delivery_event`` row per feedback and recipient
(keyed by SES's feedback id: a message SQS delivers twice counts once), the campaign's
``bounced`` / ``complained`` count, and a suppression entry in the campaign's namespace.
Only then are the messages deleted from the queue; a batch that could not be recorded
comes back after the queue's visibility timeout.

Only hard bounces (``bounceType: Permanent``) and complaints suppress; transient and
undetermined bounces are left to SES's own retries. Feedback is attributed through the
``X-Notifq-Message: <campaign uid>.<seq>`` header every notifq email carries (SES copies
the original headers into the notification) or the message tags of event publishing;
feedback for mail notifq cannot attribute is recorded for no campaign, and its recipient
suppressed everywhere (``*``): an address that bounced hard does not exist for anyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notifq.core import suppression
from notifq.core.settings import OperatorSettings

log = logging.getLogger(__name__)

MESSAGE_HEADER = "x-notifq-message"


@dataclass(frozen=True, slots=True)
class Feedback:
    """One recipient's hard bounce or complaint."""

    feedback_id: str
    kind: str  # bounce | complaint
    recipient: str
    campaign_id: uuid.UUID | None
    seq: int | None
    detail: str


def _attribution(mail: dict[str, Any]) -> tuple[uuid.UUID | None, int | None]:
    """(campaign uid, seq) from the notifq header or the message tags, if present."""
    for h in mail.get("headers") or []:
        if str(h.get("name", "")).lower() == MESSAGE_HEADER:
            cid, _, seq = str(h.get("value", "")).strip().rpartition(".")
            try:
                return uuid.UUID(cid), int(seq)
            except ValueError:
                break
    tags = mail.get("tags") or {}
    try:
        return uuid.UUID(tags["notifq-campaign"][0]), int(tags["seq"][0])
    except (KeyError, IndexError, ValueError, TypeError):
        return None, None


def parse(body: str) -> list[Feedback]:
    """The feedback in one SQS message body: an SNS envelope, or the SES notification itself
    (raw message delivery). Deliveries, transient bounces and other events give nothing.
    Raises ``ValueError`` for a body that is not such JSON."""
    doc = json.loads(body)
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        doc = json.loads(doc["Message"])
    if not isinstance(doc, dict):
        raise ValueError("not an SES notification")
    kind = str(doc.get("notificationType") or doc.get("eventType") or "")
    mail = doc.get("mail") or {}
    if kind == "Bounce":
        part = doc.get("bounce") or {}
        if part.get("bounceType") != "Permanent":
            return []  # transient and undetermined bounces: SES retries them itself
        listed, default = part.get("bouncedRecipients"), part.get("bounceSubType")
    elif kind == "Complaint":
        part = doc.get("complaint") or {}
        listed, default = part.get("complainedRecipients"), part.get("complaintFeedbackType")
    else:
        return []
    cid, seq = _attribution(mail)
    fid = str(part.get("feedbackId") or mail.get("messageId") or "")
    return [
        Feedback(
            fid,
            kind.lower(),
            suppression.normalize(str(r["emailAddress"])),
            cid,
            seq,
            str(r.get("diagnosticCode") or default or "")[:300],
        )
        for r in listed or []
        if r.get("emailAddress")
    ]


async def record(pool: AsyncConnectionPool, items: list[Feedback]) -> int:
    """Record feedback (idempotent); returns how many were new. One item the database
    cannot hold (a NUL in an address, a seq out of range) is dropped with a warning, under
    its own savepoint, so it cannot keep the others of its batch on the queue."""
    new = 0
    async with pool.connection() as conn, conn.transaction():
        for fb in items:
            try:
                async with conn.transaction():
                    new += await _record_one(conn, fb)
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                log.warning("SES feedback %s for %r dropped: %s", fb.feedback_id, fb.recipient, exc)
    return new


async def _record_one(conn: AsyncConnection, fb: Feedback) -> int:
    """1 when this feedback was new (and is now counted and suppressed), else 0."""
    cur = await conn.execute(
        "INSERT INTO delivery_event (feedback_id, recipient, kind, campaign_id, seq, "
        "detail) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (fb.feedback_id, fb.recipient, fb.kind, fb.campaign_id, fb.seq, fb.detail),
    )
    if cur.rowcount != 1:
        return 0
    namespace = suppression.GLOBAL
    if fb.campaign_id is not None:
        column = "bounced" if fb.kind == "bounce" else "complained"
        cur = await conn.execute(
            f"UPDATE campaign SET {column} = {column} + 1 WHERE id = %s RETURNING namespace",
            (fb.campaign_id,),
        )
        row = await cur.fetchone()
        if row is not None:
            namespace = str(row[0])
    await conn.execute(
        "INSERT INTO suppression (namespace, recipient, reason, detail, source) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (namespace, recipient) DO NOTHING",
        (namespace, fb.recipient, fb.kind, fb.detail or None, f"ses:{fb.feedback_id}"),
    )
    return 1


class FeedbackConsumer:
    """Long-polls the queue in a daemon thread; records on the event loop."""

    def __init__(self, settings: OperatorSettings, pool: AsyncConnectionPool) -> None:
        self.settings = settings
        self.pool = pool
        self.queue_url = settings.ses_events_queue_url
        self.stopping = threading.Event()
        self.recorded = 0
        self._thread: threading.Thread | None = None
        self._client: Any = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.queue_url:
            return
        self._client = boto3.session.Session().client(
            "sqs", region_name=self.settings.aws_region, endpoint_url=self.settings.aws_endpoint_url
        )
        self._thread = threading.Thread(
            target=self._poll, args=(loop,), name="ses-feedback", daemon=True
        )
        self._thread.start()
        log.info("reading SES feedback from %s", self.queue_url)

    def stop(self) -> None:
        self.stopping.set()

    def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self.stopping.is_set():
            try:
                resp = self._client.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.settings.ses_events_wait_seconds,
                )
                messages = resp.get("Messages") or []
                if not messages or self.stopping.is_set():
                    continue
                done = asyncio.run_coroutine_threadsafe(self._handle(messages), loop).result()
                if done:
                    self._client.delete_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(done)],
                    )
            except Exception:
                if self.stopping.is_set():
                    return
                log.exception("SES feedback: reading the queue failed; retrying")
                self.stopping.wait(5.0)

    async def _handle(self, messages: list[dict[str, Any]]) -> list[str]:
        done, new = await handle(self.pool, messages)
        self.recorded += new
        return done


async def handle(
    pool: AsyncConnectionPool, messages: list[dict[str, Any]]
) -> tuple[list[str], int]:
    """Record one batch of SQS messages: (the receipt handles of the messages done with,
    recorded or unreadable; how many feedbacks were new). A message of any wrong shape is
    dropped with a warning, never left to come back with the good ones; a database that
    cannot be reached leaves the whole batch on the queue."""
    items: list[Feedback] = []
    done: list[str] = []
    for m in messages:
        try:
            items.extend(parse(str(m.get("Body", ""))))
        except Exception as exc:  # any malformed body, whatever it trips in parse
            log.warning("SES feedback: unreadable message %s dropped: %r", m.get("MessageId"), exc)
        done.append(str(m["ReceiptHandle"]))
    new = await record(pool, items)
    if items:
        log.info("SES feedback: %d event(s), %d new", len(items), new)
    return done, new
