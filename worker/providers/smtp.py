"""Email through any SMTP relay (Postfix, an ESP's SMTP endpoint), pooled and classified.

A batch is split over at most ``smtp_max_connections`` threads, each sending its
part one message after the other over one pooled connection (MAIL, RCPT, DATA;
RSET after a refusal). What the relay answers decides the outcome:

- 2xx: sent; the provider id is the message's ``Message-ID``
  (``<campaign.seq@sender-domain>``, the same for every attempt, so a receiver
  can tell a duplicate).
- 4xx, a dropped connection, a timeout: transient (retried with backoff).
- 5xx to MAIL, RCPT or DATA: permanent (the message fails with the reply).
- The relay refuses our credentials, STARTTLS is not offered, or its TLS
  certificate does not verify: ``exhausted`` - the provider is paused for every
  worker with that reason and the messages wait, spending no attempt.

Duplicates: a connection that breaks before the relay accepted DATA loses
nothing (the message is sent again on a fresh connection, at once when the
break came before DATA). Only a break after the message's data went out and
before the relay's final answer leaves it unknown; that message is retried, so
the relay may hold it twice: at most one duplicate per broken connection.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor

from notifq.core.settings import WorkerSettings
from notifq.worker.providers.base import Outbound, Outcome, Result, header_lines
from notifq.worker.providers.smtp_pool import Connection, SmtpPool

log = logging.getLogger(__name__)

MAX_ERROR = 1000


class ConnectFailed(Exception):
    """No connection to the relay could be opened; every message of the group shares it."""

    def __init__(self, result: Result, reason: str, *, down: bool = False) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason
        self.down = down
        """The relay could not be reached at all (no answer to speak of): it is down."""


def reply_result(code: int) -> Result:
    """Transient for 4xx (and anything not 5xx), permanent for 5xx."""
    return "permanent" if 500 <= code < 600 else "transient"


def reply_text(stage: str, code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"SMTP {stage} refused: {code} {text}".strip()[:MAX_ERROR]


def connect_failure(exc: Exception) -> ConnectFailed:
    """Classify why a connection could not be opened (EHLO, STARTTLS, AUTH included)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ConnectFailed(
            "exhausted", reply_text("authentication", exc.smtp_code, exc.smtp_error)
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ConnectFailed("exhausted", f"SMTP relay does not support it: {exc}"[:MAX_ERROR])
    if isinstance(exc, ssl.SSLError):
        return ConnectFailed("exhausted", f"SMTP TLS failed: {exc}"[:MAX_ERROR])
    if isinstance(exc, smtplib.SMTPResponseException):
        kind: Result = "exhausted" if reply_result(exc.smtp_code) == "permanent" else "transient"
        return ConnectFailed(kind, reply_text("connection", exc.smtp_code, exc.smtp_error))
    # refused, unreachable, timed out, dropped before its greeting: the relay is down (a
    # relay that answers 421 or 4xx at the greeting is up and busy: not down)
    return ConnectFailed(
        "transient", f"SMTP connection failed: {type(exc).__name__}: {exc}", down=True
    )


def encoded_words(text: str, chars: int = 30) -> str:
    """``text`` as RFC 2047 base64 encoded words on folded lines (any length, any script)."""
    words = (
        "=?utf-8?b?" + base64.b64encode(text[i : i + chars].encode()).decode("ascii") + "?="
        for i in range(0, len(text), chars)
    )
    return "\r\n ".join(words)


def encode(text: str) -> tuple[str, str]:
    """(Content-Transfer-Encoding, the body in it with CRLF lines): 7bit when ASCII with
    lines of at most 998 characters, else base64."""
    text = text.replace("\r\n", "\n")
    if text.isascii() and all(len(line) <= 998 for line in text.split("\n")):
        return "7bit", text.replace("\n", "\r\n")
    return "base64", base64.encodebytes(text.replace("\n", "\r\n").encode()).decode(
        "ascii"
    ).replace("\n", "\r\n")


def part(text: str, subtype: str) -> str:
    """One text/``subtype`` UTF-8 entity of a multipart message."""
    encoding, payload = encode(text)
    return (
        f"Content-Type: text/{subtype}; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n{payload}"
    )


class SmtpProvider:
    name = "smtp"

    def __init__(self, settings: WorkerSettings) -> None:
        self.sender = settings.smtp_from or settings.from_email
        self.domain = self.sender.rpartition("@")[2] or "notifq"
        self.threads = settings.smtp_max_connections
        self.pool = SmtpPool(settings)
        self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="smtp")

    def build(self, m: Outbound) -> tuple[str, bytes]:
        """(Message-ID, the message as sent): text/plain UTF-8, or multipart/alternative
        (text, then HTML) when the message has an HTML part.

        Written out directly (``email.message.EmailMessage`` costs milliseconds per
        message); a non-ASCII subject is RFC 2047 encoded, a non-ASCII body base64.
        """
        if "\r" in m.subject or "\n" in m.subject:
            raise ValueError("subject holds a line break")
        msg_id = f"<{m.campaign or 'notifq'}.{m.seq}@{self.domain}>"
        plain = m.subject.isascii() and len(m.subject) < 900
        subject = m.subject if plain else encoded_words(m.subject)
        head = (
            f"From: {self.sender}\r\nTo: {m.recipient}\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {msg_id}\r\n{header_lines(m)}"
            "MIME-Version: 1.0\r\n"
        )
        if m.html is None:
            encoding, payload = encode(m.body)
            return msg_id, (
                f"{head}Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Transfer-Encoding: {encoding}\r\n\r\n{payload}"
            ).encode()
        boundary = f"=_notifq_{m.campaign or 'notifq'}_{m.seq}_alt"
        return msg_id, (
            f'{head}Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n{part(m.body, 'plain')}\r\n"
            f"--{boundary}\r\n{part(m.html, 'html')}\r\n--{boundary}--\r\n"
        ).encode()

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        if not messages:
            return []
        loop = asyncio.get_running_loop()
        n = min(self.threads, len(messages))
        size = -(-len(messages) // n)
        groups = [messages[i : i + size] for i in range(0, len(messages), size)]
        parts = await asyncio.gather(
            *(loop.run_in_executor(self._executor, self._send_group, g) for g in groups)
        )
        return [o for part in parts for o in part]

    def _send_group(self, group: list[Outbound]) -> list[Outcome]:
        """Send ``group`` in order over one pooled connection (in a worker thread)."""
        out: list[Outcome] = []
        conn: Connection | None = None
        for i, m in enumerate(group):
            try:
                outcome, conn = self._send_one(conn, m)
            except ConnectFailed as exc:
                log.warning("smtp: %s", exc.reason)
                out.extend(Outcome(r.seq, exc.result, exc.reason, down=exc.down) for r in group[i:])
                return out
            except Exception as exc:  # never lose the group's other outcomes
                log.exception("smtp: unexpected error sending #%d", m.seq)
                if conn is not None:
                    self.pool.discard(conn)
                    conn = None
                outcome = Outcome(m.seq, "transient", f"SMTP error: {type(exc).__name__}: {exc}")
            out.append(outcome)
        if conn is not None:
            self.pool.release(conn)
        return out

    def _connect(self) -> Connection:
        if not self.pool.host:
            raise ConnectFailed("exhausted", "no SMTP relay configured (NOTIFQ_SMTP_HOST)")
        try:
            return self.pool.acquire()
        except Exception as exc:
            raise connect_failure(exc) from exc

    def _send_one(self, conn: Connection | None, m: Outbound) -> tuple[Outcome, Connection | None]:
        """Send one message; returns its outcome and the connection to go on with."""
        try:
            msg_id, data = self.build(m)
        except (ValueError, TypeError) as exc:
            return Outcome(m.seq, "permanent", f"message not sendable: {exc}"[:MAX_ERROR]), conn
        for fresh_try in (False, True):
            if conn is None:
                conn = self._connect()
            smtp = conn.smtp
            stage = "MAIL"
            try:
                code, text = smtp.mail(self.sender)
                if code == 250:
                    stage = "RCPT"
                    code, text = smtp.rcpt(m.recipient)
                if code not in (250, 251):
                    return self._refused(conn, m, stage, code, text)
                stage = "DATA"
                code, text = smtp.data(data)
                if code != 250:
                    return self._refused(conn, m, stage, code, text)
            except smtplib.SMTPDataError as exc:  # DATA itself refused: nothing was sent
                return self._refused(conn, m, stage, exc.smtp_code, exc.smtp_error)
            except (OSError, smtplib.SMTPException) as exc:
                self.pool.discard(conn)
                conn = None
                if stage != "DATA" and not fresh_try:
                    continue  # nothing was accepted yet: once more on a fresh connection
                reason = f"SMTP connection lost during {stage}: {type(exc).__name__}: {exc}"
                return Outcome(m.seq, "transient", reason[:MAX_ERROR], down=True), None
            conn.sent += 1
            if self.pool.per_connection and conn.sent >= self.pool.per_connection:
                self.pool.release(conn)  # closes it: the relay's per-connection limit
                conn = None
            return Outcome(m.seq, "sent", provider_id=msg_id), conn
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(
        self, conn: Connection, m: Outbound, stage: str, code: int, text: bytes | str
    ) -> tuple[Outcome, Connection | None]:
        """The relay answered a command with an error: classify it, reset the transaction."""
        outcome = Outcome(m.seq, reply_result(code), reply_text(stage, code, text))
        if code == 421:  # the relay is closing this connection
            self.pool.discard(conn)
            return outcome, None
        try:
            conn.smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.pool.discard(conn)
            return outcome, None
        return outcome, conn

    async def close(self) -> None:
        """Wait for sends under way, then QUIT every idle connection (off the event loop)."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self.pool.close)
        s = self.pool.stats
        log.info("smtp: %d connection(s) opened in all, at most %d at once", s.opened, s.peak)
