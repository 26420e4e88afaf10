"""The suppression list on a real Postgres: the worker's claim marks suppressed recipients
(their namespace's entries and the global ones, never another namespace's), their
messages end ``suppressed`` and are counted; SES feedback is recorded once per feedback
id, attributed to its campaign, and suppresses the recipient in that namespace."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

from harness import assert_counters_match, campaign_row
from psycopg_pool import AsyncConnectionPool

from notifq.api import store as api_store
from notifq.core import suppression
from notifq.core.db import open_pool
from notifq.operator import feedback, storing
from notifq.operator import store as op_store
from notifq.operator.sources import GeneratedRecipients, InlineRecipients
from notifq.worker import store


async def _claim(
    pool: AsyncConnectionPool, cid: uuid.UUID, n: int, token: str = "t0", horizon: str = ""
) -> list[store.PendingRow]:
    """Rows ``0..n-1`` of ``cid`` claimed as a worker does: in the campaign's namespace,
    a generated list's addresses computed (both read from its row)."""
    camp = await store.CampaignCache(pool).get(cid)
    assert camp is not None
    return await store.claim(
        pool,
        cid,
        list(range(n)),
        token=token,
        owner="w",
        live=[],
        horizon=horizon,
        lease_seconds=60,
        grace_seconds=0,
        namespace=camp.namespace,
        generated=camp.generated,
    )


async def test_claim_marks_suppressed_recipients_of_its_namespace(database_url: str) -> None:
    pool = await open_pool(database_url)
    tag = uuid.uuid4().hex[:8]
    ns, other_ns = f"supp-{tag}", f"other-{tag}"
    people = [f"p{i}-{tag}@company.test" for i in range(6)]
    cid, bystander = uuid.uuid4(), uuid.uuid4()
    try:
        await storing.materialize(
            pool, replace(campaign_row(cid), namespace=ns), InlineRecipients(people), state="active"
        )
        await storing.materialize(
            pool,
            replace(campaign_row(bystander), namespace=other_ns),
            InlineRecipients(people),
            state="active",
        )
        assert await suppression.add(pool, ns, [people[0].upper()], "manual", "by hand") == 1
        assert await suppression.add(pool, ns, [people[0]], "bounce") == 0  # first reason kept
        assert await suppression.add(pool, other_ns, [people[1]], "complaint") == 1
        assert await suppression.add(pool, suppression.GLOBAL, [people[2]], "bounce") == 1

        rows = await _claim(pool, cid, 6)
        marks = {r.recipient: r.suppressed for r in rows}
        assert marks == {
            people[0]: "manual: by hand",
            people[1]: None,  # another namespace's entry does not hold here
            people[2]: "bounce",  # a global one does
            people[3]: None,
            people[4]: None,
            people[5]: None,
        }
        # the bystander in the other namespace: its own entry and the global one only
        other = {r.recipient: r.suppressed for r in await _claim(pool, bystander, 6)}
        assert {k for k, v in other.items() if v} == {people[1], people[2]}

        token = uuid.uuid4().hex
        # this owner's claims, left by a slice that ended (t0, made earlier): taken again
        rows = await _claim(pool, cid, 6, token, horizon="t1")
        writes = [
            store.Write(r.seq, "suppressed", f"suppressed: {r.suppressed}", "none", None)
            if r.suppressed
            else store.Write(r.seq, "sent", None, "mock", None)
            for r in rows
        ]
        assert await store.write_once(pool, cid, token, writes) == 6
        assert_counters_match(database_url)
        assert await op_store.counts(pool, cid) == {
            "pending": 0,
            "sent": 4,
            "failed": 0,
            "cancelled": 0,
            "suppressed": 2,
        }
        assert (await api_store.progress(pool, cid))["suppressed"] == 2
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT attempts, last_error FROM message WHERE campaign_id = %s AND seq = 0",
                (cid,),
            )
            assert await cur.fetchone() == (0, "suppressed: manual: by hand")

        listed = await suppression.page(pool, ns)
        assert [(e.recipient, e.reason) for e in listed] == [(people[0], "manual")]
        assert await suppression.remove(pool, ns, people[0].upper())
        assert not await suppression.remove(pool, ns, people[0])
    finally:
        async with pool.connection() as conn:
            await conn.execute(
                "DELETE FROM suppression WHERE recipient LIKE %s", (f"%-{tag}@company.test",)
            )
        await pool.close()


async def test_a_generated_address_is_suppressed_and_listed_as_computed(
    database_url: str,
) -> None:
    """A generated list's rows hold no address (migration 0014): the claim computes each
    one, finds it suppressed, and the API lists it; a listed bystander holding the same
    address in its row is suppressed alike; the same generated list in another namespace is
    not."""
    pool = await open_pool(database_url)
    tag = uuid.uuid4().hex[:8]
    ns = f"gen-{tag}"
    domain = f"{tag}.example.org"
    cid, bystander, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        src = GeneratedRecipients(5, domain, [f"first@{domain}"])
        await storing.materialize(
            pool, replace(campaign_row(cid), namespace=ns), src, state="active"
        )
        await storing.materialize(
            pool,
            replace(campaign_row(bystander), namespace=ns),
            InlineRecipients([f"user2@{domain}", f"user3@{domain}"]),
            state="active",
        )
        await storing.materialize(
            pool,
            replace(campaign_row(other), namespace=f"{ns}-other"),
            GeneratedRecipients(5, domain, []),
            state="active",
        )
        assert await suppression.add(pool, ns, [f"USER2@{domain}"], "manual") == 1

        camp = await store.CampaignCache(pool).get(cid)
        assert camp is not None and camp.generated == (1, domain)
        rows = await _claim(pool, cid, 6)
        assert [(r.seq, r.recipient, r.suppressed) for r in rows] == [
            (0, f"first@{domain}", None),
            (1, f"user0@{domain}", None),
            (2, f"user1@{domain}", None),
            (3, f"user2@{domain}", "manual"),
            (4, f"user3@{domain}", None),
            (5, f"user4@{domain}", None),
        ]
        pending = await store.fetch_pending(pool, cid, 2, 4, 10, generated=camp.generated)
        assert [(r.seq, r.recipient) for r in pending] == [
            (2, f"user1@{domain}"),
            (3, f"user2@{domain}"),
        ]
        marks = {r.recipient: r.suppressed for r in await _claim(pool, bystander, 2)}
        assert marks == {f"user2@{domain}": "manual", f"user3@{domain}": None}
        theirs = await store.CampaignCache(pool).get(other)
        assert theirs is not None and theirs.generated == (0, domain)
        others = await _claim(pool, other, 5)
        assert [(r.recipient, r.suppressed) for r in others] == [
            (f"user{i}@{domain}", None) for i in range(5)
        ]

        page = await api_store.messages(pool, cid, None, -1, 10)
        assert [(m.seq, m.recipient) for m in page] == [(r.seq, r.recipient) for r in rows]
    finally:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM suppression WHERE namespace = %s", (ns,))
        await pool.close()


def _notification(kind: str, recipient: str, fid: str, header: str | None) -> str:
    mail = {
        "messageId": f"ses-{fid}",
        "destination": [recipient],
        "headers": [{"name": "X-Notifq-Message", "value": header}] if header else [],
    }
    if kind == "Bounce":
        body = {
            "notificationType": "Bounce",
            "mail": mail,
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "feedbackId": fid,
                "bouncedRecipients": [
                    {"emailAddress": recipient, "diagnosticCode": "smtp; 550 user unknown"}
                ],
            },
        }
    else:
        body = {
            "notificationType": "Complaint",
            "mail": mail,
            "complaint": {
                "feedbackId": fid,
                "complaintFeedbackType": "abuse",
                "complainedRecipients": [{"emailAddress": recipient}],
            },
        }
    return json.dumps({"Type": "Notification", "Message": json.dumps(body)})


async def test_feedback_is_recorded_once_and_attributed(database_url: str) -> None:
    pool = await open_pool(database_url)
    tag = uuid.uuid4().hex[:8]
    ns = f"fb-{tag}"
    cid = uuid.uuid4()
    bounced, complained, stray = (f"{n}-{tag}@company.test" for n in ("b", "c", "s"))
    try:
        await storing.materialize(
            pool,
            replace(campaign_row(cid), namespace=ns),
            InlineRecipients([bounced, complained]),
            state="active",
        )
        items = [
            *feedback.parse(_notification("Bounce", bounced.upper(), f"f1-{tag}", f"{cid}.0")),
            *feedback.parse(_notification("Complaint", complained, f"f2-{tag}", f"{cid}.1")),
            *feedback.parse(_notification("Bounce", stray, f"f3-{tag}", None)),
        ]
        assert [(i.kind, i.campaign_id, i.seq) for i in items] == [
            ("bounce", cid, 0),
            ("complaint", cid, 1),
            ("bounce", None, None),
        ]
        transient = json.loads(json.loads(_notification("Bounce", stray, "x", None))["Message"])
        transient["bounce"]["bounceType"] = "Transient"
        assert feedback.parse(json.dumps(transient)) == []  # raw delivery, not suppressing
        assert await feedback.record(pool, items) == 3
        assert await feedback.record(pool, items) == 0  # SQS delivered it twice: counted once
        stored = await op_store.get(pool, cid)
        assert stored is not None and (stored.bounced, stored.complained) == (1, 1)
        entries = {(e.recipient, e.reason) for e in await suppression.page(pool, ns)}
        assert entries == {(bounced, "bounce"), (complained, "complaint")}
        glob = await suppression.page(pool, suppression.GLOBAL, recipient=stray)
        assert [e.reason for e in glob] == ["bounce"]  # unattributed: everywhere
    finally:
        async with pool.connection() as conn:
            await conn.execute(
                "DELETE FROM suppression WHERE recipient LIKE %s", (f"%-{tag}@company.test",)
            )
        await pool.close()


async def test_a_malformed_feedback_message_cannot_hold_back_its_batch(database_url: str) -> None:
    """SQS hands out up to 10 messages at once: one of a wrong shape (or one the database
    cannot hold) is dropped with a warning, and the good ones of the same batch are
    recorded and deleted from the queue; nothing comes back forever."""
    pool = await open_pool(database_url)
    tag = uuid.uuid4().hex[:8]
    good = f"g-{tag}@company.test"
    bodies = [
        json.dumps({"notificationType": "Bounce", "bounce": "x", "mail": {}}),
        json.dumps({"Type": "Notification", "Message": json.dumps({"mail": "m"})}),
        _notification("Bounce", f"nul\u0000{tag}@company.test", f"n-{tag}", None),
        _notification("Bounce", good, f"g-{tag}", None),
        "not json",
    ]
    messages = [
        {"MessageId": str(i), "ReceiptHandle": f"h{i}", "Body": b} for i, b in enumerate(bodies)
    ]
    try:
        done, new = await feedback.handle(pool, messages)
        assert done == [f"h{i}" for i in range(len(bodies))]  # every one leaves the queue
        assert new == 1
        glob = await suppression.page(pool, suppression.GLOBAL, recipient=good)
        assert [e.reason for e in glob] == ["bounce"]
    finally:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM suppression WHERE recipient = %s", (good,))
        await pool.close()
