"""Recipient lists in S3-compatible object storage (``spec.recipients.s3``), read with boto3.

The object holds one recipient per line (UTF-8; ``\\r\\n`` or ``\\n``); white space around
an entry is stripped and blank lines are dropped. Unlike inline and ConfigMap lists,
duplicates are kept: finding them would take memory growing with the list, and an object
may hold ten million lines. The object is streamed in blocks of :data:`BLOCK` bytes and
handed out in batches of about ``LIST_BATCH`` recipients, each with the byte
offset where it ends and the object's ETag, so a resumed read asks for the rest only
(``Range``) and only of the same version (``IfMatch``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from notifq.core.errors import InvalidCampaign
from notifq.operator.batches import LIST_BATCH, Listed

log = logging.getLogger(__name__)

BLOCK = 1 << 20
"""Bytes read from the object per call."""


class ObjectStore:
    """One boto3 S3 client for the operator, created on first use."""

    def __init__(self, region: str, endpoint_url: str | None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                ),
            )
        return self._client

    async def open(self, bucket: str, key: str, batch: int = LIST_BATCH) -> ObjectRecipients:
        """The list in ``s3://bucket/key``; :class:`InvalidCampaign` when it cannot be read."""
        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=bucket, Key=key)
        except ClientError as exc:
            raise _invalid(exc, bucket, key) from exc
        return ObjectRecipients(
            self, bucket, key, str(head["ETag"]), int(head["ContentLength"]), batch
        )


def _invalid(exc: ClientError, bucket: str, key: str) -> Exception:
    """A user-facing error for what S3 answered, or the error itself when it is transient."""
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    where = f"s3://{bucket}/{key}"
    if code in ("404", "NoSuchKey", "NotFound"):
        return InvalidCampaign(f"recipients object {where} not found")
    if code == "NoSuchBucket":
        return InvalidCampaign(f"bucket {bucket!r} of {where} not found")
    if code in ("403", "AccessDenied", "Forbidden"):
        return InvalidCampaign(f"the operator may not read {where}")
    if code in ("412", "PreconditionFailed"):
        return InvalidCampaign(f"{where} changed while it was being stored; create a new Campaign")
    if 400 <= status < 500 and status != 429:
        return InvalidCampaign(f"reading {where} failed: {code or status}")
    return exc


class ObjectRecipients:
    """One object's recipients, streamed (see the module docstring)."""

    def __init__(
        self, store: ObjectStore, bucket: str, key: str, etag: str, size: int, batch: int
    ) -> None:
        self.store = store
        self.batch = batch
        self.bucket = bucket
        self.key = key
        self.etag = etag
        self.size = size

    async def batches(self, start: int, offset: int) -> AsyncIterator[Listed]:
        if offset >= self.size:
            if start == 0:
                raise InvalidCampaign(f"s3://{self.bucket}/{self.key} holds no recipients")
            return
        body = await self._open(offset)
        try:
            entries: list[str] = []
            tail = b""
            consumed = offset
            yielded = start > 0
            while True:
                block = await asyncio.to_thread(body.read, BLOCK)
                if not block:
                    break
                lines = (tail + block).split(b"\n")
                tail = lines.pop()  # the last line may go on in the next block
                for raw in lines:
                    consumed += len(raw) + 1
                    if entry := _entry(raw):
                        entries.append(entry)
                    if len(entries) >= self.batch:
                        yield Listed(entries, validate=True, offset=consumed, etag=self.etag)
                        yielded = True
                        entries = []
            if tail:
                consumed += len(tail)
                if entry := _entry(tail):
                    entries.append(entry)
            if entries:
                yield Listed(entries, validate=True, offset=consumed, etag=self.etag)
            elif not yielded:
                raise InvalidCampaign(f"s3://{self.bucket}/{self.key} holds no recipients")
        except ClientError as exc:
            raise _invalid(exc, self.bucket, self.key) from exc
        finally:
            body.close()

    async def _open(self, offset: int) -> Any:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "IfMatch": self.etag}
        if offset:
            args["Range"] = f"bytes={offset}-"
        try:
            res = await asyncio.to_thread(self.store.client.get_object, **args)
        except ClientError as exc:
            raise _invalid(exc, self.bucket, self.key) from exc
        log.info("reading s3://%s/%s from byte %d of %d", self.bucket, self.key, offset, self.size)
        return res["Body"]


def _entry(line: bytes) -> str:
    """One line as a recipient ('' for a blank line)."""
    return line.decode("utf-8", errors="replace").strip()
