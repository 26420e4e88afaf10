"""The reference service's REST contract, replayed against notifq.

``reference_contract.json`` holds the reference's requests with the status code and
response shape (field names and types) each one gets there. Every case is sent to a
notifq API on the test bed (with the real operator and workers, so campaigns are
stored and delivered) and the answer is diffed against the shape: a missing field, a
changed type or another status code fails; a field the reference lacks fails unless it
is a documented extension. Then the behaviour behind the shapes: the target recipient
is message 0 and counts in ``recipientCount``; the progress numbers add up to the total;
``queued`` means waiting for a retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_client import ADMIN, PASSWORD, Api
from harness import Stack, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

CONTRACT = json.loads((Path(__file__).with_name("reference_contract.json")).read_text())
TYPES = {"string": str, "integer": int, "object": dict, "array": list}


def expand(shape: Any) -> Any:
    """A shape with named shapes (``"campaign"``, ``{"$campaign": true}``) written out."""
    named = CONTRACT["shapes"]
    if isinstance(shape, str):
        return expand(named[shape]) if shape in named else shape
    if isinstance(shape, list):
        return [expand(shape[0])]
    out: dict[str, Any] = {}
    for key, value in shape.items():
        if key.startswith("$"):
            out.update(expand(named[key[1:]]))
        else:
            out[key] = expand(value)
    return out


def diff(shape: Any, value: Any, path: str, extensions: set[str]) -> list[str]:
    """Every way ``value`` departs from ``shape``; undocumented extra fields included."""
    if isinstance(shape, str):
        ok = isinstance(value, TYPES[shape]) and not (shape == "integer" and value is True)
        return [] if ok else [f"{path}: expected {shape}, got {type(value).__name__}"]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: expected array, got {type(value).__name__}"]
        return [p for item in value for p in diff(shape[0], item, f"{path}[]", extensions)]
    if not isinstance(value, dict):
        return [f"{path}: expected object, got {type(value).__name__}"]
    problems = [f"{path}.{k}: missing" for k in shape if k not in value]
    for key, sub in shape.items():
        if key in value:
            problems += diff(sub, value[key], f"{path}.{key}", extensions)
    for key in value.keys() - shape.keys():
        if f"{path}.{key}".split(".", 1)[1] not in extensions:
            problems.append(f"{path}.{key}: not in the reference contract (undocumented)")
    return problems


def test_diff_catches_departures() -> None:
    """The checker itself: a missing field, a wrong type and an undocumented field."""
    shape = expand({"$campaign": True, "progress": "progress"})
    good: dict[str, Any] = {
        k: ("x" if t == "string" else 1) for k, t in CONTRACT["shapes"]["campaign"].items()
    }
    good["progress"] = {"pending": 1, "queued": 0, "sent": 0, "failed": 0}
    assert diff(shape, good, "r", set()) == []
    bad = {**good, "sentCount": "3", "extra": 1}
    del bad["name"]
    assert sorted(diff(shape, bad, "r", set())) == [
        "r.extra: not in the reference contract (undocumented)",
        "r.name: missing",
        "r.sentCount: expected integer, got str",
    ]
    assert diff(shape, bad | {"name": "n", "sentCount": 3}, "r", {"extra"}) == []


@pytest.fixture
def api(api_factory: Callable[..., Api], control_plane: Any, namespace: str) -> Iterator[Api]:
    """The reference's clients list and read campaigns without a token: this API allows
    anonymous reads (``NOTIFQ_ANONYMOUS_READS``, off by default) for its namespace."""
    yield api_factory(anonymous_reads=True)
    control_plane.kubectl(
        "delete", "campaigns", "--all", "-n", namespace, "--wait=false", check=False
    )


def replay(api: Api, case: dict[str, Any], created: str) -> Any:
    body = case.get("body")
    if body == "$credentials":
        body = {"email": ADMIN, "password": PASSWORD}
    headers = api.auth if case.get("auth", True) else {}
    path = case["path"].replace("$created", created)
    resp = api.client.request(case["method"], path, json=body, headers=headers)
    assert resp.status_code == case["status"], (case["id"], resp.status_code, resp.text)
    return resp.json()


def test_reference_requests_get_reference_answers(
    api: Api, stack_factory: Callable[..., Stack]
) -> None:
    stack = stack_factory(workers=1, NOTIFQ_MOCK_FAILURE_RATE="0")
    first = api.create(name="seed", recipientCount=4)["campaignId"]
    wait_until(lambda: api.detail(first)["status"] == "completed", 60, "the seed campaign")
    problems: list[str] = []
    made: dict[str, Any] = {}
    for case in CONTRACT["cases"]:
        answer = replay(api, case, first)
        made[case["id"]] = answer
        extensions = set(CONTRACT["extensions"].get(case["id"], []))
        extensions |= set(CONTRACT["extensions"].get(f"{case['id']}[]", []))
        shape = expand(case["shape"])
        problems += diff(shape, answer, case["id"], extensions)
        for key, value in (case.get("expect") or {}).items():
            if answer.get(key) != value:
                problems.append(f"{case['id']}.{key}: expected {value!r}, got {answer.get(key)!r}")
    assert problems == []

    # the target recipient is message 0 and counts in recipientCount
    target = made["create-with-target"]["campaignId"]
    wait_until(lambda: api.detail(target)["status"] == "completed", 60, "the target campaign")
    page = api.client.get(f"/campaigns/{target}/messages", headers=api.auth).json()["items"]
    assert [m["recipient"] for m in page][:2] == ["target@example.org", "user0@example.com"]
    assert len(page) == 20
    blank = made["create-empty-target"]["campaignId"]
    wait_until(lambda: api.detail(blank)["status"] == "completed", 60, "the no-target campaign")
    assert all(
        m["recipient"].endswith("@example.com")
        for m in api.client.get(f"/campaigns/{blank}/messages", headers=api.auth).json()["items"]
    )
    assert stack.counts(blank) == {"sent": 20}


def test_queued_means_waiting_for_a_retry(
    api: Api, stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    """During a provider outage every message is attempted and waits for its backoff:
    ``queued`` holds them, ``pending`` (never attempted) empties, and the five numbers
    always add up to the total."""
    outage = tmp_path / "outage"
    outage.touch()
    stack_factory(workers=1, NOTIFQ_MOCK_FAILURE_RATE="0", NOTIFQ_MOCK_OUTAGE_FILE=str(outage))
    cid = api.create(name="backoff", recipientCount=50, retry={"attempts": 5, "backoffMs": 60_000})[
        "campaignId"
    ]
    seen: list[dict[str, int]] = []

    def waiting() -> bool:
        detail = api.detail(cid)
        seen.append(detail["progress"])
        assert sum(detail["progress"].values()) == detail["totalMessages"] == 50
        return bool(detail["progress"]["queued"] == 50)

    wait_until(waiting, 60, "every message to wait for its retry")
    assert seen[-1] == {
        "pending": 0,
        "queued": 50,
        "sent": 0,
        "failed": 0,
        "cancelled": 0,
        "suppressed": 0,
    }
    assert api.detail(cid)["status"] == "processing"
