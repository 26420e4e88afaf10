"""A bounded pool of SMTP connections to one relay, used from worker threads.

Each connection is a stdlib :class:`smtplib.SMTP` (or ``SMTP_SSL``) that has
said EHLO, STARTTLS and AUTH as configured; it is reused for many messages
and closed after ``smtp_messages_per_connection`` of them (the relay's
per-connection limit) or when it breaks. The pool never holds more than
``smtp_max_connections`` connections: it is only used from a thread pool of
that size, and each thread holds at most one connection at a time.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from contextlib import suppress
from dataclasses import dataclass

from notifq.core.settings import WorkerSettings

log = logging.getLogger(__name__)


@dataclass
class Connection:
    """One open, greeted and authenticated connection, and how many messages it carried."""

    smtp: smtplib.SMTP
    sent: int = 0


@dataclass
class PoolStats:
    """Connections over the pool's life (the benchmark prints them)."""

    opened: int = 0
    open_now: int = 0
    peak: int = 0


class SmtpPool:
    def __init__(self, settings: WorkerSettings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.security = settings.smtp_security
        self.username = settings.smtp_username
        self.password = settings.smtp_password or ""
        self.timeout = settings.smtp_timeout
        self.per_connection = settings.smtp_messages_per_connection
        self.ca_file = settings.smtp_ca_file
        self._context: ssl.SSLContext | None = None
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self.stats = PoolStats()

    @property
    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.ca_file)
        return self._context

    def acquire(self) -> Connection:
        """An idle connection, or a new one (raises what connecting raised)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = Connection(self._open())
        with self._lock:
            self.stats.opened += 1
            self.stats.open_now += 1
            self.stats.peak = max(self.stats.peak, self.stats.open_now)
        return conn

    def release(self, conn: Connection) -> None:
        """Give back a healthy connection; one at its message limit is closed instead."""
        if self.per_connection and conn.sent >= self.per_connection:
            self.discard(conn, quit_=True)
            return
        with self._lock:
            self._idle.append(conn)

    def discard(self, conn: Connection, *, quit_: bool = False) -> None:
        """Close a connection that is broken (or done); never raises."""
        with suppress(Exception):
            if quit_:
                conn.smtp.quit()
        with suppress(Exception):
            conn.smtp.close()
        with self._lock:
            self.stats.open_now -= 1

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self.discard(conn, quit_=True)

    def _open(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self.context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            with suppress(Exception):
                smtp.close()
            raise
        log.debug("smtp connection opened to %s:%d", self.host, self.port)
        return smtp
