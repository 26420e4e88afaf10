"""The job contract between the operator (producer) and the workers (consumer).

One BullMQ job carries one *chunk* of a campaign: the messages whose ``seq`` is in
``[start, end)``. Job ids are deterministic (``<campaign uid>.<chunk>``), so
adding a chunk that is already queued is a no-op, and re-adding a chunk whose
job is gone (Redis lost, suspend, retry) is always safe: the worker sends only
the rows of the chunk that are still ``pending``.

Per-message retry state lives in the row (``attempts``, ``last_error``). A job
attempt that leaves transiently failed messages raises, so BullMQ schedules the
next attempt with exponential backoff: ``2^(attemptsMade-1) * backoff_ms``,
i.e. 1 s, 2 s, 4 s for the default 1000 ms.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

JOB_NAME = "deliver"
PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """Payload of one delivery job."""

    campaign_id: uuid.UUID
    chunk: int
    start: int
    end: int

    @property
    def job_id(self) -> str:
        return job_id(self.campaign_id, self.chunk)

    def to_data(self) -> dict[str, Any]:
        return {
            "v": PAYLOAD_VERSION,
            "campaign": str(self.campaign_id),
            "chunk": self.chunk,
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ChunkJob:
        if data.get("v") != PAYLOAD_VERSION:
            raise ValueError(f"unsupported job payload version {data.get('v')!r}")
        start, end = int(data["start"]), int(data["end"])
        if not 0 <= start < end:
            raise ValueError(f"bad chunk bounds [{start}, {end})")
        return cls(uuid.UUID(str(data["campaign"])), int(data["chunk"]), start, end)


def job_id(campaign_id: uuid.UUID, chunk: int) -> str:
    """Deterministic BullMQ job id of a chunk (no ``:``, which BullMQ reserves)."""
    return f"{campaign_id}.{chunk}"


def chunk_size_for(total: int, chunk_size: int, max_chunks: int) -> int:
    """Messages per chunk of a campaign of ``total``: ``chunk_size``, or the least multiple
    of it that cuts the campaign in at most ``max_chunks`` chunks."""
    return chunk_size * max(1, -(-total // (chunk_size * max_chunks)))


def chunks(campaign_id: uuid.UUID, total: int, chunk_size: int) -> list[ChunkJob]:
    """Every chunk of a campaign of ``total`` messages."""
    return [
        ChunkJob(campaign_id, k, start, min(start + chunk_size, total))
        for k, start in enumerate(range(0, total, chunk_size))
    ]


def chunk_of(campaign_id: uuid.UUID, k: int, total: int, chunk_size: int) -> ChunkJob:
    """Chunk number ``k`` of a campaign."""
    start = k * chunk_size
    return ChunkJob(campaign_id, k, start, min(start + chunk_size, total))


def job_options(max_attempts: int, backoff_ms: int) -> dict[str, Any]:
    """BullMQ options of a delivery job.

    Completed jobs are removed (Postgres keeps the facts), so a chunk's id can be
    reused when it has to run again. Failed jobs (infrastructure trouble through
    every attempt) are kept for inspection; the operator's sweep replaces them.
    """
    return {
        "attempts": max_attempts,
        "backoff": {"type": "exponential", "delay": backoff_ms},
        "removeOnComplete": True,
        "removeOnFail": {"count": 1000},
    }
