"""The aggregated reports API's small parts: page tokens and the forwarded identity."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from notifq.api.authz import Identity
from notifq.api.reports import _decode_continue, _encode_continue
from notifq.api.reports_protocol import decode_continue, identity_from_headers, page_of


@pytest.mark.parametrize("seq", [-1, 0, 7, 2**31 - 1])
def test_page_tokens_round_trip(seq: int) -> None:
    assert _decode_continue(_encode_continue(seq)) == seq


@pytest.mark.parametrize("token", ["%%%", "LTI", "YWJj"])  # garbage, "-2", "abc"
def test_bad_page_tokens_are_refused(token: str) -> None:
    assert _decode_continue(token) is None


def test_no_token_is_the_first_page() -> None:
    assert _decode_continue("") == -1


def _request(headers: list[tuple[str, str]], query: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": raw}
    return Request({**scope, "query_string": query.encode()})


def test_a_page_is_where_it_starts_and_its_limit() -> None:
    assert page_of(_request([]), _decode_continue) == (-1, 100)
    token = _encode_continue(41)
    assert page_of(_request([], f"limit=1000&continue={token}"), _decode_continue) == (41, 1000)
    assert page_of(_request([], "continue=YWJj"), decode_continue) == ("abc", 100)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "continue=LTI"])
def test_a_page_out_of_bounds_is_a_bad_request(query: str) -> None:
    refused = page_of(_request([], query), _decode_continue)
    assert not isinstance(refused, tuple) and refused.status_code == 400


def test_identity_from_the_front_proxy_headers() -> None:
    who = identity_from_headers(
        _request(
            [
                ("X-Remote-User", "alice"),
                ("X-Remote-Group", "devs"),
                ("X-Remote-Group", "system:authenticated"),
                ("X-Remote-Extra-Scopes", "a"),
                ("X-Remote-Extra-Scopes", "b"),
            ]
        )
    )
    assert who == Identity("alice", ("devs", "system:authenticated"), {"scopes": ["a", "b"]})


def test_no_user_header_is_no_identity() -> None:
    assert identity_from_headers(_request([("X-Remote-Group", "system:masters")])) is None
