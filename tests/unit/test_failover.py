"""Provider failover without services: the breaker's state machine (closed, open,
half-open probe) on a clock the test moves, the choice of primary or secondary, the
failover map's validation (real providers of the channel only), and which provider
errors count as "down" (connection failures, 5xx) and which never do (throttling,
quotas, rejected recipients, a relay's 4xx)."""

from __future__ import annotations

import smtplib
import uuid
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pydantic import ValidationError

from notifq.core.settings import WorkerSettings
from notifq.worker.breaker import Breaker, Failover
from notifq.worker.processor import ChunkProcessor
from notifq.worker.providers.aws import classify, is_down
from notifq.worker.providers.base import Outcome
from notifq.worker.providers.smtp import connect_failure
from notifq.worker.store import CampaignInfo, PendingRow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def down(n: int) -> list[Outcome]:
    return [Outcome(i, "transient", "EndpointConnectionError", down=True) for i in range(n)]


SENT = [Outcome(0, "sent")]


def state(b: Breaker) -> str:
    """The breaker's state, read anew (so the type checker does not narrow it)."""
    return b.state


def test_breaker_opens_after_consecutive_down_sends_and_probes_half_open() -> None:
    clock = Clock()
    b = Breaker("ses", threshold=3, open_seconds=30, clock=clock)
    b.record(down(2))
    assert state(b) == "closed" and b.allows()
    b.record(SENT)  # an answer resets the count
    b.record(down(2))
    assert state(b) == "closed" and b.failures == 2
    b.record(down(1))
    assert state(b) == "open" and not b.allows()
    b.record(SENT)  # a send that left before it opened changes nothing
    assert state(b) == "open"
    clock.now += 29.9
    assert not b.allows()
    clock.now += 0.2
    assert b.allows()  # the probe
    assert state(b) == "half-open"
    assert not b.allows()  # one probe at a time
    b.record(down(1))  # the probe found it down: open again, for a whole period
    assert state(b) == "open" and not b.allows()
    clock.now += 30.1
    assert b.allows() and state(b) == "half-open"
    b.record(SENT)
    assert state(b) == "closed" and b.allows() and b.failures == 0


def test_a_probe_that_never_reports_is_replaced() -> None:
    clock = Clock()
    b = Breaker("ses", threshold=1, open_seconds=10, clock=clock)
    b.record(down(1))
    clock.now += 10
    assert b.allows()
    clock.now += 5
    assert not b.allows()
    clock.now += 5
    assert b.allows()  # the first probe is overdue: another goes


def test_trip_opens_before_the_threshold() -> None:
    clock = Clock()
    b = Breaker("ses", threshold=100, open_seconds=10, clock=clock)
    b.record(down(1))
    b.trip("last attempt")
    assert state(b) == "open" and not b.allows()
    clock.now += 10
    assert b.allows() and state(b) == "half-open"


def test_answers_that_are_not_down_never_open_it() -> None:
    b = Breaker("ses", threshold=1, open_seconds=10, clock=Clock())
    for result in ("throttled", "exhausted", "permanent", "transient"):
        b.record([Outcome(0, result, "x")] * 50)
    assert state(b) == "closed"
    b.record([*down(5), Outcome(9, "throttled")])  # mixed: it answered
    assert state(b) == "closed" and b.failures == 0


def settings(**kw: object) -> WorkerSettings:
    return WorkerSettings(
        provider_failover={"email": {"ses": "smtp"}},
        failover_failure_threshold=2,
        failover_open_seconds=60,
        **kw,  # type: ignore[arg-type]
    )


def test_route_goes_to_the_secondary_while_the_primary_is_down() -> None:
    clock = Clock()
    f = Failover(settings(), clock)
    assert f.route("email", "ses") == "ses"
    f.record("ses", down(2))
    assert f.reroutes("email", "ses")
    assert f.route("email", "ses") == "smtp"
    assert f.route("email", "smtp") == "smtp"  # no secondary for smtp
    assert f.route("sms", "sns") == "sns"
    f.record("smtp", down(2))  # both down: the primary, retried with backoff
    assert not f.reroutes("email", "ses")
    assert f.route("email", "ses") == "ses"
    clock.now += 61
    assert f.route("email", "ses") == "ses"  # the probe
    assert f.route("email", "ses") == "smtp"  # smtp's probe, while ses's is out
    f.record("ses", SENT)
    assert f.route("email", "ses") == "ses"


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        ({"email": {"ses": "mock"}}, "'mock' is not a real provider of email"),
        ({"sms": {"sns": "mock"}}, "'mock' is not a real provider of sms"),
        ({"email": {"sns": "smtp"}}, "'sns' is not a real provider of email"),
        ({"push": {"sns": "smtp"}}, "'smtp' is not a real provider of push"),
        ({"email": {"ses": "ses"}}, "fails over to itself"),
        ({"fax": {"ses": "smtp"}}, "unknown channel 'fax'"),
    ],
)
def test_failover_map_names_real_providers_of_the_channel(
    mapping: dict[str, dict[str, str]], error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        WorkerSettings(provider_failover=mapping)


def test_failover_map_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFQ_PROVIDER_FAILOVER", '{"email": {"ses": "smtp", "smtp": "ses"}}')
    assert WorkerSettings().provider_failover == {"email": {"ses": "smtp", "smtp": "ses"}}


def client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "SendRawEmail")


@pytest.mark.parametrize(
    ("exc", "result", "is_it_down"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "transient", True),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), "transient", True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), "transient", True),
        (client_error("ServiceUnavailable", 503), "transient", True),
        (client_error("InternalFailure", 500), "transient", True),
        (client_error("SomethingNew", 502), "transient", True),
        (client_error("Throttling", 400), "throttled", False),
        (client_error("Throttling", 503), "throttled", False),
        (client_error("LimitExceededException", 400), "transient", False),
        (client_error("MessageRejected", 400), "permanent", False),
        (client_error("TooManyRequestsException", 429), "throttled", False),
    ],
)
def test_aws_errors_down_or_not(exc: Exception, result: str, is_it_down: bool) -> None:
    assert classify(exc)[0] == result
    assert is_down(exc) is is_it_down


def test_smtp_connect_failures_down_or_not() -> None:
    refused = connect_failure(ConnectionRefusedError(111, "Connection refused"))
    assert (refused.result, refused.down) == ("transient", True)
    timeout = connect_failure(TimeoutError("timed out"))
    assert (timeout.result, timeout.down) == ("transient", True)
    busy = connect_failure(smtplib.SMTPConnectError(421, b"4.7.0 too many connections"))
    assert (busy.result, busy.down) == ("transient", False)  # a rate: the relay is up
    auth = connect_failure(smtplib.SMTPAuthenticationError(535, b"bad credentials"))
    assert (auth.result, auth.down) == ("exhausted", False)


def test_rerouted_messages_spend_no_attempt() -> None:
    camp = CampaignInfo(
        id=uuid.uuid4(),
        name="c",
        channel="email",
        provider="auto",
        state="active",
        max_attempts=1,
        rate_limit=None,
        template=None,  # type: ignore[arg-type]
    )
    rows = [PendingRow(1, "a@x.test", 0), PendingRow(2, "b@x.test", 0)]
    outcomes = [Outcome(1, "sent", provider_id="id1"), Outcome(2, "transient", "E", down=True)]
    writes, counts = ChunkProcessor._decide(
        camp, "ses", rows, outcomes, last_attempt=True, reroute=True
    )
    assert counts["rerouted"] == 1 and counts["sent"] == 1 and counts["failed"] == 0
    w = {x.seq: x for x in writes}
    assert w[2].status == "pending" and w[2].throttled  # no attempt spent
    writes, counts = ChunkProcessor._decide(camp, "ses", rows, outcomes, last_attempt=True)
    assert counts["failed"] == 1  # without failover: final on the last attempt
