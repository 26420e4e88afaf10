"""How many campaigns the operator stores at once, against its pool of connections."""

from __future__ import annotations

import pytest

from notifq.core.settings import OperatorSettings
from notifq.operator.context import storing_slots


def test_the_defaults_store_three_at_once() -> None:
    assert storing_slots(OperatorSettings()) == 3


@pytest.mark.parametrize("pool", [4, 5, 10, 20, 33, 100, 500])
@pytest.mark.parametrize("parallel", [1, 2, 3, 8, 16])
def test_campaigns_being_stored_hold_at_most_half_the_pool(pool: int, parallel: int) -> None:
    """Each generated list being written holds ``parallel`` + 1 connections; together they
    leave half of the pool to status reads, except that one campaign is always stored
    (a pool too small for that still stores, one at a time)."""
    slots = storing_slots(OperatorSettings(db_pool_size=pool, store_parallel=parallel))
    assert slots >= 1
    assert slots == 1 or slots * (parallel + 1) <= pool / 2
    # and no fewer than that bound allows
    assert (slots + 1) * (parallel + 1) > pool / 2
