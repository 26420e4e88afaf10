"""Recipient lists from object storage (``recipients.s3``) end to end, against a local moto
server with real boto3 calls: the operator is killed with SIGKILL while it stores the list
in batches, a new one resumes, and every recipient gets exactly one row and one delivery,
next to a bystander campaign in another namespace that finishes as if alone. (A NotifqPolicy
allows the bucket for the test's namespace: without one no s3 list is read.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import testbed
from bystander import Bystander
from harness import (
    Stack,
    assert_status_matches_db,
    campaign,
    mock_log,
    notifq_policy,
    wait_until,
)

BUCKET = "lists"
COUNT = 30_000

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def moto(moto: testbed.Moto) -> testbed.Moto:
    """The module's moto server (conftest), with the bucket of the lists."""
    moto.client("s3").create_bucket(Bucket=BUCKET)
    return moto


def stored(stack: Stack, namespace: str, name: str) -> tuple[int, bool]:
    """(rows committed so far, whether the list is attached: materialized)."""
    with stack.db() as conn:
        row = conn.execute(
            "SELECT stored_count, materialized_at IS NOT NULL FROM campaign "
            "WHERE namespace = %s AND name = %s",
            (namespace, name),
        ).fetchone()
    return (int(row[0]), bool(row[1])) if row else (0, False)


def test_operator_killed_while_storing_an_s3_list(
    stack_factory: Callable[..., Stack], namespace: str, moto: testbed.Moto
) -> None:
    people = [f"s3-{i}@example.com" for i in range(COUNT)]
    text = "\r\n".join(people[:10]) + "\n\n" + "\n".join(f"  {p}  " for p in people[10:])
    moto.client("s3").put_object(Bucket=BUCKET, Key="big.txt", Body=text.encode())
    stack = stack_factory(
        workers=0,
        NOTIFQ_STORE_BATCH="250",
        NOTIFQ_MOCK_FAILURE_RATE="0",
        **moto.env(),
    )
    bystander = Bystander(stack, count=2_000)
    bystander.start_workers(2)
    # the namespace may read lists from this bucket (a NotifqPolicy; none: no s3 list)
    with notifq_policy(stack, f"s3-{namespace}", namespace, s3=[{"bucket": BUCKET}]):
        stack.apply(
            campaign("big", namespace, recipients={"s3": {"bucket": BUCKET, "key": "big.txt"}})
        )
        bystander.start()
        wait_until(lambda: stored(stack, namespace, "big")[0] > 0, 120, "the first batch stored")
        assert stack.operator is not None
        stack.operator.kill()  # SIGKILL mid-store
        count, attached = stored(stack, namespace, "big")
        assert 0 < count < COUNT and not attached, (count, attached)
        stack.start_operator()
        cr = stack.wait_phase(namespace, "big", {"Completed", "CompletedWithFailures"}, 240)
        assert cr["status"]["phase"] == "Completed", cr["status"]
        uid = cr["metadata"]["uid"]
        with stack.db() as conn:
            rows = conn.execute(
                "SELECT seq, recipient, status FROM message WHERE campaign_id = %s ORDER BY seq",
                (uid,),
            ).fetchall()
        assert [(s, r) for s, r, _ in rows] == list(enumerate(people))  # no row twice or missing
        assert {st for _, _, st in rows} == {"sent"}
        sends = mock_log(stack)
        assert {p: sends[p] for p in people} == dict.fromkeys(people, 1)  # each sent once
        assert_status_matches_db(stack, namespace, "big")
        bystander.assert_completed()
