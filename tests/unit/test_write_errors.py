"""Which database errors a worker writes again later, and which it gives up on."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from notifq.core.errors import DatabaseUnavailable
from notifq.worker.store import storable, transient


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection failed"),  # no SQLSTATE: libpq lost the server
        psycopg.InterfaceError("the connection is closed"),
        PoolTimeout("couldn't get a connection"),
        DatabaseUnavailable("status write failed"),
        errors.AdminShutdown(),
        errors.DeadlockDetected(),
        errors.SerializationFailure(),
        errors.LockNotAvailable(),
        errors.QueryCanceled(),
        errors.TooManyConnections(),
    ],
)
def test_written_again(exc: Exception) -> None:
    assert transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
        errors.CheckViolation(),
        errors.ProgramLimitExceeded(),
        errors.UndefinedColumn(),
        UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"),
        RuntimeError("a bug"),
    ],
)
def test_refused_for_good(exc: Exception) -> None:
    assert not transient(exc)


def test_storable_texts() -> None:
    assert storable(None) is None
    assert storable("plain") == "plain"
    assert storable("a\x00b \udc80c") == "ab ?c"
