"""Recipient lists in S3-compatible object storage (``spec.recipients.s3``), read with boto3.

The object holds one recipient per line (UTF-8; ``\\r\\n`` or ``\\n``); white space around
an entry is stripped and blank lines are dropped. With ``format: csv`` the first line is
a header naming the fields (:mod:`.records`) and each further record one recipient's values
(RFC 4180: quoted values may hold commas, doubled quotes and line breaks; a record goes on
over a line break while it holds an odd number of ``"``, up to :data:`MAX_RECORD` bytes).
Unlike inline and ConfigMap lists, duplicates are kept: finding them would take memory
growing with the list, and an object may hold ten million lines. The object is streamed
in blocks of :data:`BLOCK` bytes and handed out in batches of about ``LIST_BATCH``
recipients, each with the byte offset where it ends and the object's ETag, so a resumed
read asks for the rest only (``Range``) and only of the same version (``IfMatch``).
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import AsyncIterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from notifq.core.errors import InvalidCampaign
from notifq.operator import records
from notifq.operator.batches import LIST_BATCH, Listed

log = logging.getLogger(__name__)

BLOCK = 1 << 20
"""Bytes read from the object per call."""

MAX_RECORD = 64 << 10
"""Longest CSV record over several lines: a quote left open fails here, not at the end of a
ten-million-line object held in memory."""


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

    async def open(
        self,
        bucket: str,
        key: str,
        batch: int = LIST_BATCH,
        *,
        fmt: str = "lines",
        address_field: str | None = None,
    ) -> ObjectRecipients:
        """The list in ``s3://bucket/key`` (``fmt`` ``csv``: its header row is read now);
        :class:`InvalidCampaign` when it cannot be read."""
        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=bucket, Key=key)
        except ClientError as exc:
            raise _invalid(exc, bucket, key) from exc
        found = ObjectRecipients(
            self, bucket, key, str(head["ETag"]), int(head["ContentLength"]), batch
        )
        if fmt == "csv":
            await found.read_header(address_field)
        return found


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
        self.fields: frozenset[str] = frozenset()
        self.names: list[str] = []
        """The CSV header's field names ([] for a list of one recipient per line)."""
        self.address = ""
        self.header_end = 0
        """Bytes of the header row (a CSV object's rows start there)."""

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    async def read_header(self, address_field: str | None) -> None:
        """Read the CSV header row (one line, at most :data:`BLOCK` bytes)."""
        body = await self._open(0, BLOCK - 1)
        try:
            first = (await asyncio.to_thread(body.read, BLOCK)).split(b"\n", 1)[0]
        except ClientError as exc:
            raise _invalid(exc, self.bucket, self.key) from exc
        finally:
            body.close()
        self.names = records.header_line(first.decode("utf-8", errors="replace"), self.where)
        self.address = records.address_of(self.names, address_field, self.where)
        self.fields = frozenset(self.names)
        self.header_end = len(first) + 1

    def lacking(self, used: frozenset[str]) -> str | None:
        return None  # every row has every field (checked while reading)

    @property
    def sample(self) -> dict[str, str] | None:
        return dict.fromkeys(self.names, "") if self.names else None

    def _row(self, raw: bytes, n: int) -> tuple[str, dict[str, str] | None]:
        """One line as (address, fields): ('', None) for a blank line."""
        if not self.names:
            return _entry(raw), None
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        data = records.row(next(csv.reader([line]), []), self.names, self.where, n)
        if data is None:
            return "", None
        return data[self.address], data

    async def batches(self, start: int, offset: int) -> AsyncIterator[Listed]:
        offset = max(offset, self.header_end)
        if offset >= self.size:
            if start == 0:
                raise InvalidCampaign(f"{self.where} holds no recipients")
            return
        body = await self._open(offset)
        try:
            entries: list[str] = []
            data: list[dict[str, str]] = []
            tail = b""
            open_record = b""  # a CSV record whose quoted value goes on past a line break
            consumed = offset
            yielded = start > 0
            n = start
            while True:
                block = await asyncio.to_thread(body.read, BLOCK)
                if not block:
                    break
                lines = (tail + block).split(b"\n")
                tail = lines.pop()  # the last line may go on in the next block
                for line in lines:
                    consumed += len(line) + 1
                    raw, open_record = self._record(open_record, line, n + len(entries) + 1)
                    if raw is None:
                        continue  # batches end between records only
                    entry, fields = self._row(raw, n + len(entries) + 1)
                    if entry:
                        entries.append(entry)
                        if fields is not None:
                            data.append(fields)
                    if len(entries) >= self.batch:
                        yield self._listed(entries, data, consumed)
                        yielded = True
                        n += len(entries)
                        entries, data = [], []
            if tail or open_record:
                consumed += len(tail)
                raw, open_record = self._record(open_record, tail, n + len(entries) + 1)
                if raw is None:
                    raise InvalidCampaign(
                        f"{self.where}: row {n + len(entries) + 1} opens a quoted value "
                        "that is never closed"
                    )
                entry, fields = self._row(raw, n + len(entries) + 1)
                if entry:
                    entries.append(entry)
                    if fields is not None:
                        data.append(fields)
            if entries:
                yield self._listed(entries, data, consumed)
            elif not yielded:
                raise InvalidCampaign(f"s3://{self.bucket}/{self.key} holds no recipients")
        except ClientError as exc:
            raise _invalid(exc, self.bucket, self.key) from exc
        finally:
            body.close()

    def _record(self, open_record: bytes, line: bytes, n: int) -> tuple[bytes | None, bytes]:
        """(the record that ``line`` completes or None, what stays open): a CSV record goes
        on while it holds an odd number of quotes; other lists are one line each."""
        if not self.names:
            return line, b""
        record = open_record + b"\n" + line if open_record else line
        if record.count(b'"') % 2 == 0:
            return record, b""
        if len(record) > MAX_RECORD:
            raise InvalidCampaign(
                f"{self.where}: row {n} opens a quoted value not closed within {MAX_RECORD} bytes"
            )
        return None, record

    def _listed(self, entries: list[str], data: list[dict[str, str]], end: int) -> Listed:
        """One batch ending at byte ``end`` (with its rows' fields for a CSV object)."""
        fields = data if self.names else None
        return Listed(entries, validate=True, offset=end, etag=self.etag, data=fields)

    async def _open(self, offset: int, last: int | None = None) -> Any:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "IfMatch": self.etag}
        if offset or last is not None:
            args["Range"] = f"bytes={offset}-{'' if last is None else last}"
        try:
            res = await asyncio.to_thread(self.store.client.get_object, **args)
        except ClientError as exc:
            raise _invalid(exc, self.bucket, self.key) from exc
        log.info("reading s3://%s/%s from byte %d of %d", self.bucket, self.key, offset, self.size)
        return res["Body"]


def _entry(line: bytes) -> str:
    """One line as a recipient ('' for a blank line)."""
    return line.decode("utf-8", errors="replace").strip()
