"""Specs that pass the schema but cannot work end in phase Failed with a reason,
without crashing the operator or disturbing other campaigns."""

from __future__ import annotations

from collections.abc import Callable

from harness import Stack, campaign

from notifq.core.resource import RECIPIENTS_LABEL


def test_unworkable_specs_fail_clearly_and_others_complete(
    stack_factory: Callable[..., Stack], namespace: str
) -> None:
    stack = stack_factory(workers=1, NOTIFQ_MOCK_LATENCY_MS="0", NOTIFQ_MOCK_FAILURE_RATE="0")
    gen = {"generate": {"count": 50}}
    stack.apply(campaign("good", namespace, recipients={"generate": {"count": 3000}}))
    stack.apply(campaign("no-cm", namespace, recipients={"configMapRef": {"name": "missing"}}))
    stack.apply(campaign("typo", namespace, recipients=gen, body="Hi {{ recipeint }}"))
    stack.apply(
        campaign(
            "escape",
            namespace,
            recipients=gen,
            subject="{{ ''.__class__.__mro__[1].__subclasses__() }}",
        )
    )
    stack.apply(campaign("broken", namespace, recipients=gen, body="{% for %}"))
    blank = ["", ""]  # whitespace-only entries are refused by the CRD itself
    stack.apply(campaign("blank", namespace, recipients={"list": blank}))
    stack.control_plane.kubectl(
        "create", "configmap", "nokey", "-n", namespace, "--from-literal=other=a@example.com"
    )
    stack.control_plane.kubectl(
        "label", "configmap", "nokey", "-n", namespace, f"{RECIPIENTS_LABEL}=true"
    )
    stack.apply(campaign("wrong-key", namespace, recipients={"configMapRef": {"name": "nokey"}}))
    expected = {
        "no-cm": f"ConfigMap {namespace}/missing not found",
        "typo": "'recipeint' is undefined",
        "escape": "template failed to render",
        "broken": "body template does not compile",
        "blank": "recipients.list has no recipients",
        "wrong-key": "has no key 'recipients' (keys: other)",
    }
    for name, text in expected.items():
        cr = stack.wait_phase(namespace, name, {"Failed"}, timeout=60)
        assert text in cr["status"]["message"], (name, cr["status"])
        accepted = next(c for c in cr["status"]["conditions"] if c["type"] == "Accepted")
        assert accepted["status"] == "False" and accepted["reason"] == "InvalidSpec"
    cr = stack.wait_phase(namespace, "good", {"Completed"}, timeout=120)
    assert cr["status"]["sent"] == 3000
    assert stack.operator is not None and stack.operator.alive()
    # a ConfigMap created afterwards and an edited spec are picked up (generation changes)
    stack.control_plane.kubectl(
        "create",
        "configmap",
        "missing",
        "-n",
        namespace,
        "--from-literal=recipients=a@example.com\nb@example.com\n\na@example.com\nbad",
    )
    stack.control_plane.kubectl(
        "label", "configmap", "missing", "-n", namespace, f"{RECIPIENTS_LABEL}=true"
    )
    stack.apply(
        campaign(
            "no-cm",
            namespace,
            subject="retry after fix",
            recipients={"configMapRef": {"name": "missing"}},
        )
    )
    cr = stack.wait_phase(namespace, "no-cm", {"CompletedWithFailures"}, timeout=60)
    assert (cr["status"]["total"], cr["status"]["sent"], cr["status"]["failed"]) == (3, 2, 1)
