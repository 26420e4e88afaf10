"""The provider interface: send a batch, get one classified outcome per message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Result = Literal["sent", "transient", "permanent"]


@dataclass(frozen=True, slots=True)
class Outbound:
    """One rendered message."""

    seq: int
    recipient: str
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message: sent, or failed transiently (retry) or permanently."""

    seq: int
    result: Result
    error: str | None = None
    provider_id: str | None = None


class Provider(Protocol):
    name: str

    async def send_many(self, channel: str, messages: list[Outbound]) -> list[Outcome]:
        """Deliver ``messages`` concurrently; never raises for a per-message failure."""
        ...

    async def close(self) -> None: ...
