"""Recipient lists in object storage, against a local moto server with real boto3 calls:
streamed in batches with their byte offsets, stored exactly once across an interrupted
store, refused when the object is missing or changed while being stored."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
import testbed
from harness import campaign_row, messages_in_order

from notifq.core.db import open_pool
from notifq.core.errors import InvalidCampaign
from notifq.core.recipients import INVALID_ADDRESS
from notifq.operator import store, storing
from notifq.operator.batches import Batch
from notifq.operator.objects import ObjectRecipients, ObjectStore

BUCKET = "lists"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testbed.Moto]:
    server = testbed.Moto(tmp_path_factory.mktemp("moto")).start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({k: v for k, v in server.env().items() if k.startswith("AWS_")})
    server.client("s3").create_bucket(Bucket=BUCKET)
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


def put(moto: testbed.Moto, key: str, text: str) -> None:
    moto.client("s3").put_object(Bucket=BUCKET, Key=key, Body=text.encode())


async def test_object_lines_become_rows_in_order(moto: testbed.Moto, database_url: str) -> None:
    put(
        moto, "small.txt", " a@example.com \r\n\r\nnot-an-address\nA@example.com\n  \nb@example.com"
    )
    objects = ObjectStore("us-east-1", moto.url)
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        src = await objects.open(BUCKET, "small.txt", batch=100)
        assert await storing.materialize(pool, campaign_row(cid), src, state="active") == 4
        rows = messages_in_order(database_url, cid, "recipient", "status", "last_error")
        assert rows == [
            (0, "a@example.com", "pending", None),
            (1, "not-an-address", "failed", INVALID_ADDRESS),
            (2, "A@example.com", "pending", None),  # duplicates are kept (documented)
            (3, "b@example.com", "pending", None),
        ]
    finally:
        await pool.close()


class DiesAfter:
    """The object's batches, until the operator dies after ``n`` of them were handed out."""

    def __init__(self, src: ObjectRecipients, n: int) -> None:
        self.src, self.n, self.etag = src, n, src.etag

    async def batches(self, start: int, offset: int) -> AsyncIterator[Batch]:
        seen = 0
        async for batch in self.src.batches(start, offset):
            if seen == self.n:
                raise RuntimeError("operator killed")
            seen += 1
            yield batch


async def progress(database_url: str, cid: uuid.UUID) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT stored_count, source_offset FROM campaign WHERE id = %s", (cid,)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def test_an_interrupted_store_resumes_from_its_offset(
    moto: testbed.Moto, database_url: str
) -> None:
    people = [f"p{i}@example.com" for i in range(5_000)]
    put(moto, "big.txt", "\n".join(people) + "\n")
    objects = ObjectStore("us-east-1", moto.url)
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        row = campaign_row(cid)
        src = DiesAfter(await objects.open(BUCKET, "big.txt", batch=500), 3)
        with pytest.raises(RuntimeError):
            await storing.materialize(pool, row, src, state="active")
        stored = await store.get(pool, cid)
        assert stored is not None and stored.materialized_at is None
        assert sum((await store.counts(pool, cid)).values()) == 0  # nothing visible yet
        count, offset = await progress(database_url, cid)
        assert count == 1_500
        assert offset == sum(len(p) + 1 for p in people[:count])  # whole lines
        resumed = await objects.open(BUCKET, "big.txt", batch=500)
        assert await storing.materialize(pool, row, resumed, state="active") == len(people)
        rows = messages_in_order(database_url, cid, "recipient")
        assert rows == list(enumerate(people))
    finally:
        await pool.close()


async def test_missing_or_changed_objects_are_refused(
    moto: testbed.Moto, database_url: str
) -> None:
    objects = ObjectStore("us-east-1", moto.url)
    with pytest.raises(InvalidCampaign, match="not found"):
        await objects.open(BUCKET, "nothing-here.txt")
    with pytest.raises(InvalidCampaign, match="bucket"):
        await objects.open("no-such-bucket", "x.txt")
    put(moto, "empty.txt", "\n \n")
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        src = await objects.open(BUCKET, "empty.txt")
        with pytest.raises(InvalidCampaign, match="holds no recipients"):
            await storing.materialize(pool, campaign_row(cid), src, state="active")
        # a list that changes between a crash and the resumed store
        cid = uuid.uuid4()
        put(moto, "moving.txt", "".join(f"m{i}@example.com\n" for i in range(3_000)))
        dies = DiesAfter(await objects.open(BUCKET, "moving.txt", batch=1_000), 1)
        with pytest.raises(RuntimeError):
            await storing.materialize(pool, campaign_row(cid), dies, state="active")
        put(moto, "moving.txt", "other@example.com\n")
        changed = await objects.open(BUCKET, "moving.txt", batch=1_000)
        with pytest.raises(InvalidCampaign, match="changed"):
            await storing.materialize(pool, campaign_row(cid), changed, state="active")
        assert await progress(database_url, cid) == (0, 0)  # the next try starts over
    finally:
        await pool.close()


async def test_a_csv_object_stores_each_rows_fields(moto: testbed.Moto, database_url: str) -> None:
    """``format: csv``: the header names the fields, each row's fields are stored with its
    message (jsonb), read across batches and resumed batches alike; a short row fails."""
    rows = "".join(f'u{i}@example.com,"Name, {i}",{i}\r\n' for i in range(25))
    put(moto, "people.csv", "\ufeffemail,name,n\r\n" + rows)
    put(moto, "short.csv", "email,name\na@example.com,A\nb@example.com\n")
    objects = ObjectStore("us-east-1", moto.url)
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        src = await objects.open(BUCKET, "people.csv", batch=10, fmt="csv")
        assert src.fields == {"email", "name", "n"}
        assert await storing.materialize(pool, campaign_row(cid), src, state="active") == 25
        got = messages_in_order(database_url, cid, "recipient", "status", "data")
        assert [r[1] for r in got] == [f"u{i}@example.com" for i in range(25)]
        assert {r[2] for r in got} == {"pending"}
        assert got[13][3] == {"email": "u13@example.com", "name": "Name, 13", "n": "13"}
        short = await objects.open(BUCKET, "short.csv", batch=10, fmt="csv")
        with pytest.raises(InvalidCampaign, match="row 2 has 1 values, the header names 2"):
            await storing.materialize(pool, campaign_row(uuid.uuid4()), short, state="active")
        with pytest.raises(InvalidCampaign, match=r"has no field 'mail' .*addressField"):
            await objects.open(BUCKET, "short.csv", fmt="csv", address_field="mail")
    finally:
        await pool.close()


async def test_a_csv_value_may_span_lines(moto: testbed.Moto, database_url: str) -> None:
    """RFC 4180 records whose quoted values hold line breaks (and doubled quotes) are one
    recipient each, across batches and a resumed read; a quote never closed fails with
    its row, and nothing of that list is stored."""
    notes = [
        "line one\r\nline two, with a comma" if i % 3 == 0 else f'said ""hi {i}""'
        for i in range(12)
    ]
    body = "email,note\r\n" + "".join(f'u{i}@example.com,"{n}"\r\n' for i, n in enumerate(notes))
    put(moto, "multi.csv", body)
    put(moto, "open.csv", 'email,note\na@example.com,"never closed\nb@example.com,ok\n')
    objects = ObjectStore("us-east-1", moto.url)
    pool = await open_pool(database_url)
    try:
        cid = uuid.uuid4()
        row = campaign_row(cid)
        src = DiesAfter(await objects.open(BUCKET, "multi.csv", batch=5, fmt="csv"), 1)
        with pytest.raises(RuntimeError):
            await storing.materialize(pool, row, src, state="active")
        count, offset = await progress(database_url, cid)
        assert count == 5
        assert body.encode()[offset - 2 : offset] == b"\r\n"  # a record's end
        resumed = await objects.open(BUCKET, "multi.csv", batch=5, fmt="csv")
        assert await storing.materialize(pool, row, resumed, state="active") == 12
        got = messages_in_order(database_url, cid, "recipient", "data")
        assert [r[1] for r in got] == [f"u{i}@example.com" for i in range(12)]
        assert got[0][2]["note"] == "line one\r\nline two, with a comma"
        assert got[1][2]["note"] == 'said "hi 1"'
        assert got[9][2]["note"] == "line one\r\nline two, with a comma"
        bad = uuid.uuid4()
        unclosed = await objects.open(BUCKET, "open.csv", fmt="csv")
        with pytest.raises(InvalidCampaign, match="row 1 opens a quoted value that is never"):
            await storing.materialize(pool, campaign_row(bad), unclosed, state="active")
        assert messages_in_order(database_url, bad, "recipient") == []
    finally:
        await pool.close()
