"""What a recipient source hands to storing: batches, each stored and committed on its own."""

from __future__ import annotations

from dataclasses import dataclass

LIST_BATCH = 50_000
"""Recipients per committed batch of a list (inline, ConfigMap or object)."""

GENERATE_BATCH = 1_000_000
"""Generated rows per committed batch (made inside Postgres, one statement each)."""


@dataclass(frozen=True, slots=True)
class Listed:
    """Recipients given as text: the next rows in order, written with COPY."""

    entries: list[str]
    validate: bool
    """Check each entry for the channel (invalid ones become failed messages)."""
    offset: int = 0
    """Bytes of the source consumed once this batch is stored (object lists)."""
    etag: str | None = None
    """Version of the object read (object lists)."""
    data: list[dict[str, str]] | None = None
    """Each entry's fields (CSV rows, records), or None: plain addresses."""


@dataclass(frozen=True, slots=True)
class Generated:
    """``count`` synthetic rows made by Postgres, holding no address: theirs is
    ``user<seq - shift>@<domain>``, computed where it is read (migration 0014)."""

    count: int
    domain: str
    shift: int
    """Rows before the generated ones (``include``): generated address i has seq i + shift."""


Batch = Listed | Generated
