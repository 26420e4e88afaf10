"""The Campaign CRD on a real kube-apiserver: examples apply, printer columns show,
and invalid Campaigns are rejected by the API server with actionable messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import testbed
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _apply(cp: testbed.ControlPlane, ns: str, spec: Any, name: str = "bad") -> str:
    manifest = {
        "apiVersion": "notifq.dev/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
    out = cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    return out.stderr if out.returncode else ""


def test_examples_apply_and_printer_columns(
    control_plane: testbed.ControlPlane, namespace: str
) -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(path))
    out = control_plane.kubectl("get", "campaigns", "-n", namespace).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "TOTAL", "SENT", "FAILED", "PROGRESS", "AGE"]
    wide = control_plane.kubectl("get", "camp", "-n", namespace, "-o", "wide").stdout
    assert "CHANNEL" in wide.splitlines()[0]


BAD = [
    ({"channel": "email"}, "spec.recipients: Required value"),
    ({"recipients": {}}, "must set exactly one of generate, list, records, configMapRef or s3"),
    (
        {"recipients": {"generate": {"count": 5}, "list": ["a@example.com"]}},
        "must set exactly one of generate, list, records, configMapRef or s3",
    ),
    (
        {"recipients": {"generate": {"count": -1}}},
        "spec.recipients.generate.count: Invalid value: -1: spec.recipients.generate.count in body "
        "should be greater than or equal to 1",
    ),
    ({"recipients": {"generate": {"count": 50_000_000}}}, "less than or equal to 10000000"),
    (
        {"recipients": {"generate": {"count": "many"}}},
        'spec.recipients.generate.count: Invalid value: "string": spec.recipients.generate.count '
        "in body must be of type integer",
    ),
    (
        {"channel": "fax", "recipients": {"generate": {"count": 1}}},
        'spec.channel: Unsupported value: "fax": supported values: "email", "sms", "push"',
    ),
    (
        {"provider": "carrier-pigeon", "recipients": {"generate": {"count": 1}}},
        'spec.provider: Unsupported value: "carrier-pigeon"',
    ),
    (
        {"recipients": {"list": ["ok@example.com", "not-an-email"]}},
        "every non-empty entry of spec.recipients.list must be an email address",
    ),
    ({"recipients": {"list": []}}, "spec.recipients.list: Invalid value: 0"),
    (
        {"recipients": {"generate": {"count": 1, "domain": "Not A Domain"}}},
        "spec.recipients.generate.domain in body should match",
    ),
    (
        {"recipients": {"generate": {"count": 1}}, "retry": {"attempts": 0}},
        "spec.retry.attempts in body should be greater than or equal to 1",
    ),
    (
        {"recipients": {"generate": {"count": 1}}, "scheduleAt": "tomorrow"},
        'spec.scheduleAt: Invalid value: "tomorrow": spec.scheduleAt in body must be of type '
        "date-time",
    ),
    ({"recipients": {"configMapRef": {}}}, "spec.recipients.configMapRef.name: Required value"),
    (
        {"recipients": {"list": [f"u{i}@example.com" for i in range(10_001)]}},
        "at most 10,000 recipients inline; put larger lists in a ConfigMap and use "
        "spec.recipients.configMapRef",
    ),
    (
        {"recipients": {"list": ["a@example.com", "b\x00@example.com"]}},
        'spec.recipients.list[1]: Invalid value: "b\\x00@example.com": recipients must not '
        "contain control characters",
    ),
    (
        {"recipients": {"generate": {"count": 1, "include": ["x\x07@example.com"]}}},
        "recipients must not contain control characters",
    ),
    (
        {"recipients": {"generate": {"count": 1}}, "subject": "Hi\r\nBcc: x@example.org"},
        "spec.subject must not contain control characters",
    ),
    (
        {"recipients": {"generate": {"count": 1}}, "body": "bell\x07"},
        "spec.body must not contain control characters other than tab and newlines",
    ),
    (
        {"recipients": {"configMapRef": {"name": "a/b"}}},
        "spec.recipients.configMapRef.name in body should match",
    ),
    (
        {"recipients": {"generate": {"count": 1}}, "html": "<p>\x07</p>"},
        "spec.html must not contain control characters other than tab and newlines",
    ),
    (
        {"recipients": {"generate": {"count": 1}}, "text": "t", "body": "b"},
        "spec.text and spec.body are the same (the text part): set one of them",
    ),
    (
        {"recipients": {"records": [{"to": "a@example.com"}], "list": ["b@example.com"]}},
        "spec.recipients must set exactly one of generate, list, records, configMapRef or s3",
    ),
    (
        {"recipients": {"records": [{"to": "a@example.com", "age": 3}]}},
        "spec.recipients.records[0].age: Invalid value",
    ),
    (
        {"recipients": {"list": ["a@example.com"], "addressField": "email"}},
        "spec.recipients.addressField is for records and CSV lists only",
    ),
    (
        {"recipients": {"configMapRef": {"name": "people", "format": "xlsx"}}},
        'spec.recipients.configMapRef.format: Unsupported value: "xlsx"',
    ),
]


@pytest.mark.parametrize(("spec", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_invalid_campaigns_are_rejected(
    control_plane: testbed.ControlPlane, namespace: str, spec: Any, message: str
) -> None:
    err = _apply(control_plane, namespace, spec)
    assert 'The Campaign "bad" is invalid' in err
    assert message in err, err


def test_immutable_fields_and_one_way_cancel(
    control_plane: testbed.ControlPlane, namespace: str
) -> None:
    ok = {"recipients": {"generate": {"count": 3}}}
    assert _apply(control_plane, namespace, ok, "c") == ""
    err = _apply(control_plane, namespace, {"recipients": {"generate": {"count": 4}}}, "c")
    assert "spec.recipients cannot change after creation" in err
    assert _apply(control_plane, namespace, {**ok, "cancel": True}, "c") == ""
    err = _apply(control_plane, namespace, {**ok, "cancel": False}, "c")
    assert "a cancelled campaign cannot be resumed" in err


EDITS = [
    ({"subject": "Other"}, "spec.subject and spec.body cannot change once the campaign started"),
    ({"body": "Other"}, "spec.subject and spec.body cannot change once the campaign started"),
    ({"html": "<b>Other</b>"}, "spec.html and spec.text cannot change once the campaign started"),
    ({"retry": {"attempts": 2}}, "spec.retry cannot change once the campaign started"),
    ({"recipients": {"generate": {"count": 4}}}, "spec.recipients cannot change after creation"),
    ({"channel": "sms"}, "spec.channel and spec.provider cannot change after creation"),
]


@pytest.mark.parametrize(("edit", "message"), EDITS, ids=[str(e) for e, _ in EDITS])
def test_edits_after_start_are_refused_or_allowed(
    control_plane: testbed.ControlPlane, namespace: str, edit: dict[str, Any], message: str
) -> None:
    base = {
        "recipients": {"generate": {"count": 3}},
        "subject": "Hi",
        "body": "Hello {{ recipient }}",
        "retry": {"attempts": 4, "backoffMs": 1000},
    }
    assert _apply(control_plane, namespace, base, "e") == ""
    templates = {k: v for k, v in edit.items() if k in ("subject", "body", "html", "retry")}
    if templates:  # not started yet (a Failed spec can be fixed): allowed
        assert _apply(control_plane, namespace, {**base, **templates}, "e") == ""
        assert _apply(control_plane, namespace, base, "e") == ""
    control_plane.kubectl(  # what the operator writes once the rows are stored
        "patch",
        "campaign",
        "e",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Processing", "startTime": "2026-11-30T00:00:00Z"}}',
    )
    err = _apply(control_plane, namespace, {**base, **edit}, "e")
    assert message in err, err
    # what a running campaign takes: pause/resume, rate limit, schedule (docs/architecture.md)
    for allowed in (
        {"suspend": True},
        {"rateLimit": 10},
        {"rateLimit": 20, "scheduleAt": "2999-01-01T00:00:00Z"},
        {},
    ):
        assert _apply(control_plane, namespace, {**base, **allowed}, "e") == ""
