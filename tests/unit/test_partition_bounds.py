"""Which range of a campaign's table a generated part is written into directly."""

from __future__ import annotations

import pytest

from notifq.core.partitions import seqs


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        ("FOR VALUES FROM (MINVALUE) TO (500000)", (float("-inf"), 500000)),
        ("FOR VALUES FROM (500000) TO (MAXVALUE)", (500000, float("inf"))),
        ("FOR VALUES FROM (1) TO (334)", (1, 334)),
        # not a range of ours: holds no part, so the part goes through the table
        ("DEFAULT", (0, 0)),
        ("FOR VALUES IN (1)", (0, 0)),
    ],
)
def test_bounds_as_postgres_prints_them(bound: str, expected: tuple[float, float]) -> None:
    assert seqs(bound) == expected
